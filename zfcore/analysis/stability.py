"""How far features move and whether the output holds under small transformations: C3 and C4 (Zeiler & Fergus
2014, §4, Fig. 5).

§4: "Small transformations have a dramatic effect in the first layer of the model, but a lesser impact at the top
feature layer, being quasi-linear for translation & scaling. The network output is stable to translations and
scalings. In general, the output is not invariant to rotation, except for object with rotational symmetry". The
sweeps are :mod:`zfcore.analysis.invariance`; here they are scored:

* **Quasi-linear?** (:func:`saturation_fits`): per image, a line through the origin against a saturating √x
  curve, and the half-range-to-maximum ratio (a line gives :data:`LINE_RATIO`, √x :data:`SQRT_RATIO`).
* **Stable?** (:func:`retention`): the mean p(true) of the transformed views over the originals'.
* **Rotational symmetry** (:func:`rotation_self_similarity`, :func:`matched_retention_difference`): images
  picked by how much they look like themselves when turned, compared within strata of starting confidence.
* **Examples** (:func:`pick_examples`): images the network gets right and confidently, by a rule.
* **Verdicts.** :func:`c3_verdict` and :func:`c4_verdict` turn the sweeps into the book's records
  (:class:`~zfcore.verdicts.Verdict`), with the thresholds below as constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from zfcore.analysis.invariance import InvarianceSweep, transformation_sizes, transformed_views
from zfcore.checks import check_pixels, check_whole
from zfcore.stats import Estimate, bootstrap, paired_difference
from zfcore.verdicts import Verdict

__all__ = ["FIRST_LAYER", "LINEAR_RATIO_LIMIT", "LINE_RATIO", "SELF_SIMILAR_SHARE", "SETTLE_INCONCLUSIVE", "SQRT_RATIO",
           "STABLE_RETENTION", "STRATA", "TOP_LAYER", "SaturationFits", "c3_verdict", "c4_verdict", "matched_retention_difference", "pick_examples", "retention",
           "rotation_self_similarity", "saturation_fits"]

FIRST_LAYER, TOP_LAYER = "conv1", "fc7"
"""Fig. 5's layers 1 and 7."""
SETTLE_INCONCLUSIVE = ("more images, or the paper's 224-px network, for the parts whose interval spans the rule's "
                       "boundary")
"""What would settle an inconclusive C3 or C4."""
LINE_RATIO, SQRT_RATIO = 0.5, 2**-0.5
"""The half-range-to-maximum ratio of a distance that grows as a line through the origin (0.5) and as √x (0.71)."""
LINEAR_RATIO_LIMIT = 0.6
"""C3's rule: fc7's distance is quasi-linear in a transformation if the 95 % interval of its mean half-range
ratio lies below 0.6 (between a line's 0.5 and √x's 0.71), saturating if the interval lies above."""
STABLE_RETENTION = 0.75
"""C4's rule: the output is stable to a transformation if the views keep at least 75 % of the originals' p(true)
(the interval of the ratio of means lies above 0.75); not stable if the interval lies below."""
SELF_SIMILAR_SHARE = 1 / 3
"""C4's rule for "objects with rotational symmetry": the third of the images most like themselves when turned
(:func:`rotation_self_similarity`) against the third least like themselves."""
STRATA = 4
"""C4's rule: rotation retention is compared within quartiles of the originals' p(true), so that the groups are
matched on starting confidence."""


@dataclass
class SaturationFits:
    """Per image, how a layer's distance grows with the size of a transformation (§4's "quasi-linear").

    Attributes:
        half_range_ratio: ``[N]`` the distance at half the largest size over the distance at the largest size:
            :data:`LINE_RATIO` (0.5) for a line through the origin, :data:`SQRT_RATIO` (0.71) for √x, near 1
            for a distance that jumps at once and stays.
        line_r2, sqrt_r2: ``[N]`` R² of the least-squares fits ``a + b x`` and ``a + b √x`` (two parameters each).
        sqrt_better: ``[N]`` whether the √ fit leaves the smaller squared error.
        sizes: ``[U]`` the different sizes, ascending; profile: ``[N, U]`` the mean distance at each over the
            distance at the largest (the curve the ratio is read from).
    """

    half_range_ratio: torch.Tensor
    line_r2: torch.Tensor
    sqrt_r2: torch.Tensor
    sqrt_better: torch.Tensor
    sizes: torch.Tensor
    profile: torch.Tensor


