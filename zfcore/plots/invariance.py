"""Chapter 04 (feature invariance, §4, Fig. 5): distances and p(true) against vertical shift, scale and rotation;
the shape of the top layer's distance (C3) and the zoom's controls (C4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.analysis.stability import LINE_RATIO, SQRT_RATIO
from zfcore.plots.images import tile_images
from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.invariance import InvarianceSweep
    from zfcore.analysis.stability import SaturationFits

INVARIANCE_AXES = {"translate": "vertical translation (px)", "scale": "scale (factor)", "rotate": "rotation (degrees)"}
AMOUNT_LABELS = {"translate": "{:+g} px", "scale": "×{:g}", "rotate": "{:g}°"}
"""How a view's amount is written on the strips of Fig. 5."""
__all__ = ["AMOUNT_LABELS", "INVARIANCE_AXES", "invariance_figure", "saturation_figure", "scale_control_figure"]


def invariance_figure(sweeps: Sequence["InvarianceSweep"], strips: Sequence[np.ndarray], names: Sequence[str],
                      layers: Sequence[str] = ("conv1", "fc7"),
                      strip_amounts: Sequence[Sequence[float]] | None = None) -> Figure:
    """Fig. 5 (§4): one row per transformation: example views, then per layer the distance to the
    original against the amount, then p(true) against the amount, one line per image (named below the grid).

    Args:
        sweeps: one :class:`~zfcore.analysis.invariance.InvarianceSweep` per row (rows a-c).
        strips: per row, uint8 ``[K, S, S, 3]`` views of one image at a few amounts (column 1).
        names: the images' names, one per line.
        layers: the two layers of columns 2 and 3.
        strip_amounts: per row, the ``K`` amounts of the strip's views, written on each view
            (:data:`AMOUNT_LABELS`); ``None`` writes none.
    """
    columns = 2 + len(layers)
    figure, axes = plt.subplots(len(sweeps), columns, figsize=(WIDTH, 1.85 * len(sweeps) + 0.45), squeeze=False)
    for row, (sweep, strip) in enumerate(zip(sweeps, strips)):
        axes[row, 0].imshow(tile_images(np.asarray(strip, dtype=np.float64) / 255.0, gap=2))
        axes[row, 0].set(xticks=[], yticks=[])
        axes[row, 0].set_title(f"({'abc'[row]}) {sweep.kind}", loc="left")
        if strip_amounts is not None:
            side, tile = int(np.ceil(np.sqrt(len(strip)))), strip.shape[1] + 2
            for index, amount in enumerate(strip_amounts[row]):
                top, left = divmod(index, side)
                axes[row, 0].text(left * tile + 1, top * tile + 1, AMOUNT_LABELS[sweep.kind].format(amount),
                                  va="top", ha="left", color="white", fontsize=7,
                                  bbox=dict(facecolor="black", alpha=0.6, pad=1, linewidth=0))
        amounts = sweep.amounts.numpy()
        panels = [(sweep.distances[layer], f"distance, {layer}") for layer in layers]
        panels.append((sweep.true_probability, "p(true class)"))
        for column, (values, title) in enumerate(panels, start=1):
            axis = axes[row, column]
            for index, name in enumerate(names):
                axis.plot(amounts, values[index].numpy(), marker=".", markersize=3, linewidth=1, label=name)
            axis.set_xlabel(INVARIANCE_AXES[sweep.kind])
            if row == 0:
                axis.set_title(title)
            axis.grid(alpha=0.3)
        axes[row, -1].set_ylim(0, 1)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    figure.tight_layout(rect=(0, 0.4 / figure.get_figheight(), 1, 1))
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False)
    return figure


def saturation_figure(fits: Mapping[str, "SaturationFits"], titles: Mapping[str, str]) -> Figure:
    """C3's "quasi-linear": per panel, the median over images (and quartiles) of a layer's distance over its
    distance at the largest transformation, against the size over the largest, beside a line and √x.

    Args:
        fits: panel title -> :class:`~zfcore.analysis.invariance.SaturationFits` (one panel each), or
            several fits per panel as ``"panel | curve"`` keys.
        titles: panel -> the x axis's label.
    """
    panels = list(dict.fromkeys(key.split(" | ")[0] for key in fits))
    figure, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 2.6), squeeze=False)
    grid = np.linspace(0, 1, 101)
    for axis, panel in zip(axes[0], panels):
        axis.plot(grid, grid, color="grey", linestyle="--", linewidth=1, label=f"line (half range: {LINE_RATIO:g})")
        axis.plot(grid, np.sqrt(grid), color="grey", linestyle=":", linewidth=1,
                  label=f"√x (half range: {SQRT_RATIO:.2f})")
        for key, fit in fits.items():
            if key.split(" | ")[0] != panel:
                continue
            x = (fit.sizes / fit.sizes.max()).numpy()
            quartiles = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
            low, median, high = torch.nanquantile(fit.profile.double(), quartiles, dim=0).numpy()
            curve = key.split(" | ")[-1]
            lines = axis.plot(x, median, marker=".", markersize=4, linewidth=1.2, label=curve)
            axis.fill_between(x, low, high, color=lines[0].get_color(), alpha=0.2, linewidth=0)
        axis.axvline(0.5, color="black", linewidth=0.5, alpha=0.4)
        axis.set(title=panel, xlabel=titles[panel], ylim=(0, 1.15))
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("distance / distance at the largest")
    axes[0, -1].legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    return figure


def scale_control_figure(factors: torch.Tensor, curves: Mapping[str, torch.Tensor]) -> Figure:
    """C4's zoom and its blur-only control: mean p(true) over images against the factor, one line per arm.

    Args:
        factors: ``[A]`` the factors (1 first: the untransformed view).
        curves: arm -> ``[N, A]`` p(true) of each image at each factor (the arms' images may differ).
    """
    figure, axis = plt.subplots(figsize=(WIDTH * 0.62, 2.6))
    for name, values in curves.items():
        axis.plot(factors.numpy(), values.double().mean(0).numpy(), marker=".", markersize=4, linewidth=1.2,
                  label=f"{name} (n = {len(values)})")
    axis.set(xlabel="zoom factor (blur only: the same loss of detail, no zoom)", ylabel="mean p(true class)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
