"""Correspondence analysis (Zeiler & Fergus 2014, §4.3, Fig. 8, Table 1).

The paper masks the same part of the face (right eye, left eye, nose) in 5 frontal dog images and asks
whether the network's features change *in the same way* in every image. For image ``i`` and layer
``l``, ``ε_i^l = x_i^l − x̃_i^l`` is the feature vector of the original minus that of the masked image;
the score is

    Δ_l = Σ_{i≠j} H(sign(ε_i^l), sign(ε_j^l)),

with ``H`` the Hamming distance. A lower Δ means a more consistent change, "hence tighter
correspondence between the same object parts in different images"; random regions of the same size
are the control.

**Normalisation.** The paper does not state one, but its Table 1 ("Mean Feature Sign Change", values
0.067–0.107) cannot be a raw count (a raw count over 20 ordered pairs of 4096-long fc7 vectors runs
to thousands). We report the *mean over the ordered pairs i≠j of the fraction of features whose sign
differs*: ``Δ_l / (N (N − 1) D)`` for ``N`` images and ``D`` features, in [0, 1]
(:attr:`SignChange.delta`; the raw sum is :attr:`SignChange.total`). ``sign`` takes three values,
−1, 0 and +1: a unit that is 0 (after its ReLU) in both the original and the masked image has
``ε = 0`` and counts as differing from a unit that changed; this is what keeps the paper's values
small, as most ReLU units are 0 in both.

**Layers.** ``"pool5"`` is the paper's layer-5 feature vector: the output of layer 5 in its Fig. 3
(conv5, ReLU, 3×3 max pooling), the vector fed to fc6. ``"fc7"`` is layer 7 (after its ReLU). Any
named layer of the network is accepted (its ReLU output, flattened).

**Mask colour.** Masked pixels are set to ``fill`` in the network's *input* space, default 0: under
both of zfcore's preprocessings that is the training set's mean (ImageNet mean/std:
``(mean − mean) / std = 0``; the paper's pixel-mean: ``pixel − mean image = 0``), the grey of the paper.

The scores over image pairs with their intervals, Table 1's measurement and the C7 verdict are
:mod:`zfcore.analysis.consistency`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from zfcore.models import ZFNet

__all__ = ["PAPER_TABLE1", "PARTS", "POOLED_LAYER", "RANDOM_BOX_TRIES", "PartAnnotations", "SignChange", "box_masks",
           "jitter_boxes", "load_annotations", "random_boxes", "sign_change", "sign_changes", "sign_consistency"]

PARTS = ("right eye", "left eye", "nose")
# Table 1 of the paper: occlusion location -> (layer 5, layer 7), each (mean, ±)
PAPER_TABLE1: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "right eye": ((0.067, 0.007), (0.069, 0.015)),
    "left eye": ((0.069, 0.007), (0.068, 0.013)),
    "nose": ((0.079, 0.017), (0.069, 0.011)),
    "random": ((0.107, 0.017), (0.073, 0.014)),
}
POOLED_LAYER = "pool5"
RANDOM_BOX_TRIES = 1000
"""How many places :func:`random_boxes` draws for one box before it gives up finding one off the avoided boxes."""


@dataclass
class SignChange:
    """Δ of one layer for one set of masks.

    Attributes:
        layer: the feature layer.
        pair_distances: ``[N, N]`` float64, the fraction of the ``features`` whose sign differs between
            ``ε_i`` and ``ε_j`` (symmetric, zero diagonal).
        features: ``D``, the length of the feature vector.
        unchanged: ``[N]`` per image, the fraction of features with ``ε = 0`` (sign 0).
        changed_in_one: ``[N, N]`` the fraction of features that change (``ε ≠ 0``) in exactly one of the two
            images: the part of Δ that is about *which* units change.
        changed_in_both: ``[N, N]`` the fraction of features that change in both images.
        opposite_in_both: ``[N, N]`` the fraction of features that change in both, with opposite signs: the
            part of Δ that is about the *direction* of the change. ``pair_distances = changed_in_one +
            opposite_in_both``.
        cosine: ``[N, N]`` the cosine of ``ε_i`` and ``ε_j`` (0 where either is all zeros).
    """

    layer: str
    pair_distances: torch.Tensor
    features: int
    unchanged: torch.Tensor
    changed_in_one: torch.Tensor
    changed_in_both: torch.Tensor
    opposite_in_both: torch.Tensor
    cosine: torch.Tensor

    @property
    def total(self) -> int:
        """The paper's Δ before normalisation: Σ_{i≠j} H(sign ε_i, sign ε_j), a count of features."""
        return int(round(float(self.pair_distances.sum()) * self.features))

    @property
    def delta(self) -> float:
        """Δ normalised: the mean over ordered pairs ``i ≠ j`` of the fraction of differing signs, in [0, 1]."""
        count = self.pair_distances.shape[0]
        return float(self.pair_distances.sum()) / (count * (count - 1))

    @property
    def pair_std(self) -> float:
        """Standard deviation of the pair fractions over the ``N (N − 1) / 2`` distinct pairs.

        Raises:
            ValueError: fewer than 3 images: one pair has no spread.
        """
        count = self.pair_distances.shape[0]
        if count < 3:
            raise ValueError(f"pair_std of {count} images: {count * (count - 1) // 2} pair has no spread; "
                             f"give at least 3 images (3 pairs)")
        return float(self.distinct_pair_distances.std())

    @property
    def distinct_pair_distances(self) -> torch.Tensor:
        """``[N (N − 1) / 2]`` the pair fractions of the distinct pairs ``i < j``."""
        return _distinct_pairs(self.pair_distances)


