"""``python -m zfcore transfer`` (zfcore.transfer_run): a fake Caltech-101 on disk in, JSON files shaped like the
committed ``data/experiments/transfer.json`` and ``probes.json`` out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zfcore.__main__ import _parser, run
from zfcore.checkpoints import build_model, checkpoint_state, save_checkpoint
from zfcore.data.caltech import caltech_splits
from zfcore.profiles import TrainConfig
from zfcore.transfer_run import TransferPlan, caltech101_files, caltech101_pixels, run_duplicates
from zfcore.weights import load_reference

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "experiments"
CLASSES = ("accordion", "airplanes", "anchor", "yin_yang")  # yin_yang/image_0001.jpg: the extraction's marker
COLOURS = np.array([[230, 30, 30], [30, 200, 40], [40, 50, 220], [240, 220, 30]])
TINY = ("--frozen-sizes", "1,3", "--splits", "2", "--network-sizes", "3", "--scratch-sizes", "2",
        "--finetune-steps", "2", "--scratch-steps", "2", "--probe-per-class", "3", "--network-seeds", "1")


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny L-BFGS steps: one thread (on a busy machine, two threads wait on each other at every step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """A data root holding a fake Caltech-101 (4 classes x 8 images, BACKGROUND_Google too) and a tiny network."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "caltech101" / "101_ObjectCategories"
    generator = np.random.default_rng(0)
    for name, colour in zip(CLASSES + ("BACKGROUND_Google",), np.vstack([COLOURS, [[128, 128, 128]]])):
        (folder / name).mkdir(parents=True)
        for index in range(1, 9):
            size = (90, 60) if index % 2 else (50, 80)
            noise = generator.integers(-30, 31, (size[1], size[0], 3))
            Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(folder / name / f"image_{index:04d}.jpg")
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=5, widths=(8, 16, 16, 16, 16), fc=32,
                         init="he", preprocessing="mean-std")
    checkpoint = root / "checkpoint.pt"
    save_checkpoint(checkpoint_state(config, model=build_model(config).state_dict()), checkpoint)
    return root, checkpoint


def transfer_cli(setup, tmp_path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    root, checkpoint = setup
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(root))  # restored after the test (the CLI sets it too)
    monkeypatch.setenv("ZFBOOK_MIRROR", str(tmp_path / "no-mirror"))
    try:
        code = run(["transfer", "--checkpoint", str(checkpoint), "--data-root", str(root), "--out", str(tmp_path / "out"),
                    *args])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PROVENANCE = {"command", "data_sha256", "device", "recorded"}
"""Recorded by every new result; committed files made before provenance was recorded lack them."""
STEP_CHOICE = {"step_choice", "step_grids", "steps"}
"""Recorded by every new transfer result (each network row's steps, and the steps chosen on held-out training images);
the committed transfer.json was made before steps were chosen that way."""


def same_keys(ours: dict, committed: dict, where: str = "") -> None:
    new = PROVENANCE | STEP_CHOICE
    assert set(ours) - new == set(committed) - new, f"{where}: {sorted(set(ours) ^ set(committed))}"


def test_transfer_writes_both_files_shaped_like_the_committed_ones(setup, tmp_path, monkeypatch, capsys):
    code, out, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, *TINY, "--probe-layers", "conv2,conv5,fc7",
                                  "--probe-losses", "softmax,svm", "--finetune-steps", "1,2")
    assert code == 0, err
    assert out.split() == [str(tmp_path / "out" / "transfer.json"), str(tmp_path / "out" / "probes.json")]
    transfer = json.loads((tmp_path / "out" / "transfer.json").read_text())
    committed = json.loads((COMMITTED / "transfer.json").read_text())
    same_keys(transfer, committed, "transfer.json")
    same_keys(transfer["config"], committed["config"], "transfer config")
    for part in ("frozen", "finetune", "scratch"):
        for row in transfer[part]:
            same_keys(row, committed[part][0], part)
    assert transfer["config"]["images"] == 32 and transfer["config"]["classes"] == 4  # no BACKGROUND_Google
    assert [row["train_per_class"] for row in transfer["frozen"]] == [1, 3]
    assert all(row["seeds"] == [0, 1] and len(row["accuracy_percent"]) == 2 for row in transfer["frozen"])
    assert [row["train_per_class"] for row in transfer["finetune"]] == [3]
    assert [row["train_per_class"] for row in transfer["scratch"]] == [2, 3]  # scratch sizes and network sizes
    assert transfer["config"]["step_grids"] == {"finetune": [1, 2]} and list(transfer["step_choice"]) == ["finetune"]
    choice = transfer["step_choice"]["finetune"]["3"]  # on held-out training images of the first split
    assert choice["steps"] == [1, 2] and choice["held_out_per_class"] == 1
    assert transfer["finetune"][0]["steps"] == choice["chosen"] and [row["steps"] for row in transfer["scratch"]] == [2, 2]
    assert transfer["dataset"].startswith("Caltech-101 (4 classes, 32 images") and transfer["network"].startswith("Reference(")
    assert transfer["paper"] == committed["paper"]
    assert PROVENANCE <= set(transfer) and transfer["command"].startswith("python ")  # this process's command line

    probes = json.loads((tmp_path / "out" / "probes.json").read_text())
    committed = json.loads((COMMITTED / "probes.json").read_text())
    same_keys(probes, committed, "probes.json")
    same_keys(probes["config"], committed["config"], "probes config")
    assert list(probes["probes"]) == ["softmax", "svm"] and list(probes["verdict"]) == ["softmax", "svm"]
    for loss in ("softmax", "svm"):
        assert list(probes["probes"][loss]) == ["conv2", "conv5", "fc7"]
        for row in probes["probes"][loss].values():
            same_keys(row, committed["probes"]["softmax"]["fc7"], f"{loss} row")
            assert row["train_per_class"] == 3 and row["seeds"] == [0, 1]
        same_keys(probes["verdict"][loss], committed["verdict"]["softmax"], f"{loss} verdict")
    assert list(probes["config"]["dimensions"]) == ["conv2", "conv5", "fc7"]
    assert probes["features"] == committed["features"] and probes["paper"] == committed["paper"]


