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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from zfcore.data.images import centre_crop
from zfcore.models import ZFNet

__all__ = ["PAPER_TABLE1", "PARTS", "Correspondence", "PartAnnotations", "SignChange", "box_masks",
           "load_annotations", "measure", "random_boxes", "sign_change", "sign_consistency"]

PARTS = ("right eye", "left eye", "nose")
# Table 1 of the paper: occlusion location -> (layer 5, layer 7), each (mean, ±)
PAPER_TABLE1: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "right eye": ((0.067, 0.007), (0.069, 0.015)),
    "left eye": ((0.069, 0.007), (0.068, 0.013)),
    "nose": ((0.079, 0.017), (0.069, 0.011)),
    "random": ((0.107, 0.017), (0.073, 0.014)),
}
POOLED_LAYER = "pool5"


@dataclass
class SignChange:
    """Δ of one layer for one set of masks.

    Attributes:
        layer: the feature layer.
        pair_distances: ``[N, N]`` float64, the fraction of the ``features`` whose sign differs between
            ``ε_i`` and ``ε_j`` (symmetric, zero diagonal).
        features: ``D``, the length of the feature vector.
        unchanged: ``[N]`` per image, the fraction of features with ``ε = 0`` (sign 0).
    """

    layer: str
    pair_distances: torch.Tensor
    features: int
    unchanged: torch.Tensor

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
        return float(_distinct_pairs(self.pair_distances).std())


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
    signs = torch.sign(differences.detach()).to(torch.int8)
    counts = (signs[:, None, :] != signs[None, :, :]).sum(-1)
    unchanged = (signs == 0).double().mean(1)
    return SignChange(layer, counts.cpu().double() / signs.shape[1], int(signs.shape[1]), unchanged.cpu())


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
    _check_layer(model, layer)
    model.check_images(images)
    if images.shape[0] < 2:
        raise ValueError(f"images has {images.shape[0]} image(s); Δ compares pairs, so give at least 2")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not np.isfinite(fill):
        raise ValueError(f"fill={fill!r}: must be a finite number (0 is the training mean in input space)")
    masks = _as_masks(masks, images.shape[0], images.shape[-1])
    masked = images.masked_fill(masks[:, None].to(images.device), float(fill))
    both = _features(model, torch.cat([images, masked]), layer)  # one batch: the same kernels for both
    return sign_consistency(both[: len(images)] - both[len(images):], layer)


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
                 regions: torch.Tensor | None = None) -> torch.Tensor:
    """Boxes of the same widths and heights as ``boxes`` at uniformly random places inside ``regions``.

    Args:
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)``, inside a ``size`` × ``size`` image.
        size: the image side.
        generator: the random source (seed it for a repeatable control).
        regions: ``[N, 4]`` per image the box the random box must lie in (the paper: "random parts of
            the object"); default the whole image.

    Raises:
        ValueError: bad boxes or regions (:func:`box_masks`), or a box larger than its region.
    """
    box_masks(boxes, size)  # validates
    boxes = torch.as_tensor(np.asarray(boxes))
    regions = torch.tensor([[0, 0, size, size]] * len(boxes)) if regions is None else torch.as_tensor(np.asarray(regions))
    box_masks(regions, size)
    if regions.shape != boxes.shape:
        raise ValueError(f"regions have shape {tuple(regions.shape)}; expected one per box, {tuple(boxes.shape)}")
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    room_x, room_y = regions[:, 2] - regions[:, 0] - widths, regions[:, 3] - regions[:, 1] - heights
    if bool((room_x < 0).any() or (room_y < 0).any()):
        raise ValueError(f"a box is larger than its region: boxes {boxes.tolist()}, regions {regions.tolist()}")
    x0 = regions[:, 0] + torch.from_numpy(generator.integers(0, room_x.numpy() + 1))
    y0 = regions[:, 1] + torch.from_numpy(generator.integers(0, room_y.numpy() + 1))
    return torch.stack([x0, y0, x0 + widths, y0 + heights], 1)


