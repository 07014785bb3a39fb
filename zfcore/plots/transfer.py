"""Chapter 09 (feature generalisation, §5.2-5.3, Fig. 9, Table 7): the learning curve and the layer-wise probes."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["layer_probe_figure", "learning_curve_figure"]

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
