"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2, Fig. 7).

A grey square of the dataset's mean colour slides over the image; for every position of the square
the occluded image goes through the network and three numbers are kept, the panels of Fig. 7:

- (b) the total activation (summed over positions) of the ``layer`` feature map that is strongest on
  the unoccluded image;
- (d) the probability of the true class;
- (e) the most probable class.

All occluded copies of an image run in batches, and only the part of each feature map that the
occluder reaches is recomputed (:mod:`zfcore.analysis.incremental`): the rest comes from one forward
pass of the unoccluded image. Many images are measured with :func:`occlusion_maps_many`.

**Size and stride.** The paper gives neither: Fig. 7 shows a square of roughly a quarter to a fifth
of the 224-px image's side, moved in small steps. We take a side of 1/4 of the image and a stride of
1/16 (16 and 4 px at 64 px, 56 and 14 px at 224 px): a 13 x 13 grid of positions.

**The grey.** The occluder is the dataset's mean colour, passed through the network's own
preprocessing (:func:`occluder_baseline`): for ``"mean-std"`` inputs the ImageNet mean pixel, which
becomes 0 in every channel; for ``"pixel-mean"`` inputs the mean colour of the mean image minus the
mean image at each pixel.

The window positions and the grey are those of Captum's ``Occlusion`` with
``sliding_window_shapes=(3, size, size)``, ``strides=(3, stride, stride)`` and the same baseline;
:func:`pixel_attribution` turns our p(true) map into Captum's per-pixel attribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zfcore.analysis.incremental import OccludedForward
from zfcore.checks import check_boxes, check_choice, check_labels, check_positive, check_whole
from zfcore.data.loader import IMAGENET_MEAN, normalize
from zfcore.devices import model_device
from zfcore.models import ZFNet
from zfcore.stats import Estimate, bootstrap, paired_difference
from zfcore.verdicts import Verdict

__all__ = ["CONFIDENT", "CONTROL_SHARE", "FILL_MATERIAL", "FILL_MAX_OVERLAP", "INSIDE_OVERLAP", "OVERLAP_GRADES",
           "SIZE_FRACTION", "SQUARE_MATERIAL", "STRIDE_FRACTION", "BoxSensitivity", "C6Measurements", "OcclusionMaps",
           "OverlapGrade", "another_images_box", "background_boxes", "box_masks", "box_sensitivity", "c6_measurements",
           "c6_table", "c6_verdict", "confident_examples", "default_size_and_stride", "fill_and_classify", "fill_drops",
           "occlude_boxes", "occluder_baseline", "occluder_overlap", "occlusion_maps", "occlusion_maps_many",
           "overlap_grades", "pixel_attribution", "position_matched_difference"]

SIZE_FRACTION = 1 / 4
"""The occluder's side as a fraction of the image's (our choice: the paper gives no size)."""
STRIDE_FRACTION = 1 / 16
"""The step between occluder positions as a fraction of the image's side (our choice)."""


@dataclass
class OcclusionMaps:
    """Fig. 7's maps for one image (``[rows, cols]``) or many (``[N, rows, cols]``), on the CPU.

    Attributes:
        layer: the layer whose feature map panel (b) follows.
        size, stride: the occluder's side and step, in pixels.
        tops: ``[rows]`` first pixel row of each row of positions; ``lefts``: ``[cols]`` first column.
        labels: the true class (``[]`` or ``[N]``).
        feature_map: the map of ``layer`` with the largest total activation on the unoccluded image.
        activity: (b) total activation of ``feature_map`` per occluder position.
        true_probability: (d) p(true class) per occluder position.
        predicted: (e) the most probable class per occluder position.
        unoccluded_activity, unoccluded_probability, unoccluded_prediction: the same three of the
            unoccluded image.
        image_size: the side of the images, in pixels (``None`` where unknown).
    """

    layer: str
    size: int
    stride: int
    tops: torch.Tensor
    lefts: torch.Tensor
    labels: torch.Tensor
    feature_map: torch.Tensor
    activity: torch.Tensor
    true_probability: torch.Tensor
    predicted: torch.Tensor
    unoccluded_activity: torch.Tensor
    unoccluded_probability: torch.Tensor
    unoccluded_prediction: torch.Tensor
    image_size: int | None = None

    @property
    def centres(self) -> torch.Tensor:
        """``[rows, cols, 2]`` float: the ``(row, col)`` pixel centre of the occluder at each position."""
        half = (self.size - 1) / 2
        rows, cols = torch.meshgrid(self.tops.double() + half, self.lefts.double() + half, indexing="ij")
        return torch.stack([rows, cols], -1)

    def image(self, index: int) -> "OcclusionMaps":
        """The maps of image ``index`` of a many-image result."""
        per_image = ("labels", "feature_map", "activity", "true_probability", "predicted", "unoccluded_activity",
                     "unoccluded_probability", "unoccluded_prediction")
        if self.labels.dim() != 1 or not 0 <= index < len(self.labels):
            raise ValueError(f"index={index!r}: valid for a many-image result, 0 .. {len(self.labels) - 1}")
        values = {name: getattr(self, name)[index] for name in per_image}
        return OcclusionMaps(self.layer, self.size, self.stride, self.tops, self.lefts, **values,
                             image_size=self.image_size)


def default_size_and_stride(image_size: int) -> tuple[int, int]:
    """The occluder's side and stride for ``image_size`` px: 1/4 and 1/16 of it (16 and 4 at 64 px)."""
    return max(1, round(image_size * SIZE_FRACTION)), max(1, round(image_size * STRIDE_FRACTION))