def test_transfer_writes_only_what_is_asked(setup, tmp_path, monkeypatch, capsys):
    code, out, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, *TINY, "--what", "probes")
    assert code == 0, err
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["probes.json"]
    probes = json.loads((tmp_path / "out" / "probes.json").read_text())
    assert list(probes["probes"]["softmax"]) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]


def test_the_cross_validated_layer_is_one_command(setup, tmp_path, monkeypatch, capsys):
    code, out, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, "--what", "cv-layer", "--network-sizes", "3",
                                  "--splits", "2", "--probe-layers", "conv2,fc7")
    assert code == 0, err
    assert out.split() == [str(tmp_path / "out" / "transfer-cv-layer.json")]
    result = json.loads((tmp_path / "out" / "transfer-cv-layer.json").read_text())
    assert result["config"]["sizes"] == [3] and result["config"]["splits"] == 2
    assert result["config"]["layers"] == ["conv2", "fc7"] and len(result["rows"]) == 1
    same_keys(result["config"], json.loads((COMMITTED / "transfer-cv-layer.json").read_text())["config"], "config")


def test_network_splits_go_to_a_journal_and_a_repeated_run_reads_them_back(setup, tmp_path, monkeypatch, capsys):
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, *TINY, "--what", "transfer")
    assert code == 0, err
    journal = tmp_path / "out" / "transfer-journal.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 3  # fine-tuned at 3/class, from scratch at 2 and 3/class, one split each
    first = json.loads((tmp_path / "out" / "transfer.json").read_text())
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, *TINY, "--what", "transfer")
    assert code == 0, err
    assert journal.read_text().splitlines() == lines  # nothing trained again
    second = json.loads((tmp_path / "out" / "transfer.json").read_text())
    for method in ("finetune", "scratch"):
        assert [row["accuracy_percent"] for row in second[method]] == [row["accuracy_percent"] for row in first[method]]


@pytest.mark.parametrize("args, message", [
    (("--probe-layers", "conv1,fc8"), "--probe-layers ('conv1', 'fc8') is not valid"),
    (("--probe-losses", "knn"), "--probe-losses ('knn',) is not valid; valid losses: ('softmax', 'svm')"),
    (("--frozen-sizes", "5,1"), "--frozen-sizes (5, 1) is not valid; give positive whole numbers in increasing order"),
    (("--frozen-sizes", "1,x"), "'x' is not valid; give a whole number"),
    (("--network-seeds", "0"), "0 is not valid; give a whole number of at least 1"),
])
def test_bad_options_are_one_clear_error_before_any_work(setup, tmp_path, monkeypatch, capsys, args, message):
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_command_line_defaults_are_the_default_plan():
    args = _parser().parse_args(["transfer"])
    plan = TransferPlan()
    for name in ("frozen_sizes", "splits", "network_sizes", "scratch_sizes", "network_seeds", "finetune_steps",
                 "scratch_steps", "probe_losses", "probe_per_class"):
        assert getattr(args, name) == getattr(plan, name), name
    assert args.probe_layers is None  # None: every layer, the plan's default