def sign_consistency(differences: torch.Tensor, layer: str = "") -> SignChange:
    """Δ of feature differences ``ε`` (§4.3): pairwise Hamming distances of their sign patterns.

    Args:
        differences: ``[N, D]`` the ``ε_i`` (any float dtype, any device), ``N >= 2``.
        layer: recorded in the result.

    Returns:
        :class:`SignChange` on the CPU.

    Raises:
        ValueError: not a finite float ``[N, D]`` tensor with ``N >= 2`` and ``D >= 1``.
    """
    if not isinstance(differences, torch.Tensor) or differences.dim() != 2 or not differences.is_floating_point():
        raise ValueError(f"differences must be a float tensor [N, D]; got {_describe(differences)}")
    if differences.shape[0] < 2 or differences.shape[1] < 1:
        raise ValueError(f"differences have shape {tuple(differences.shape)}; need N >= 2 images and D >= 1 features")
    if not bool(torch.isfinite(differences).all()):
        raise ValueError("differences contain NaN or infinite values")
    differences = differences.detach().double().cpu()
    signs = torch.sign(differences)
    changed = (signs != 0).double()
    features = signs.shape[1]
    differing = (signs[:, None, :] != signs[None, :, :]).double().mean(-1)
    both = changed @ changed.T / features
    one = (changed.sum(1)[:, None] + changed.sum(1)[None, :]) / features - 2 * both
    opposite = ((signs[:, None, :] * signs[None, :, :]) < 0).double().mean(-1)
    norms = differences.norm(dim=1)
    cosine = differences @ differences.T / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(torch.float64).tiny)
    return SignChange(layer, differing, int(features), 1 - changed.mean(1), one, both, opposite, cosine)


def sign_change(model: ZFNet, images: torch.Tensor, masks: torch.Tensor, layer: str, *,
                fill: float = 0.0) -> SignChange:
    """The paper's Δ_l (§4.3) for ``images`` and one mask per image.

    Args:
        model: a :class:`~zfcore.models.ZFNet` on its device (evaluated in eval mode, its mode restored).
        images: ``[N, 3, S, S]`` normalised network inputs (e.g. ``Reference.preprocess(pixels)``), ``N >= 2``.
        masks: per image the pixels to mask: boolean ``[N, S, S]``, or integer boxes ``[N, 4]``
            ``(x0, y0, x1, y1)`` in pixels, ends exclusive (:func:`box_masks`).
        layer: ``"pool5"`` (the paper's layer 5) or a named layer of ``model`` (``"fc7"``: layer 7).
        fill: the value of masked pixels in input space; 0 is the training mean (module docstring).

    Returns:
        :class:`SignChange` on the CPU.

    Raises:
        ValueError: bad images (:meth:`~zfcore.models.ZFNet.check_images`), fewer than 2, masks of the
            wrong shape or type, a box outside the image or empty, a mask covering no pixel, an
            unknown layer, or a non-finite ``fill``.
    """
    return sign_changes(model, images, masks, (layer,), fill=fill)[layer]


def sign_changes(model: ZFNet, images: torch.Tensor, masks: torch.Tensor, layers: Sequence[str], *,
                 fill: float = 0.0) -> dict[str, SignChange]:
    """:func:`sign_change` for several layers from one forward pass: layer -> :class:`SignChange`.

    Raises:
        ValueError: as :func:`sign_change`, or no layers.
    """
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers={layers!r}: give a non-empty sequence of layer names, e.g. ('pool5', 'fc7')")
    for layer in layers:
        _check_layer(model, layer)
    model.check_images(images)
    if images.shape[0] < 2:
        raise ValueError(f"images has {images.shape[0]} image(s); Δ compares pairs, so give at least 2")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not np.isfinite(fill):
        raise ValueError(f"fill={fill!r}: must be a finite number (0 is the training mean in input space)")
    masks = _as_masks(masks, images.shape[0], images.shape[-1])
    masked = images.masked_fill(masks[:, None].to(images.device), float(fill))
    both = _features(model, torch.cat([images, masked]), layers)  # one batch: the same kernels for both
    return {layer: sign_consistency(values[: len(images)] - values[len(images):], layer)
            for layer, values in both.items()}