@dataclass
class Correspondence:
    """Table 1 data: Δ per part and layer, and the random control.

    Attributes:
        parts: part -> layer -> :class:`SignChange`.
        random: layer -> one :class:`SignChange` per random draw.
        random_boxes: the boxes of each draw, ``[N, 4]`` each.
    """

    parts: dict[str, dict[str, SignChange]]
    random: dict[str, list[SignChange]]
    random_boxes: list[torch.Tensor] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Row -> layer -> (Δ, std over image pairs); ``"random"``: Δ averaged over the draws, std over all
        distinct pairs of all draws (so every row's ± is a spread over image pairs)."""
        rows = {part: {layer: (result.delta, result.pair_std) for layer, result in layers.items()}
                for part, layers in self.parts.items()}
        rows["random"] = {layer: (float(np.mean([r.delta for r in draws])), _pooled_pair_std(draws))
                          for layer, draws in self.random.items()}
        return rows

    def draw_std(self, layer: str) -> float:
        """Standard deviation of the random control's Δ over the draws."""
        return float(np.std([result.delta for result in self.random[layer]]))

    def below_random(self, part: str, layer: str) -> float:
        """The fraction of random draws whose Δ is at most ``part``'s: small means the part is more consistent."""
        delta = self.parts[part][layer].delta
        return float(np.mean([result.delta <= delta for result in self.random[layer]]))

    def markdown(self, layer5: str = POOLED_LAYER, layer7: str = "fc7") -> str:
        """Table 1, ours beside the paper's, as Markdown."""
        rows = self.summary()
        lines = ["| occlusion location | layer 5, ours | layer 5, paper | layer 7, ours | layer 7, paper |",
                 "|---|---|---|---|---|"]
        for row, ours in rows.items():
            paper5, paper7 = PAPER_TABLE1[row]
            lines.append(f"| {row} | {ours[layer5][0]:.3f} ± {ours[layer5][1]:.3f} | {paper5[0]:.3f} ± {paper5[1]:.3f}"
                         f" | {ours[layer7][0]:.3f} ± {ours[layer7][1]:.3f} | {paper7[0]:.3f} ± {paper7[1]:.3f} |")
        return "\n".join(lines)


def measure(model: ZFNet, images: torch.Tensor, part_boxes: Mapping[str, torch.Tensor], *,
            layers: Sequence[str] = (POOLED_LAYER, "fc7"), draws: int = 30, seed: int = 0,
            regions: torch.Tensor | None = None) -> Correspondence:
    """Table 1: Δ for every part and layer, and for ``draws`` random boxes of the parts' sizes.

    Draw ``k`` places one box per image with the size of that image's ``PARTS[k % 3]`` box (cycling
    through the parts' sizes), uniformly at random inside that image's ``regions`` box (default: anywhere).

    Args:
        model, images: as for :func:`sign_change`.
        part_boxes: part -> boxes ``[N, 4]`` (one per image).
        layers: the feature layers.
        draws: random draws for the control (at least 2, for a spread).
        seed: seed of the draws.
        regions: ``[N, 4]`` the box of each image the random boxes stay in (e.g. the object's).
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws={draws!r}: must be a whole number >= 2 (a mean ± std needs several draws)")
    if not part_boxes:
        raise ValueError("part_boxes is empty; give part -> boxes [N, 4], e.g. for the parts " + ", ".join(PARTS))
    size = images.shape[-1]
    parts = {part: {layer: sign_change(model, images, boxes, layer) for layer in layers}
             for part, boxes in part_boxes.items()}
    generator = np.random.default_rng(seed)
    sized = list(part_boxes.values())
    drawn = [random_boxes(sized[k % len(sized)], size, generator, regions) for k in range(draws)]
    random = {layer: [sign_change(model, images, boxes, layer) for boxes in drawn] for layer in layers}
    return Correspondence(parts, random, drawn)


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


def _features(model: ZFNet, images: torch.Tensor, layer: str) -> torch.Tensor:
    """``[B, D]`` the flattened output of ``layer`` (``"pool5"`` or a named layer's activation)."""
    step = layer if layer == POOLED_LAYER else model.activation_step(layer)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = model.prepare_images(images)
            for name, module in model.named_steps():
                x = module(x)
                if name == step:
                    return x.flatten(1).float()
    finally:
        model.train(was_training)
    raise ValueError(f"layer={layer!r} is not computed by this network")  # pragma: no cover - checked before


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


def _pooled_pair_std(results: Sequence[SignChange]) -> float:
    return float(torch.cat([_distinct_pairs(result.pair_distances) for result in results]).std())


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
