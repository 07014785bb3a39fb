"""Chapter 07 (correspondence of parts, §4.3, Fig. 8): the images with their parts and random regions masked."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.images import image_grid

PART_COLOURS = {"right eye": "tab:red", "left eye": "tab:blue", "nose": "tab:green"}
__all__ = ["PART_COLOURS", "correspondence_figure"]


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
