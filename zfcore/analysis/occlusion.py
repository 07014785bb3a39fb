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

Whether the drop singles out the object, over many images (C6), is :mod:`zfcore.analysis.localisation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zfcore.analysis.incremental import OccludedForward
from zfcore.checks import check_boxes, check_choice, check_labels, check_positive, check_whole
from zfcore.data.loader import IMAGENET_MEAN, normalize
from zfcore.devices import model_device
from zfcore.models import ZFNet

__all__ = ["SIZE_FRACTION", "STRIDE_FRACTION", "BoxSensitivity", "OcclusionMaps", "box_masks", "box_sensitivity",
           "default_size_and_stride", "fill_and_classify", "occlude_boxes", "occluder_baseline", "occlusion_maps",
           "occlusion_maps_many", "pixel_attribution"]

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
