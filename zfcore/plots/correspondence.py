"""Chapter 07 (correspondence of parts, §4.3, Fig. 8, Table 1): the annotations overlaid on every image, the images
with their parts and random regions masked, and the gaps between parts and random boxes with their intervals."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import image_grid
from zfcore.plots.style import WIDTH

PART_COLOURS = {"right eye": "tab:red", "left eye": "tab:blue", "nose": "tab:green"}
__all__ = ["PART_COLOURS", "annotation_figure", "correspondence_figure", "gap_figure", "predictions_table"]


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
        cell: inches per panel (at most the column width divided by the columns: see
            :func:`~zfcore.plots.images.image_grid`).
    """
    from matplotlib.patches import Rectangle

    from zfcore.analysis.correspondence import box_masks

    pixels = np.asarray(pixels)
    count, size = pixels.shape[0], pixels.shape[1]
    masked_sets = list(part_boxes.values()) + list(random_boxes)
    titles = ["annotated"] + [f"{part}\nmasked" for part in part_boxes] + [
        f"random {k + 1}" for k in range(len(random_boxes))]
    colour = np.asarray(fill_colour, dtype=np.uint8)
    grid = np.repeat(pixels[:, None], len(titles), axis=1)  # uint8 [N, columns, S, S, 3]
    for column, boxes in enumerate(masked_sets, start=1):
        grid[:, column][box_masks(boxes, size).numpy()] = colour
    figure = image_grid(grid, titles=titles, row_labels=row_labels, cell=cell, gap=0.04)
    for row in range(count):
        for part, boxes in part_boxes.items():
            x0, y0, x1, y1 = (int(v) for v in boxes[row])
            outline = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=1.2,
                                edgecolor=PART_COLOURS.get(part, "yellow"))
            figure.axes[row * len(titles)].add_patch(outline)
    return figure


def annotation_figure(pixels: np.ndarray, part_boxes: Mapping[str, torch.Tensor], objects: torch.Tensor,
                      labels: Sequence[str], *, columns: int = 5) -> Figure:
    """Every annotated image with its part boxes (solid, :data:`PART_COLOURS`) and its dog's box (dashed white,
    where the random boxes go), so that a reader can check each annotation.

    Args:
        pixels: uint8 ``[N, S, S, 3]``, the network's crops.
        part_boxes: part -> boxes ``[N, 4]`` ``(x0, y0, x1, y1)``, ends exclusive.
        objects: ``[N, 4]`` the dogs' boxes.
        labels: per image, shown above it (e.g. its class name).
        columns: images per row.

    Raises:
        ValueError: ``labels`` or ``objects`` not one per image, or ``columns`` < 1.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    pixels = np.asarray(pixels)
    count = len(pixels)
    if len(labels) != count or len(objects) != count:
        raise ValueError(f"{count} images need one label and one object box each; got {len(labels)} labels "
                         f"and {len(objects)} object boxes")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns={columns!r}: must be a whole number >= 1")
    rows = -(-count // columns)
    cell = WIDTH / columns
    figure, axes = plt.subplots(rows, columns, figsize=(WIDTH, rows * (cell + 0.18)), squeeze=False,
                                gridspec_kw={"wspace": 0.04, "hspace": 0.22, "left": 0, "right": 1, "bottom": 0,
                                             "top": 1 - 0.2 / (rows * (cell + 0.18))})
    for index, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if index >= count:
            axis.set_axis_off()
            continue
        axis.imshow(pixels[index], interpolation="nearest")
        axis.set_title(labels[index], fontsize=7, pad=2)
        boxes = [(objects[index], "white", "--")] + [(part_boxes[part][index], PART_COLOURS.get(part, "yellow"), "-")
                                                    for part in part_boxes]
        for box, colour, style in boxes:
            x0, y0, x1, y1 = (int(v) for v in box)
            axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=1.0,
                                     linestyle=style, edgecolor=colour))
    return figure


def gap_figure(gaps: Mapping[str, Mapping[str, tuple[float, float, float]]], *, paper: Mapping[str, float] | None = None,
               xlabel: str = "part more consistent than random boxes (%)") -> Figure:
    """Each measure's gap between the parts and the random boxes, with its interval.

    Args:
        gaps: measure (one panel each) -> part -> ``(value, low, high)``; 0 means no difference.
        paper: part -> the paper's gap, drawn as a black cross in every panel whose name starts with "Δ" (say so
            in the caption).
        xlabel: the x axis's label.

    Raises:
        ValueError: no measures.
    """
    import matplotlib.pyplot as plt

    if not gaps:
        raise ValueError("gaps is empty; give measure -> part -> (value, low, high)")
    figure, axes = plt.subplots(1, len(gaps), figsize=(WIDTH, 1.9), sharey=True, squeeze=False,
                                gridspec_kw={"wspace": 0.08, "left": 0.11, "right": 0.99, "bottom": 0.24, "top": 0.86})
    for axis, (name, rows) in zip(axes[0], gaps.items()):
        parts = list(rows)
        for position, part in enumerate(parts):
            value, low, high = rows[part]
            axis.errorbar(value, position, xerr=[[value - low], [high - value]], fmt="o", markersize=3.5, capsize=2,
                          color=PART_COLOURS.get(part, "black"))
            if paper is not None and name.startswith("Δ") and part in paper:
                axis.plot(paper[part], position, "x", color="black", markersize=5)
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_title(name, fontsize=8)
        axis.set_yticks(range(len(parts)))
        axis.set_yticklabels(parts)
        axis.set_ylim(len(parts) - 0.5, -0.5)
    figure.supxlabel(xlabel, fontsize=8, y=0.02)
    return figure


def predictions_table(class_names: Sequence[str], wnids: Sequence[str], probabilities: torch.Tensor,
                      classes: Sequence[str], known: Sequence[str]) -> str:
    """Chapter 07's images as the network sees them: each image's class and WordNet id, whether the network was
    trained on that class, and the network's top class with its probability.

    Args:
        class_names, wnids: per image (:class:`zfcore.analysis.correspondence.PartAnnotations`).
        probabilities: ``[N, C]`` the network's softmax per image.
        classes, known: the network's classes as WordNet ids and as names, in its output order.

    Returns:
        A markdown table.

    Raises:
        ValueError: ``probabilities`` not ``[len(wnids), len(classes)]``.
    """
    if tuple(probabilities.shape) != (len(wnids), len(classes)):
        raise ValueError(f"probabilities has shape {tuple(probabilities.shape)}; expected [{len(wnids)} images, "
                         f"{len(classes)} classes]")
    rows = ["| image | wnid | among the network's classes | network's top class (p) |", "|---|---|---|---|"]
    for index, (name, wnid) in enumerate(zip(class_names, wnids)):
        top = int(probabilities[index].argmax())
        rows.append(f"| {name} | {wnid} | {'yes' if wnid in classes else 'no'} "
                    f"| {known[top]} ({probabilities[index, top]:.2f}) |")
    return "\n".join(rows)
