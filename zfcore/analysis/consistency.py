"""How consistently masking a part changes the features of different images: Table 1 and C7 (Zeiler & Fergus 2014,
§4.3, Fig. 8).

The per-image changes and their sign patterns are :mod:`zfcore.analysis.correspondence`. Here they are scored over
image pairs:

* :func:`score`: a measure of :data:`METRICS` (the paper's Δ, its two parts, the cosine of the changes) over the
  distinct image pairs, with a bootstrap over images;
* :func:`gap`: a part's relative gap to the random control, (random − part) / random;
* :func:`subset_scores`: Δ on random 5-image subsets, a spread comparable to the paper's;
* :class:`Correspondence` and :func:`measure`: Table 1's data for one network and a set of annotated images (the
  parts, random boxes kept off them, jittered part boxes);
* :func:`c7_verdict`: the rule, with :data:`MIN_RELATIVE_GAP`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from zfcore.analysis.correspondence import (PAPER_TABLE1, PARTS, POOLED_LAYER, SignChange, jitter_boxes, random_boxes,
                                           sign_changes)
from zfcore.models import ZFNet
from zfcore.stats import Estimate, bootstrap
from zfcore.verdicts import Verdict

__all__ = ["METRICS", "MIN_IMAGES_FOR_INTERVAL", "MIN_RELATIVE_GAP", "Correspondence", "c7_verdict", "gap", "measure",
           "score", "subset_scores"]

METRICS = ("delta", "changed in one", "opposite in both", "cosine")
"""How alike two images' changes ``ε`` are, over their image pairs: ``"delta"`` the paper's Δ (fraction of features
whose sign differs); its two parts, ``"changed in one"`` (fraction of features that change in one image only:
*which* units change) and ``"opposite in both"`` (among the features that change in both, the fraction with
opposite signs: the *direction*); ``"cosine"`` the cosine of ``ε_i`` and ``ε_j``."""
MIN_RELATIVE_GAP = 0.10
"""C7's rule: a part whose relative Δ gap ``(Δ_random − Δ_part) / Δ_random`` is surely below 10 % shows no
correspondence of the paper's size (its Table 1: 37 %, 36 % and 26 % for the right eye, left eye and nose)."""
MIN_IMAGES_FOR_INTERVAL = 10
"""The fewest images :func:`score` and :func:`gap` bootstrap: a resample of N images is a single image repeated, with
no pair to score, with chance N^(1 − N) (5 images: 1 in 625; 10: 1 in 10⁹)."""
_COMPONENTS = ("pair_distances", "changed_in_one", "changed_in_both", "opposite_in_both", "cosine")


