"""Tests of chapter 09's tables (zfcore.plots.transfer) on the committed results and on small made-up ones."""

from __future__ import annotations

import json
from pathlib import Path

from zfcore import plots
from zfcore.analysis.generalisation import c9_verdict
from zfcore.analysis.probes import SplitScores, c10_verdict

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "experiments"


def _read(name: str) -> dict:
    return json.loads((COMMITTED / name).read_text())


def _row(size: int, accuracies: list[float], **extra) -> dict:
    seeds = list(range(len(accuracies)))
    return SplitScores("x", size, seeds, [a / 100 for a in accuracies], [None] * len(seeds), 1.0).as_dict() | extra


def test_a_split_accuracy_cell_says_how_many_splits_it_averages():
    rows = [_row(15, [40.0, 42.0]), _row(30, [50.0])]
    assert plots.split_accuracy(rows, 15) == "41.0 ± 1.4 (2 splits)"
    assert plots.split_accuracy(rows, 30) == "50.0 (1 split)"
    assert plots.split_accuracy(rows, 5) == "–"


def _transfer(finetune_steps: list[int]) -> dict:
    return {"config": {"classes": 101, "finetune_recipe": {"steps": 150}, "scratch_recipe": {"steps": 3000}},
            "frozen": [_row(15, [60.0, 61.0]), _row(30, [70.0, 71.0])],
            "finetune": [_row(n, [55.0, 56.0], steps=s) for n, s in zip((15, 30), finetune_steps)],
            "scratch": [_row(n, [30.0, 31.0]) for n in (15, 30)], "paper": _read("transfer.json")["paper"]}


def test_table4_puts_the_papers_rows_above_ours_and_names_each_arms_steps():
    table = plots.table4(_transfer([150, 150]), [_row(30, [75.0, 76.0])], {1500: {"scratch": [_row(15, [28.0])]}})
    lines = table.splitlines()
    assert lines[0] == "Mean per-class accuracy (%), Caltech-101 (101 classes; chance 1.0 %):"
    assert lines[2] == "| | 15/class | 30/class |"
    assert lines[4] == "| Paper: Non-pretrained convnet | 22.8 ± 1.5 | 46.5 ± 1.7 |"
    assert "| Ours (ZF-64, Tiny ImageNet, 64 px): fine-tuned (150 steps) | 55.5 ± 0.7 (2 splits) | 55.5 ± 0.7 (2 splits) |" in lines
    assert "| Ours (ZF-64, Tiny ImageNet, 64 px): frozen, layer chosen by CV on training images + new softmax | – | " \
           "75.5 ± 0.7 (2 splits) |" in lines
    assert "| Ours (ZF-64, Tiny ImageNet, 64 px): from scratch (1,500 steps at every size, not chosen on held-out images) | 28.0 (1 split) | – |" in lines
    chosen = plots.table4(_transfer([300, 1200]), [], {})
    assert "fine-tuned (steps chosen on held-out training images: 300 at 15, 1,200 at 30)" in chosen
    assert plots.network_sizes(_transfer([150, 150]), {1500: {"scratch": [_row(5, [9.0])]}}) == [5, 15, 30]


