"""Reference weights: metadata true to the tracked files, loadable outside a checkout, short reprs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zfcore import weights
from zfcore.checkpoints import CheckpointError
from zfcore.data.locate import sha256
from zfcore.weights import REFERENCE_DIR, REFERENCE_SHA256, ReferenceWeights, load_reference, reference_file


def test_checksums_and_metadata_match_the_tracked_files() -> None:
    for name, digest in REFERENCE_SHA256.items():
        assert sha256(REFERENCE_DIR / name) == digest, f"{name} changed: update REFERENCE_SHA256"
    for member in ReferenceWeights:  # the typed metadata agrees with what the weights file itself records
        meta, reference = member.value.meta, member.value.load()
        recorded, recipe = reference.meta["metrics"], reference.config
        assert member.value.file in REFERENCE_SHA256
        assert (meta.top1, meta.top5, meta.top1_10crop, meta.top5_10crop, meta.epochs, meta.val_images) == (
            recorded["val_top1"], recorded["val_top5"], recorded["val_top1_10crop"], recorded["val_top5_10crop"],
            recorded["epochs"], recorded["val_images"])
        assert meta.train_minutes == pytest.approx(recorded["wall_minutes"], abs=0.05)
        assert (meta.dataset, meta.num_classes, meta.input_size, meta.style, meta.preprocessing) == (
            recipe.dataset, recipe.num_classes, recipe.input_size, recipe.style, recipe.preprocessing)
        assert meta.num_params == sum(p.numel() for p in reference.model.parameters())
        assert reference.model.style == meta.style
    meta = ReferenceWeights.DEFAULT.value.meta
    metrics = json.loads((REFERENCE_DIR / "metrics.json").read_text())
    config = json.loads((REFERENCE_DIR / "config.json").read_text())
    assert (meta.top1, meta.top5, meta.top1_10crop, meta.top5_10crop) == (
        metrics["val_top1"], metrics["val_top5"], metrics["val_top1_10crop"], metrics["val_top5_10crop"])
    assert (meta.epochs, meta.val_images) == (metrics["epochs"], metrics["val_images"])
    assert meta.train_minutes == pytest.approx(metrics["wall_minutes"], abs=0.05)
    assert (meta.dataset, meta.num_classes, meta.input_size) == (config["dataset"], config["num_classes"],
                                                                 config["input_size"])
    reference = ReferenceWeights.DEFAULT.value.load()
    assert meta.num_params == sum(p.numel() for p in reference.model.parameters())
    assert meta.preprocessing == reference.config.preprocessing == reference.preprocess.preprocessing


def test_reprs_are_short() -> None:
    reference = load_reference()
    for text in (repr(reference), repr(ReferenceWeights.DEFAULT), repr(ReferenceWeights.DEFAULT.value)):
        assert len(text) < 200 and "\n" not in text
    assert "40.9 %" in repr(reference) and repr(reference).startswith("Reference(ZF-64 on tiny-imagenet")
    alexnet = ReferenceWeights.ALEXNET64_TINY_IMAGENET
    assert repr(alexnet.value.load()).startswith("Reference(AlexNet-style-64 on tiny-imagenet, 200 classes, 28 epochs")
    assert "AlexNet-style-64" in repr(alexnet.value) and "38.2 %" in repr(alexnet.value)


def test_preprocess_matches_the_training_normalisation() -> None:
    pixels = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    inputs = load_reference().preprocess(pixels.numpy())
    from zfcore.data.loader import normalize

    torch.testing.assert_close(inputs, normalize(pixels).contiguous())
    torch.testing.assert_close(ReferenceWeights.DEFAULT.value.transforms()(pixels), inputs)


def test_fetched_when_not_in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As from a non-editable install: no tracked folder beside the package, the files come from the URL."""
    monkeypatch.setattr(weights, "REFERENCE_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(weights, "REFERENCE_URL", REFERENCE_DIR.as_uri())
    monkeypatch.setenv("ZFBOOK_CACHE", str(tmp_path / "cache"))
    path = reference_file("fig4.pt")
    assert path == tmp_path / "cache" / "reference" / "fig4.pt" and sha256(path) == REFERENCE_SHA256["fig4.pt"]
    assert load_reference().model.classifier.fc8.out_features == 200  # the weights file is fetched the same way
    monkeypatch.setattr(weights, "REFERENCE_URL", (tmp_path / "nowhere").as_uri())
    assert reference_file("fig4.pt") == path  # cached: no second fetch


def test_a_changed_download_is_refused_and_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "fig4.pt").write_bytes(b"something else")
    monkeypatch.setattr(weights, "REFERENCE_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(weights, "REFERENCE_URL", source.as_uri())
    monkeypatch.setenv("ZFBOOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match="expected " + REFERENCE_SHA256["fig4.pt"]):
        reference_file("fig4.pt")
    assert not list((tmp_path / "cache").rglob("*fig4*"))
    with pytest.raises(CheckpointError, match="could not fetch"):
        monkeypatch.setattr(weights, "REFERENCE_URL", (tmp_path / "nowhere").as_uri())
        reference_file("fig4.pt")
    with pytest.raises(ValueError, match="'weights.pt' is not a reference file"):
        reference_file("weights.pt")