def box_masks(boxes: torch.Tensor | np.ndarray | Sequence[Sequence[int]], size: int) -> torch.Tensor:
    """Boolean masks ``[N, size, size]`` of boxes ``[N, 4]`` ``(x0, y0, x1, y1)``, ends exclusive.

    Raises:
        ValueError: not whole numbers ``[N, 4]``, or a box empty or not inside the ``size`` × ``size`` image.
    """
    boxes = torch.as_tensor(np.asarray(boxes))
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.is_floating_point() or boxes.dtype == torch.bool:
        raise ValueError(f"boxes must be whole numbers [N, 4] (x0, y0, x1, y1); got {_describe(boxes)}")
    masks = torch.zeros(len(boxes), size, size, dtype=torch.bool)
    for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
            raise ValueError(f"box {index} = {(x0, y0, x1, y1)} must satisfy 0 <= x0 < x1 <= {size} "
                             f"and 0 <= y0 < y1 <= {size} (ends exclusive)")
        masks[index, y0:y1, x0:x1] = True
    return masks


def random_boxes(boxes: torch.Tensor, size: int, generator: np.random.Generator,
                 regions: torch.Tensor | None = None, avoid: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Boxes of the same widths and heights as ``boxes`` at uniformly random places inside ``regions``.

    Args:
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)``, inside a ``size`` × ``size`` image.
        size: the image side.
        generator: the random source (seed it for a repeatable control).
        regions: ``[N, 4]`` per image the box the random box must lie in (the paper: "random parts of
            the object"); default the whole image.
        avoid: boxes ``[N, 4]`` (e.g. every annotated part) that a random box must not overlap: a place
            that overlaps one is drawn again, up to :data:`RANDOM_BOX_TRIES` times.

    Raises:
        ValueError: bad boxes, regions or boxes to avoid (:func:`box_masks`), a box larger than its region,
            or no place off the avoided boxes found in :data:`RANDOM_BOX_TRIES` draws.
    """
    box_masks(boxes, size)  # validates
    boxes = torch.as_tensor(np.asarray(boxes))
    regions = torch.tensor([[0, 0, size, size]] * len(boxes)) if regions is None else torch.as_tensor(np.asarray(regions))
    box_masks(regions, size)
    if regions.shape != boxes.shape:
        raise ValueError(f"regions have shape {tuple(regions.shape)}; expected one per box, {tuple(boxes.shape)}")
    avoided = [torch.as_tensor(np.asarray(other)) for other in avoid]
    for other in avoided:
        box_masks(other, size)
        if other.shape != boxes.shape:
            raise ValueError(f"boxes to avoid have shape {tuple(other.shape)}; expected one per box, {tuple(boxes.shape)}")
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    room_x, room_y = regions[:, 2] - regions[:, 0] - widths, regions[:, 3] - regions[:, 1] - heights
    if bool((room_x < 0).any() or (room_y < 0).any()):
        raise ValueError(f"a box is larger than its region: boxes {boxes.tolist()}, regions {regions.tolist()}")
    drawn = []
    for index in range(len(boxes)):
        for _ in range(RANDOM_BOX_TRIES):
            x0 = int(regions[index, 0]) + int(generator.integers(0, int(room_x[index]) + 1))
            y0 = int(regions[index, 1]) + int(generator.integers(0, int(room_y[index]) + 1))
            box = (x0, y0, x0 + int(widths[index]), y0 + int(heights[index]))
            if not any(_overlap(box, other[index].tolist()) for other in avoided):
                break
        else:
            raise ValueError(f"box {index}: no place for a {int(widths[index])} x {int(heights[index])} box in region "
                             f"{regions[index].tolist()} off the boxes to avoid "
                             f"{[other[index].tolist() for other in avoided]} in {RANDOM_BOX_TRIES} draws")
        drawn.append(box)
    return torch.tensor(drawn, dtype=torch.int64)


def jitter_boxes(boxes: torch.Tensor, size: int, generator: np.random.Generator, pixels: int = 2) -> torch.Tensor:
    """``boxes`` ``[N, 4]`` each shifted by a whole number of pixels in ``[-pixels, pixels]`` along x and y
    (drawn uniformly), kept inside the ``size`` × ``size`` image (a shift past the border stops at it).

    Raises:
        ValueError: bad boxes (:func:`box_masks`), or ``pixels`` not a whole number >= 0.
    """
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
        raise ValueError(f"pixels={pixels!r}: must be a whole number >= 0")
    box_masks(boxes, size)
    boxes = torch.as_tensor(np.asarray(boxes)).to(torch.int64)
    shifts = torch.from_numpy(generator.integers(-pixels, pixels + 1, (len(boxes), 2)))
    low = -boxes[:, :2]  # the most a box may move left / up
    high = size - boxes[:, 2:]  # the most it may move right / down
    shifts = torch.maximum(torch.minimum(shifts, high), low)
    return boxes + shifts.repeat(1, 2)


# --------------------------------------------------------------------------- scores over image pairs, intervals


# --------------------------------------------------------------------------- the C7 verdict


def _overlap(box: Sequence[int], other: Sequence[int]) -> bool:
    """Whether two boxes ``(x0, y0, x1, y1)`` (ends exclusive) share a pixel."""
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


@dataclass
class PartAnnotations:
    """Hand-annotated part boxes (``data/annotations/dog_parts.json``).

    Attributes:
        files, wnids, class_names: per image.
        boxes: part -> ``[N, 4]`` int64 ``(x0, y0, x1, y1)``, ends exclusive, in the ``size``-px crop.
        objects: ``[N, 4]`` the box of the whole dog, where the random control's boxes go.
        size: the side of the crop (:func:`zfcore.data.images.centre_crop`) the boxes refer to.
        meta: the file's other fields (frame, who annotated and how).
    """

    files: list[str]
    wnids: list[str]
    class_names: list[str]
    boxes: dict[str, torch.Tensor]
    objects: torch.Tensor
    size: int
    meta: dict[str, object]


def load_annotations(path: str | Path) -> PartAnnotations:
    """Read and check a part-annotation JSON file (the format of ``data/annotations/dog_parts.json``).

    Raises:
        ValueError: missing fields, a part other than :data:`PARTS`, or a box outside the crop.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: cannot be read as a part-annotation JSON file ({error})") from None
    try:
        size, images = int(data["crop_size"]), data["images"]
        boxes = {part: torch.tensor([image["boxes"][part] for image in images], dtype=torch.int64) for part in PARTS}
        objects = torch.tensor([image["object"] for image in images], dtype=torch.int64)
        files = [image["file"] for image in images]
        wnids = [image["wnid"] for image in images]
        class_names = [image["class_name"] for image in images]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a part-annotation file ({type(error).__name__}: {error}); expected crop_size and images "
                         f"with file, wnid, class_name, object and boxes for {PARTS}") from error
    for part, part_boxes in {**boxes, "object": objects}.items():
        try:
            box_masks(part_boxes, size)
        except ValueError as error:
            raise ValueError(f"{path}: {part}: {error}") from error
    meta = {key: value for key, value in data.items() if key != "images"}
    return PartAnnotations(files, wnids, class_names, boxes, objects, size, meta)


