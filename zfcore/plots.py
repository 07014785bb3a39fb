"""Matplotlib figures for the book: each takes analysis results and returns a :class:`~matplotlib.figure.Figure`."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

VIEWS = ("projections", "patches", "both")
__all__ = ["convergence_plot", "filter_grid", "fig4_figure", "image_grid", "to_display", "top9_figure", "top9_mosaic", "crop_boxes",
           "training_curves"]


def to_display(images: torch.Tensor) -> np.ndarray:
    """Projections ``[..., 3, H, W]`` (any sign) -> ``[..., H, W, 3]`` in [0, 1], each scaled on its own.

    Zero maps to grey (0.5), the largest absolute value of each image to 0 or 1, as the paper displays
    its reconstructions. uint8 images are just divided by 255.
    """
    if images.dtype == torch.uint8:
        return images.movedim(-3, -1).float().numpy() / 255.0
    images = images.float()
    scale = images.abs().flatten(-3).amax(-1).clamp_min(1e-12)[..., None, None, None]
    return (0.5 + 0.5 * images / scale).movedim(-3, -1).clamp(0, 1).numpy()


def image_grid(images: np.ndarray, *, titles: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
               cell: float = 0.9, gap: float = 0.04, title: str | None = None) -> Figure:
    """A grid of ``[R, C, H, W, 3]`` images in [0, 1]."""
    rows, cols = images.shape[:2]
    figure, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * cell + (0.4 if title else 0)), squeeze=False,
                                gridspec_kw={"wspace": gap, "hspace": gap * 2})
    for r in range(rows):
        for c in range(cols):
            axes[r, c].imshow(images[r, c], interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if titles is not None and r == 0:
                axes[r, c].set_title(titles[c], fontsize=7)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def top9_figure(projections: torch.Tensor, patches: torch.Tensor, channels: Sequence[int], layer: str,
                *, view: str = "both", boxes: torch.Tensor | None = None) -> Figure:
    """Fig. 2 for one layer: per feature map, the 9 projections (3x3) beside the 9 image patches (3x3).

    ``projections``/``patches`` ``[M, 9, 3, S, S]``; ``view`` is ``"projections"``, ``"patches"`` or ``"both"``;
    ``boxes`` ``[M, 9, 4]`` crops both to the receptive fields (the paper's layout for small fields).
    """
    blocks = [top9_mosaic(projections[m], patches[m], view=view, boxes=None if boxes is None else boxes[m])
              for m in range(len(channels))]
    width = 1.8 * (2 if view == "both" else 1)
    figure, axes = plt.subplots(1, len(blocks), figsize=(width * len(blocks), width + 0.3), squeeze=False)
    for axis, block, channel in zip(axes[0], blocks, channels):
        axis.imshow(block, interpolation="nearest")
        axis.set_title(f"{layer} map {channel}", fontsize=8)
        axis.axis("off")
    return figure


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Crop each image ``[N, 3, S, S]`` to its box ``(top, left, bottom, right)`` and resize to ``size`` (nearest)."""
    crops = [F.interpolate(image[None, :, top:bottom, left:right].float(), size=(size, size), mode="nearest")[0]
             for image, (top, left, bottom, right) in zip(images, boxes.tolist())]
    stacked = torch.stack(crops)
    return stacked.to(torch.uint8) if images.dtype == torch.uint8 else stacked


def top9_mosaic(projections: torch.Tensor, patches: torch.Tensor, *, view: str = "both",
                boxes: torch.Tensor | None = None) -> np.ndarray:
    """One feature map's 9 projections and/or 9 patches (``[9, 3, S, S]`` each) as 3x3 mosaics side by side.

    With ``boxes`` ``[9, 4]`` (the receptive fields), both are cropped to the box and enlarged, as in the paper.
    """
    if view not in VIEWS:
        raise ValueError(f"view={view!r} is not valid; valid views: {VIEWS}")
    if boxes is not None:
        projections, patches = crop_boxes(projections, boxes), crop_boxes(patches, boxes)
    parts = []
    if view in ("projections", "both"):
        parts.append(_tile(to_display(projections)))
    if view in ("patches", "both"):
        parts.append(_tile(to_display(patches)))
    return np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for p in parts], axis=1)


def _tile(images: np.ndarray) -> np.ndarray:
    """``[9, H, W, 3]`` -> one ``[3H, 3W, 3]`` 3x3 mosaic (padded with white if fewer than 9)."""
    count, height, width = images.shape[:3]
    side = int(np.ceil(np.sqrt(count)))
    canvas = np.ones((side * height, side * width, 3))
    for index in range(count):
        r, c = divmod(index, side)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = images[index]
    return canvas


def filter_grid(weights: torch.Tensor, *, columns: int = 16, title: str | None = None) -> Figure:
    """First-layer filters ``[F, 3, k, k]`` as colour patches, each scaled to its own range."""
    images = to_display(weights)
    rows = int(np.ceil(len(images) / columns))
    padded = np.ones((rows * columns, *images.shape[1:]))
    padded[: len(images)] = images
    return image_grid(padded.reshape(rows, columns, *images.shape[1:]), cell=0.45, gap=0.06, title=title)


def training_curves(rows: Sequence[dict[str, float]], *, paper_top1: float | None = None) -> Figure:
    """Loss and accuracy per epoch from a trainer's metric rows."""
    epochs = [row["epoch"] for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_axis.plot(epochs, [r["train_loss"] for r in rows], label="train")
    loss_axis.plot(epochs, [r["val_loss"] for r in rows], label="val")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy_axis.plot(epochs, [r["train_top1"] for r in rows], label="train top-1")
    accuracy_axis.plot(epochs, [r["val_top1"] for r in rows], label="val top-1")
    accuracy_axis.plot(epochs, [r["val_top5"] for r in rows], label="val top-5")
    if paper_top1 is not None:
        accuracy_axis.axhline(paper_top1, color="grey", linestyle=":", label="paper top-1 (ImageNet)")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def fig4_figure(projections: torch.Tensor, epochs: Sequence[int], channels: Sequence[int], layer: str) -> Figure:
    """Fig. 4 for one layer: rows = feature maps, columns = snapshot epochs (``[E, M, 3, S, S]``)."""
    images = to_display(projections).transpose(1, 0, 2, 3, 4)
    return image_grid(images, titles=[f"epoch {e}" for e in epochs], row_labels=[f"map {c}" for c in channels],
                      title=f"{layer}: strongest activation of each map, projected, during training")


def convergence_plot(epochs: Sequence[int], curves: dict[str, dict[str, torch.Tensor]]) -> Figure:
    """Per-layer similarity to the final features against epoch, one panel per measure."""
    figure, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.2), squeeze=False)
    for axis, (measure, per_layer) in zip(axes[0], curves.items()):
        for layer, values in per_layer.items():
            axis.plot(epochs, values.float().numpy(), marker="o", label=layer)
        axis.set(xlabel="epoch", ylabel="correlation with the last epoch", title=measure, ylim=(-0.05, 1.05))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
