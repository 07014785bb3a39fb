"""Chapter 03 (feature evolution, §4, Fig. 4): projections through training, and how fast each layer settles."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import image_grid, to_display
from zfcore.plots.style import WIDTH

__all__ = ["convergence_plot", "evolution_mosaic", "fig4_figure"]


def fig4_figure(projections: torch.Tensor, epochs: Sequence[int], channels: Sequence[int], layer: str) -> Figure:
    """Fig. 4 for one layer: rows = feature maps, columns = snapshot epochs (``[E, M, 3, S, S]``)."""
    images = to_display(projections).transpose(1, 0, 2, 3, 4)
    return image_grid(images, titles=[f"epoch {e}" for e in epochs], row_labels=[f"map {c}" for c in channels],
                      title=f"{layer}: strongest activation of each map, projected, during training")


def evolution_mosaic(projections: dict[str, torch.Tensor], snapshot: int, *, border: int = 1) -> np.ndarray:
    """One snapshot of Fig. 4 (§4) as one image: a row per layer, its maps' projections side by side.

    The frame of the static Fig. 4 explorer: one such image per snapshot epoch.

    Args:
        projections: layer -> ``[E, M, 3, S, S]`` projections (``Evolution.projections``); one row per
            layer, in the dict's order.
        snapshot: which of the ``E`` snapshots, ``0 <= snapshot < E``.
        border: white pixels around each projection.

    Returns:
        float ``[H, W, 3]`` in [0, 1]: ``H`` the sum over layers of ``S + 2 * border``, ``W`` the widest
        row (``M * (S + 2 * border)``); shorter rows are padded with white on the right.
    """
    counts = {len(stack) for stack in projections.values()}
    if len(counts) != 1:
        raise ValueError(f"projections have {sorted(counts)} snapshots in different layers; expected one count")
    count = counts.pop()
    if not 0 <= snapshot < count:
        raise ValueError(f"snapshot={snapshot!r} is not valid; valid snapshots: 0 to {count - 1}")
    rows = []
    for stack in projections.values():
        images = to_display(stack[snapshot])
        rows.append(np.concatenate([np.pad(image, ((border, border), (border, border), (0, 0)), constant_values=1.0)
                                    for image in images], axis=1))
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=1.0)
                           for row in rows])


def convergence_plot(epochs: Sequence[int], curves: dict[str, dict[str, torch.Tensor]]) -> Figure:
    """Per-layer similarity to the final features against epoch, one panel per measure."""
    figure, axes = plt.subplots(1, len(curves), figsize=(WIDTH, 2.8), squeeze=False, sharey=True)
    for axis, (measure, per_layer) in zip(axes[0], curves.items()):
        for layer, values in per_layer.items():
            axis.plot(epochs, values.float().numpy(), marker="o", markersize=4, label=layer)
        axis.set(xlabel="epoch", title=measure, ylim=(-0.05, 1.05))
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("correlation with the last epoch")
    axes[0, -1].legend()
    figure.tight_layout()
    return figure