def _fit_r2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per row of ``y`` ``[N, A]``, R² of the least-squares line ``a + b x`` (``x`` ``[A]``)."""
    x_centred, y_centred = x - x.mean(), y - y.mean(1, keepdim=True)
    covariance = (x_centred * y_centred).sum(1)
    return covariance**2 / ((x_centred**2).sum() * (y_centred**2).sum(1))


def saturation_fits(sizes: torch.Tensor | Sequence[float], distances: torch.Tensor) -> SaturationFits:
    """Linear against saturating: per image, the half-range ratio and the R² of a line and of a √ curve.

    R² of a line alone is no test of linearity (a √x curve also gets R² ≈ 0.9); the half-range ratio and the
    comparison of two fits with the same number of parameters are.

    Args:
        sizes: ``[A]`` how far each view is from the original, >= 0 (``sweep.amounts.abs()`` for a shift,
            ``sweep.amounts - 1`` for a factor); the untransformed view, if among them, has size 0. Equal
            sizes (a shift up and down) are averaged for the half-range ratio.
        distances: ``[N, A]`` distances.

    Returns:
        :class:`SaturationFits` (NaN ratios and R² for an image whose distances do not vary).

    Raises:
        ValueError: a shape mismatch, negative or non-finite sizes, or fewer than 3 different sizes.
    """
    x = torch.as_tensor(np.asarray(sizes, dtype=np.float64)).reshape(-1)
    y = distances.double()
    if y.dim() != 2 or y.shape[1] != len(x):
        raise ValueError(f"distances have shape {tuple(distances.shape)}; expected [N, {len(x)}]")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()) or len(x.unique()) < 3:
        raise ValueError(f"sizes={x.tolist()}: need at least 3 different finite sizes >= 0")
    unique = x.unique()
    means = torch.stack([y[:, x == size].mean(1) for size in unique], 1)  # [N, U]
    half = float(unique.max()) / 2
    upper = int(torch.searchsorted(unique, torch.tensor(half, dtype=torch.float64)))
    lower = upper - 1
    weight = (half - float(unique[lower])) / float(unique[upper] - unique[lower])
    at_half = means[:, lower] + weight * (means[:, upper] - means[:, lower])
    ratio = at_half / means[:, -1]
    line_r2, sqrt_r2 = _fit_r2(x, y), _fit_r2(x.sqrt(), y)
    return SaturationFits(ratio.float(), line_r2.float(), sqrt_r2.float(), sqrt_r2 > line_r2, unique.float(),
                          (means / means[:, -1:]).float())


def rotation_self_similarity(pixels: np.ndarray | torch.Tensor, angles: torch.Tensor | Sequence[float],
                             window: int | None = None) -> torch.Tensor:
    """Per image, how much it looks like itself when turned: the mean over ``angles`` of the correlation of its
    grey levels with those of the turned view, inside the central disc (which a turn keeps inside the view).

    1 for a pattern that every turn leaves as it is (a disc, rings), about 0 for a texture or an object that
    a turn moves elsewhere; a rule-based stand-in for "objects with rotational symmetry" (§4).

    Args:
        pixels: uint8 ``[N, H, W, 3]`` sources.
        angles: ``[A]`` angles in degrees (Fig. 5's: 10 ... 350).
        window: the side of the view in source pixels (default: the smaller side).

    Raises:
        ValueError: not uint8 pixels, no angles, or a bad window.
    """
    check_pixels("pixels", pixels)
    source = torch.as_tensor(np.asarray(pixels)) if not isinstance(pixels, torch.Tensor) else pixels
    window = check_whole("window", min(source.shape[1:3]) if window is None else window, 2, min(source.shape[1:3]))
    angles = torch.as_tensor(np.asarray(angles, dtype=np.float64)).reshape(-1)
    if not len(angles):
        raise ValueError("angles=[]: give at least one angle in degrees")
    grey = transformed_views(source, "rotate", torch.cat([torch.zeros(1, dtype=torch.float64), angles]), window,
                             window).mean(-1)  # [N, 1 + A, S, S]
    centre = (torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2
    disc = (centre[:, None] + centre[None, :]) <= (window / 2) ** 2
    values = grey[:, :, disc].double()
    values = values - values.mean(2, keepdim=True)
    norms = values.norm(dim=2).clamp_min(1e-12)
    correlation = (values[:, 1:] * values[:, :1]).sum(2) / (norms[:, 1:] * norms[:, :1])
    return correlation.mean(1).float()


def _ratio_of_means(numerator: torch.Tensor, denominator: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A bootstrap statistic over image indices: sum of ``numerator`` over sum of ``denominator``."""
    def statistic(indices: torch.Tensor) -> torch.Tensor:
        chosen = indices.long()
        return numerator[chosen].sum(-1) / denominator[chosen].sum(-1)
    return statistic


def retention(original: torch.Tensor, views: torch.Tensor, *, seed: int = 0) -> Estimate:
    """How much of p(true) the views keep: mean p(true) of the views over mean p(true) of the originals, with a
    bootstrap interval over images (a ratio of means: per-image ratios blow up for images already wrong).

    Args:
        original: ``[N]`` p(true) of the untransformed views; ``views``: ``[N, A]`` (or ``[N]``) of the views.
        seed: the bootstrap's seed.

    Raises:
        ValueError: fewer than 2 images, mismatched lengths, or originals that sum to 0.
    """
    original = original.double().reshape(-1)
    kept = views.double().reshape(len(views), -1).mean(1)
    if len(kept) != len(original) or len(original) < 2:
        raise ValueError(f"{len(original)} originals and {len(kept)} view rows: need the same number, at least 2")
    if float(original.sum()) <= 0:
        raise ValueError("the originals' p(true) sum to 0: retention is undefined")
    return bootstrap(torch.arange(len(original), dtype=torch.float64), _ratio_of_means(kept, original), seed=seed)


def matched_retention_difference(original: torch.Tensor, views: torch.Tensor, group: torch.Tensor | np.ndarray, *,
                                 strata: int = STRATA, absolute: bool = False, seed: int = 0) -> Estimate:
    """Retention of group A minus group B, matched on starting confidence: within quantile bins of the
    originals' p(true), the difference of the groups' :func:`retention` (or, with ``absolute``, of their mean
    drops of p(true)), averaged with the bins' image counts as weights; bootstrap interval over images.

    Args:
        original: ``[N]`` p(true) of the originals; ``views``: ``[N, A]`` p(true) of the views.
        group: ``[N]`` 1 for group A, 0 for group B, -1 for images in neither.
        strata: the number of bins (quantiles of the originals' p(true) over both groups).
        absolute: compare mean drops (original minus views' mean) instead of retentions.
        seed: the bootstrap's seed.

    Raises:
        ValueError: mismatched lengths, a group value other than -1, 0, 1, fewer than 2 images in a group,
            or fewer than 1 stratum.
    """
    group = torch.as_tensor(np.asarray(group)).long().reshape(-1)
    strata = check_whole("strata", strata, 1)
    if len(group) != len(original) or len(views) != len(original):
        raise ValueError(f"{len(original)} originals, {len(views)} view rows, {len(group)} group labels: need the same")
    if not bool(torch.isin(group, torch.tensor([-1, 0, 1])).all()):
        raise ValueError(f"group values {sorted(set(group.tolist()))}: valid values are -1 (neither), 0 (B), 1 (A)")
    used = group >= 0
    if int((group == 1).sum()) < 2 or int((group == 0).sum()) < 2:
        raise ValueError(f"{int((group == 1).sum())} images in group A and {int((group == 0).sum())} in B: need 2 each")
    start = original.double()[used]
    kept = views.double().reshape(len(views), -1).mean(1)[used]
    in_a = (group[used] == 1).double()
    edges = torch.quantile(start, torch.linspace(0, 1, strata + 1, dtype=torch.float64)[1:-1])
    stratum = torch.bucketize(start, edges)
    one_hot = torch.nn.functional.one_hot(stratum, strata).double()  # [n, K]

    def statistic(indices: torch.Tensor) -> torch.Tensor:
        chosen = indices.long()
        bins, a = one_hot[chosen], in_a[chosen][..., None]
        result = []
        for members in (a, 1 - a):
            weights = bins * members
            if absolute:
                value = ((weights * (start[chosen] - kept[chosen])[..., None]).sum(-2)
                         / weights.sum(-2).clamp_min(1e-12))
            else:
                value = ((weights * kept[chosen][..., None]).sum(-2)
                         / (weights * start[chosen][..., None]).sum(-2).clamp_min(1e-12))
            result.append(value)
        both = ((bins * a).sum(-2) > 0) & ((bins * (1 - a)).sum(-2) > 0)
        counts = bins.sum(-2) * both
        return ((result[0] - result[1]) * counts).sum(-1) / counts.sum(-1).clamp_min(1e-12)

    return bootstrap(torch.arange(len(start), dtype=torch.float64), statistic, seed=seed)


def pick_examples(true_probability: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor,
                  class_names: Sequence[str], *, preferred: Sequence[str] = (),
                  self_similarity: torch.Tensor | None = None, count: int = 5, minimum: float = 0.5) -> list[int]:
    """Fig. 5's examples by a rule fixed before looking: images the network classifies correctly with p(true) >=
    ``minimum``; first those of the ``preferred`` classes (the paper's), then the one most like itself when
    turned (``self_similarity``: a rotation-symmetric example), then the most confident, up to ``count``.

    Args:
        true_probability, predicted, labels: ``[N]`` each, of the untransformed images.
        class_names: the network's class names (for ``preferred``).
        preferred: class names to take first, in this order, where they qualify.
        self_similarity: ``[N]`` :func:`rotation_self_similarity`, or ``None`` to skip that pick.
        count: how many examples at most; ``minimum``: the p(true) they need.

    Returns:
        Indices into the ``N`` images (fewer than ``count`` where fewer qualify).

    Raises:
        ValueError: mismatched lengths, or a bad count.
    """
    count = check_whole("count", count, 1)
    if not len(true_probability) == len(predicted) == len(labels):
        raise ValueError(f"{len(true_probability)} p(true), {len(predicted)} predictions, {len(labels)} labels: "
                         "need one of each per image")
    if self_similarity is not None and len(self_similarity) != len(labels):
        raise ValueError(f"{len(self_similarity)} self-similarities for {len(labels)} images")
    qualifies = (predicted == labels) & (true_probability >= minimum)
    picks = [index for name in preferred if name in class_names
             for index in torch.nonzero(qualifies & (labels == class_names.index(name))).flatten().tolist()[:1]]
    candidates = torch.nonzero(qualifies).flatten()
    if self_similarity is not None and len(candidates):
        most_similar = int(candidates[self_similarity[candidates].argmax()])
        picks += [most_similar] if most_similar not in picks else []
    by_confidence = candidates[true_probability[candidates].argsort(descending=True)].tolist()
    picks += [index for index in by_confidence if index not in picks]
    return picks[:count]


def _smallest(sweep: InvarianceSweep) -> torch.Tensor:
    """The columns of ``sweep``'s smallest transformation (the smallest size above 0)."""
    sizes = transformation_sizes(sweep)
    moved = sizes[sizes > 0]
    if not len(moved):
        raise ValueError(f"the {sweep.kind} sweep has no transformed view (amounts {sweep.amounts.tolist()})")
    return sizes == moved.min()


def _decide(estimate: Estimate, limit: float, above_holds: bool) -> bool | None:
    """``True``/``False`` where the interval lies wholly on one side of ``limit``; ``None`` where it spans it."""
    if estimate.low > limit:
        return above_holds
    if estimate.high < limit:
        return not above_holds
    return None


def _outcome(parts: dict[str, bool | None]) -> str:
    """agree (every part holds), differ (every part fails), partly (some hold, some fail), else inconclusive."""
    held = [name for name, value in parts.items() if value is True]
    failed = [name for name, value in parts.items() if value is False]
    if len(held) == len(parts):
        return "agree"
    if len(failed) == len(parts):
        return "differ"
    return "partly" if held and failed else "inconclusive"


def _listed(parts: dict[str, bool | None]) -> str:
    """``"holds: a, b; fails: c; undecided: d"`` (empty groups left out)."""
    groups = (("holds", True), ("fails", False), ("undecided", None))
    return "; ".join(f"{word}: {', '.join(name for name, value in parts.items() if value is wanted)}"
                     for word, wanted in groups if any(value is wanted for value in parts.values()))


def _record(estimate: Estimate) -> dict[str, float | int]:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high, "n": estimate.n}