@dataclass
class Correspondence:
    """Table 1 data: Δ per part and layer, the random control, and the parts with jittered boxes.

    Attributes:
        parts: part -> layer -> :class:`SignChange`.
        random: layer -> one :class:`SignChange` per random draw.
        random_boxes: the boxes of each draw, ``[N, 4]`` each.
        jittered: per jitter draw, part -> layer -> :class:`SignChange` with every box shifted by a few pixels.
    """

    parts: dict[str, dict[str, SignChange]]
    random: dict[str, list[SignChange]]
    random_boxes: list[torch.Tensor] = field(default_factory=list)
    jittered: list[dict[str, dict[str, SignChange]]] = field(default_factory=list)

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

    def layer(self, layer: str) -> tuple[dict[str, SignChange], list[SignChange]]:
        """``(part -> SignChange, random draws)`` of one layer."""
        if layer not in self.random:
            raise ValueError(f"layer={layer!r} was not measured; measured layers: {tuple(self.random)}")
        return {part: layers[layer] for part, layers in self.parts.items()}, self.random[layer]

    def split_markdown(self, layers: Sequence[str], *, draws: int = 2000, seed: int = 0) -> str:
        """Per layer and row, Δ and its split (:data:`METRICS`), each over all image pairs with its 95 % bootstrap
        interval over images, as Markdown."""
        lines = ["| layer | row | Δ | changed in one image only | sign disagreement among units changed in both | cosine of ε |",
                 "|---|---|---|---|---|---|"]
        for layer in layers:
            parts, random = self.layer(layer)
            for row, results in {**parts, "random": random}.items():
                cells = [score(results, metric, draws=draws, seed=seed).format(digits=3) for metric in METRICS]
                lines.append(f"| {layer} | {row} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def gaps(self, layer: str, *, draws: int = 2000, seed: int = 0) -> dict[str, dict[str, tuple[float, float, float]]]:
        """For :func:`zfcore.plots.correspondence.gap_figure`: measure -> part -> ``(value, low, high)``, the relative
        gaps of Δ and its two parts in %, and the cosine gap in hundredths."""
        parts, random = self.layer(layer)
        names = {"delta": "Δ", "changed in one": "which units change", "opposite in both": "sign, changed in both",
                 "cosine": "cosine of ε (× 100)"}
        result = {}
        for metric, name in names.items():
            estimates = {part: gap(parts[part], random, metric, draws=draws, seed=seed) for part in PARTS}
            result[name] = {part: (100 * e.value, 100 * e.low, 100 * e.high) for part, e in estimates.items()}
        return result

    def subsets_markdown(self, layer: str, *, size: int = 5, count: int = 200, seed: int = 0, column: int = 0) -> str:
        """Δ of each row on ``count`` random ``size``-image subsets (:func:`subset_scores`): mean ± std over the
        subsets, the paper's Table 1 value beside it, and for each part the fraction of subsets in which it scores
        below the random boxes. ``column``: 0 for the paper's layer 5, 1 for its layer 7."""
        parts, random = self.layer(layer)
        scores = subset_scores(parts, random, size=size, count=count, seed=seed)
        lines = [f"| row | Δ over {count} subsets of {size} (mean ± std) | paper | subsets with Δ below random |",
                 "|---|---|---|---|"]
        for row, values in scores.items():
            paper = PAPER_TABLE1[row][column]
            below = "" if row == "random" else f"{100 * float(np.mean(values < scores['random'])):.0f} %"
            lines.append(f"| {row} | {values.mean():.3f} ± {values.std(ddof=1):.3f} | {paper[0]:.3f} ± {paper[1]:.3f} "
                         f"| {below} |")
        return "\n".join(lines)

    def c7_verdict(self, layer5: str = POOLED_LAYER, layer7: str = "fc7", *, draws: int = 2000,
                   seed: int = 0) -> Verdict:
        """:func:`c7_verdict` of this measurement: layer 5, its jittered parts, and layer 7 in the details."""
        parts, random = self.layer(layer5)
        jittered = [{part: layers[layer5] for part, layers in draw.items()} for draw in self.jittered]
        return c7_verdict(parts, random, jittered=jittered, layer7=self.layer(layer7), draws=draws, seed=seed)


def measure(model: ZFNet, images: torch.Tensor, part_boxes: Mapping[str, torch.Tensor], *,
            layers: Sequence[str] = (POOLED_LAYER, "fc7"), draws: int = 30, seed: int = 0,
            regions: torch.Tensor | None = None, avoid_parts: bool = True, jitters: int = 0,
            jitter_pixels: int = 2) -> Correspondence:
    """Table 1: Δ for every part and layer, for ``draws`` random boxes of the parts' sizes, and for the parts
    with their boxes jittered.

    Draw ``k`` places one box per image with the size of that image's ``PARTS[k % 3]`` box (cycling
    through the parts' sizes), uniformly at random inside that image's ``regions`` box (default: anywhere)
    and, with ``avoid_parts``, overlapping none of that image's part boxes.

    Args:
        model, images: as for :func:`sign_change`.
        part_boxes: part -> boxes ``[N, 4]`` (one per image).
        layers: the feature layers.
        draws: random draws for the control (at least 2, for a spread).
        seed: seed of the draws and the jitter.
        regions: ``[N, 4]`` the box of each image the random boxes stay in (e.g. the object's).
        avoid_parts: keep the random boxes off every part box (default ``True``).
        jitters: how many times to measure the parts again with every box shifted by up to
            ``jitter_pixels`` pixels along x and y (:func:`jitter_boxes`); 0 for none.

    Raises:
        ValueError: ``draws`` < 2, ``jitters`` < 0, no parts, or what :func:`sign_changes`,
            :func:`random_boxes` and :func:`jitter_boxes` refuse.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws={draws!r}: must be a whole number >= 2 (a mean ± std needs several draws)")
    if isinstance(jitters, bool) or not isinstance(jitters, int) or jitters < 0:
        raise ValueError(f"jitters={jitters!r}: must be a whole number >= 0")
    if not part_boxes:
        raise ValueError("part_boxes is empty; give part -> boxes [N, 4], e.g. for the parts " + ", ".join(PARTS))
    size = images.shape[-1]
    parts = {part: sign_changes(model, images, boxes, layers) for part, boxes in part_boxes.items()}
    generator = np.random.default_rng(seed)
    sized = list(part_boxes.values())
    avoid = sized if avoid_parts else ()
    drawn = [random_boxes(sized[k % len(sized)], size, generator, regions, avoid) for k in range(draws)]
    per_draw = [sign_changes(model, images, boxes, layers) for boxes in drawn]
    random = {layer: [result[layer] for result in per_draw] for layer in layers}
    jittered = [{part: sign_changes(model, images, jitter_boxes(boxes, size, generator, jitter_pixels), layers)
                 for part, boxes in part_boxes.items()} for _ in range(jitters)]
    return Correspondence(parts, random, drawn, jittered)


def _stack(results: SignChange | Sequence[SignChange]) -> torch.Tensor:
    """``[5, N, N]`` the pair matrices of :data:`_COMPONENTS`; for several results (random draws), their mean."""
    results = [results] if isinstance(results, SignChange) else list(results)
    if not results:
        raise ValueError("no results to score; give at least one SignChange")
    return torch.stack([torch.stack([getattr(result, name).double() for name in _COMPONENTS]) for result in results]).mean(0)


def _bootstrap_images(stack: torch.Tensor, statistic: Callable[[torch.Tensor], torch.Tensor], *, draws: int,
                      seed: int) -> Estimate:
    """``statistic`` of image indices with its 95 % bootstrap interval over the ``N`` images of ``stack``.

    Raises:
        ValueError: fewer than :data:`MIN_IMAGES_FOR_INTERVAL` images.
    """
    images = stack.shape[-1]
    if images < MIN_IMAGES_FOR_INTERVAL:
        raise ValueError(f"{images} images: an interval over images needs at least "
                         f"MIN_IMAGES_FOR_INTERVAL = {MIN_IMAGES_FOR_INTERVAL}")
    return bootstrap(np.arange(images), statistic, draws=draws, seed=seed)


def _scores(stack: torch.Tensor, indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each metric of :data:`METRICS` over the ordered pairs of ``indices`` (``[..., n]`` image indices, a
    resample may repeat an image: pairs of an image with itself are left out)."""
    indices = indices.long()
    first, second = indices[..., :, None], indices[..., None, :]
    valid = (first != second).double()
    sums = [(stack[k][first, second] * valid).sum((-1, -2)) for k in range(len(_COMPONENTS))]
    pairs = valid.sum((-1, -2))
    return {"delta": sums[0] / pairs, "changed in one": sums[1] / pairs,
            "opposite in both": sums[3] / sums[2].clamp_min(1e-12), "cosine": sums[4] / pairs}


def score(results: SignChange | Sequence[SignChange], metric: str = "delta", *, draws: int = 2000,
          seed: int = 0) -> Estimate:
    """A row's score over its image pairs, with a 95 % bootstrap interval over images.

    Args:
        results: one part's :class:`SignChange`, or the random draws' (their pair matrices averaged).
        metric: one of :data:`METRICS`.
        draws, seed: of the bootstrap (:func:`zfcore.stats.bootstrap`), which resamples images and scores
            the ordered pairs of distinct images in each resample.

    Raises:
        ValueError: an unknown metric, no results, fewer than :data:`MIN_IMAGES_FOR_INTERVAL` images.
    """
    _check_metric(metric)
    stack = _stack(results)
    return _bootstrap_images(stack, lambda indices: _scores(stack, indices)[metric], draws=draws, seed=seed)


def gap(part: SignChange, random: Sequence[SignChange], metric: str = "delta", *, draws: int = 2000,
        seed: int = 0) -> Estimate:
    """How much more consistent the part is than the random boxes, paired over the same image pairs.

    For Δ, "changed in one" and "opposite in both" (lower = more consistent) the relative gap
    ``(random − part) / random``; for the cosine (higher = more consistent) ``part − random``. Positive:
    the part is more consistent. The interval is a bootstrap over images (:func:`score`).

    Raises:
        ValueError: an unknown metric, no random draws, parts and draws of different images, fewer than
            :data:`MIN_IMAGES_FOR_INTERVAL` images.
    """
    _check_metric(metric)
    part_stack, random_stack = _stack(part), _stack(random)
    if part_stack.shape != random_stack.shape:
        raise ValueError(f"the part has {part_stack.shape[-1]} images and the random draws {random_stack.shape[-1]}; "
                         f"they must be measured on the same images")

    def statistic(indices: torch.Tensor) -> torch.Tensor:
        ours, control = _scores(part_stack, indices)[metric], _scores(random_stack, indices)[metric]
        return ours - control if metric == "cosine" else (control - ours) / control.clamp_min(1e-12)

    return _bootstrap_images(part_stack, statistic, draws=draws, seed=seed)


def subset_scores(parts: Mapping[str, SignChange], random: Sequence[SignChange], *, size: int = 5,
                  count: int = 200, seed: int = 0, metric: str = "delta") -> dict[str, np.ndarray]:
    """Each row's score on ``count`` random subsets of ``size`` images (the paper used 5), so that the
    spread of a 5-image experiment can be set beside the paper's ±.

    Returns:
        row (each part, and ``"random"``: the draws' mean) -> ``[count]`` scores.

    Raises:
        ValueError: an unknown metric, ``size`` < 2 or larger than the images, ``count`` < 1.
    """
    _check_metric(metric)
    stacks = {**{part: _stack(result) for part, result in parts.items()}, "random": _stack(random)}
    images = next(iter(stacks.values())).shape[-1]
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= images:
        raise ValueError(f"size={size!r}: must be a whole number from 2 to the {images} images")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r}: must be a whole number >= 1")
    generator = np.random.default_rng(seed)
    subsets = torch.from_numpy(np.stack([generator.choice(images, size, replace=False) for _ in range(count)]))
    return {row: _scores(stack, subsets)[metric].numpy() for row, stack in stacks.items()}