def occluder_baseline(image_size: int, mean_image: torch.Tensor | None = None) -> torch.Tensor:
    """The network input ``[3, S, S]`` of an image filled with the dataset's mean colour.

    Args:
        image_size: ``S``.
        mean_image: ``None`` for ``"mean-std"`` preprocessing (the mean colour is ImageNet's mean pixel,
            which normalises to 0); the ``[S, S, 3]`` mean image (0-255) for ``"pixel-mean"`` (the mean
            colour is its average over pixels).
    """
    if mean_image is None:
        colour = torch.tensor(IMAGENET_MEAN) * 255.0
    else:
        if tuple(mean_image.shape) != (image_size, image_size, 3):
            raise ValueError(f"mean_image has shape {tuple(mean_image.shape)}; expected ({image_size}, {image_size}, 3)")
        colour = mean_image.float().mean((0, 1)).cpu()
        mean_image = mean_image.float().cpu()
    grey = colour.expand(1, image_size, image_size, 3)
    return normalize(grey, mean_image)[0].contiguous()


def occlusion_maps(model: ZFNet, image: torch.Tensor, label: int, size: int | None = None, stride: int | None = None,
                   layer: str = "conv5", *, mean_image: torch.Tensor | None = None,
                   batch_size: int = 64, incremental: bool = True) -> OcclusionMaps:
    """Fig. 7's maps (b), (d), (e) for one image (Zeiler & Fergus 2014, §4.2).

    Args:
        model: a :class:`~zfcore.models.ZFNet` in eval mode; the work runs on its device.
        image: the network input, float ``[3, S, S]`` or ``[1, 3, S, S]`` (normalised pixels).
        label: the true class, ``0 .. num_classes - 1``.
        size: the occluder's side in pixels, ``1 .. S`` (default: ``S / 4``).
        stride: the step between positions, ``1 .. S`` (default: ``S / 16``).
        layer: the layer of panel (b), ``"conv1"`` ... ``"conv5"``.
        mean_image: the network's mean image for ``"pixel-mean"`` preprocessing, else ``None``
            (see :func:`occluder_baseline`).
        batch_size: occluded copies per forward pass.
        incremental: ``True`` (default): recompute only the part of each feature map the occluder
            changes (:class:`~zfcore.analysis.incremental.OccludedForward`); ``False``: run every
            occluded copy whole, as Captum's ``Occlusion`` does (the same maps to float rounding).

    Returns:
        :class:`OcclusionMaps` with ``[rows, cols]`` maps, on the CPU.

    Raises:
        ValueError: a bad image, label, size, stride, layer or batch size (naming the valid range).
    """
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or (image.dim() == 4 and len(image) != 1):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image has shape {shape}; expected one image [3, S, S] or [1, 3, S, S]")
    images = image if image.dim() == 4 else image[None]
    labels = check_labels("label", label, model.num_classes)
    if labels.shape != (1,):
        raise ValueError(f"label={label!r} is not valid; give one class, 0 .. {model.num_classes - 1}")
    return occlusion_maps_many(model, images, labels, size, stride, layer, mean_image=mean_image,
                               batch_size=batch_size, incremental=incremental).image(0)


def occlusion_maps_many(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
                        size: int | None = None, stride: int | None = None, layer: str = "conv5", *,
                        mean_image: torch.Tensor | None = None, batch_size: int = 64,
                        incremental: bool = True) -> OcclusionMaps:
    """:func:`occlusion_maps` for ``N`` images, one after another.

    Args:
        images: float ``[N, 3, S, S]`` network inputs; ``labels``: ``[N]`` true classes. The rest as
            for :func:`occlusion_maps`.

    Returns:
        :class:`OcclusionMaps` with ``[N, rows, cols]`` maps (``[N]`` unoccluded values), on the CPU.
    """
    model.check_images(images)
    check_choice("layer", layer, [name for name in model.layer_names if name.startswith("conv")],
                 "layers (panel (b) needs a feature map)")
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    image_size = images.shape[-1]
    default_size, default_stride = default_size_and_stride(image_size)
    size = check_whole("size", default_size if size is None else size, 1, image_size)
    stride = check_whole("stride", default_stride if stride is None else stride, 1, image_size)
    check_positive("batch_size", batch_size)

    device = model_device(model)
    images = model.prepare_images(images)
    labels_on_device = labels.to(device)
    baseline = occluder_baseline(image_size, mean_image).to(device, images.dtype)
    starts = torch.arange(0, image_size - size + 1, stride)
    rows, cols = len(starts), len(starts)
    row_of = torch.arange(rows, device=device).repeat_interleave(cols)  # [P], row-major positions
    col_of = torch.arange(cols, device=device).repeat(rows)
    tops, lefts = starts.to(device)[row_of], starts.to(device)[col_of]
    pixel = torch.arange(image_size, device=device)
    count, positions = len(images), rows * cols
    step = model.activation_step(layer)

    with torch.no_grad():
        unoccluded = model.trace(images, [layer])
        totals = unoccluded.activations[layer].sum((2, 3))  # [N, C]
        feature_map = totals.argmax(1)
        unoccluded_probability = unoccluded.logits.softmax(1)
        activity = torch.empty(count * positions, device=device)
        true_probability = torch.empty(count * positions, device=device)
        predicted = torch.empty(count * positions, dtype=torch.long, device=device)
        for which in range(count):
            if incremental:
                forward = OccludedForward(model, images[which], baseline, starts, size, step)
            for start in range(0, positions, batch_size):
                where = torch.arange(start, min(start + batch_size, positions), device=device)
                if incremental:
                    maps, logits = forward(row_of[where], col_of[where])
                else:  # every occluded copy whole, as Captum's Occlusion runs them
                    inside_rows = (pixel >= tops[where, None]) & (pixel < tops[where, None] + size)  # [B, S]
                    inside_cols = (pixel >= lefts[where, None]) & (pixel < lefts[where, None] + size)
                    mask = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]  # [B, 1, S, S]
                    trace = model.trace(torch.where(mask, baseline, images[which]), [layer])
                    maps, logits = trace.activations[layer], trace.logits
                flat = which * positions + where
                activity[flat] = maps[:, feature_map[which]].sum((1, 2))
                probabilities = logits.softmax(1)
                true_probability[flat] = probabilities[:, labels_on_device[which]]
                predicted[flat] = probabilities.argmax(1)

    grid = (count, rows, cols)
    return OcclusionMaps(
        layer=layer, size=size, stride=stride, tops=starts, lefts=starts.clone(), labels=labels,
        feature_map=feature_map.cpu(), activity=activity.view(grid).cpu(),
        true_probability=true_probability.view(grid).cpu(), predicted=predicted.view(grid).cpu(),
        unoccluded_activity=totals.gather(1, feature_map[:, None])[:, 0].cpu(),
        unoccluded_probability=unoccluded_probability.gather(1, labels_on_device[:, None])[:, 0].cpu(),
        unoccluded_prediction=unoccluded_probability.argmax(1).cpu(), image_size=image_size,
    )