def test_the_default_plan_is_the_committed_results_settings():
    plan = TransferPlan()
    transfer = json.loads((COMMITTED / "transfer.json").read_text())["config"]
    probes = json.loads((COMMITTED / "probes.json").read_text())["config"]
    assert list(plan.frozen_sizes) == transfer["frozen_sizes"] and list(range(plan.splits)) == transfer["frozen_seeds"]
    assert list(plan.network_sizes) == transfer["network_sizes"]
    assert sorted(set(plan.network_sizes) | set(plan.scratch_sizes)) == transfer["scratch_sizes"]
    assert list(range(plan.network_seeds)) == transfer["network_seeds"]
    for arm in ("finetune", "scratch"):  # a grid to choose from where the committed run chose, else one count
        committed = transfer.get("step_grids", {}).get(arm, [transfer[f"{arm}_recipe"]["steps"]])
        assert getattr(plan, f"{arm}_steps") == tuple(committed), arm
    assert list(plan.probe_layers) == list(probes["dimensions"]) and list(plan.probe_losses) == probes["losses"]
    assert plan.probe_per_class == probes["train_per_class"] and list(range(plan.splits)) == probes["seeds"]


def test_duplicates_are_found_checked_against_the_judgement_and_left_out_of_the_test_images(setup, monkeypatch):
    root, checkpoint = setup
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(root))
    monkeypatch.setenv("ZFBOOK_MIRROR", str(root / "no-mirror"))
    reference = load_reference(checkpoint)
    pixels, labels, dataset = caltech101_pixels(64)
    files = caltech101_files()
    noise = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    references = {"train": (np.concatenate([noise, pixels[[3]]]), [f"n0/n0_{index}.JPEG" for index in range(6)])}
    committed = [{"train_per_class": 3, "accuracy_percent": [50.0, 60.0]}]
    result = run_duplicates(reference, pixels, labels, dataset=dataset, caltech_files=files, committed_frozen=committed,
                            splits=2, confirmed=((files[3], "n0/n0_5.JPEG"),), references=references)["duplicates"]
    assert result["confirmed"] == [{"caltech": files[3], "tiny_imagenet": "n0/n0_5.JPEG", "distance": 0, "caltech_index": 3}]
    assert result["sets"]["train"]["counts"]["0"]["pairs"] >= 1 and result["queries"] == len(pixels)
    effect = result["frozen_fc7_without_confirmed_test_images"]
    assert [(row["seed"], row["committed_percent"]) for row in effect] == [(0, 50.0), (1, 60.0)]
    for row, split in zip(effect, caltech_splits(labels, 3, 50, range(2))):
        if 3 in split.test:  # scored without the duplicate: a different test set
            assert split.seed not in result["splits_with_a_confirmed_image_in_training"]["3"]
        else:  # nothing left out: the same score
            assert row["without_duplicates_percent"] == row["refitted_percent"]
    assert {"code_version", "command", "data_sha256", "device"} <= set(result)
    with pytest.raises(ValueError, match=r"not candidate pairs within 8 bits"):
        run_duplicates(reference, pixels, labels, dataset=dataset, caltech_files=files, committed_frozen=committed,
                       splits=2, confirmed=((files[4], "n0/n0_5.JPEG"),), references=references)


def test_duplicates_need_the_transfer_results_beside_them(setup, tmp_path, monkeypatch, capsys):
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, "--what", "duplicates")
    assert code != 0 and "transfer.json, which does not exist: run --what transfer first" in err


def test_probes_choose_pooling_and_weight_decay_by_cross_validation(setup, tmp_path, monkeypatch, capsys):
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, "--what", "probes", "--splits", "2",
                                "--probe-per-class", "3", "--probe-layers", "conv2,fc7", "--probe-losses", "softmax,svm",
                                "--probe-poolings", "1,2", "--probe-weight-decays", "1e-6,1e-2,1")
    assert code == 0, err
    probes = json.loads((tmp_path / "out" / "probes.json").read_text())
    assert probes["config"]["weight_decay_grid"] == [1e-6, 1e-2, 1.0]
    assert "1 x 1 or 2 x 2 grid (chosen by CV" in probes["config"]["pooling"]
    assert probes["config"]["dimensions"] == {"conv2": {"conv2, 1x1": 16, "conv2, 2x2": 64}, "fc7": 32}
    for loss in ("softmax", "svm"):
        conv, fc = probes["probes"][loss]["conv2"], probes["probes"][loss]["fc7"]
        assert len(conv["layers"]) == 2 and set(conv["layers"]) <= {"conv2, 1x1", "conv2, 2x2"}
        assert "layers" not in fc and set(conv["weight_decays"] + fc["weight_decays"]) <= {1e-6, 1e-2, 1.0}
    code, _, err = transfer_cli(setup, tmp_path, monkeypatch, capsys, "--what", "probes", "--probe-poolings", "2,1")
    assert code != 0 and "probe_poolings=(2, 1) is not valid" in err.replace("--probe-poolings ", "probe_poolings=")