def c7_verdict(parts: Mapping[str, SignChange], random: Sequence[SignChange], *,
               jittered: Sequence[Mapping[str, SignChange]] = (), layer7: tuple[Mapping[str, SignChange],
                                                                                Sequence[SignChange]] | None = None,
               draws: int = 2000, seed: int = 0) -> Verdict:
    """The verdict on C7 (§4.3, Table 1) from layer-5 measurements.

    Rule (fixed before the 20-image numbers were seen): for each part, ``g_Δ`` is the relative Δ gap
    ``(Δ_random − Δ_part) / Δ_random`` and ``g_s`` the same gap for the sign disagreement among units that
    change in both images (:func:`gap`), each with a 95 % bootstrap interval over images.

    - ``agree``: for all of :data:`PARTS`, ``g_Δ``'s interval lies above 0;
    - ``partly``: not ``agree``, but for at least one part ``g_Δ``'s or ``g_s``'s interval lies above 0;
    - ``differ``: for every part ``g_Δ``'s interval lies below :data:`MIN_RELATIVE_GAP` (the paper's gaps
      are 26-37 %) and no ``g_s`` interval lies above 0;
    - ``inconclusive``: otherwise.

    Args:
        parts: part -> :class:`SignChange` at layer 5 (``pool5``), for every part of :data:`PARTS`.
        random: the random draws' :class:`SignChange` at layer 5 (at least 2).
        jittered: per jitter draw, part -> :class:`SignChange` at layer 5; their gaps go into ``details``.
        layer7: optionally ``(parts, random)`` at layer 7 (``fc7``); their gaps go into ``details``.
        draws, seed: of the bootstrap.

    Raises:
        ValueError: a part of :data:`PARTS` missing, fewer than 2 random draws, or another layer than
            layer 5 (``pool5``) given as ``parts``.
    """
    missing = [part for part in PARTS if part not in parts]
    if missing:
        raise ValueError(f"parts lack {missing}; give a SignChange for each of {PARTS}")
    if len(random) < 2:
        raise ValueError(f"random has {len(random)} draw(s); give at least 2")
    layers = {parts[part].layer for part in PARTS} | {result.layer for result in random}
    if layers - {POOLED_LAYER, ""}:
        raise ValueError(f"parts and random are of layers {sorted(layers)}; C7 is about layer 5, {POOLED_LAYER!r}")
    images = parts[PARTS[0]].pair_distances.shape[0]
    delta_gaps = {part: gap(parts[part], random, "delta", draws=draws, seed=seed) for part in PARTS}
    sign_gaps = {part: gap(parts[part], random, "opposite in both", draws=draws, seed=seed) for part in PARTS}
    mean_gap = _mean_part_gap(parts, random, draws=draws, seed=seed)
    control = score(random, "delta", draws=draws, seed=seed)
    delta_above = [part for part in PARTS if delta_gaps[part].low > 0]
    sign_above = [part for part in PARTS if sign_gaps[part].low > 0]
    if len(delta_above) == len(PARTS):
        outcome = "agree"
        reason = ("Masking each part changes the layer-5 features of different dogs more consistently than masking "
                  "random boxes on the dog: every part's Δ gap lies above 0.")
    elif delta_above or sign_above:
        outcome = "partly"
        reason = (f"The paper's Δ singles out {_listed(delta_above)}; the sign of the change among the units that "
                  f"change in both images singles out {_listed(sign_above)}.")
    elif all(delta_gaps[part].high < MIN_RELATIVE_GAP for part in PARTS):
        outcome = "differ"
        reason = (f"No part's layer-5 Δ is below the random boxes' by {100 * MIN_RELATIVE_GAP:.0f} % (the paper: "
                  f"26-37 %), and no part is more consistent in the sign of the change either.")
    else:
        outcome = "inconclusive"
        reason = "The gaps' intervals span the rule's boundaries."

    def shown(estimate: Estimate, scale: float = 100) -> dict[str, float]:
        return {"value": scale * estimate.value, "low": scale * estimate.low, "high": scale * estimate.high}

    details: dict[str, object] = {
        "images": images, "random draws": len(random),
        "delta gap % (layer 5)": {part: shown(delta_gaps[part]) for part in PARTS},
        "sign gap % (layer 5)": {part: shown(sign_gaps[part]) for part in PARTS},
        "cosine gap (layer 5)": {part: shown(gap(parts[part], random, "cosine", draws=draws, seed=seed), scale=1)
                                 for part in PARTS},
        "which-units gap % (layer 5)": {part: shown(gap(parts[part], random, "changed in one", draws=draws, seed=seed))
                                        for part in PARTS},
        "paper delta gap %": {part: 100 * _paper_gap(part, 0) for part in PARTS},
    }
    if jittered:
        details["delta gap % under jitter (min, max)"] = {
            part: [100 * min(values), 100 * max(values)] for part in PARTS
            for values in [[gap(draw[part], random, "delta", draws=100, seed=seed).value for draw in jittered]]}
    if layer7 is not None:
        parts7, random7 = layer7
        details["delta gap % (layer 7)"] = {part: shown(gap(parts7[part], random7, "delta", draws=draws, seed=seed))
                                            for part in PARTS}
        details["sign gap % (layer 7)"] = {part: shown(gap(parts7[part], random7, "opposite in both", draws=draws,
                                                           seed=seed)) for part in PARTS}
    return Verdict(
        claim="C7",
        measure=(f"the relative gap (Δ_random − Δ_part) / Δ_random of the paper's mean feature sign change at layer 5 "
                 f"(pool5), averaged over the three parts, on {images} hand-annotated frontal dogs; per part, and the "
                 f"same gap for the sign disagreement among units that change in both images, in the details"),
        estimate=mean_gap,
        control=(f"{len(random)} draws of random boxes of the parts' sizes on the dog, kept off the annotated parts: "
                 f"their Δ (as a % of features)"),
        control_estimate=control,
        rule=(f"agree if every part's Δ gap interval lies above 0; partly if at least one part's Δ gap or sign gap "
              f"interval lies above 0; differ if every Δ gap interval lies below MIN_RELATIVE_GAP = "
              f"{100 * MIN_RELATIVE_GAP:.0f} % and no sign gap interval above 0; else inconclusive (95 % bootstrap "
              f"intervals over images)"),
        outcome=outcome, reason=reason,
        settle=("more frontal dogs, or the 224-px network (the imagenet profile), whose layer-5 units each see "
                "171 of 224 px") if outcome == "inconclusive" else "",
        details=details, scale=100, digits=1, unit=" %")


