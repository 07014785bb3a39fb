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
    from zfcore.analysis.ablations import AblationTable
    from zfcore.analysis.architecture import FilterSpectra
    from zfcore.analysis.invariance import InvarianceSweep
    from zfcore.analysis.occlusion import OcclusionMaps
    from zfcore.analysis.sanity import RandomizationSimilarity
    from zfcore.analysis.top9 import TopProjections

VIEWS = ("projections", "patches", "both")
__all__ = [
    "VIEWS",
    "ablation_figure",
    "box_sensitivity_plot",
    "convergence_plot",
    "correspondence_figure",
    "crop_boxes",
    "evolution_mosaic",
    "fig4_figure",
    "figure_pixels",
    "filter_grid",
    "frequency_coverage_plot",
    "image_grid",
    "invariance_figure",
    "layer_probe_figure",
    "learning_curve_figure",
    "occlusion_figure",
    "projection_comparison",
    "randomization_curves",
    "randomization_panel",
    "to_display",
    "top9_figure",
    "top9_mosaic",
    "training_curves",
]


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


def filter_grid(weights: torch.Tensor, *, columns: int = 16, title: str | None = None,
                shared_scale: bool = False) -> Figure:
    """First-layer filters ``[F, 3, k, k]`` as colour patches, each scaled to its own range.

    With ``shared_scale`` all filters share one scale (their largest absolute weight maps to black or
    white, 0 to grey), so that a filter much stronger than the others stands out, as in Fig. 6(a).
    """
    weights = weights.detach().cpu().float()
    if shared_scale:
        images = (0.5 + 0.5 * weights / weights.abs().max().clamp_min(1e-12)).movedim(1, -1).numpy()
    else:
        images = to_display(weights)
    rows = int(np.ceil(len(images) / columns))
    padded = np.ones((rows * columns, *images.shape[1:]))
    padded[: len(images)] = images
    return image_grid(padded.reshape(rows, columns, *images.shape[1:]), cell=0.45, gap=0.06, title=title)


def frequency_coverage_plot(spectra: Mapping[str, "FilterSpectra"], strides: Mapping[str, int]) -> Figure:
    """Fig. 6(b)/(c) in numbers: where each network's conv1 filters put their energy.

    Left: a histogram of each filter's peak radial frequency, with the low / mid / high bands
    (:data:`zfcore.analysis.architecture.FREQUENCY_BANDS`). Right: the mean share of a filter's energy
    above a cutoff (per axis) against the cutoff, with each network's Nyquist frequency ``1 / (2 * stride)``.

    Args:
        spectra: network name -> its conv1 :class:`~zfcore.analysis.architecture.FilterSpectra`.
        strides: network name -> its conv1 stride.
    """
    from zfcore.analysis.architecture import FREQUENCY_BANDS

    figure, (histogram, coverage) = plt.subplots(1, 2, figsize=(9, 3.2))
    bins = np.linspace(0, 0.71, 18)
    cutoffs = np.linspace(0, 0.49, 50)
    for index, (name, spectrum) in enumerate(spectra.items()):
        colour = f"C{index}"
        histogram.hist(spectrum.peak_frequency.numpy(), bins=bins, histtype="step", linewidth=1.5, color=colour,
                       label=name)
        shares = [float(spectrum.share_above(float(cutoff)).mean()) for cutoff in cutoffs]
        coverage.plot(cutoffs, shares, color=colour, label=name)
        if name in strides:
            coverage.axvline(0.5 / strides[name], color=colour, linestyle=":", linewidth=1)
    for (band, (low, high)), shade in zip(FREQUENCY_BANDS.items(), (0.0, 0.08, 0.0)):
        histogram.axvspan(low, high, color="grey", alpha=shade)
        histogram.text((low + min(high, 0.71)) / 2, 0.98, band, transform=histogram.get_xaxis_transform(),
                       ha="center", va="top", fontsize=8)
    histogram.set(xlabel="peak frequency of a conv1 filter (cycles / px)", ylabel="filters")
    coverage.set(xlabel="cutoff (cycles / px), dotted: Nyquist of the stride", ylabel="energy above the cutoff",
                 ylim=(0, 1))
    histogram.legend(fontsize=8, loc="center right")
    coverage.legend(fontsize=8)
    for axis in (histogram, coverage):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


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


