"""Does the network localise the object? C6 over many images (Zeiler & Fergus 2014, §4.2, Fig. 7).

The paper: "the probability of the correct class drops significantly when the object is occluded". Measured here
on the occlusion maps of many images (:func:`zfcore.analysis.occlusion.occlusion_maps_many`) and their object boxes:

* :func:`c6_measurements`: the maps, each occluder position's overlap with the box (:func:`occluder_overlap`),
  and the whole box filled against an area-matched background rectangle (:func:`background_boxes`);
* :func:`overlap_grades` and :func:`position_matched_difference`: the relative drop of p(true) by how much of
  the square lies on the object, compared at the same position across images;
* :func:`fill_drops`, :func:`c6_table` and :func:`c6_verdict`: the area-matched fill control, the table, the rule;
* :func:`fig7_examples` and :func:`correct_spread`: which images Fig. 7 shows and which the measurement uses, by
  rules fixed before looking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zfcore.analysis.occlusion import OcclusionMaps, box_masks, fill_and_classify, occlusion_maps
from zfcore.checks import check_boxes, check_labels, check_positive
from zfcore.deconv import project
from zfcore.devices import model_device
from zfcore.models import ZFNet
from zfcore.stats import Estimate, bootstrap, paired_difference
from zfcore.verdicts import Verdict

__all__ = ["CONFIDENT", "CONTROL_SHARE", "FILL_MATERIAL", "FILL_MAX_OVERLAP", "INSIDE_OVERLAP", "OVERLAP_GRADES",
           "SQUARE_MATERIAL", "C6Measurements", "Fig7Examples", "OverlapGrade", "another_images_box",
           "background_boxes", "c6_measurements", "c6_table", "c6_verdict", "confident_examples", "correct_spread",
           "fig7_examples", "fill_drops", "occluder_overlap", "overlap_grades", "position_matched_difference"]

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
        maps: many-image maps (:func:`~zfcore.analysis.occlusion.occlusion_maps_many`).
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


@dataclass(frozen=True)
class Fig7Examples:
    """Fig. 7's examples (:func:`fig7_examples`).

    Attributes:
        picked: ``[k]`` int64 indices into the candidates, the most confident first.
        maps: each picked image's occlusion maps (:func:`~zfcore.analysis.occlusion.occlusion_maps`, the default
            occluder).
        projections: each picked image's ``[3, S, S]`` deconvnet projection of its strongest conv5 feature map at
            its strongest position (Fig. 7 (c)).
        candidates, correct, confident: how many candidates there were, how many were classified correctly, and
            how many of those with p(true) of at least ``minimum``.
        minimum: the least p(true) an example needs.
    """

    picked: torch.Tensor
    maps: list[OcclusionMaps]
    projections: list[torch.Tensor]
    candidates: int
    correct: int
    confident: int
    minimum: float

    def summary(self, titles: list[str]) -> str:
        """One line per example (its title, unoccluded p(true), strongest conv5 map), then the counts."""
        lines = [f"{titles[index]}: unoccluded p(true) = {float(maps.unoccluded_probability):.2f}; strongest conv5 "
                 f"map {int(maps.feature_map)}" for index, maps in zip(self.picked.tolist(), self.maps)]
        return "\n".join(lines + [f"{self.correct} of {self.candidates} candidates correct, {self.confident} of them "
                                  f"with p(true) >= {self.minimum}"])


def fig7_examples(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray, *, count: int = 3,
                  minimum: float = CONFIDENT, mean_image: torch.Tensor | None = None) -> Fig7Examples:
    """Fig. 7's examples among candidate images: the ``count`` most confident correct ones
    (:func:`confident_examples`), each with its occlusion maps and the deconvnet projection of its strongest conv5
    feature map (Zeiler & Fergus 2014, Fig. 7 (a)-(e)).

    Args:
        model: the network; images: ``[N, 3, S, S]`` network inputs of the candidates; labels: ``[N]`` classes.
        count, minimum: as for :func:`confident_examples`.
        mean_image: as for :func:`~zfcore.analysis.occlusion.occlusion_maps`.

    Raises:
        ValueError: as :func:`~zfcore.analysis.occlusion.fill_and_classify` and :func:`confident_examples`.
    """
    true_probability, predicted = fill_and_classify(model, images, labels, mean_image=mean_image)
    labels = torch.as_tensor(labels)
    picked = confident_examples(true_probability, predicted, labels, count, minimum)
    device = model_device(model)
    maps = [occlusion_maps(model, images[index].to(device), int(labels[index]), mean_image=mean_image)
            for index in picked.tolist()]
    projections = [project(model, images[index : index + 1].to(device), "conv5", int(image_maps.feature_map))[0]
                   for index, image_maps in zip(picked.tolist(), maps)]
    correct = predicted == labels
    return Fig7Examples(picked, maps, projections, len(labels), int(correct.sum()),
                        int((correct & (true_probability >= minimum)).sum()), minimum)


def correct_spread(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | np.ndarray, count: int, *,
                   mean_image: torch.Tensor | None = None) -> tuple[np.ndarray, int]:
    """The images C6 is measured on: up to ``count`` of the correctly classified ``images``, spread evenly over
    them (in the given order, so over the classes where the candidates are spread over the classes).

    Returns:
        ``(picked, correct)``: int64 indices into ``images``, and how many were classified correctly.

    Raises:
        ValueError: a bad ``count``; as :func:`~zfcore.analysis.occlusion.fill_and_classify`.
    """
    check_positive("count", count)
    _, predicted = fill_and_classify(model, images, labels, mean_image=mean_image)
    correct = np.flatnonzero((predicted == torch.as_tensor(labels)).numpy())
    return correct[np.linspace(0, len(correct) - 1, min(count, len(correct))).round().astype(int)], len(correct)


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
            ``[N]``; ``boxes``: ``[N, 4]`` whole pixels, corners inclusive; ``maps``: :func:`~zfcore.analysis.occlusion.occlusion_maps_many`
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
