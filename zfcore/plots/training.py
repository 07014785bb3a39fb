"""Chapter 01 (training, §3) and Fig. 6(a)-(c) of chapter 05: training curves and first-layer filters."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import image_grid, to_display
from zfcore.plots.style import WIDTH

__all__ = ["filter_grid", "training_curves"]


def training_curves(rows: Sequence[dict[str, float]], *, paper_top1: float | None = None,
                    chance_classes: int | None = None) -> Figure:
    """Loss and accuracy per epoch from a trainer's metric rows; ``paper_top1`` and, for ``chance_classes`` classes,
    the loss of a uniform guess (ln of the count) are drawn as dotted grey lines where given."""
    epochs = [row["epoch"] for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    loss_axis.plot(epochs, [r["train_loss"] for r in rows], label="train")
    loss_axis.plot(epochs, [r["val_loss"] for r in rows], label="val")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    if chance_classes is not None:
        loss_axis.axhline(math.log(chance_classes), color="grey", linestyle=":", label=f"ln {chance_classes} (chance)")
    accuracy_axis.plot(epochs, [r["train_top1"] for r in rows], label="train top-1")
    accuracy_axis.plot(epochs, [r["val_top1"] for r in rows], label="val top-1")
    accuracy_axis.plot(epochs, [r["val_top5"] for r in rows], label="val top-5")
    if paper_top1 is not None:
        accuracy_axis.axhline(paper_top1, color="grey", linestyle=":", label="paper top-1 (ImageNet)")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7 if chance_classes is not None and axis is loss_axis else None)
    figure.tight_layout()
    return figure


def filter_grid(weights: torch.Tensor, *, columns: int = 16, title: str | None = None,
                shared_scale: bool = False) -> Figure:
    """First-layer filters ``[F, 3, k, k]`` as colour patches, each scaled to its own range.

    With ``shared_scale`` all filters share one scale (their largest absolute weight maps to black or
    white, 0 to grey), so that a filter much stronger than the others stands out, as in Fig. 6(a).
    ``columns`` filters side by side fill at most the book's column.
    """
    weights = weights.detach().cpu().float()
    if shared_scale:
        images = (0.5 + 0.5 * weights / weights.abs().max().clamp_min(1e-12)).movedim(1, -1).numpy()
    else:
        images = to_display(weights)
    rows = int(np.ceil(len(images) / columns))
    padded = np.ones((rows * columns, *images.shape[1:]))
    padded[: len(images)] = images
    return image_grid(padded.reshape(rows, columns, *images.shape[1:]), cell=0.42, gap=0.06, title=title)
