"""Tests of zfcore.analysis.journal and of network_transfer's use of it (resuming Table 4's network rows)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import zfcore.analysis.transfer as transfer
from zfcore.analysis.journal import Journal, journal_key
from zfcore.analysis.transfer import NetworkRecipe, network_transfer
from zfcore.data.caltech import caltech_splits
from zfcore.models import zfnet
from zfcore.profiles import TrainConfig

WIDTHS, FC = (8, 16, 16, 16, 16), 32


def test_entries_are_kept_across_reopening_and_keys_ignore_order(tmp_path):
    path = tmp_path / "deep" / "journal.jsonl"
    journal = Journal(path)
    assert len(journal) == 0 and not path.exists()
    key = journal_key(mode="scratch", seed=1)
    assert key == journal_key(seed=1, mode="scratch") and key != journal_key(mode="scratch", seed=2)
    journal.add(key, accuracy=0.25, seconds=3.0)
    reopened = Journal(path)
    assert key in reopened and reopened.get(key) == {"key": key, "accuracy": 0.25, "seconds": 3.0}
    assert reopened.get("other") is None


def test_a_line_cut_short_at_the_end_is_dropped_and_one_in_the_middle_is_named(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path).add("a", accuracy=0.5)
    with path.open("a") as file:
        file.write('{"key": "b", "accur')  # the run was stopped while writing
    journal = Journal(path)
    assert len(journal) == 1 and "b" not in journal
    journal.add("c", accuracy=0.75)  # appended on a line of its own: the file stays readable
    assert sorted(Journal(path).entries) == ["a", "c"]
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        Journal(path)
    path.write_text('{"key": "a"}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2: not a journal entry"):
        Journal(path)


def _coloured(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(4), per_class)
    noise = np.random.default_rng(0).integers(0, 255, (len(labels), 64, 64, 3))
    return noise.astype(np.uint8), labels


@pytest.mark.parametrize("mode", ["finetune", "scratch"])
def test_network_splits_are_recorded_and_read_back_instead_of_trained(tmp_path, monkeypatch, mode):
    pixels, labels = _coloured(5)
    splits = caltech_splits(labels, 2, seeds=[0, 1])
    torch.manual_seed(0)
    source = zfnet(4, 64, widths=WIDTHS, fc=FC, init="he").eval() if mode == "finetune" else \
        TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=WIDTHS, fc=FC, init="he")
    recipe = NetworkRecipe(steps=2, batch_size=4)
    trained = []
    train = transfer._train
    monkeypatch.setattr(transfer, "_train", lambda *args: trained.append(args[5]) or train(*args))
    journal = Journal(tmp_path / "journal.jsonl")
    first = network_transfer(source, pixels, labels, splits[:1], mode=mode, recipe=recipe, precision="fp32",
                             journal=journal)
    assert trained == [0] and len(Journal(tmp_path / "journal.jsonl")) == 1
    entry = json.loads((tmp_path / "journal.jsonl").read_text())
    (tmp_path / "journal.jsonl").write_text(json.dumps(entry | {"seconds": 1000.0}) + "\n")  # a long split
    # stopped after split 0: the repeated run trains only split 1
    both = network_transfer(source, pixels, labels, splits, mode=mode, recipe=recipe, precision="fp32",
                            journal=Journal(tmp_path / "journal.jsonl"))
    assert trained == [0, 1] and both.seeds == [0, 1] and both.accuracies[0] == first.accuracies[0]
    assert 1000.0 < both.seconds < 1000.0 + 60  # the recorded split's own time is counted
    again = network_transfer(source, pixels, labels, splits, mode=mode, recipe=recipe, precision="fp32",
                             journal=Journal(tmp_path / "journal.jsonl"))
    assert trained == [0, 1] and again.accuracies == both.accuracies
    # anything that changes the result is a new entry: the recipe, the images, the split, the network
    changed_pixels = pixels.copy()
    changed_pixels[0, 0, 0, 0] ^= 1
    changed_split = [dataclasses.replace(splits[0], test=splits[0].test[1:])]
    changed_source = zfnet(4, 64, widths=WIDTHS, fc=FC, init="he").eval() if mode == "finetune" else \
        dataclasses.replace(source, fc=FC * 2)
    for changed in (dict(recipe=dataclasses.replace(recipe, steps=3)), dict(pixels=changed_pixels),
                    dict(splits=changed_split), dict(source=changed_source)):
        arguments = dict(source=source, pixels=pixels, splits=splits[:1], recipe=recipe) | changed
        count = len(trained)
        network_transfer(arguments["source"], arguments["pixels"], labels, arguments["splits"], mode=mode,
                         recipe=arguments["recipe"], precision="fp32", journal=Journal(tmp_path / "journal.jsonl"))
        assert len(trained) == count + 1, changed.keys()
    if mode == "scratch":  # how batches are made, or the recipe's prose, is not what a network learns: read back
        count = len(trained)
        network_transfer(dataclasses.replace(source, workers=3, deviations=(("a change", "its reason"),)), pixels, labels,
                         splits[:1], mode=mode, recipe=recipe, precision="fp32", journal=Journal(tmp_path / "journal.jsonl"))
        assert len(trained) == count