def pixel_attribution(maps: OcclusionMaps, image_size: int) -> torch.Tensor:
    """Captum ``Occlusion``'s attribution of p(true), rebuilt from a one-image p(true) map: ``[S, S]``.

    Captum gives each pixel the mean, over the windows that cover it, of p(unoccluded) - p(occluded);
    pixels no window covers get 0 / 0 = NaN (as in Captum).

    Raises:
        ValueError: maps of several images, or ``image_size`` not the maps' image size (or, where the maps do not
            record it, smaller than the area the occluder covered).
    """
    if maps.labels.dim() != 0:
        raise ValueError("pixel_attribution takes the maps of one image (use maps.image(index))")
    check_whole("image_size", image_size, minimum=1)
    covered = int(max(maps.tops.max(), maps.lefts.max())) + maps.size
    if (maps.image_size is not None and image_size != maps.image_size) or image_size < covered:
        known = maps.image_size if maps.image_size is not None else f"at least {covered}"
        raise ValueError(f"image_size={image_size} is not valid; these maps are of {known}-px images")
    pixel = torch.arange(image_size)
    covers_rows = (pixel >= maps.tops[:, None]) & (pixel < maps.tops[:, None] + maps.size)  # [rows, S]
    covers_cols = (pixel >= maps.lefts[:, None]) & (pixel < maps.lefts[:, None] + maps.size)
    drop = (maps.unoccluded_probability - maps.true_probability).double()
    total = torch.einsum("rc,ry,cx->yx", drop, covers_rows.double(), covers_cols.double())
    windows = torch.einsum("ry,cx->yx", covers_rows.double(), covers_cols.double())
    return (total / windows).float()


@dataclass
class BoxSensitivity:
    """C6 measured over many images with object boxes (see :func:`box_sensitivity`).

    Attributes:
        images: images with occluder centres both inside and outside their box (the rest have no
            outside, or no inside, position and are left out).
        inside, outside: per such image, the mean p(true) with the occluder's centre inside / outside the box.
        changed_inside, changed_outside: per such image, the fraction of positions whose most probable
            class differs from the unoccluded image's.
    """

    images: int
    inside: torch.Tensor
    outside: torch.Tensor
    changed_inside: torch.Tensor
    changed_outside: torch.Tensor