def test_the_committed_results_tables_hold_every_layer_size_and_pair():
    transfer, probes, control = _read("transfer.json"), _read("probes-cv/probes.json"), \
        _read("probes-cv-no-label-smoothing/probes.json")
    table = plots.table4(transfer, _read("transfer-cv-layer.json")["rows"], {})
    assert table.count("| Paper: ") == 4 and table.count("| Ours ") == 4
    control_rows = _read("transfer-cv-no-label-smoothing/transfer-cv-layer.json")["rows"]
    with_control = plots.table4(transfer, _read("transfer-cv-layer.json")["rows"], {}, control_cv_rows=control_rows)
    row = next(line for line in with_control.splitlines() if "without label smoothing (control)" in line)
    assert with_control.count("| Ours ") == 5 and row.endswith(
        " | ".join(plots.split_accuracy(control_rows, size) for size in plots.network_sizes(transfer, {})) + " |")
    table = plots.table7(probes, control)
    rows = [line for line in table.splitlines() if line.startswith("| conv") or line.startswith("| fc")]
    assert [row.split(" | ")[0][2:] for row in rows] == list(probes["config"]["dimensions"])
    assert "ours: svm, no label smoothing" in table and "paper, Caltech-256 (60/class): svm" in table
    assert "pooling chosen per split (reference, svm): conv1: " in table
    duplicates = _read("caltech-duplicates.json")
    table = plots.duplicate_table(duplicates)
    assert all(f"`{pair['caltech']}` = Tiny ImageNet `{pair['tiny_imagenet']}`" in table for pair in duplicates["confirmed"])
    assert plots.duplicate_effect(duplicates).startswith("Scored without the confirmed images")
    assert plots.duplicate_effect({}) == ""
    assert "| Paper: ImageNet-pretr. | 65.7 ± 0.2 | 70.6 ± 0.2 | 72.7 ± 0.4 | 74.2 ± 0.3 |" in plots.table5(transfer["paper"])


def test_the_verdict_tables_show_every_size_and_both_networks():
    transfer = _read("transfer.json")
    c9 = c9_verdict(transfer, cv_layer=_read("transfer-cv-layer.json")["rows"])
    table = plots.c9_margin_table(c9.details)
    assert [line.split(" | ")[0] for line in table.splitlines()[4:]] == ["| 15", "| 30"]
    probes, control = _read("probes-cv/probes.json"), _read("probes-cv-no-label-smoothing/probes.json")
    c10 = c10_verdict(probes, control, loss="svm")
    grid = probes["config"]["weight_decay_grid"]
    lines = plots.c10_steps(c10.details, {"reference": grid, "control": None}).splitlines()
    assert lines[0].startswith("svm, reference: conv1→conv2 ") and lines[1].startswith("svm, control: conv1→conv2 ")
    assert lines[2].startswith(f"svm, reference: weight decay at an end of the grid ({min(grid):g} or {max(grid):g})")
    assert len(lines) == 3  # the control's grid not given: its edges not listed
    assert plots.c10_steps({"loss": "svm", "reference": {"steps": []}, "control": None}, {}).splitlines() == [
        "svm, reference: not measured", "svm, control: not measured"]


def test_fig9_draws_every_arm_with_chance_on_a_log_axis():
    figure = plots.fig9_figure(_read("transfer.json"), _read("transfer-cv-layer.json")["rows"], {}, title="t")
    axis = figure.axes[0]
    assert axis.get_xscale() == "log" and [t.get_text() for t in axis.get_xticklabels()] == ["1", "2", "5", "10", "15", "30"]
    labels = axis.get_legend_handles_labels()[1]
    assert labels[:4] == ["ours: frozen layers 1–7 + new softmax", "ours: frozen, layer chosen by CV", "ours: fine-tuned",
                          "ours: from scratch, steps chosen on held-out training images: 1,500 at 15, 12,000 at 30"]


def test_the_chapters_results_say_what_made_each_of_them():
    from zfcore.book import TransferResults

    made = {"code_version": "0123456789abcdef", "wall_seconds": 12.4, "device": "one H100 GPU"}
    results = TransferResults(made, made | {"device": None, "torch_threads": 2}, made, {}, None, made, made, None,
                              {1500: made}, None)
    assert results.made() == ["Table 4 and Fig. 9 (transfer.json): code 0123456789ab, 12 s on one H100 GPU",
                              "Table 7's probes (probes.json): code 0123456789ab, 12 s on 2 CPU thread(s)",
                              "the layer chosen by CV (transfer-cv-layer.json): code 0123456789ab, 12 s on one H100 GPU",
                              "the same network's layer chosen by CV: code 0123456789ab, 12 s on one H100 GPU",
                              "probes with pooling and weight decay chosen by CV: code 0123456789ab, 12 s on one H100 GPU",
                              "from scratch, 1500 steps: code 0123456789ab, 12 s on one H100 GPU"]
