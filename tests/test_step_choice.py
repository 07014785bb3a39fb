"""Tests of zfcore.analysis.step_choice (a network arm's steps chosen on held-out training images) and of its use in
Table 4's run and the C9 verdict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zfcore.analysis.step_choice as step_choice
from zfcore.analysis.generalisation import c9_verdict, measure_transfer
from zfcore.analysis.probes import SplitScores
from zfcore.analysis.step_choice import StepChoice, check_step_grid, choose_steps, held_out_split
from zfcore.analysis.transfer import NetworkRecipe
from zfcore.data.caltech import caltech_splits
from zfcore.models import zfnet
from zfcore.profiles import TrainConfig

WIDTHS, FC = (8, 16, 16, 16, 16), 32


def _labels(classes: int = 4, per_class: int = 12) -> np.ndarray:
    return np.repeat(np.arange(classes), per_class)


def test_held_out_images_come_from_the_training_images_only_and_are_the_same_each_time():
    labels = _labels()
    split = caltech_splits(labels, 6, test_per_class=5, seeds=[3])[0]
    divided = held_out_split(labels, split)
    assert divided.seed == 3 and set(divided.train) | set(divided.test) == set(split.train)
    assert not set(divided.train) & set(divided.test) and not set(divided.test) & set(split.test)
    assert np.bincount(labels[divided.test]).tolist() == [2] * 4  # a third of 6 per class
    assert np.bincount(labels[divided.train]).tolist() == [4] * 4
    again = held_out_split(labels, split)
    assert np.array_equal(again.train, divided.train) and np.array_equal(again.test, divided.test)
    other = held_out_split(labels, caltech_splits(labels, 6, test_per_class=5, seeds=[4])[0])
    assert not np.array_equal(other.test, divided.test)
    assert np.bincount(labels[held_out_split(labels, split, 5).test]).tolist() == [5] * 4


def test_held_out_split_refuses_what_cannot_be_held_out():
    labels = _labels()
    with pytest.raises(ValueError, match="1 training image per class"):
        held_out_split(labels, caltech_splits(labels, 1, seeds=[0])[0])
    split = caltech_splits(labels, 6, seeds=[0])[0]
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match=f"held_out_per_class={bad!r} is not valid with 6 .* from 1 to 5"):
            held_out_split(labels, split, bad)


def test_step_grids_are_checked():
    assert check_step_grid("grid", [10, 20]) == (10, 20)
    for bad in ((), (20, 10), (10, 10), (0, 10), (1.5,), (True,)):
        with pytest.raises(ValueError, match=r"grid=.* is not valid; give positive whole numbers in increasing order"):
            check_step_grid("grid", bad)


def _scripted(monkeypatch, accuracy_at):
    """network_transfer replaced by ``accuracy_at(steps)``; returns the (steps, split) of each call."""
    calls = []

    def fake(source, pixels, labels, splits, *, mode, recipe, **options):
        calls.append((recipe.steps, splits[0]))
        return SplitScores(mode, 4, [splits[0].seed], [accuracy_at(recipe.steps)], [None], 0.0)

    monkeypatch.setattr(step_choice, "network_transfer", fake)
    return calls


def test_the_grid_stops_at_convergence_and_the_best_held_out_count_is_chosen(monkeypatch):
    labels = _labels()
    split = caltech_splits(labels, 6, test_per_class=5, seeds=[0])[0]
    curve = {100: 0.20, 200: 0.30, 400: 0.36, 800: 0.35, 1600: 0.10}
    calls = _scripted(monkeypatch, curve.get)
    choice = choose_steps(None, None, labels, split, mode="scratch", recipe=NetworkRecipe(), step_grid=tuple(curve))
    assert [steps for steps, _ in calls] == [100, 200, 400, 800]  # 400 -> 800 changed it by 1 point: converged
    assert choice.steps == (100, 200, 400, 800) and choice.chosen == 400 and choice.converged
    for _, held in calls:  # trained on part of the training images, scored on the rest: never on a test image
        assert set(held.train) | set(held.test) <= set(split.train)
    assert choice.train_per_class == 6 and choice.held_out_per_class == 2
    assert StepChoice.from_dict(choice.as_dict()) == choice
    assert choice.as_dict()["held_out_accuracy_percent"] == [20.0, 30.0, 36.0, 35.0]


def test_a_grid_that_ends_while_accuracy_still_moves_is_not_converged(monkeypatch):
    labels = _labels()
    split = caltech_splits(labels, 6, seeds=[0])[0]
    _scripted(monkeypatch, {100: 0.2, 200: 0.3, 400: 0.4}.get)
    choice = choose_steps(None, None, labels, split, mode="scratch", recipe=NetworkRecipe(), step_grid=(100, 200, 400))
    assert choice.chosen == 400 and not choice.converged
    single = choose_steps(None, None, labels, split, mode="scratch", recipe=NetworkRecipe(), step_grid=(100,))
    assert single.chosen == 100 and not single.converged  # one count shows nothing about convergence
    with pytest.raises(ValueError, match="converged_within=0 is not valid"):
        choose_steps(None, None, labels, split, mode="scratch", recipe=NetworkRecipe(), step_grid=(1, 2),
                     converged_within=0)


def test_the_choice_does_not_depend_on_the_test_images():
    labels = _labels(4, 10)
    pixels = np.random.default_rng(0).integers(0, 255, (len(labels), 64, 64, 3)).astype(np.uint8)
    split = caltech_splits(labels, 6, test_per_class=4, seeds=[0])[0]
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=WIDTHS, fc=FC, init="he")
    options = dict(mode="scratch", recipe=NetworkRecipe(batch_size=8), step_grid=(2, 4), converged_within=0.5,
                   precision="fp32", progress=False)
    choice = choose_steps(config, pixels, labels, split, **options)
    scrambled = pixels.copy()
    scrambled[split.test] = 255 - scrambled[split.test]
    shuffled = labels.copy()
    shuffled[split.test] = shuffled[split.test][::-1]
    assert choose_steps(config, scrambled, shuffled, split, **options) == choice


def test_table4_trains_each_size_for_its_chosen_steps_and_records_the_choice(tmp_path):
    labels = _labels(4, 10)
    pixels = np.random.default_rng(1).integers(0, 255, (len(labels), 64, 64, 3)).astype(np.uint8)
    torch.manual_seed(0)
    model = zfnet(4, 64, widths=WIDTHS, fc=FC, init="he").eval()
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=WIDTHS, fc=FC, init="he")
    result = measure_transfer(model, config, pixels, labels, frozen_sizes=(3,), frozen_seeds=range(2),
                              network_sizes=(3,), network_seeds=range(2), scratch_sizes=(3,),
                              finetune_recipe=NetworkRecipe(steps=1, batch_size=4),
                              scratch_recipe=NetworkRecipe(steps=1, batch_size=4, pretrained_lr_scale=1.0),
                              finetune_grid=(1, 2), scratch_grid=(2, 3, 4))
    for mode in ("finetune", "scratch"):
        choice = result["step_choice"][mode]["3"]
        assert choice["train_per_class"] == 3 and choice["held_out_per_class"] == 1
        assert result[mode][0]["steps"] == choice["chosen"] and result[mode][0]["seeds"] == [0, 1]
    assert result["config"]["step_grids"] == {"finetune": [1, 2], "scratch": [2, 3, 4]}
    fixed = measure_transfer(model, config, pixels, labels, frozen_sizes=(3,), frozen_seeds=range(1),
                             network_sizes=(3,), network_seeds=range(1), scratch_sizes=(3,),
                             finetune_recipe=NetworkRecipe(steps=1, batch_size=4),
                             scratch_recipe=NetworkRecipe(steps=2, batch_size=4))
    assert fixed["step_choice"] == {} and [fixed["finetune"][0]["steps"], fixed["scratch"][0]["steps"]] == [1, 2]
    with pytest.raises(ValueError, match=r"scratch_grid needs at least 2 training images per class .* sizes=\(1, 3\)"):
        measure_transfer(model, config, pixels, labels, network_sizes=(3,), scratch_sizes=(1,), scratch_grid=(1, 2))


def _row(size, accuracies):
    return SplitScores("x", size, list(range(len(accuracies))), [a / 100 for a in accuracies], [None] * 5, 1.0).as_dict()


def _with_choice(held_out_percent):
    """Frozen fc7 20 points above from scratch at 15 and 30 per class, the baseline's steps chosen on held-out images
    whose accuracy followed ``held_out_percent`` over 1500, 3000, ... steps."""
    scratch = {15: [30.0, 31.0, 29.5, 30.5, 30.2], 30: [40.0, 41.0, 39.5, 40.5, 40.2]}
    steps = (1500, 3000, 6000)[:len(held_out_percent)]
    choice = {str(n): StepChoice("scratch", n, n // 3, 0, steps, tuple(a / 100 for a in held_out_percent)).as_dict()
              for n in scratch}
    return {"config": {"scratch_recipe": {"steps": 1500}},
            "frozen": [_row(n, [a + 20 + j for a, j in zip(rows, (0, 0.4, -0.3, 0.2, -0.1))])
                       for n, rows in scratch.items()],
            "scratch": [_row(n, rows) | {"steps": choice[str(n)]["chosen"]} for n, rows in scratch.items()],
            "step_choice": {"scratch": choice}}


def test_c9_reads_the_baselines_convergence_from_its_held_out_step_choice():
    converged = c9_verdict(_with_choice((30.0, 36.0, 36.5)))
    assert converged.outcome == "agree"
    assert converged.details["scratch_steps"] == {"15": 6000, "30": 6000}
    assert converged.details["scratch_steps_chosen_on"] == "held-out training images"
    still_rising = c9_verdict(_with_choice((30.0, 36.0, 41.0)))
    assert still_rising.outcome == "inconclusive" and "held-out training images by +5.0, +5.0" in still_rising.reason
    assert "up to 24,000 steps" in still_rising.settle