def _c3_measures(sweep: InvarianceSweep, typical: dict[str, float]) -> tuple[Estimate, Estimate, SaturationFits]:
    """(layer 1 minus layer 7 after the smallest transformation, in typical distances; fc7's half-range ratio;
    fc7's fits) of one sweep."""
    columns = _smallest(sweep)
    first = sweep.distances[FIRST_LAYER][:, columns].mean(1) / typical[FIRST_LAYER]
    top = sweep.distances[TOP_LAYER][:, columns].mean(1) / typical[TOP_LAYER]
    fits = saturation_fits(transformation_sizes(sweep), sweep.distances[TOP_LAYER])
    return paired_difference(first, top), bootstrap(fits.half_range_ratio), fits


def c3_verdict(translate: InvarianceSweep, scale: InvarianceSweep, typical: dict[str, float],
               control_translate: InvarianceSweep, control_scale: InvarianceSweep,
               control_typical: dict[str, float]) -> Verdict:
    """C3 (§4, Fig. 5): layer 1 moves more than layer 7 under a small transformation, and layer 7's distance is
    quasi-linear in shift and scale.

    Rule (fixed before the numbers): for the vertical shift and the scale, (a) *layer 1 moves more*: the per-image
    paired difference conv1 - fc7 of the distances after the smallest transformation, each divided by its layer's
    typical distance between different images, has a 95 % interval above 0 (below 0: fails); (b) *quasi-linear*:
    the 95 % interval of fc7's mean half-range ratio (:func:`saturation_fits`) lies below
    :data:`LINEAR_RATIO_LIMIT` (above it: saturating, fails). An interval that spans its boundary leaves its part
    undecided. agree: all four parts hold; differ: all fail; partly: some hold and some fail; else inconclusive.

    Args:
        translate, scale: the trained network's sweeps (layers conv1 and fc7; the shift's amounts include 0 and
            the scale's 1, so that the fits see the origin).
        typical: :func:`typical_distances` of the trained network.
        control_translate, control_scale, control_typical: the same for a random-weights network of the same
            architecture (the control: what the architecture alone gives).

    Raises:
        ValueError: a sweep without conv1 and fc7, or without a transformed view.
    """
    for sweep in (translate, scale, control_translate, control_scale):
        missing = [layer for layer in (FIRST_LAYER, TOP_LAYER) if layer not in sweep.distances]
        if missing:
            raise ValueError(f"the {sweep.kind} sweep lacks {missing}; C3 compares {FIRST_LAYER} and {TOP_LAYER}")
    measured = {"shift": _c3_measures(translate, typical), "scale": _c3_measures(scale, typical)}
    control = {"shift": _c3_measures(control_translate, control_typical),
               "scale": _c3_measures(control_scale, control_typical)}
    parts: dict[str, bool | None] = {}
    for kind, (gap, ratio, _) in measured.items():
        parts[f"layer 1 moves more ({kind})"] = _decide(gap, 0.0, above_holds=True)
        parts[f"quasi-linear ({kind})"] = _decide(ratio, LINEAR_RATIO_LIMIT, above_holds=False)
    outcome = _outcome(parts)
    details = {}
    for arm, values in (("trained", measured), ("random weights", control)):
        for kind, (gap, ratio, fits) in values.items():
            details[f"{arm}, {kind}: conv1 - fc7 after the smallest, in typical distances"] = _record(gap)
            details[f"{arm}, {kind}: fc7 half-range ratio"] = _record(ratio)
            details[f"{arm}, {kind}: share of images where a √ fit beats a line"] = float(
                fits.sqrt_better.double().mean())
            details[f"{arm}, {kind}: median R² of a line"] = float(fits.line_r2.nanmedian())
    shift_ratio, scale_ratio = measured["shift"][1], measured["scale"][1]
    reason = (f"{_listed(parts)}: fc7's distance reaches {shift_ratio.value:.2f} (shift) and {scale_ratio.value:.2f} "
              f"(scale) of its largest at half the range, where a line gives {LINE_RATIO} and √x {SQRT_RATIO:.2f}; "
              f"a random-weights network gives {control['shift'][1].value:.2f} and {control['scale'][1].value:.2f}.")
    settle = SETTLE_INCONCLUSIVE if outcome == "inconclusive" else ""
    return Verdict(
        claim="C3",
        measure=("the half-range ratio: per image, a layer's distance to the original at half the largest "
                 "transformation over its distance at the largest (a line through the origin gives 0.5, √x 0.71, a "
                 "jump that stays 1; the chapter's table gives the scale's ratio and layer 1 vs layer 7); here fc7 "
                 "under vertical shift"),
        estimate=shift_ratio,
        control=("a random-weights network of the same architecture (He initialisation): fc7's half-range ratio "
                 "under vertical shift"),
        control_estimate=control["shift"][1],
        rule=(f"for shift and scale each: layer 1 moves more if the interval of the paired difference conv1 − fc7 "
              f"(each over its typical distance) after the smallest transformation lies above 0; quasi-linear if "
              f"the interval of fc7's half-range ratio lies below LINEAR_RATIO_LIMIT = {LINEAR_RATIO_LIMIT}. "
              f"agree: all four hold; differ: all fail; partly: some hold, some fail; else inconclusive"),
        outcome=outcome, reason=reason, settle=settle, details=details, digits=2)


