"""Chapter 10 (beyond the paper): Adebayo et al.'s (2018) model-randomisation curves and image rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from zfcore.plots.images import image_grid
from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.sanity import RandomizationSimilarity

SANITY_MEASURES = {"spearman_abs": "Spearman (absolute maps)", "spearman_signed": "Spearman (signed maps)",
                   "ssim": "SSIM (absolute maps)"}
__all__ = ["SANITY_MEASURES", "randomization_curves", "randomization_panel"]


def randomization_curves(result: "RandomizationSimilarity") -> Figure:
    """Adebayo et al.'s (2018) curves: similarity to the trained network's map against the randomised layer.

    One panel per measure; per method the mean over the images, a band of one standard deviation, and
    a dotted line at the baseline (the trained maps of two different images). The methods are named
    below the panels.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity`.
    """
    from zfcore.analysis.sanity import MEASURES

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(WIDTH, 3.1), sharey=True, squeeze=False,
                                layout="constrained")
    steps = np.arange(len(result.steps))
    for axis, measure in zip(axes[0], MEASURES):
        for index, method in enumerate(result.methods):
            values = result.similarity[method][measure].numpy()
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
            color = f"C{index}"
            axis.plot(steps, mean, marker="o", markersize=3, color=color, label=method)
            axis.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            axis.axhline(float(np.nanmean(result.baseline[method][measure].numpy())), color=color, linestyle=":",
                         linewidth=1)
        axis.set_xticks(steps, result.steps, rotation=90)
        axis.set(title=SANITY_MEASURES[measure], ylim=(-0.3, 1.05))
        axis.grid(alpha=0.3)
    axes[0, len(MEASURES) // 2].set_xlabel(f"{result.order} randomisation (down to the layer)"
                                           if result.order == "cascading" else "independent randomisation (the layer)")
    axes[0, 0].set_ylabel(f"similarity to the trained map\n({result.labels.numel()} images)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1))
    labels.append("dotted: another image (baseline)")
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
    return figure


def randomization_panel(result: "RandomizationSimilarity", image: np.ndarray, index: int = 0) -> Figure:
    """Adebayo et al.'s (2018) image rows: one image's maps (absolute heat maps) after each step, a row per method.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity` holding ``index`` in its examples.
        image: the input, uint8 ``[S, S, 3]``.
        index: which of ``result.examples``' images.

    Raises:
        ValueError: ``index`` not among the kept examples.
    """
    from zfcore.analysis.sanity import heat_map

    kept = next(iter(result.examples.values())).shape[0]
    if not 0 <= index < kept:
        raise ValueError(f"index={index!r} is not valid; the result keeps examples 0 .. {kept - 1}")
    rows = []
    for method in result.methods:
        heat = heat_map(result.examples[method][index]).numpy()[..., None].repeat(3, -1)  # [steps, S, S, 3]
        rows.append(np.concatenate([np.asarray(image, dtype=np.float64)[None] / 255.0, heat]))
    return image_grid(np.stack(rows), titles=["input", *result.steps], row_labels=list(result.methods), cell=1.0)
