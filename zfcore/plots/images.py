"""Images for figures, shared by the chapters: projections to displayable pixels, grids of images, crops, mosaics."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from zfcore.plots.style import MIN_FONT_PT, WIDTH

__all__ = ["crop_boxes", "image_grid", "tile_images", "to_display"]


def to_display(images: torch.Tensor, *, percentile: float | None = None) -> np.ndarray:
    """Projections ``[..., 3, H, W]`` (any sign) -> ``[..., H, W, 3]`` in [0, 1], each scaled on its own.

    Zero maps to grey (0.5) and ``+-scale`` of each image to 1 or 0, as the paper displays its
    reconstructions. uint8 images are just divided by 255.

    Args:
        images: float projections, or uint8 images ``[..., 3, H, W]``.
        percentile: ``None``: ``scale`` is the largest absolute value (nothing clips). A number in
            (0, 100]: ``scale`` is that percentile of the image's non-zero absolute values, and larger
            values clip (percentile contrast: a few strong pixels no longer leave the rest faint
            grey; the zeros outside the receptive field do not count).

    Returns:
        ``[..., H, W, 3]`` float array in [0, 1].
    """
    images = images.detach().cpu()  # projections may come from a GPU
    if images.dtype == torch.uint8:
        return images.movedim(-3, -1).float().numpy() / 255.0
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile!r} is not valid; valid: None or a number in (0, 100]")
    images = images.float()
    magnitudes = images.abs().flatten(-3)
    if percentile is None:
        scale = magnitudes.amax(-1)
    else:
        nonzero = magnitudes.masked_fill(magnitudes == 0, float("nan")).reshape(-1, magnitudes.shape[-1])
        scale = torch.nanquantile(nonzero, percentile / 100, dim=-1).nan_to_num(0.0).view(magnitudes.shape[:-1])
    scale = scale.clamp_min(1e-12)[..., None, None, None]
    return (0.5 + 0.5 * images / scale).movedim(-3, -1).clamp(0, 1).numpy()


def image_grid(images: np.ndarray, *, titles: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
               cell: float = 0.9, gap: float = 0.04, title: str | None = None, width: float = WIDTH) -> Figure:
    """A grid of ``[R, C, H, W, 3]`` images in [0, 1].

    Args:
        images: the grid, rows by columns.
        titles: one per column, above the first row.
        row_labels: one per row, left of the first column.
        cell: inches per image, at most ``width / C`` (the grid fits the book's column).
        gap: space between images, as a fraction of one.
        title: above the grid.
        width: the widest the grid may be, in inches (default: the book's column, :data:`~zfcore.plots.style.WIDTH`).
    """
    rows, cols = images.shape[:2]
    side = 0.22 if row_labels is not None else 0.0  # inches left of the grid for the row labels
    lines = max((str(text).count("\n") + 1 for text in titles), default=0) if titles is not None else 0
    header = (0.35 if title else 0.0) + (0.04 + 0.13 * lines if lines else 0.0)  # inches above the grid
    cell = min(cell, (width - side) / cols)
    side_of_image = cols * cell / (cols + (cols - 1) * gap)  # an image's side, with the gaps between them
    grid_height = side_of_image * (rows + (rows - 1) * 2 * gap)
    figure_width, figure_height = cols * cell + side, grid_height + header + 0.02
    figure, axes = plt.subplots(rows, cols, figsize=(figure_width, figure_height), squeeze=False,
                                gridspec_kw={"wspace": gap, "hspace": gap * 2, "left": side / figure_width,
                                             "right": 1.0, "bottom": 0.02 / figure_height,
                                             "top": 1 - header / figure_height})
    for r in range(rows):
        for c in range(cols):
            axes[r, c].imshow(images[r, c], interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if titles is not None and r == 0:
                axes[r, c].set_title(titles[c], fontsize=MIN_FONT_PT, pad=3)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=MIN_FONT_PT, labelpad=3)
    if title:
        figure.suptitle(title, fontsize=9, y=1 - 0.05 / figure_height, va="top")
    return figure


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Crop each image ``[N, 3, S, S]`` to its box ``(top, left, bottom, right)`` and resize to ``size`` (nearest)."""
    crops = [F.interpolate(image[None, :, top:bottom, left:right].float(), size=(size, size), mode="nearest")[0]
             for image, (top, left, bottom, right) in zip(images, boxes.tolist())]
    stacked = torch.stack(crops)
    return stacked.to(torch.uint8) if images.dtype == torch.uint8 else stacked


def tile_images(images: np.ndarray, gap: int = 1) -> np.ndarray:
    """``[N, H, W, 3]`` -> one square mosaic (3x3 for 9), tiles ``gap`` px apart (white; white cells where none)."""
    count, height, width = images.shape[:3]
    side = int(np.ceil(np.sqrt(count)))
    canvas = np.ones((side * height + (side - 1) * gap, side * width + (side - 1) * gap, 3))
    for index in range(count):
        r, c = divmod(index, side)
        top, left = r * (height + gap), c * (width + gap)
        canvas[top : top + height, left : left + width] = images[index]
    return canvas