def c4_verdict(shift_real: InvarianceSweep, shift_mirrored: InvarianceSweep, zoom_real: InvarianceSweep,
               zoom_small: InvarianceSweep, blur: InvarianceSweep, rotation: InvarianceSweep,
               self_similarity: torch.Tensor, full_detail_factor: float | None = None) -> Verdict:
    """C4 (§4, Fig. 5): the output is stable to shifts and zooms, not to rotation, except for rotation-symmetric
    objects.

    Rule (fixed before the numbers): *stable to shifts* and *stable to zooms*: the 95 % interval of
    :func:`retention` over all shifts (of sources with real context) and over all zooms (of larger sources)
    lies above :data:`STABLE_RETENTION` (below it: fails); *not invariant to rotation*: the interval of the
    retention over all angles lies below it (above: fails); *except symmetric objects*: the third of the images
    most like themselves when turned keep more of p(true) than the least-like third, matched on starting
    confidence (:func:`matched_retention_difference`, :data:`STRATA` bins), interval above 0 (below 0:
    fails). An interval that spans its boundary leaves its part undecided. agree: all four hold; differ: all
    fail; partly: some hold and some fail; else inconclusive.

    Args:
        shift_real: vertical shifts of sources larger than the view (real pixels where the view moves);
            ``shift_mirrored``: the same views' shifts from the view alone (mirrored beyond its border).
        zoom_real: ``"zoom"`` of larger sources (:func:`resampled_sweep`); ``zoom_small``: ``"scale"`` of the
            same images' 64-px views (:func:`transform_sweep`); ``blur``: the blur-only control of those views.
            All three on the same images, with the same factors.
        rotation: rotations of other images; ``self_similarity``: their :func:`rotation_self_similarity`.
        full_detail_factor: the largest zoom up to which (nearly) all larger sources keep full detail; the
            details then add the three zoom arms' retention over the zooms up to it (``None``: not added).

    Raises:
        ValueError: sweeps of different images where they must be paired, or a self-similarity per image missing.
    """
    if not len(shift_real.labels) == len(shift_mirrored.labels):
        raise ValueError(f"{len(shift_real.labels)} and {len(shift_mirrored.labels)} images in the two shift sweeps; "
                         "they must be the same images")
    if not len(zoom_real.labels) == len(zoom_small.labels) == len(blur.labels):
        raise ValueError(f"{len(zoom_real.labels)}, {len(zoom_small.labels)}, {len(blur.labels)} images in the zoom, "
                         "small-zoom and blur sweeps; they must be the same images")
    if len(self_similarity) != len(rotation.labels):
        raise ValueError(f"{len(self_similarity)} self-similarities for {len(rotation.labels)} rotated images")

    def kept(sweep: InvarianceSweep) -> Estimate:
        return retention(sweep.original_probability, sweep.true_probability[:, transformation_sizes(sweep) > 0])

    shift, mirrored, zoom, small, blurred, turned = (kept(sweep) for sweep in (shift_real, shift_mirrored, zoom_real,
                                                                             zoom_small, blur, rotation))
    order = self_similarity.double().argsort(descending=True)
    third = max(2, round(len(order) * SELF_SIMILAR_SHARE))
    group = torch.full((len(order),), -1, dtype=torch.long)
    group[order[:third]], group[order[-third:]] = 1, 0
    views = rotation.true_probability[:, transformation_sizes(rotation) > 0]
    symmetric = matched_retention_difference(rotation.original_probability, views, group)
    symmetric_drop = matched_retention_difference(rotation.original_probability, views, group, absolute=True)
    parts = {"stable to shifts": _decide(shift, STABLE_RETENTION, above_holds=True),
             "stable to zooms": _decide(zoom, STABLE_RETENTION, above_holds=True),
             "not invariant to rotation": _decide(turned, STABLE_RETENTION, above_holds=False),
             "except symmetric objects": _decide(symmetric, 0.0, above_holds=True)}
    outcome = _outcome(parts)
    largest = transformation_sizes(shift_real) == transformation_sizes(shift_real).max()
    details = {
        "retention, shifts with real context": _record(shift), "retention, shifts mirrored": _record(mirrored),
        "p(true) at the largest shifts, real minus mirrored": _record(paired_difference(
            shift_real.true_probability[:, largest].mean(1), shift_mirrored.true_probability[:, largest].mean(1))),
        "retention, zooms of larger sources": _record(zoom), "retention, zooms of the 64-px views": _record(small),
        "retention, blur only": _record(blurred),
        "p(true) over the zooms, 64-px zoom minus blur only": _record(paired_difference(
            zoom_small.true_probability[:, transformation_sizes(zoom_small) > 0].mean(1),
            blur.true_probability[:, transformation_sizes(blur) > 0].mean(1))),
        "retention, rotations": _record(turned),
        "rotation retention, self-similar third minus least-similar third, matched": _record(symmetric),
        "rotation drop of p(true), self-similar third minus least-similar third, matched": _record(symmetric_drop),
    }
    if full_detail_factor is not None:
        for name, sweep in (("zooms of larger sources", zoom_real), ("zooms of the 64-px views", zoom_small),
                            ("blur only", blur)):
            sizes = transformation_sizes(sweep)
            within = (sizes > 0) & (sweep.amounts <= full_detail_factor + 1e-6)
            details[f"retention, {name}, up to ×{full_detail_factor:g}"] = _record(
                retention(sweep.original_probability, sweep.true_probability[:, within]))
    reason = (f"{_listed(parts)}: larger sources keep {100 * zoom.value:.0f} % of p(true) over the zooms, the blur "
              f"alone {100 * blurred.value:.0f} % and the 64-px zoom {100 * small.value:.0f} %; shifts keep "
              f"{100 * shift.value:.0f} % (mirrored {100 * mirrored.value:.0f} %), rotations "
              f"{100 * turned.value:.0f} %, "
              f"and self-similar images keep {100 * symmetric.value:+.0f} points more.")
    settle = SETTLE_INCONCLUSIVE if outcome == "inconclusive" else ""
    return Verdict(
        claim="C4",
        measure=("retention: the mean p(true) of the transformed views over the originals' mean (the chapter's "
                 "table gives shifts, rotations and the self-similar images' advantage); here zooms ×1.1 … ×1.8 of "
                 "sources larger than the view, which keep the detail the source has"),
        estimate=zoom,
        control=("blur only: the same 64-px views resampled to each zoomed crop's size and back, without zooming "
                 "(what a zoom of a 64-px image loses in detail alone)"),
        control_estimate=blurred,
        rule=(f"stable to shifts / zooms if the interval of the retention lies above STABLE_RETENTION = "
              f"{STABLE_RETENTION}; not invariant to rotation if it lies below; except symmetric objects if the "
              f"third of the images most like themselves when turned (SELF_SIMILAR_SHARE) keep more than the least "
              f"like third, matched within STRATA = {STRATA} bins of starting p(true), interval above 0. agree: "
              f"all four hold; differ: all fail; partly: some hold, some fail; else inconclusive"),
        outcome=outcome, reason=reason, settle=settle, details=details, scale=100, digits=1, unit=" %")
