"""Tests of zfcore.book's chapter helpers: chapter 01's accuracy table, scale at initialisation and paper-init run;
the ImageNet samples of chapters 04 and 06."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zfcore import book
from zfcore.analysis.ablations import PAPER_TABLE2


@pytest.fixture
def ci(monkeypatch):
    monkeypatch.setenv("ZFBOOK_PROFILE", "ci")


def _reference(metrics: dict) -> SimpleNamespace:
    history = [{"epoch": 1, "val_top1": 0.2, "val_top5": 0.4}, {"epoch": 2, "val_top1": 0.25, "val_top5": 0.5}]
    return SimpleNamespace(meta={"history": history, "metrics": metrics}, config=SimpleNamespace(input_size=64))


def test_the_accuracy_table_puts_ours_under_the_papers_table2_rows(ci):
    table, trained_for = book.accuracy_table(_reference({}))
    lines = table.splitlines()
    assert lines[2] == (f"| Krizhevsky et al. (2012), 1 convnet — ImageNet, 224 px (Table 2: {PAPER_TABLE2[0][1]} % / "
                        f"{PAPER_TABLE2[0][2]} % error) | 59.3 % | 81.8 % |")
    assert lines[3].endswith("(Table 2: 38.4 % / 16.5 % error) | 61.6 % | 83.5 % |")
    assert lines[4] == "| ours, ZF-64, ci profile — single centre view | 25.0 % | 50.0 % |"  # the last epoch's
    assert len(lines) == 5 and trained_for == ""
    final = {"val_top1": 0.4093, "val_top5": 0.6712, "val_top1_10crop": 0.43, "val_top5_10crop": 0.69, "epochs": 28,
             "wall_minutes": 83.1, "train_img_per_s_mean": 480.4}
    table, trained_for = book.accuracy_table(_reference(final))
    assert table.splitlines()[4].endswith("| 40.9 % | 67.1 % |")
    assert table.splitlines()[5] == "| ours — 10-crop (corners + centre, with flips) | 43.0 % | 69.0 % |"
    assert trained_for == "trained 28 epochs in 83 min, 480 img/s on average"


def test_the_papers_inputs_are_many_times_larger_at_initialisation(ci):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    lines = book.initial_output_scale(pixels).splitlines()
    assert lines[0] == "At initialisation, over 16 validation images:"
    stds = [[float(value) for value in re.findall(r"\| ([0-9.e+-]+) \| ([0-9.e+-]+) \|$", line)[0]] for line in lines[-2:]]
    (book_input, book_output), (paper_input, paper_output) = stds
    assert 0.5 < book_input < 2 and paper_input > 30 * book_input  # 0-1 scale / std against 0-255 minus the mean
    assert paper_output > 10 * book_output


def test_the_paper_init_run_is_read_with_chance_and_our_loss_beside_it(ci):
    rows, table = book.paper_init_run([{"epoch": 1.0, "val_loss": 4.5}])
    lines = table.splitlines()
    assert lines[0].endswith("| val loss, ci run |") and len(lines) == 2 + len(rows)
    first = rows[0]
    assert lines[2].startswith(f"| {first['epoch']:.0f} | {first['train_loss']:.4f} | {first['val_loss']:.4f} | "
                               f"{first['val_loss'] - math.log(200):+.4f} |")
    assert lines[2].endswith("| 4.5000 |") and all(line.endswith("| – |") for line in lines[3:])


def test_occlusion_candidates_are_val_images_under_ci_and_one_imagenet_sample_per_class_otherwise(ci, monkeypatch):
    from PIL import Image

    reference = SimpleNamespace(meta={"class_names": ["cat", "dog"], "classes": ["n2", "n1"]},
                                model=SimpleNamespace(input_size=64))
    val = np.zeros((3, 64, 64, 3), np.uint8)
    monkeypatch.setattr(book, "probe_images", lambda: (val, np.array([1, 0, 1]), ["cat", "dog"]))
    pixels, labels, titles = book.occlusion_candidates(reference)
    assert pixels is val and labels.tolist() == [1, 0, 1] and titles[0] == "dog (val image)"
    monkeypatch.setenv("ZFBOOK_PROFILE", "book")
    sources = {"n1": np.full((80, 100, 3), 10, np.uint8), "n2": np.full((70, 70, 3), 20, np.uint8)}

    class Samples:  # one sample per class, in a different order from the network's classes
        wnids = ["n1", "n2"]

        def __getitem__(self, index: int) -> SimpleNamespace:
            return SimpleNamespace(image=Image.fromarray(sources[self.wnids[index]]))

    monkeypatch.setattr(book, "imagenet_samples", Samples)
    pixels, labels, titles = book.occlusion_candidates(reference)
    assert pixels.shape == (2, 64, 64, 3) and pixels.dtype == np.uint8
    assert pixels[0].max() == 20 and pixels[1].max() == 10  # in the network's class order: n2 (cat), then n1
    assert labels.tolist() == [0, 1] and titles == ["cat (ImageNet sample)", "dog (ImageNet sample)"]


def test_known_samples_are_the_samples_of_the_networks_classes_labelled_by_its_class_order(monkeypatch):
    from PIL import Image

    images = {name: Image.new("RGB", (8, 8), (value, 0, 0)) for value, name in enumerate(["ant", "bee", "cow"])}

    class Samples:  # the sample set's order: ant, bee, cow; the network knows cow and ant
        class_names = ["ant", "bee", "cow"]

        def __getitem__(self, index: int) -> SimpleNamespace:
            return SimpleNamespace(image=images[self.class_names[index]])

    monkeypatch.setattr(book, "imagenet_samples", Samples)
    samples, labels = book.known_samples(["cow", "ant"])
    assert samples == [images["ant"], images["cow"]] and labels == [1, 0]


def test_the_random_labels_network_is_the_kept_run_or_none_and_a_ci_stand_in_under_ci(ci, monkeypatch, tmp_path):
    trained_with = []

    def ci_run(style: str = "zf", *, random_labels: bool = False):
        trained_with.append((style, random_labels))
        return tmp_path

    network = SimpleNamespace(model=SimpleNamespace(to=lambda device: None))
    monkeypatch.setattr(book, "_ci_run", ci_run)
    monkeypatch.setattr(book, "load_reference", lambda path: network if path == tmp_path / "checkpoint.pt" else None)
    assert book.random_labels_network() is network and trained_with == [("zf", True)]
    monkeypatch.setenv("ZFBOOK_PROFILE", "book")
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", {})
    assert book.random_labels_network() is None  # not recorded yet: the chapter shows the test as pending
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", {book.RANDOM_LABELS_RUN: "0" * 64})
    kept = []
    monkeypatch.setattr(book, "experiment_weights", lambda experiment, run: kept.append((experiment, run)) or network)
    assert book.random_labels_network() is network and kept == [("verdict-runs", "random-labels")]


def test_a_networks_training_fit_is_its_recorded_one_or_measured_on_its_own_training_labels(monkeypatch):
    recorded = SimpleNamespace(meta={"metrics": {"train_top1_eval": 0.004}})
    monkeypatch.setattr(book, "evaluate", lambda *args, **kwargs: pytest.fail("a recorded fit is not measured again"))
    assert book.training_fit(recorded) == 0.004
    asked = []
    unrecorded = SimpleNamespace(meta={"recipe": {}}, config="the ci recipe", model="the network")
    monkeypatch.setattr(book, "eval_batches", lambda config, batch_size, split: asked.append((config, split)) or "batches")
    monkeypatch.setattr(book, "evaluate", lambda model, batches, device: {"top1": 0.25} if (model, batches) == (
        "the network", "batches") else pytest.fail("another network or other images"))
    assert book.training_fit(unrecorded) == 0.25 and asked == [("the ci recipe", "train")]


def test_another_seed_is_the_kept_verdict_run_of_the_same_recipe_and_a_ci_stand_in_under_ci(ci, monkeypatch, tmp_path):
    trained_with = []

    def ci_run(style: str = "zf", **changes):
        trained_with.append((style, changes))
        return tmp_path

    network = SimpleNamespace(model=SimpleNamespace(to=lambda device: None))
    monkeypatch.setattr(book, "_ci_run", ci_run)
    monkeypatch.setattr(book, "load_reference", lambda path: network if path == tmp_path / "checkpoint.pt" else None)
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", {"verdict-runs/alexnet-seed1": "0" * 64,
                                                             "verdict-runs/book-seed1": "0" * 64})
    assert book.trained("alexnet", seed=1) is network and book.trained("zf") is network
    assert trained_with == [("alexnet", {"seed": 1}), ("zf", {})]
    with pytest.raises(ValueError, match=r"seed=2 is not valid for style='zf': the networks kept are those of seeds "
                                         r"\[0, 1\]"):
        book.trained("zf", seed=2)
    monkeypatch.setenv("ZFBOOK_PROFILE", "book")
    kept = []
    monkeypatch.setattr(book, "experiment_weights", lambda experiment, run: kept.append((experiment, run)) or network)
    assert book.trained("alexnet", seed=1) is network and kept == [("verdict-runs", "alexnet-seed1")]


def test_a_kept_network_is_the_committed_run_or_none_and_under_ci_the_ci_recipe_with_the_runs_change(
        ci, monkeypatch, tmp_path):
    trained_with = []
    network = SimpleNamespace(model=SimpleNamespace(to=lambda device: None))
    monkeypatch.setattr(book, "_ci_run", lambda **changes: trained_with.append(changes) or tmp_path)
    monkeypatch.setattr(book, "load_reference", lambda path: network if path == tmp_path / "checkpoint.pt" else None)
    assert book.kept_network(book.NO_RENORM_RUN) is network
    assert book.kept_network("verdict-runs/alexnet-seed1") is network
    assert trained_with == [{"renorm_rms": 0.0}, {"style": "alexnet", "seed": 1}]  # read from the runs' recipes
    monkeypatch.setenv("ZFBOOK_PROFILE", "book")
    kept = []
    monkeypatch.setattr(book, "experiment_weights", lambda experiment, run: kept.append((experiment, run)) or network)
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", {book.NO_RENORM_RUN: "0" * 64})
    assert book.kept_network(book.NO_RENORM_RUN) is network and kept == [("verdict-runs", "no-renorm")]
    assert book.kept_network(book.RANDOM_LABELS_RUN) is None  # not committed yet: the chapter shows it as pending
    with pytest.raises(ValueError, match=r"run='verdict-runs/alexnet-seed2' is not a run whose weights are kept; "
                                         r"valid: verdict-runs/no-label-smoothing, "):
        book.kept_network("verdict-runs/alexnet-seed2")  # trained, but its weights are not kept
    with pytest.raises(ValueError, match=r"experiment='no-such' is not"):
        book.kept_network("no-such/run")


def test_the_paper_inputs_filters_are_the_two_kept_runs_or_none_and_ci_stand_ins_under_ci(ci, monkeypatch, tmp_path):
    def network(scale: float) -> SimpleNamespace:
        conv1 = SimpleNamespace(weight=torch.full((4, 3, 7, 7), scale, dtype=torch.bfloat16))
        return SimpleNamespace(model=SimpleNamespace(features=SimpleNamespace(conv1=conv1), to=lambda device: None))

    trained_with = []
    monkeypatch.setattr(book, "_ci_run", lambda **changes: trained_with.append(changes) or tmp_path / str(len(trained_with)))
    monkeypatch.setattr(book, "load_reference", lambda path: network(float(path.parent.name)))
    conv1 = book.paper_inputs_conv1()
    assert list(conv1) == list(book.PAPER_INPUTS_RUNS) and conv1["paper inputs, not renormalised"][0, 0, 0, 0] == 2.0
    assert all(weights.dtype == torch.float32 for weights in conv1.values())
    assert trained_with == [{"init": "paper", "preprocessing": "pixel-mean"},
                            {"init": "paper", "preprocessing": "pixel-mean", "renorm_rms": 0.0}]
    monkeypatch.setenv("ZFBOOK_PROFILE", "book")
    kept = []
    monkeypatch.setattr(book, "experiment_weights", lambda experiment, run: kept.append(run) or network(3.0))
    only_one = {book.PAPER_INPUTS_RUNS["paper inputs, renormalised"]: "0" * 64}
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", only_one)
    assert book.paper_inputs_conv1() is None  # both runs or neither: the chapter shows the panel as pending
    monkeypatch.setattr(book, "EXPERIMENT_WEIGHTS_SHA256", dict.fromkeys(book.PAPER_INPUTS_RUNS.values(), "0" * 64))
    kept.clear()
    assert book.paper_inputs_conv1()["paper inputs, renormalised"][0, 0, 0, 0] == 3.0
    assert kept == ["paper-inputs-renorm", "paper-inputs-no-renorm"]
