"""Chapter 04 (feature invariance, §4, Fig. 5): distances and p(true) against vertical shift, scale and rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from zfcore.plots.images import tile_images
from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.invariance import InvarianceSweep

INVARIANCE_AXES = {"translate": "vertical translation (px)", "scale": "scale (factor)", "rotate": "rotation (degrees)"}
__all__ = ["INVARIANCE_AXES", "invariance_figure"]


def invariance_figure(sweeps: Sequence["InvarianceSweep"], strips: Sequence[np.ndarray], names: Sequence[str],
                      layers: Sequence[str] = ("conv1", "fc7")) -> Figure:
    """Fig. 5 (§4): one row per transformation: example views, then per layer the distance to the
    original against the amount, then p(true) against the amount, one line per image (named below the grid).

    Args:
        sweeps: one :class:`~zfcore.analysis.invariance.InvarianceSweep` per row (rows a-c).
        strips: per row, uint8 ``[K, S, S, 3]`` views of one image at a few amounts (column 1).
        names: the images' names, one per line.
        layers: the two layers of columns 2 and 3.
    """
    columns = 2 + len(layers)
    figure, axes = plt.subplots(len(sweeps), columns, figsize=(WIDTH, 1.85 * len(sweeps) + 0.45), squeeze=False)
    for row, (sweep, strip) in enumerate(zip(sweeps, strips)):
        axes[row, 0].imshow(tile_images(np.asarray(strip, dtype=np.float64) / 255.0, gap=2))
        axes[row, 0].set(xticks=[], yticks=[])
        axes[row, 0].set_title(f"({'abc'[row]}) {sweep.kind}", loc="left")
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
