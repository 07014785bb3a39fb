"""Chapter 09 (feature generalisation, §5.2-5.3, Tables 4 and 7, Fig. 9): the learning curve, the layer-wise probes,
and the chapter's tables as Markdown.

The tables read the results as ``python -m zfcore transfer`` writes them (rows of
:meth:`zfcore.analysis.probes.SplitScores.as_dict`: ``train_per_class``, ``mean_percent``, ``std_percent``, ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["c10_steps", "c9_margin_table", "duplicate_effect", "duplicate_table", "fig9_figure", "layer_probe_figure", "learning_curve_figure",
           "network_sizes", "split_accuracy", "table4", "table5", "table7"]

SIZE = (5.6, 3.6)  # inches: a single plot, narrower than the column


def learning_curve_figure(curves: Mapping[str, Sequence[Mapping]], *,
                          paper: Mapping[str, Mapping[str, Sequence]] | None = None, title: str = "") -> Figure:
    """Fig. 9: mean per-class accuracy against training images per class, one line per method.

    Args:
        curves: method name -> rows as :meth:`zfcore.analysis.probes.SplitScores.as_dict` writes them
            (``train_per_class``, ``mean_percent``, ``std_percent``, ``accuracy_percent``); each split is a dot,
            the mean a line with +-1 std bars.
        paper: the paper's points to mark, name -> {images per class (str): [mean, std]} (e.g. Table 4's rows).
        title: the axes' title.
    """
    figure, axis = plt.subplots(figsize=SIZE)
    for index, (name, rows) in enumerate(curves.items()):
        colour = f"C{index}"
        sizes = [row["train_per_class"] for row in rows]
        axis.errorbar(sizes, [row["mean_percent"] for row in rows], yerr=[row["std_percent"] or 0 for row in rows],
                      color=colour, marker="o", capsize=3, label=name)
        for size, row in zip(sizes, rows):
            axis.scatter([size] * len(row["accuracy_percent"]), row["accuracy_percent"], color=colour, s=8, alpha=0.4)
    for index, (name, points) in enumerate((paper or {}).items()):
        sizes = [int(size) for size in points]
        axis.errorbar(sizes, [points[size][0] for size in points], yerr=[points[size][1] or 0 for size in points],
                      color=f"C{len(curves) + index}", marker="s", linestyle=":", capsize=3, label=f"paper: {name}")
    axis.set(xlabel="training images per class", ylabel="mean per-class accuracy (%)", ylim=(0, 100), title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


def layer_probe_figure(probes: Mapping[str, Mapping[str, Mapping]], *,
                       paper: Mapping[str, Mapping[str, Sequence]] | None = None, title: str = "") -> Figure:
    """Table 7 as a plot: each layer's linear-probe accuracy (mean +- std over splits), one line per classifier.

    Args:
        probes: loss -> layer -> :meth:`zfcore.analysis.probes.SplitScores.as_dict` rows, layers in order.
        paper: loss -> layer -> [mean, std] (the paper's Table 7), drawn at the same layers where they exist.
        title: the axes' title.
    """
    layers = list(dict.fromkeys(layer for by_layer in probes.values() for layer in by_layer))
    figure, axis = plt.subplots(figsize=SIZE)
    for index, (loss, by_layer) in enumerate(probes.items()):
        positions = [layers.index(layer) for layer in by_layer]
        axis.errorbar(positions, [row["mean_percent"] for row in by_layer.values()],
                      yerr=[row["std_percent"] or 0 for row in by_layer.values()], color=f"C{index}", marker="o",
                      capsize=3, label=f"ours: {loss}")
    for index, (loss, by_layer) in enumerate((paper or {}).items()):
        shown = [layer for layer in by_layer if layer in layers]
        axis.errorbar([layers.index(layer) for layer in shown], [by_layer[layer][0] for layer in shown],
                      yerr=[by_layer[layer][1] for layer in shown], color=f"C{len(probes) + index}", marker="s",
                      linestyle=":", capsize=3, label=f"paper: {loss}")
    axis.set_xticks(range(len(layers)), layers)
    axis.set(xlabel="layer", ylabel="mean per-class accuracy (%)", ylim=(0, 100), title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


def split_accuracy(rows: Sequence[Mapping[str, Any]], size: int) -> str:
    """'mean ± std (K splits)' of the row with ``size`` training images per class ('mean' for one split), '–' if
    there is none."""
    for row in rows:
        if row["train_per_class"] == size:
            spread = "" if row["std_percent"] is None else f" ± {row['std_percent']:.1f}"
            return f"{row['mean_percent']:.1f}{spread} ({row['splits']} split{'s' if row['splits'] > 1 else ''})"
    return "–"


def _paper_accuracy(entry: Sequence[float | None]) -> str:
    mean, std = entry
    return f"{mean}" if std is None else f"{mean} ± {std}"


def _steps(rows: Sequence[Mapping[str, Any]], recipe_steps: int) -> str:
    """'N steps' of a network arm: its rows' step counts (chosen per size) where they differ, else the one count."""
    counts = sorted({row.get("steps", recipe_steps) for row in rows})
    return (f"{counts[0]:,} steps" if len(counts) == 1 else
            "steps chosen on held-out training images: " + ", ".join(
                f"{row['steps']:,} at {row['train_per_class']}" for row in rows))


def network_sizes(transfer: Mapping[str, Any], scratch_runs: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Every size of Table 4's columns: the sizes measured (the other from-scratch recipes' too) and the paper's 15,
    30."""
    return sorted({row["train_per_class"] for part in ("frozen", "finetune", "scratch") for row in transfer[part]}
                  | {row["train_per_class"] for run in scratch_runs.values() for row in run["scratch"]} | {15, 30})


def table4(transfer: Mapping[str, Any], cv_rows: Sequence[Mapping[str, Any]],
           scratch_runs: Mapping[int, Mapping[str, Any]], *,
           control_cv_rows: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Table 4 in Markdown: the paper's rows, then ours (frozen fc7, the layer chosen by CV — also of the network
    trained without label smoothing, where measured — fine-tuned, from scratch and its other recipes), each cell
    :func:`split_accuracy`.

    Args:
        transfer: ``transfer.json``; cv_rows: ``transfer-cv-layer.json``'s ``rows``.
        scratch_runs: other from-scratch recipes (one step count at every size, not chosen on held-out images), steps ->
            their ``transfer.json``.
        control_cv_rows: the same as ``cv_rows`` for the network trained without label smoothing (the control),
            or ``None`` (no row).
    """
    sizes, config = network_sizes(transfer, scratch_runs), transfer["config"]
    ours = {"frozen layers 1–7 + new softmax": transfer["frozen"],
            "frozen, layer chosen by CV on training images + new softmax": cv_rows,
            **({"the same, network trained without label smoothing (control)": control_cv_rows}
               if control_cv_rows is not None else {}),
            f"fine-tuned ({_steps(transfer['finetune'], config['finetune_recipe']['steps'])})": transfer["finetune"]}
    ours |= {f"from scratch ({steps:,} steps at every size, not chosen on held-out images)": run["scratch"]
             for steps, run in sorted(scratch_runs.items())}
    ours[f"from scratch ({_steps(transfer['scratch'], config['scratch_recipe']['steps'])})"] = transfer["scratch"]
    rows = ["| | " + " | ".join(f"{size}/class" for size in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for name, by_size in transfer["paper"]["table4_caltech101"].items():
        rows.append(f"| Paper: {name} | " + " | ".join(_paper_accuracy(by_size[str(size)]) if str(size) in by_size
                                                        else "–" for size in sizes) + " |")
    for name, part in ours.items():
        rows.append(f"| Ours (ZF-64, Tiny ImageNet, 64 px): {name} | "
                    + " | ".join(split_accuracy(part, size) for size in sizes) + " |")
    classes = config["classes"]
    return (f"Mean per-class accuracy (%), Caltech-101 ({classes} classes; chance {100 / classes:.1f} %):\n\n"
            + "\n".join(rows))


def table5(paper: Mapping[str, Any]) -> str:
    """Table 5 (Caltech-256) in Markdown: the paper's rows at 15, 30, 45 and 60 per class; ours not measured."""
    sizes = (15, 30, 45, 60)
    rows = ["| | " + " | ".join(f"{size}/class" for size in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for name, by_size in paper["table5_caltech256"].items():
        rows.append(f"| Paper: {name} | " + " | ".join(_paper_accuracy(by_size[str(size)]) for size in sizes) + " |")
    rows.append("| Ours | not measured (needs the online dataset) | | | |")
    return "\n".join(rows)


def fig9_figure(transfer: Mapping[str, Any], cv_rows: Sequence[Mapping[str, Any]],
                scratch_runs: Mapping[int, Mapping[str, Any]], *, title: str = "") -> Figure:
    """Fig. 9 on Caltech-101: :func:`learning_curve_figure` of every arm of :func:`table4`, the paper's Table 4 points,
    chance dashed, the sizes on a log axis."""
    steps = _steps(transfer["scratch"], transfer["config"]["scratch_recipe"]["steps"])
    curves = {"ours: frozen layers 1–7 + new softmax": transfer["frozen"], "ours: frozen, layer chosen by CV": cv_rows,
              "ours: fine-tuned": transfer["finetune"], f"ours: from scratch, {steps}": transfer["scratch"]}
    curves |= {f"ours: from scratch, {steps:,} steps at every size": run["scratch"]
               for steps, run in sorted(scratch_runs.items())}
    table = transfer["paper"]["table4_caltech101"]
    figure = learning_curve_figure(curves, paper={"ImageNet-pretrained (Table 4)": table["ImageNet-pretrained convnet"],
                                                  "non-pretrained (Table 4)": table["Non-pretrained convnet"]}, title=title)
    sizes = network_sizes(transfer, scratch_runs)
    axis = figure.axes[0]
    axis.axhline(100 / transfer["config"]["classes"], color="grey", linewidth=0.8, linestyle="--")
    axis.set_xscale("log")
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.minorticks_off()
    return figure


def table7(probes: Mapping[str, Any], control: Mapping[str, Any] | None) -> str:
    """Table 7 in Markdown: per layer, our probes (every loss, of the reference and of ``control``, the network trained
    without label smoothing) beside the paper's Caltech-101 and Caltech-256 columns, and the pooling CV chose.

    Args:
        probes, control: ``probes.json`` as ``python -m zfcore transfer --what probes`` writes it (``control``:
            ``None`` when not measured).
    """
    paper = probes["paper"]
    ours = dict(probes["probes"])
    ours |= {f"{loss}, no label smoothing": rows for loss, rows in (control or {"probes": {}})["probes"].items()}
    paper_columns = {f"paper, Caltech-{name[7:10]} ({name[11:]}/class): {loss}": by_layer
                     for name in ("caltech101_30", "caltech256_60") for loss, by_layer in paper[name].items()}
    header = ["layer", "features (pooling)"] + [f"ours: {name}" for name in ours] + list(paper_columns)
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for layer, size in probes["config"]["dimensions"].items():
        cells = [split_accuracy([by_layer[layer]], by_layer[layer]["train_per_class"]) if layer in by_layer else "–"
                 for by_layer in ours.values()]
        cells += [_paper_accuracy(by_layer[layer]) if layer in by_layer else "–" for by_layer in paper_columns.values()]
        features = size if isinstance(size, int) else " or ".join(f"{dim} ({name.split(', ')[1]})"
                                                                   for name, dim in size.items())
        rows.append(f"| {layer} | {features} | " + " | ".join(cells) + " |")
    shown = "svm" if "svm" in probes["probes"] else "softmax"
    chosen = {layer: ", ".join(f"{grid} on {count} split(s)"
                               for grid, count in Counter(name.split(", ")[1] for name in row["layers"]).items())
              for layer, row in probes["probes"][shown].items() if row.get("layers")}
    return (f"Mean per-class accuracy (%), ours on Caltech-101 at {probes['config']['train_per_class']} training images "
            f"per class; pooling chosen per split (reference, {shown}): "
            + "; ".join(f"{layer}: {names}" for layer, names in chosen.items()) + "\n\n" + "\n".join(rows))


def duplicate_table(duplicates: Mapping[str, Any]) -> str:
    """The near-duplicate check in Markdown: candidate pairs (and distinct Caltech images) within each Hamming distance
    per Tiny ImageNet set, and the pairs confirmed by eye (``caltech-duplicates.json``)."""
    distances = next(iter(duplicates["sets"].values()))["counts"]
    rows = ["| Tiny ImageNet set | images | " + " | ".join(f"≤ {k} bits" for k in distances) + " |",
            "|---" * (2 + len(distances)) + "|"]
    for name, part in duplicates["sets"].items():
        rows.append(f"| {name} | {part['images']:,} | "
                    + " | ".join(f"{c['pairs']} ({c['queries']})" for c in part["counts"].values()) + " |")
    confirmed = ", ".join(f"`{p['caltech']}` = Tiny ImageNet `{p['tiny_imagenet']}` ({p['distance']} bits)"
                          for p in duplicates.get("confirmed", []))
    return (f"Candidate pairs (and distinct Caltech images) within each Hamming distance, {duplicates['queries']:,} "
            "Caltech images:\n\n" + "\n".join(rows) + f"\n\nConfirmed by eye within {duplicates['max_distance']} "
            f"bits: " + (confirmed or "none checked (ci miniature)"))


def duplicate_effect(duplicates: Mapping[str, Any]) -> str:
    """What leaving the confirmed duplicates out of the test images does to the frozen-fc7 rows, in one sentence ("" if
    no split had one)."""
    effect = duplicates.get("frozen_fc7_without_confirmed_test_images", [])
    if not effect:
        return ""
    largest = max(abs(row["without_duplicates_percent"] - row["refitted_percent"]) for row in effect)
    refitted = max(abs(row["refitted_percent"] - row["committed_percent"]) for row in effect)
    return (f"Scored without the confirmed images, the frozen-fc7 accuracy of the {len(effect)} splits that had one "
            f"among their test images changes by at most {largest:.2f} points (refitted: within {refitted:.2f} points "
            "of the committed numbers).")

def c9_margin_table(details: Mapping[str, Any]) -> str:
    """The C9 verdict's margins over from scratch in Markdown, per size: frozen fc7, the layer chosen by CV (and the
    layers chosen), fine-tuned, and the paper's margin (:func:`zfcore.analysis.generalisation.c9_verdict`'s details)."""
    def span(margin: Mapping[str, float]) -> str:
        return f"{margin['points']:+.1f} [{margin['low']:+.1f}, {margin['high']:+.1f}]"

    rows = ["| per class | frozen fc7 − scratch | layer chosen by CV − scratch (layers chosen) | fine-tuned − scratch | "
            "paper: pretrained − non-pretrained |", "|---|---|---|---|---|"]
    for n in map(str, details["sizes"]):
        cv, finetune = details["cv_layer_minus_scratch"].get(n), details["finetune_minus_scratch"].get(n)
        rows.append(f"| {n} | {span(details['fc7_minus_scratch'][n])} | "
                    + (f"{span(cv)} ({', '.join(cv['layers'])})" if cv else "–")
                    + f" | {span(finetune) if finetune else '–'} | {details['paper'].get(n, {}).get('margin', '–')} |")
    return "Margins over from scratch, points, mean [95 % t interval] over the paired splits:\n\n" + "\n".join(rows)


def c10_steps(details: Mapping[str, Any], grids: Mapping[str, Sequence[float] | None]) -> str:
    """The C10 verdict's steps up the network, one line per network (each a paired interval in points), then for each
    network probed the layers whose weight decay CV chose at an end of its grid.

    Args:
        details: :func:`zfcore.analysis.probes.c10_verdict`'s details (``loss``, ``reference``, ``control``).
        grids: ``"reference"``/``"control"`` -> the weight-decay grid its probes chose from (``None``: not probed).
    """
    loss = details["loss"]
    lines = [f"{loss}, {name}: " + ("; ".join(f"{s['from']}→{s['to']} {s['points']:+.1f} [{s['low']:+.1f}, {s['high']:+.1f}]"
                                             for s in (details[name] or {}).get("steps", [])) or "not measured")
             for name in ("reference", "control")]
    lines += [f"{loss}, {name}: weight decay at an end of the grid ({min(grid):g} or {max(grid):g}) on some split: "
              f"{', '.join(details[name]['grid_edges']) or 'none'}" for name, grid in grids.items() if grid]
    return "\n".join(lines)
