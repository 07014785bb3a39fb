"""Chapter 02 (the deconvnet, §2.1, §4): Fig. 1's projections of one image, Fig. 2's top 9 per feature map."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import crop_boxes, image_grid, tile_images, to_display

if TYPE_CHECKING:
    from zfcore.analysis.top9 import TopProjections

VIEWS = ("projections", "patches", "both")
__all__ = ["VIEWS", "projection_comparison", "top9_figure", "top9_mosaic"]


def top9_figure(layers: Mapping[str, TopProjections], channels: Sequence[int], *, view: str = "both",
                maps_per_row: int = 2, tile: int = 64, percentile: float | None = 99.0, dpi: int = 100,
                headings: Mapping[str, str] | None = None) -> Figure:
    """Fig. 2 (Zeiler & Fergus 2014, §4): one block per layer, stacked top to bottom.

    Each block shows ``channels`` of its layer, ``maps_per_row`` side by side: per feature map the 9
    projections (3x3) beside the 9 image patches (3x3), both cropped to the receptive field and
    enlarged to ``tile`` px (nearest neighbour), as the paper lays them out. The figure is drawn
    pixel for pixel (one image pixel per figure pixel at ``dpi``), so a tile is ``tile`` px wide at
    ``dpi``; at the defaults the figure is about 820 px wide, shown a little smaller in the book's column.

    Args:
        layers: layer name -> its :class:`~zfcore.analysis.top9.TopProjections` (projections and
            patches ``[C, 9, 3, S, S]``, boxes ``[C, 9, 4]``).
        channels: which entries of each layer's ``TopProjections`` to show (indices into its first axis).
        view: ``"projections"``, ``"patches"`` or ``"both"``.
        maps_per_row: feature maps side by side in a block.
        tile: width and height of one enlarged tile, in pixels.
        percentile: contrast of the projections (see :func:`~zfcore.plots.images.to_display`); ``None``:
            scaled to the maximum.
        dpi: figure pixels per inch (the figure is laid out at this resolution).
        headings: layer -> the heading of its block (default: the layer's name), e.g. ``"(d) AlexNet: conv2"``.

    Returns:
        The figure.
    """
    if maps_per_row < 1:
        raise ValueError(f"maps_per_row={maps_per_row!r}: must be a positive integer")
    headings = dict(headings or {})
    spacer, header, title = 12, 18, 26  # px: between maps, above each row of maps (its labels), above each block
    blocks = []
    for layer, projected in layers.items():
        mosaics = [top9_mosaic(projected.projections[c], projected.patches[c], view=view, boxes=projected.boxes[c],
                               tile=tile, percentile=percentile) for c in channels]
        blank = np.ones_like(mosaics[0])
        rows, labels = [], []
        for start in range(0, len(mosaics), maps_per_row):
            row = mosaics[start : start + maps_per_row]
            row = row + [blank] * (maps_per_row - len(row))
            gap = np.ones((row[0].shape[0], spacer, 3))
            rows.append(np.concatenate([np.ones((header, (row[0].shape[1] + spacer) * maps_per_row - spacer, 3)),
                                        np.concatenate([part for m in row for part in (m, gap)][:-1], axis=1)]))
            labels.append([f"map {c}: projections | patches" if view == "both" else f"map {c}"
                           for c in channels[start : start + maps_per_row]])
        blocks.append((layer, np.concatenate(rows), labels, rows[0].shape[0]))
    width = blocks[0][1].shape[1]
    height = sum(title + block.shape[0] for _, block, _, _ in blocks)
    figure = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    top = height
    for layer, block, labels, row_height in blocks:
        figure.text(0.0, (top - title / 2) / height, headings.get(layer, layer), fontsize=11, fontweight="bold",
                    va="center")
        top -= title
        axis = figure.add_axes((0, (top - block.shape[0]) / height, block.shape[1] / width, block.shape[0] / height))
        axis.imshow(block, interpolation="nearest")
        axis.axis("off")
        pair = (width - spacer * (maps_per_row - 1)) / maps_per_row
        for r, names in enumerate(labels):
            for c, name in enumerate(names):
                axis.text(c * (pair + spacer) + pair / 2, r * row_height + header / 2, name, fontsize=9,
                          ha="center", va="center")
        top -= block.shape[0]
    return figure


def projection_comparison(image: np.ndarray, projections: Mapping[str, torch.Tensor], variants: Sequence[str],
                          boxes: Mapping[str, tuple[int, int, int, int]], *, row_labels: Sequence[str] | None = None,
                          percentile: float | None = 99.0, cell: float = 2.0) -> Figure:
    """One image and, per layer, the same activation projected several ways; the receptive field boxed.

    Args:
        image: the input, uint8 ``[S, S, 3]``.
        projections: layer -> ``[V, 3, S, S]`` its activation projected by each of ``variants``.
        variants: column titles, one per projection (wrapped at 20 characters).
        boxes: layer -> ``(top, left, bottom, right)`` of the activation's receptive field, drawn on the input.
        row_labels: one label per layer (default: the layer names).
        percentile: contrast of the projections (see :func:`~zfcore.plots.images.to_display`).
        cell: inches per image (at most the book's column divided by the columns).

    Returns:
        The figure: rows = layers, columns = the input then the variants.
    """
    from matplotlib.patches import Rectangle

    shown = np.stack([np.concatenate([image[None] / 255.0, to_display(views, percentile=percentile)])
                      for views in projections.values()])
    titles = [textwrap.fill(title, 20) for title in ("input (receptive field boxed)", *variants)]
    figure = image_grid(shown, titles=titles,
                        row_labels=list(projections) if row_labels is None else row_labels, cell=cell)
    columns = shown.shape[1]
    for row, layer in enumerate(projections):
        top, left, bottom, right = boxes[layer]
        figure.axes[row * columns].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                                       fill=False, edgecolor="red", linewidth=1.5))
    return figure


def top9_mosaic(projections: torch.Tensor, patches: torch.Tensor, *, view: str = "both",
                boxes: torch.Tensor | None = None, tile: int = 32, percentile: float | None = None) -> np.ndarray:
    """One feature map's 9 projections and/or 9 patches (``[9, 3, S, S]`` each) as 3x3 mosaics side by side.

    With ``boxes`` ``[9, 4]`` (the receptive fields), both are cropped to the box and enlarged to
    ``tile`` px, as in the paper. ``percentile`` sets the projections' contrast (see
    :func:`~zfcore.plots.images.to_display`). Each mosaic has a 2-px white border; tiles are 1 px apart.
    """
    if view not in VIEWS:
        raise ValueError(f"view={view!r} is not valid; valid views: {VIEWS}")
    if boxes is not None:
        projections, patches = crop_boxes(projections, boxes, tile), crop_boxes(patches, boxes, tile)
    parts = []
    if view in ("projections", "both"):
        parts.append(tile_images(to_display(projections, percentile=percentile)))
    if view in ("patches", "both"):
        parts.append(tile_images(to_display(patches)))
    return np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for p in parts], axis=1)
