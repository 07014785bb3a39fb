"""Chapter 06 (occlusion sensitivity, §4.2, Fig. 7): the five panels per image, and C6 over many images."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import to_display
from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.localisation import OverlapGrade
    from zfcore.analysis.occlusion import OcclusionMaps
    from zfcore.stats import Estimate

__all__ = ["c6_figure", "occlusion_figure"]

TITLE_PT = 7.5  # the panels' titles: two lines each, five panels side by side in the column


def occlusion_figure(rows: Sequence[tuple[np.ndarray, OcclusionMaps, torch.Tensor, str]],
                     class_names: Sequence[str], *, legend_classes: int = 4) -> Figure:
    """Fig. 7 (§4.2): per image, (a) the input with the occluder, (b) the activity map, (c) the projection,
    (d) p(true class), (e) the most probable class.

    The colour bars of (b) and (d) and the legend of (e) are drawn below their panels, so that the five
    panels fill the book's column.

    Args:
        rows: per image ``(pixels [S, S, 3] uint8, maps (one image), projection [3, S, S], title)``; the
            projection is that of the strongest activation of ``maps.feature_map``.
        class_names: names of the network's classes, for panel (e)'s legend.
        legend_classes: how many of the most frequent classes of panel (e) are named.
    """
    figure, axes = plt.subplots(len(rows), 5, figsize=(WIDTH, 2.3 * len(rows)), squeeze=False, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.02, h_pad=0.06, wspace=0.02, hspace=0.02)
    for axis_row, (pixels, maps, projection, title) in zip(axes, rows):
        size = pixels.shape[0]
        extent = (float(maps.lefts[0]) + (maps.size - 1) / 2 - maps.stride / 2,
                  float(maps.lefts[-1]) + (maps.size - 1) / 2 + maps.stride / 2,
                  float(maps.tops[-1]) + (maps.size - 1) / 2 + maps.stride / 2,
                  float(maps.tops[0]) + (maps.size - 1) / 2 - maps.stride / 2)
        feature_map = f"{maps.layer} map {int(maps.feature_map)}"
        name = textwrap.shorten(title.split(" (")[0], 20, placeholder="…")  # "a (ImageNet sample)" -> "a"
        axis_row[0].imshow(pixels, interpolation="nearest")
        axis_row[0].add_patch(plt.Rectangle((-0.5, -0.5), maps.size, maps.size, fill=True, color="0.5", alpha=0.9))
        axis_row[0].set_title(f"(a) {name}\n{maps.size}-px occluder", fontsize=TITLE_PT)
        shown = axis_row[1].imshow(maps.activity.numpy(), cmap="jet", extent=extent)
        axis_row[1].set_title(f"(b) {feature_map}\nunoccluded {float(maps.unoccluded_activity):.3g}", fontsize=TITLE_PT)
        figure.colorbar(shown, cax=axis_row[1].inset_axes((0.0, -0.13, 1.0, 0.07)), orientation="horizontal")
        axis_row[2].imshow(to_display(projection, percentile=99.0), interpolation="nearest")
        axis_row[2].set_title(f"(c) {feature_map},\nprojected", fontsize=TITLE_PT)
        shown = axis_row[3].imshow(maps.true_probability.numpy(), cmap="jet", vmin=0, extent=extent)
        axis_row[3].set_title(f"(d) p({textwrap.shorten(class_names[int(maps.labels)], 16, placeholder='…')})\n"
                              f"unoccluded {float(maps.unoccluded_probability):.2f}", fontsize=TITLE_PT)
        figure.colorbar(shown, cax=axis_row[3].inset_axes((0.0, -0.13, 1.0, 0.07)), orientation="horizontal")
        classes, counts = maps.predicted.unique(return_counts=True)
        order = classes[counts.argsort(descending=True)].tolist()
        codes = torch.tensor([order.index(c) for c in maps.predicted.flatten().tolist()]).view(maps.predicted.shape)
        palette = plt.get_cmap("tab10")
        colours = np.array([palette(i)[:3] if i < legend_classes else (0.6, 0.6, 0.6)
                            for i in range(len(order))])
        axis_row[4].imshow(colours[codes.numpy()], extent=extent, interpolation="nearest")
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in range(min(legend_classes, len(order)))]
        names = [textwrap.shorten(class_names[c], 18, placeholder="…") for c in order[:legend_classes]]
        if len(order) > legend_classes:
            handles.append(plt.Rectangle((0, 0), 1, 1, color=(0.6, 0.6, 0.6)))
            names.append("other")
        axis_row[4].legend(handles, names, loc="upper left", bbox_to_anchor=(-0.05, -0.01), frameon=False,
                           handlelength=1.0, handletextpad=0.4, borderaxespad=0.0, labelspacing=0.2)
        axis_row[4].set_title("(e) most probable\nclass", fontsize=TITLE_PT)
        for axis in axis_row:
            axis.set(xlim=(-0.5, size - 0.5), ylim=(size - 0.5, -0.5), xticks=[], yticks=[])
    return figure


def c6_figure(grades: Sequence[OverlapGrade], fills: dict[str, Estimate | None]) -> Figure:
    """C6 (§4.2) over many images: the relative drop of p(true) by how much of the square lies in the object's box
    (left), and with whole regions filled (right), each with its 95 % interval.

    Args:
        grades: :func:`~zfcore.analysis.localisation.overlap_grades`.
        fills: :func:`~zfcore.analysis.localisation.fill_drops` (``None`` entries are left out).
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 2.6), layout="constrained",
                                         gridspec_kw={"width_ratios": (4, 3)})
    for axis, labels, estimates in (
            (left, [grade.label for grade in grades], [grade.drop for grade in grades]),
            (right, list(fills), list(fills.values()))):
        shown = [(label, estimate) for label, estimate in zip(labels, estimates) if estimate is not None]
        places = np.arange(len(shown))
        values = np.array([100 * estimate.value for _, estimate in shown])
        errors = np.array([[100 * (estimate.value - estimate.low), 100 * (estimate.high - estimate.value)]
                           for _, estimate in shown]).T.reshape(2, -1)
        axis.bar(places, values, yerr=errors, color="tab:blue", alpha=0.7, capsize=3)
        names = [textwrap.fill(label.replace(" %", "\u00a0%"), 12, break_long_words=False) for label, _ in shown]
        axis.set_xticks(places, [f"{name}\nn = {estimate.n}" for name, (_, estimate) in zip(names, shown)])
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.grid(axis="y", alpha=0.3)
    left.set(ylabel="relative drop of p(true), %", xlabel="share of the 16-px square inside the box",
             title="sliding square")
    right.set(xlabel="region filled with the mean colour", title="whole regions")
    return figure
