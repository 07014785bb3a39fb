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
    assert "AlexNet-style-64" in repr(alexnet.value) and f"{100 * alexnet.value.meta.top1:.1f} %" in repr(alexnet.value)


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


def test_members_forward_to_their_weights() -> None:
    """``ReferenceWeights.DEFAULT.load()`` (as the docs write it) is ``ReferenceWeights.DEFAULT.value.load()``."""
    import copy
    import pickle

    member = ReferenceWeights.DEFAULT
    assert member.meta is member.value.meta and member.file == member.value.file == "zf64-tiny-imagenet.pt"
    assert member.path() == member.value.path() == REFERENCE_DIR / member.file
    assert repr(member.load()) == repr(member.value.load())
    assert {"load", "meta", "path", "transforms", "value", "name"} <= set(dir(member))
    assert ReferenceWeights.ALEXNET64_TINY_IMAGENET.meta.style == "alexnet"
    assert copy.deepcopy(member) is member and pickle.loads(pickle.dumps(member)) is member
    with pytest.raises(AttributeError, match="'no_such_thing'"):
        member.no_such_thing


def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Outside a clone, without internet: no tracked folder, every download fails. Returns the cache folder."""
    import urllib.error
    import urllib.request

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    (tmp_path / "no-checkout").mkdir()
    monkeypatch.setattr(weights, "REFERENCE_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setenv("ZFBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reference"


def test_offline_outside_a_clone_names_every_way_that_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import zfcore

    cache = _offline(monkeypatch, tmp_path)
    name = ReferenceWeights.DEFAULT.file
    with pytest.raises(CheckpointError) as info:
        ReferenceWeights.DEFAULT.load()
    message = str(info.value)
    assert "\n" not in message and "no internet" in message and f"{weights.REFERENCE_URL}/{name}" in message
    assert "use a clone of the repository" in message
    assert str(cache / name) in message and f"$ZFBOOK_CACHE/reference/{name}" in message
    assert "~/.cache/zfbook/reference" in message and "zfcore.load_reference(path)" in message
    with pytest.raises(CheckpointError) as info:  # Fig. 4's data is not a network: load_reference is not offered
        reference_file("fig4.pt")
    assert str(cache / "fig4.pt") in str(info.value) and "load_reference" not in str(info.value)

    downloaded = shutil.copy(REFERENCE_DIR / name, tmp_path / name)  # the first way: a downloaded copy
    assert zfcore.load_reference(downloaded).model.classifier.fc8.out_features == 200
    cache.mkdir(parents=True, exist_ok=True)  # the failed download made it
    (cache / name).write_bytes(b"not the weights")  # a wrong file in the cache is named as such
    with pytest.raises(CheckpointError, match="replacing the file there"):
        ReferenceWeights.DEFAULT.path()
    shutil.copy(REFERENCE_DIR / name, cache / name)  # the second way: the file in the cache folder
    assert ReferenceWeights.DEFAULT.path() == cache / name
    assert repr(ReferenceWeights.DEFAULT.load()) == repr(load_reference())


def test_a_damaged_reference_file_is_refused_on_load_naming_how_to_restore_it(tmp_path, monkeypatch) -> None:
    import shutil

    from zfcore import weights
    from zfcore.checkpoints import CheckpointError

    original = weights.ReferenceWeights.DEFAULT.path()
    damaged = tmp_path / original.name
    shutil.copyfile(original, damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit in the weights
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(weights, "REFERENCE_DIR", tmp_path)
    with pytest.raises(CheckpointError, match=rf"{damaged} has SHA-256 [0-9a-f]{{64}}, expected "
                                              rf"{weights.REFERENCE_SHA256[original.name]}: .*git checkout -- "
                                              rf"data/reference/{original.name}"):
        weights.ReferenceWeights.DEFAULT.load()


def test_every_kept_experiment_network_is_listed_with_its_checksum_and_loads() -> None:
    import json

    from zfcore import weights
    from zfcore.paths import EXPERIMENTS_DIR

    tracked = {str(path.relative_to(EXPERIMENTS_DIR).with_suffix("")) for path in EXPERIMENTS_DIR.glob("*/*.pt")
               if (EXPERIMENTS_DIR / f"{path.parent.name}.json").is_file()}  # the networks an experiment kept
    assert tracked == set(weights.EXPERIMENT_WEIGHTS_SHA256), "list each kept network in EXPERIMENT_WEIGHTS_SHA256"
    for key, digest in weights.EXPERIMENT_WEIGHTS_SHA256.items():
        experiment, run = key.split("/")
        record = json.loads((EXPERIMENTS_DIR / f"{experiment}.json").read_text())["runs"][run]
        assert record["weights"] == {**record["weights"], "file": f"{key}.pt", "sha256": digest}
        network = weights.experiment_weights(experiment, run)
        assert network.meta["metrics"]["val_top1"] == record["val_top1"] and not network.model.training
    with pytest.raises(ValueError, match=r"experiment='verdict-runs', run='nope': no kept network; valid: \("):
        weights.experiment_weights("verdict-runs", "nope")