PART_COLOURS = {"right eye": "tab:red", "left eye": "tab:blue", "nose": "tab:green"}


def correspondence_figure(pixels: np.ndarray, part_boxes: Mapping[str, torch.Tensor],
                          random_boxes: Sequence[torch.Tensor], *, fill_colour: Sequence[int],
                          row_labels: Sequence[str] | None = None, cell: float = 1.3) -> Figure:
    """Fig. 8 of Zeiler & Fergus (2014): each image with its part boxes drawn, then masked part by part.

    Column 1: the image with every part's box outlined (the annotation check); then one column per
    part with that part masked; then one column per random draw with its box masked.

    Args:
        pixels: uint8 ``[N, S, S, 3]``, the network's crops.
        part_boxes: part -> boxes ``[N, 4]`` ``(x0, y0, x1, y1)``, ends exclusive.
        random_boxes: boxes ``[N, 4]`` of the random draws to show.
        fill_colour: the RGB (0-255) masked pixels are shown in: the training mean colour.
        row_labels: per image, e.g. its class name.
        cell: inches per panel.
    """
    from matplotlib.patches import Rectangle

    from zfcore.analysis.correspondence import box_masks

    pixels = np.asarray(pixels)
    count, size = pixels.shape[0], pixels.shape[1]
    masked_sets = list(part_boxes.values()) + list(random_boxes)
    titles = ["annotated"] + [f"{part} masked" for part in part_boxes] + [
        f"random {k + 1}" for k in range(len(random_boxes))]
    figure, axes = plt.subplots(count, len(titles), figsize=(len(titles) * cell, count * cell), squeeze=False,
                                gridspec_kw={"wspace": 0.04, "hspace": 0.08})
    colour = np.asarray(fill_colour, dtype=np.uint8)
    for row in range(count):
        axes[row, 0].imshow(pixels[row], interpolation="nearest")
        for part, boxes in part_boxes.items():
            x0, y0, x1, y1 = (int(v) for v in boxes[row])
            axes[row, 0].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=1.2,
                                             edgecolor=PART_COLOURS.get(part, "yellow")))
        for column, boxes in enumerate(masked_sets, start=1):
            image = pixels[row].copy()
            image[box_masks(boxes[row : row + 1], size)[0].numpy()] = colour
            axes[row, column].imshow(image, interpolation="nearest")
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[column], fontsize=7)
        if row_labels is not None:
            axes[row, 0].set_ylabel(row_labels[row], fontsize=7)
    return figure


