"""Matplotlib figures for the book: each takes analysis results and returns a :class:`~matplotlib.figure.Figure`."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from zfcore.analysis.top9 import TopProjections

VIEWS = ("projections", "patches", "both")
__all__ = ["convergence_plot", "filter_grid", "fig4_figure", "evolution_mosaic", "image_grid", "projection_comparison", "to_display", "top9_figure",
           "top9_mosaic", "crop_boxes", "training_curves"]


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


def top9_figure(layers: Mapping[str, TopProjections], channels: Sequence[int], *, view: str = "both",
                maps_per_row: int = 2, tile: int = 64, percentile: float | None = 99.0, dpi: int = 100) -> Figure:
    """Fig. 2 (Zeiler & Fergus 2014, §4): one block per layer, stacked top to bottom.

    Each block shows ``channels`` of its layer, ``maps_per_row`` side by side: per feature map the 9
    projections (3x3) beside the 9 image patches (3x3), both cropped to the receptive field and
    enlarged to ``tile`` px (nearest neighbour), as the paper lays them out. The figure is drawn
    pixel for pixel (one image pixel per figure pixel at ``dpi``), so a tile is ``tile`` px wide in
    the PNG; at the defaults the PNG is about 800 px wide, the book's text width.

    Args:
        layers: layer name -> its :class:`~zfcore.analysis.top9.TopProjections` (projections and
            patches ``[C, 9, 3, S, S]``, boxes ``[C, 9, 4]``).
        channels: which entries of each layer's ``TopProjections`` to show (indices into its first axis).
        view: ``"projections"``, ``"patches"`` or ``"both"``.
        maps_per_row: feature maps side by side in a block.
        tile: width and height of one enlarged tile, in pixels.
        percentile: contrast of the projections (see :func:`to_display`); ``None``: scaled to the maximum.
        dpi: figure pixels per inch (the PNG is drawn at this resolution).

    Returns:
        The figure.
    """
    if maps_per_row < 1:
        raise ValueError(f"maps_per_row={maps_per_row!r}: must be a positive integer")
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
        figure.text(0.0, (top - title / 2) / height, f"{layer}", fontsize=11, fontweight="bold", va="center")
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
        percentile: contrast of the projections (see :func:`to_display`).
        cell: inches per image.

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


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Crop each image ``[N, 3, S, S]`` to its box ``(top, left, bottom, right)`` and resize to ``size`` (nearest)."""
    crops = [F.interpolate(image[None, :, top:bottom, left:right].float(), size=(size, size), mode="nearest")[0]
             for image, (top, left, bottom, right) in zip(images, boxes.tolist())]
    stacked = torch.stack(crops)
    return stacked.to(torch.uint8) if images.dtype == torch.uint8 else stacked


def top9_mosaic(projections: torch.Tensor, patches: torch.Tensor, *, view: str = "both",
                boxes: torch.Tensor | None = None, tile: int = 32, percentile: float | None = None) -> np.ndarray:
    """One feature map's 9 projections and/or 9 patches (``[9, 3, S, S]`` each) as 3x3 mosaics side by side.

    With ``boxes`` ``[9, 4]`` (the receptive fields), both are cropped to the box and enlarged to
    ``tile`` px, as in the paper. ``percentile`` sets the projections' contrast (see :func:`to_display`).
    Each mosaic has a 2-px white border; tiles are 1 px apart.
    """
    if view not in VIEWS:
        raise ValueError(f"view={view!r} is not valid; valid views: {VIEWS}")
    if boxes is not None:
        projections, patches = crop_boxes(projections, boxes, tile), crop_boxes(patches, boxes, tile)
    parts = []
    if view in ("projections", "both"):
        parts.append(_tile(to_display(projections, percentile=percentile)))
    if view in ("patches", "both"):
        parts.append(_tile(to_display(patches)))
    return np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for p in parts], axis=1)


def _tile(images: np.ndarray, gap: int = 1) -> np.ndarray:
    """``[9, H, W, 3]`` -> one 3x3 mosaic, tiles ``gap`` px apart (white; white cells if fewer than 9)."""
    count, height, width = images.shape[:3]
    side = int(np.ceil(np.sqrt(count)))
    canvas = np.ones((side * height + (side - 1) * gap, side * width + (side - 1) * gap, 3))
    for index in range(count):
        r, c = divmod(index, side)
        top, left = r * (height + gap), c * (width + gap)
        canvas[top : top + height, left : left + width] = images[index]
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
    figure, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.2), squeeze=False)
    for axis, (measure, per_layer) in zip(axes[0], curves.items()):
        for layer, values in per_layer.items():
            axis.plot(epochs, values.float().numpy(), marker="o", label=layer)
        axis.set(xlabel="epoch", ylabel="correlation with the last epoch", title=measure, ylim=(-0.05, 1.05))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