def box_sensitivity(maps: OcclusionMaps, boxes: torch.Tensor | np.ndarray) -> BoxSensitivity:
    """Mean p(true) and changed predictions with the occluder's centre inside vs outside each image's box.

    Args:
        maps: many-image maps (:func:`occlusion_maps_many`).
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)`` in pixels, corners inclusive (Tiny ImageNet's val boxes): finite,
            ``x0 <= x1`` and ``y0 <= y1``, inside the image.

    Raises:
        ValueError: ``maps`` of one image; boxes not one per image, not finite, reversed or outside the image.
    """
    if maps.labels.dim() != 1:
        raise ValueError("box_sensitivity takes the maps of many images (occlusion_maps_many), one box per image")
    boxes = check_boxes("boxes", boxes, maps.image_size, inclusive=True, count=len(maps.labels))
    centres = maps.centres  # [rows, cols, 2] as (row, col) = (y, x)
    y, x = centres[..., 0][None], centres[..., 1][None]
    x0, y0, x1, y1 = (boxes[:, k, None, None] for k in range(4))
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)  # [N, rows, cols]
    outside = ~inside
    both = inside.flatten(1).any(1) & outside.flatten(1).any(1)
    changed = (maps.predicted != maps.unoccluded_prediction[:, None, None]).double()
    probability = maps.true_probability.double()

    def mean_over(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return (values * where).flatten(1).sum(1)[both] / where.flatten(1).sum(1)[both]

    return BoxSensitivity(images=int(both.sum()), inside=mean_over(probability, inside),
                          outside=mean_over(probability, outside), changed_inside=mean_over(changed, inside),
                          changed_outside=mean_over(changed, outside))


def box_masks(boxes: torch.Tensor | np.ndarray, image_size: int) -> torch.Tensor:
    """``[N, S, S]`` bool: the pixels of each box.

    Args:
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)`` in whole pixels, corners inclusive, inside the ``S``-px image.
        image_size: ``S``.

    Raises:
        ValueError: boxes not finite, not whole, reversed or outside the image.
    """
    check_positive("image_size", image_size)
    boxes = check_boxes("boxes", boxes, image_size, inclusive=True, whole=True)
    pixel = torch.arange(image_size)
    rows = (pixel >= boxes[:, 1, None]) & (pixel <= boxes[:, 3, None])
    cols = (pixel >= boxes[:, 0, None]) & (pixel <= boxes[:, 2, None])
    return rows[:, :, None] & cols[:, None, :]


def fill_and_classify(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
                      masks: torch.Tensor | None = None, *, mean_image: torch.Tensor | None = None,
                      batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """p(true) and the most probable class of each image, with the pixels of ``masks`` filled with the mean colour.

    Args:
        images: float ``[N, 3, S, S]`` network inputs; ``labels``: ``[N]`` whole-number classes.
        masks: ``[N, S, S]`` bool, the pixels to fill (:func:`box_masks`; ``~masks`` fills the complement);
            ``None``: the images as they are.
        mean_image: as for :func:`occlusion_maps`.
        batch_size: images per forward pass.

    Returns:
        ``(true_probability [N], predicted [N])`` on the CPU.

    Raises:
        ValueError: bad images; labels not one per image, float labels or labels out of range; masks not
            bool ``[N, S, S]``; a bad batch size.
    """
    model.check_images(images)
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    size = images.shape[-1]
    if masks is not None and (not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool
                              or tuple(masks.shape) != (len(images), size, size)):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks={shape} is not valid; give a bool tensor ({len(images)}, {size}, {size}), "
                         f"one per image")
    check_positive("batch_size", batch_size)
    device = model_device(model)
    baseline = occluder_baseline(size, mean_image).to(device)
    probabilities = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            part = model.prepare_images(images[start : start + batch_size])
            if masks is not None:
                mask = masks[start : start + batch_size, None].to(device)
                part = torch.where(mask, baseline.to(part.dtype), part)
            probabilities.append(model(part).softmax(1).cpu())
    probability = torch.cat(probabilities) if probabilities else torch.empty(0, model.num_classes)
    return probability.gather(1, labels[:, None])[:, 0], probability.argmax(1)


def occlude_boxes(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
                  boxes: torch.Tensor | np.ndarray, *, mean_image: torch.Tensor | None = None,
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """p(true) and the most probable class with each image's whole box filled with the mean colour.

    Args:
        images: float ``[N, 3, S, S]`` network inputs; ``labels``: ``[N]`` whole-number classes; ``boxes``:
            ``[N, 4]`` ``(x0, y0, x1, y1)`` in whole pixels, corners inclusive, inside the image.
            ``mean_image`` as for :func:`occlusion_maps`.
        batch_size: images per forward pass.

    Returns:
        ``(true_probability [N], predicted [N])`` on the CPU.

    Raises:
        ValueError: bad images; labels or boxes not one per image, float labels or labels out of range;
            boxes not finite, not whole, reversed or outside the image; a bad batch size.
    """
    model.check_images(images)
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    boxes = check_boxes("boxes", boxes, images.shape[-1], inclusive=True, whole=True, count=len(images))
    return fill_and_classify(model, images, labels, box_masks(boxes, images.shape[-1]), mean_image=mean_image,
                             batch_size=batch_size)


# C6 over many images: graded overlap, a position-matched comparison, and area-matched fills -------------------

INSIDE_OVERLAP = 0.75
"""An occluder position is *on the object* when at least this fraction of its pixels lies in the box (our choice)."""
OVERLAP_GRADES = (0.0, 0.25, INSIDE_OVERLAP)
"""The lower ends of the overlap grades: none (exactly 0), (0, 25 %), [25 %, 75 %), [75 %, 100 %]."""
CONFIDENT = 0.5
"""Fig. 7's examples are images the network classifies correctly with p(true) at least this (the rule, fixed before
looking)."""
SQUARE_MATERIAL = 0.10
"""C6 rule: the square's position-matched difference in relative drop (object minus background) that counts as a
significant drop, as a fraction of the unoccluded p(true)."""
FILL_MATERIAL = 0.25
"""C6 rule: the same for the whole box filled minus an area-matched background rectangle filled."""
FILL_MAX_OVERLAP = 0.25
"""The fill control counts an image only when its area-matched background rectangle has at most this fraction of
its pixels in the box (a box too large for the background to hold its like is left out)."""
CONTROL_SHARE = 0.5
"""C6 rule: the control explains the effect when its interval excludes 0 and it reaches this share of the square's."""


def occluder_overlap(maps: OcclusionMaps, boxes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[N, rows, cols]`` float64: the fraction of the occluder's pixels inside each image's box, per position.

    Args:
        maps: many-image maps (:func:`occlusion_maps_many`).
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)`` in pixels, corners inclusive, inside the image.

    Raises:
        ValueError: ``maps`` of one image; boxes not one per image, not finite, reversed or outside the image.
    """
    if maps.labels.dim() != 1:
        raise ValueError("occluder_overlap takes the maps of many images (occlusion_maps_many), one box per image")
    boxes = check_boxes("boxes", boxes, maps.image_size, inclusive=True, count=len(maps.labels))

    def covered(starts: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:  # [N, positions]
        first = torch.maximum(starts.double()[None], low[:, None])
        last = torch.minimum(starts.double()[None] + maps.size - 1, high[:, None])
        return (last - first + 1).clamp(min=0)

    rows = covered(maps.tops, boxes[:, 1].floor(), boxes[:, 3].floor())
    cols = covered(maps.lefts, boxes[:, 0].floor(), boxes[:, 2].floor())
    return rows[:, :, None] * cols[:, None, :] / maps.size**2


def background_boxes(boxes: torch.Tensor | np.ndarray, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per box, a rectangle of the same width and height placed where it overlaps the box least (area-matched).

    Among the places of least overlap, the one whose centre is farthest from the box's is taken (the first of
    equals, scanning rows then columns).

    Args:
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)`` in whole pixels, corners inclusive, inside the ``S``-px image.
        image_size: ``S``.

    Returns:
        ``(rectangles [N, 4] int64, overlap [N] float64)``: the rectangles as boxes, and the fraction of each
        rectangle's pixels inside its box (0 where the background holds the box's like).

    Raises:
        ValueError: a bad image size; boxes not finite, not whole, reversed or outside the image.
    """
    check_positive("image_size", image_size)
    boxes = check_boxes("boxes", boxes, image_size, inclusive=True, whole=True)
    rectangles, overlaps = [], []
    for x0, y0, x1, y1 in boxes.tolist():
        width, height = x1 - x0 + 1, y1 - y0 + 1
        lefts, tops = torch.arange(image_size - width + 1), torch.arange(image_size - height + 1)
        cols = (torch.clamp(lefts + width - 1, max=x1) - torch.clamp(lefts, min=x0) + 1).clamp(min=0)
        rows = (torch.clamp(tops + height - 1, max=y1) - torch.clamp(tops, min=y0) + 1).clamp(min=0)
        area = rows[:, None] * cols[None, :]  # [tops, lefts]
        distance = (tops[:, None] - y0).double() ** 2 + (lefts[None, :] - x0).double() ** 2
        score = area.double() * (4 * image_size**2 + 1) - distance  # least overlap first, then farthest
        best = int(score.flatten().argmin())
        top, left = int(tops[best // len(lefts)]), int(lefts[best % len(lefts)])
        rectangles.append([left, top, left + width - 1, top + height - 1])
        overlaps.append(float(area.flatten()[best]) / (width * height))
    return (torch.tensor(rectangles, dtype=torch.long).view(-1, 4),
            torch.tensor(overlaps, dtype=torch.float64))


def another_images_box(boxes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The C6 control's boxes: image ``i`` gets the box of image ``(i + N // 2) mod N`` (never its own).

    Raises:
        ValueError: fewer than 2 boxes, or boxes that are not ``[N, 4]`` numbers.
    """
    boxes = check_boxes("boxes", boxes, None, inclusive=True)
    if len(boxes) < 2:
        raise ValueError(f"boxes has {len(boxes)} rows; another image's box needs at least 2")
    return boxes.roll(len(boxes) // 2, 0)


def confident_examples(true_probability: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor | np.ndarray,
                       count: int, minimum: float = CONFIDENT) -> torch.Tensor:
    """Fig. 7's examples by the rule fixed before looking: correctly classified with p(true) >= ``minimum``,
    the most confident first.

    Args:
        true_probability, predicted, labels: ``[N]`` each (:func:`fill_and_classify` without masks, and the truth).
        count: how many examples at most.
        minimum: the least p(true), in ``[0, 1]`` (default :data:`CONFIDENT`).

    Returns:
        ``[k]`` int64 indices, ``k <= count`` (fewer where fewer images pass).

    Raises:
        ValueError: inputs of different lengths, a bad count or minimum.
    """
    check_positive("count", count)
    if not isinstance(minimum, (int, float)) or isinstance(minimum, bool) or not 0 <= minimum <= 1:
        raise ValueError(f"minimum={minimum!r} is not valid; give a probability in [0, 1]")
    labels = torch.as_tensor(labels)
    if not len(true_probability) == len(predicted) == len(labels):
        raise ValueError(f"true_probability, predicted and labels have {len(true_probability)}, {len(predicted)} and "
                         f"{len(labels)} values; give one each per image")
    passing = torch.nonzero((predicted == labels) & (true_probability >= minimum))[:, 0]
    order = true_probability[passing].argsort(descending=True, stable=True)
    return passing[order][:count]


@dataclass
class C6Measurements:
    """What C6 is decided on, per correctly classified image (see :func:`c6_measurements`).

    Attributes:
        relative_drop: ``[N, rows, cols]`` 1 - p(true, occluded) / p(true, unoccluded) per occluder position.
        overlap: ``[N, rows, cols]`` the fraction of the occluder's pixels inside the image's box.
        control_overlap: the same with another image's box (:func:`another_images_box`).
        box_fill_drop: ``[N]`` the relative drop with the whole box filled with the mean colour.
        background_fill_drop: ``[N]`` the relative drop with the area-matched background rectangle filled
            (:func:`background_boxes`).
        background_overlap: ``[N]`` the fraction of that rectangle's pixels inside the box.
        complement_fill_drop: ``[N]`` the relative drop with everything but the box filled.
        measured: how many images were measured before the misclassified ones were left out.

    Raises:
        ValueError: arrays whose shapes disagree, non-finite values, overlaps outside ``[0, 1]``.
    """

    relative_drop: torch.Tensor
    overlap: torch.Tensor
    control_overlap: torch.Tensor
    box_fill_drop: torch.Tensor
    background_fill_drop: torch.Tensor
    background_overlap: torch.Tensor
    complement_fill_drop: torch.Tensor
    measured: int

    def __post_init__(self) -> None:
        grid, count = tuple(self.relative_drop.shape), len(self.relative_drop)
        for name in ("relative_drop", "overlap", "control_overlap", "box_fill_drop", "background_fill_drop",
                     "background_overlap", "complement_fill_drop"):
            value = torch.as_tensor(getattr(self, name)).double()
            expected = grid if name in ("relative_drop", "overlap", "control_overlap") else (count,)
            if tuple(value.shape) != expected or len(grid) != 3:
                raise ValueError(f"{name} has shape {tuple(value.shape)}; expected {expected} (relative_drop is "
                                 f"[N, rows, cols])")
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} holds NaN or infinite values; every value must be finite")
            if "overlap" in name and not bool(((value >= 0) & (value <= 1)).all()):
                raise ValueError(f"{name} holds values outside [0, 1]; overlaps are fractions of pixels")
            setattr(self, name, value)
        if isinstance(self.measured, bool) or not isinstance(self.measured, int) or self.measured < count:
            raise ValueError(f"measured={self.measured!r} is not valid; give a whole number >= {count} "
                             f"(the images kept)")

    @property
    def images(self) -> int:
        """How many correctly classified images the measurements hold."""
        return len(self.relative_drop)


def c6_measurements(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
                    boxes: torch.Tensor | np.ndarray, maps: OcclusionMaps, *, mean_image: torch.Tensor | None = None,
                    batch_size: int = 256) -> C6Measurements:
    """C6's measurements on the images of ``maps`` that the network classifies correctly.

    Relative drops (1 - p(occluded) / p(unoccluded)) take out each image's own level of p(true), which label
    smoothing compresses; misclassified images are left out, since a p(true) near 0 has no room to drop.
    Besides the sliding square (``maps``), three fills per image: the whole box, a rectangle of the box's size
    where it overlaps the box least (:func:`background_boxes`), and everything but the box.

    Args:
        model: the network ``maps`` were measured with; ``images``: its inputs ``[N, 3, S, S]``; ``labels``:
            ``[N]``; ``boxes``: ``[N, 4]`` whole pixels, corners inclusive; ``maps``: :func:`occlusion_maps_many`
            of the same images. ``mean_image`` and ``batch_size`` as for :func:`fill_and_classify`.

    Raises:
        ValueError: bad images, labels or boxes; fewer than 2 images; maps of one image, or of other images or labels.
    """
    if maps.labels.dim() != 1 or len(maps.labels) != len(images):
        raise ValueError(f"maps hold {maps.labels.numel()} images and images {len(images)}; "
                         f"give the maps of these images")
    if len(images) < 2:
        raise ValueError(f"images has {len(images)} images; C6's control (another image's box) needs at least 2")
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    if not torch.equal(labels, maps.labels):
        raise ValueError("labels are not the labels the maps were measured with; "
                         "give the same images in the same order")
    size = images.shape[-1]
    boxes = check_boxes("boxes", boxes, size, inclusive=True, whole=True, count=len(images))
    correct = maps.unoccluded_prediction == labels
    kept = torch.nonzero(correct)[:, 0]
    unoccluded = maps.unoccluded_probability.double()[kept]
    background, background_overlap = background_boxes(boxes[kept], size)
    in_box = box_masks(boxes[kept], size)
    fills = {}
    for name, masks in (("box", in_box), ("background", box_masks(background, size)), ("complement", ~in_box)):
        probability, _ = fill_and_classify(model, images[kept], labels[kept], masks, mean_image=mean_image,
                                           batch_size=batch_size)
        fills[name] = 1 - probability.double() / unoccluded
    return C6Measurements(
        relative_drop=1 - maps.true_probability.double()[kept] / unoccluded[:, None, None],
        overlap=occluder_overlap(maps, boxes)[kept],
        control_overlap=occluder_overlap(maps, another_images_box(boxes))[kept],
        box_fill_drop=fills["box"], background_fill_drop=fills["background"], background_overlap=background_overlap,
        complement_fill_drop=fills["complement"], measured=len(images))


def position_matched_difference(relative_drop: torch.Tensor, first: torch.Tensor, second: torch.Tensor, *,
                                seed: int = 0) -> Estimate | None:
    """The drop where the occluder is in ``first`` minus where it is in ``second``, at the same position across
    images, with its bootstrap interval over images.

    At each occluder position, the mean drop over the images where that position is in ``first`` minus the mean
    over the images where it is in ``second``; the positions' differences are averaged with weights
    ``n_first * n_second / (n_first + n_second)`` (0 where either is 0). Position effects (the centre of an
    image matters more than its border) cancel, since both arms share each position.

    Args:
        relative_drop: ``[N, rows, cols]`` (or ``[N, positions]``) per image and position.
        first, second: bool masks of the same shape.
        seed: seeds the bootstrap.

    Returns:
        An :class:`~zfcore.stats.Estimate` (``n``: images), or ``None`` when fewer than 2 images or no position
        is in both arms.

    Raises:
        ValueError: masks not bool or not of ``relative_drop``'s shape.
    """
    for name, mask in (("first", first), ("second", second)):
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != relative_drop.shape:
            raise ValueError(f"{name} is not valid; give a bool mask of relative_drop's shape "
                             f"{tuple(relative_drop.shape)}")
    drop = relative_drop.double().flatten(1)
    in_first, in_second = first.flatten(1).double(), second.flatten(1).double()
    if len(drop) < 2 or not bool(((in_first.sum(0) > 0) & (in_second.sum(0) > 0)).any()):
        return None
    first_sums, second_sums = drop * in_first, drop * in_second

    def statistic(indices: torch.Tensor) -> torch.Tensor:
        picked = indices.long().view(-1, len(drop))
        weights = torch.zeros(len(picked), len(drop), dtype=torch.float64)
        weights.scatter_add_(1, picked, torch.ones_like(picked, dtype=torch.float64))
        count_first, count_second = weights @ in_first, weights @ in_second
        difference = ((weights @ first_sums) / count_first.clamp(min=1)
                      - (weights @ second_sums) / count_second.clamp(min=1))
        position_weight = count_first * count_second / (count_first + count_second).clamp(min=1)
        total = position_weight.sum(1)
        value = (difference * position_weight).sum(1) / total.clamp(min=1e-12)
        value = torch.where(total > 0, value, torch.zeros_like(value))  # a resample with no shared position: 0
        return value if indices.dim() > 1 else value[0]

    return bootstrap(torch.arange(len(drop), dtype=torch.float64), statistic, seed=seed)


@dataclass(frozen=True)
class OverlapGrade:
    """The sliding square's relative drop at the positions of one overlap grade (:func:`overlap_grades`).

    Attributes:
        label: the grade, e.g. ``"[25 %, 75 %)"``.
        drop: the mean over images of each image's mean drop at those positions (``None`` under 2 images).
        matched: the position-matched difference to the positions with no pixel in the box (``None`` for that
            grade itself, or where no position is shared).
        images: how many images have positions of this grade.
    """

    label: str
    drop: Estimate | None
    matched: Estimate | None
    images: int


def overlap_grades(measurements: C6Measurements, *, seed: int = 0) -> list[OverlapGrade]:
    """The relative drop per grade of occluder-box overlap (:data:`OVERLAP_GRADES`), with intervals over images."""
    overlap, drop = measurements.overlap, measurements.relative_drop
    outside = overlap == 0
    _, edge, inside = OVERLAP_GRADES
    grades = [("0 (background)", outside), (f"(0, {100 * edge:.0f} %)", ~outside & (overlap < edge)),
              (f"[{100 * edge:.0f} %, {100 * inside:.0f} %)", (overlap >= edge) & (overlap < inside)),
              (f"[{100 * inside:.0f} %, 100 %]", overlap >= inside)]
    results = []
    for index, (label, where) in enumerate(grades):
        having = where.flatten(1).any(1)
        per_image = (drop * where).flatten(1).sum(1)[having] / where.flatten(1).sum(1)[having]
        estimate = bootstrap(per_image, seed=seed) if len(per_image) >= 2 else None
        matched = None if index == 0 else position_matched_difference(drop, where, outside, seed=seed)
        results.append(OverlapGrade(label, estimate, matched, int(having.sum())))
    return results


def fill_drops(measurements: C6Measurements, *, seed: int = 0) -> dict[str, Estimate | None]:
    """The mean relative drop of each fill with its bootstrap interval over images.

    Returns:
        ``{"box": ..., "background": ..., "box, same images": ..., "complement": ...}``: the whole box filled (all
        images), the area-matched background rectangle and the box on the images whose rectangle keeps off the
        box (:data:`FILL_MAX_OVERLAP`; ``None`` under 2 such images), everything but the box (all images).
    """
    eligible = measurements.background_overlap <= FILL_MAX_OVERLAP
    enough = int(eligible.sum()) >= 2
    return {"box": bootstrap(measurements.box_fill_drop, seed=seed),
            "background": bootstrap(measurements.background_fill_drop[eligible], seed=seed) if enough else None,
            "box, same images": bootstrap(measurements.box_fill_drop[eligible], seed=seed) if enough else None,
            "complement": bootstrap(measurements.complement_fill_drop, seed=seed)}


def c6_table(grades: list[OverlapGrade], fills: dict[str, Estimate | None]) -> str:
    """:func:`overlap_grades` and :func:`fill_drops` as one Markdown table of relative drops (in % of p(true))."""
    def shown(estimate: Estimate | None) -> str:
        return "–" if estimate is None else estimate.format(scale=100, digits=1, unit=" %")

    lines = ["| occluder | images | relative drop of p(true) | minus background at the same positions |",
             "|---|---|---|---|"]
    lines += [f"| 16-px square, share in the box {grade.label} | {grade.images} | {shown(grade.drop)} | "
              f"{shown(grade.matched)} |" for grade in grades]
    lines += [f"| {name} filled | {'–' if estimate is None else estimate.n} | {shown(estimate)} | |"
              for name, estimate in fills.items()]
    return "\n".join(lines)


def _as_record(estimate: Estimate | None) -> dict[str, Any] | None:
    return None if estimate is None else {"value": estimate.value, "low": estimate.low, "high": estimate.high,
                                         "n": estimate.n, "method": estimate.method}


def c6_verdict(measurements: C6Measurements, *, seed: int = 0) -> Verdict:
    """C6 (§4.2): does p(true) drop significantly more when the occluder covers the object than the background?

    Two arms, both as relative drops on correctly classified images, decided by the rule in the record:

    - **the sliding square** (the paper's method): positions with at least :data:`INSIDE_OVERLAP` of the
      occluder in the box minus positions with none of it there, matched by position across images
      (:func:`position_matched_difference`);
    - **the whole box filled** minus an area-matched background rectangle filled, paired per image, on the
      images whose rectangle has at most :data:`FILL_MAX_OVERLAP` of its pixels in the box.

    The control repeats the square's comparison with another image's box (:func:`another_images_box`).

    Args:
        measurements: :func:`c6_measurements`.
        seed: seeds every bootstrap.

    Raises:
        ValueError: ``measurements`` that are not :class:`C6Measurements`, or hold fewer than 2 images.
    """
    if not isinstance(measurements, C6Measurements):
        raise ValueError(f"measurements={type(measurements).__name__} is not valid; give C6Measurements "
                         f"(c6_measurements)")
    if measurements.images < 2:
        raise ValueError(f"measurements hold {measurements.images} correctly classified images; C6 needs at least 2")
    drop = measurements.relative_drop
    square = position_matched_difference(drop, measurements.overlap >= INSIDE_OVERLAP, measurements.overlap == 0,
                                         seed=seed)
    control = position_matched_difference(drop, measurements.control_overlap >= INSIDE_OVERLAP,
                                          measurements.control_overlap == 0, seed=seed)
    eligible = measurements.background_overlap <= FILL_MAX_OVERLAP
    fill = (paired_difference(measurements.box_fill_drop[eligible], measurements.background_fill_drop[eligible],
                              seed=seed) if int(eligible.sum()) >= 2 else None)
    grades = overlap_grades(measurements, seed=seed)

    def shown(estimate: Estimate | None) -> str:
        if estimate is None:
            return "not measurable"
        return f"{estimate.format(scale=100, digits=1, unit=' %')} (n = {estimate.n})"

    above_zero = [estimate is not None and estimate.low > 0 for estimate in (square, fill)]
    material = [estimate is not None and estimate.low >= threshold
                for estimate, threshold in ((square, SQUARE_MATERIAL), (fill, FILL_MATERIAL))]
    ruled_out = [estimate is not None and estimate.high < threshold
                 for estimate, threshold in ((square, SQUARE_MATERIAL), (fill, FILL_MATERIAL))]
    control_explains = (control is not None and square is not None and control.excludes(0)
                        and abs(control.value) >= CONTROL_SHARE * abs(square.value))
    findings = (f"covering the object with the square costs {shown(square)} of p(true) more than covering "
                f"background at the same place; filling the whole box costs {shown(fill)} more than filling an "
                f"area-matched background rectangle")
    settle = ""
    if control_explains:
        outcome = "inconclusive"
        reason = f"Another image's box gives {shown(control)}, as much as the object's box: {findings}."
        settle = "A control that gives 0: boxes or masks of the objects that do not share their images' layout."
    elif all(material):
        outcome, reason = "agree", f"Both arms reach their thresholds: {findings}."
    elif any(above_zero):
        outcome = "partly"
        reason = (f"The object matters, but not both arms by the margin the rule asks for a significant drop: "
                  f"{findings}.")
    elif all(ruled_out):
        outcome, reason = "differ", f"Neither arm is above 0 and both rule out their thresholds: {findings}."
    else:
        outcome = "inconclusive"
        reason = f"Neither arm's interval is above 0, nor does either rule out its threshold: {findings}."
        settle = "More correctly classified images with boxes, for intervals narrow enough to decide."
    rule = (f"Relative drops on correctly classified images. agree: the lower 95 % bounds of both arms reach their "
            f"thresholds (SQUARE_MATERIAL = {100 * SQUARE_MATERIAL:.0f} % of p(true) for the square, FILL_MATERIAL = "
            f"{100 * FILL_MATERIAL:.0f} % for the fill); partly: at least one arm's lower bound is above 0; differ: "
            f"neither is above 0 and both upper bounds are below their thresholds; inconclusive: otherwise, or when "
            f"the control's interval excludes 0 and it reaches CONTROL_SHARE = {CONTROL_SHARE:g} of the square's "
            f"difference.")
    details = {
        "images_measured": measurements.measured, "images_correct": measurements.images,
        "square": _as_record(square), "control": _as_record(control), "fill": _as_record(fill),
        "fill_images": int(eligible.sum()),
        "fill_drops": {name: _as_record(estimate) for name, estimate in fill_drops(measurements, seed=seed).items()},
        "grades": [{"overlap": grade.label, "images": grade.images, "drop": _as_record(grade.drop),
                    "matched_difference": _as_record(grade.matched)} for grade in grades],
        "thresholds": {"INSIDE_OVERLAP": INSIDE_OVERLAP, "SQUARE_MATERIAL": SQUARE_MATERIAL,
                       "FILL_MATERIAL": FILL_MATERIAL, "FILL_MAX_OVERLAP": FILL_MAX_OVERLAP,
                       "CONTROL_SHARE": CONTROL_SHARE},
    }
    measure = (f"The sliding square's relative drop of p(true), 1 - p(occluded) / p(unoccluded), on the "
               f"correctly classified images: positions with at least {100 * INSIDE_OVERLAP:.0f} % of the square in "
               f"the object's box minus positions with none of it there, matched by position across images "
               f"(each position weighted by n_in n_out / (n_in + n_out)); second arm: the whole box filled minus an "
               f"area-matched background rectangle filled, paired per image")
    control_text = ("The square's comparison with each image given another image's box (the box of the image half "
                    "the list away): the same sizes and places, not the object, so it should give 0")
    return Verdict("C6", measure, square, control_text, control, rule, outcome, reason, settle=settle,
                   details=details, scale=100, digits=1, unit=" %")