def occlusion_figure(rows: Sequence[tuple[np.ndarray, OcclusionMaps, torch.Tensor, str]],
                     class_names: Sequence[str], *, legend_classes: int = 4) -> Figure:
    """Fig. 7 (§4.2): per image, (a) input with the occluder, (b) activity map, (c) projection, (d) p(true), (e) top class.

    Args:
        rows: per image ``(pixels [S, S, 3] uint8, maps (one image), projection [3, S, S], title)``; the
            projection is that of the strongest activation of ``maps.feature_map``.
        class_names: names of the network's classes, for panel (e)'s legend.
        legend_classes: how many of the most frequent classes of panel (e) are named.
    """
    figure, axes = plt.subplots(len(rows), 5, figsize=(13, 2.9 * len(rows)), squeeze=False)
    for axis_row, (pixels, maps, projection, title) in zip(axes, rows):
        size = pixels.shape[0]
        extent = (float(maps.lefts[0]) + (maps.size - 1) / 2 - maps.stride / 2,
                  float(maps.lefts[-1]) + (maps.size - 1) / 2 + maps.stride / 2,
                  float(maps.tops[-1]) + (maps.size - 1) / 2 + maps.stride / 2,
                  float(maps.tops[0]) + (maps.size - 1) / 2 - maps.stride / 2)
        axis_row[0].imshow(pixels, interpolation="nearest")
        axis_row[0].add_patch(plt.Rectangle((-0.5, -0.5), maps.size, maps.size, fill=True, color="0.5", alpha=0.9))
        axis_row[0].set_title(f"(a) {title}\nwith the {maps.size}-px occluder", fontsize=8)
        shown = axis_row[1].imshow(maps.activity.numpy(), cmap="jet", extent=extent)
        axis_row[1].set_title(f"(b) {maps.layer} map {int(maps.feature_map)}: total activation\n"
                              f"(unoccluded {float(maps.unoccluded_activity):.3g})", fontsize=8)
        figure.colorbar(shown, ax=axis_row[1], fraction=0.046)
        axis_row[2].imshow(to_display(projection, percentile=99.0), interpolation="nearest")
        axis_row[2].set_title(f"(c) {maps.layer} map {int(maps.feature_map)}, projected", fontsize=8)
        shown = axis_row[3].imshow(maps.true_probability.numpy(), cmap="jet", vmin=0, extent=extent)
        axis_row[3].set_title(f"(d) p({class_names[int(maps.labels)]})\n"
                              f"(unoccluded {float(maps.unoccluded_probability):.2f})", fontsize=8)
        figure.colorbar(shown, ax=axis_row[3], fraction=0.046)
        classes, counts = maps.predicted.unique(return_counts=True)
        order = classes[counts.argsort(descending=True)].tolist()
        codes = torch.tensor([order.index(c) for c in maps.predicted.flatten().tolist()]).view(maps.predicted.shape)
        palette = plt.get_cmap("tab10")
        colours = np.array([palette(i)[:3] if i < legend_classes else (0.6, 0.6, 0.6)
                            for i in range(len(order))])
        axis_row[4].imshow(colours[codes.numpy()], extent=extent, interpolation="nearest")
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in range(min(legend_classes, len(order)))]
        names = [textwrap.shorten(class_names[c], 18) for c in order[:legend_classes]]
        if len(order) > legend_classes:
            handles.append(plt.Rectangle((0, 0), 1, 1, color=(0.6, 0.6, 0.6)))
            names.append("other")
        axis_row[4].legend(handles, names, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        axis_row[4].set_title("(e) most probable class", fontsize=8)
        for axis in axis_row:
            axis.set(xlim=(-0.5, size - 0.5), ylim=(size - 0.5, -0.5), xticks=[], yticks=[])
    figure.tight_layout()
    return figure


def figure_pixels(figure: Figure) -> np.ndarray:
    """A figure rendered to ``[H, W, 3]`` floats in [0, 1] (a frame for a static explorer); closes it."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    plt.close(figure)
    return pixels


def box_sensitivity_plot(inside: torch.Tensor, outside: torch.Tensor) -> Figure:
    """C6 (§4.2): per image, mean p(true) with the occluder's centre inside vs outside the object's box."""
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.scatter(outside.numpy(), inside.numpy(), s=6, alpha=0.5)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set(xlabel="mean p(true), occluder outside the box", ylabel="mean p(true), occluder inside the box",
             xlim=(0, 1), ylim=(0, 1), title=f"{len(inside)} images")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


INVARIANCE_AXES = {"translate": "vertical translation (px)", "scale": "scale (factor)", "rotate": "rotation (degrees)"}


def invariance_figure(sweeps: Sequence["InvarianceSweep"], strips: Sequence[np.ndarray], names: Sequence[str],
                      layers: Sequence[str] = ("conv1", "fc7")) -> Figure:
    """Fig. 5 (§4): one row per transformation: example views, then per layer the distance to the
    original against the amount, then p(true) against the amount, one line per image.

    Args:
        sweeps: one :class:`~zfcore.analysis.invariance.InvarianceSweep` per row (rows a-c).
        strips: per row, uint8 ``[K, S, S, 3]`` views of one image at a few amounts (column 1).
        names: the images' names, one per line.
        layers: the two layers of columns 2 and 3.
    """
    figure, axes = plt.subplots(len(sweeps), 2 + len(layers), figsize=(3.2 * (2 + len(layers)), 2.6 * len(sweeps)),
                                squeeze=False)
    for row, (sweep, strip) in enumerate(zip(sweeps, strips)):
        axes[row, 0].imshow(_tile(np.asarray(strip, dtype=np.float64) / 255.0, gap=2))
        axes[row, 0].set(xticks=[], yticks=[], title=f"({'abc'[row]}) {INVARIANCE_AXES[sweep.kind]}")
        amounts = sweep.amounts.numpy()
        panels = [(sweep.distances[layer], f"distance, {layer}") for layer in layers]
        panels.append((sweep.true_probability, "p(true class)"))
        for column, (values, title) in enumerate(panels, start=1):
            axis = axes[row, column]
            for index, name in enumerate(names):
                axis.plot(amounts, values[index].numpy(), marker=".", markersize=3, linewidth=1, label=name)
            axis.set(xlabel=INVARIANCE_AXES[sweep.kind], title=title)
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3)
        axes[row, -1].set_ylim(0, 1)
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    figure.tight_layout()
    return figure


SANITY_MEASURES = {"spearman_abs": "Spearman rank corr. (absolute)", "spearman_signed": "Spearman rank corr. (signed)",
                   "ssim": "SSIM (absolute heat maps)"}


def randomization_curves(result: "RandomizationSimilarity") -> Figure:
    """Adebayo et al.'s (2018) curves: similarity to the trained network's map against the randomised layer.

    One panel per measure; per method the mean over the images, a band of one standard deviation, and
    a dotted line at the baseline (the trained maps of two different images).

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity`.
    """
    from zfcore.analysis.sanity import MEASURES

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 3.4), sharey=True, squeeze=False)
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
        axis.set_xticks(steps, result.steps, rotation=60, fontsize=7)
        axis.set(title=SANITY_MEASURES[measure], ylim=(-0.3, 1.05),
                 xlabel=f"{result.order} randomisation (down to)" if result.order == "cascading"
                 else "independent randomisation (layer)")
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"similarity to the trained map ({result.labels.numel()} images)")
    axes[0, -1].legend(fontsize=7, title="dotted: another image", title_fontsize=6)
    figure.tight_layout()
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


def learning_curve_figure(curves: Mapping[str, Sequence[Mapping]], *,
                          paper: Mapping[str, Mapping[str, Sequence]] | None = None, title: str = "") -> Figure:
    """Fig. 9: mean per-class accuracy against training images per class, one line per method.

    Args:
        curves: method name -> rows as :meth:`zfcore.analysis.probes.SplitScores.as_dict` writes them
            (``train_per_class``, ``mean_percent``, ``std_percent``, ``accuracy_percent``); each split is a dot,
            the mean a line with +-1 std bars.
        paper: the paper's points to mark, name -> {images per class (str): [mean, std]} (e.g. Table 4's rows).
        title: the axes' title.
    """
    figure, axis = plt.subplots(figsize=(6, 4))
    for index, (name, rows) in enumerate(curves.items()):
        colour = f"C{index}"
        sizes = [row["train_per_class"] for row in rows]
        axis.errorbar(sizes, [row["mean_percent"] for row in rows], yerr=[row["std_percent"] or 0 for row in rows],
                      color=colour, marker="o", capsize=3, label=name)
        for size, row in zip(sizes, rows):
            axis.scatter([size] * len(row["accuracy_percent"]), row["accuracy_percent"], color=colour, s=8, alpha=0.4)
    for index, (name, points) in enumerate((paper or {}).items()):
        sizes = [int(size) for size in points]
        axis.errorbar(sizes, [points[size][0] for size in points], yerr=[points[size][1] or 0 for size in points],
                      color=f"C{len(curves) + index}", marker="s", linestyle=":", capsize=3, label=f"paper: {name}")
    axis.set(xlabel="training images per class", ylabel="mean per-class accuracy (%)", ylim=(0, 100), title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def layer_probe_figure(probes: Mapping[str, Mapping[str, Mapping]], *,
                       paper: Mapping[str, Mapping[str, Sequence]] | None = None, title: str = "") -> Figure:
    """Table 7 as a plot: each layer's linear-probe accuracy (mean +- std over splits), one line per classifier.

    Args:
        probes: loss -> layer -> :meth:`zfcore.analysis.probes.SplitScores.as_dict` rows, layers in order.
        paper: loss -> layer -> [mean, std] (the paper's Table 7), drawn at the same layers where they exist.
        title: the axes' title.
    """
    layers = list(dict.fromkeys(layer for by_layer in probes.values() for layer in by_layer))
    figure, axis = plt.subplots(figsize=(6, 4))
    for index, (loss, by_layer) in enumerate(probes.items()):
        positions = [layers.index(layer) for layer in by_layer]
        axis.errorbar(positions, [row["mean_percent"] for row in by_layer.values()],
                      yerr=[row["std_percent"] or 0 for row in by_layer.values()], color=f"C{index}", marker="o",
                      capsize=3, label=f"ours: {loss}")
    for index, (loss, by_layer) in enumerate((paper or {}).items()):
        shown = [layer for layer in by_layer if layer in layers]
        axis.errorbar([layers.index(layer) for layer in shown], [by_layer[layer][0] for layer in shown],
                      yerr=[by_layer[layer][1] for layer in shown], color=f"C{len(probes) + index}", marker="s",
                      linestyle=":", capsize=3, label=f"paper: {loss}")
    axis.set_xticks(range(len(layers)), layers)
    axis.set(xlabel="layer", ylabel="mean per-class accuracy (%)", ylim=(0, 100), title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def ablation_figure(table: "AblationTable") -> Figure:
    """Table 3 as a plot: (left) val top-1 of every recorded run, the seeds' mean ± spread shaded and mean ± 2 x
    spread dotted (beyond it a difference is real), pending runs named on the axis without a dot; (right) each
    recorded run's val top-1 per epoch (:class:`~zfcore.analysis.ablations.AblationTable`), seed runs in grey."""
    figure, (runs_axis, epochs_axis) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.2, 1]})
    positions = range(len(table.rows))
    if table.seed_mean is not None:
        spread = table.spread or 0.0
        runs_axis.axhspan(100 * (table.seed_mean - spread), 100 * (table.seed_mean + spread), color="grey", alpha=0.25,
                          label="seeds: mean ± spread" if table.spread is not None else "seed (one run)")
        runs_axis.axhline(100 * table.seed_mean, color="grey", linewidth=1)
        if table.spread is not None:
            for sign in (-1, 1):
                runs_axis.axhline(100 * (table.seed_mean + sign * 2 * spread), color="grey", linestyle=":",
                                  label="real beyond: mean ± 2 × spread" if sign < 0 else None)
    for position, row in zip(positions, table.rows):
        if not row.pending:
            runs_axis.scatter(position, 100 * row.val_top1, color="grey" if row.kind == "seed" else "C0", zorder=3)
    runs_axis.set_xticks(list(positions), [row.run + (" (pending)" if row.pending else "") for row in table.rows],
                         rotation=60, ha="right", fontsize=8)
    runs_axis.set(ylabel="val top-1 (%)", title="val top-1 per run")
    seeds = [row.run for row in table.recorded if row.kind == "seed"]
    modified = [row.run for row in table.recorded if row.kind != "seed"]
    colours = [f"C{index}" for index in range(10) if index != 7]  # the default cycle without its grey: the seeds'
    for row in table.recorded:
        epochs = [point["epoch"] for point in row.history]
        seed = row.kind == "seed"
        epochs_axis.plot(epochs, [100 * point["val_top1"] for point in row.history], marker=".", label=row.run,
                         color="grey" if seed else colours[modified.index(row.run) % len(colours)],
                         linestyle=("-", "--", ":", "-.")[seeds.index(row.run) % 4] if seed else "-")
    epochs_axis.set(xlabel="epoch", ylabel="val top-1 (%)", title="val top-1 per epoch")
    for axis in (runs_axis, epochs_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