def _mean_part_gap(parts: Mapping[str, SignChange], random: Sequence[SignChange], *, draws: int,
                   seed: int) -> Estimate:
    """The relative Δ gap averaged over :data:`PARTS`, bootstrapped over images (one resample for all parts)."""
    part_stacks = [_stack(parts[part]) for part in PARTS]
    random_stack = _stack(random)

    def statistic(indices: torch.Tensor) -> torch.Tensor:
        control = _scores(random_stack, indices)["delta"]
        gaps = [(control - _scores(stack, indices)["delta"]) / control.clamp_min(1e-12) for stack in part_stacks]
        return torch.stack(gaps).mean(0)

    return _bootstrap_images(random_stack, statistic, draws=draws, seed=seed)


def _paper_gap(part: str, layer: int) -> float:
    """The relative Δ gap of Table 1 of the paper, ``(random − part) / random``, at layer 5 (0) or 7 (1)."""
    return (PAPER_TABLE1["random"][layer][0] - PAPER_TABLE1[part][layer][0]) / PAPER_TABLE1["random"][layer][0]


def _listed(parts: Sequence[str]) -> str:
    """``"no part"``, ``"the nose"``, ``"the left eye and the nose"``, ``"the right eye, the left eye and the nose"``."""
    named = [f"the {part}" for part in parts]
    return "no part" if not named else named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not valid; valid metrics: {METRICS}")


def _pooled_pair_std(results: Sequence[SignChange]) -> float:
    return float(torch.cat([result.distinct_pair_distances for result in results]).std())