def _check_layer(model: ZFNet, layer: str) -> None:
    if layer != POOLED_LAYER:
        model.check_layer(layer)


def _features(model: ZFNet, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """layer -> ``[B, D]`` the flattened output of each layer (``"pool5"`` or a named layer's activation)."""
    steps = {(layer if layer == POOLED_LAYER else model.activation_step(layer)): layer for layer in layers}
    found: dict[str, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = model.prepare_images(images)
            for name, module in model.named_steps():
                x = module(x)
                if name in steps:
                    found[steps[name]] = x.flatten(1).float().clone()  # later in-place steps must not touch it
                    if len(found) == len(steps):
                        return {layer: found[layer] for layer in layers}
    finally:
        model.train(was_training)
    raise ValueError(f"layers={layers!r} are not all computed by this network")  # pragma: no cover - checked before


def _as_masks(masks: torch.Tensor | np.ndarray, count: int, size: int) -> torch.Tensor:
    masks = torch.as_tensor(np.asarray(masks)) if not isinstance(masks, torch.Tensor) else masks.cpu()
    if masks.dtype == torch.bool:
        if tuple(masks.shape) != (count, size, size):
            raise ValueError(f"masks have shape {tuple(masks.shape)}; expected boolean [{count}, {size}, {size}] "
                             f"(one per image) or boxes [{count}, 4]")
    elif masks.dim() == 2 and masks.shape == (count, 4):
        masks = box_masks(masks, size)
    else:
        raise ValueError(f"masks must be boolean [{count}, {size}, {size}] or whole-number boxes [{count}, 4]; "
                         f"got {_describe(masks)}")
    empty = [index for index in range(count) if not bool(masks[index].any())]
    if empty:
        raise ValueError(f"masks of images {empty} cover no pixel; a mask must cover at least one")
    return masks


def _distinct_pairs(distances: torch.Tensor) -> torch.Tensor:
    """The values above the diagonal of a symmetric ``[N, N]`` matrix: one per pair ``i < j``."""
    upper = torch.triu_indices(*distances.shape, offset=1)
    return distances[upper[0], upper[1]]


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
