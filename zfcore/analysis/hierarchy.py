"""The feature hierarchy of Fig. 2 in numbers (Zeiler & Fergus 2014, §4): C1 as a tested verdict.

The paper reads its Fig. 2 by eye: the top 9 images of a feature map show edges and colour in layer 1,
conjunctions in 2, textures in 3, "more class-specific" parts in 4 and "entire objects with significant
pose variation" in 5. Two numbers per unit stand for "more class-specific, more invariant with depth":

- :func:`top9_purity`: the share of a unit's top 9 images that belong to their most common class. A unit
  that responds to a class (whatever its pose, position or background) draws its 9 strongest images from
  it; an edge or colour detector draws them from anywhere. :func:`chance_purity` is what 9 random images
  give.
- :func:`class_selectivity`: over *all* images, the share of the variance of a unit's strongest activation
  that the class explains (η², between-class over total sum of squares). It looks past the top 9: a unit
  that fires alike on every image of a class (invariant within it) and differently across classes scores
  high.

The control is a random-weights network of the same architecture (:func:`~zfcore.analysis.sanity.randomized_copy`):
what the measures give from the architecture and the images alone. :func:`c1_verdict` applies the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import stats as scipy_stats

from zfcore.analysis.top9 import TopActivations, content_digest, weights_digest
from zfcore.checks import check_layers, check_pixels, check_positive
from zfcore.data.loader import pixel_batches
from zfcore.models import CONV_LAYERS, ZFNet
from zfcore.stats import Estimate, bootstrap
from zfcore.store import cached
from zfcore.verdicts import Verdict

__all__ = ["BOOTSTRAP_DRAWS", "DEPTH_RANK_MIN", "TOP_LAYERS", "c1_verdict", "chance_purity", "class_selectivity",
           "hierarchy_table", "layer_estimates", "top9_purity"]

DEPTH_RANK_MIN = 0.9
"""The least Spearman correlation between depth (conv1 = 1 ... conv5 = 5) and the layers' mean top-9 purity that
counts as "rises with depth" (with 5 layers: at most one neighbouring pair out of order)."""
TOP_LAYERS = ("conv4", "conv5")
"""The layers the paper calls class-specific (parts, 4) and object-level (5): where the trained network must beat
the random-weights control."""
BOOTSTRAP_DRAWS = 2000
"""Bootstrap resamples of the units for every interval."""


def top9_purity(top: TopActivations, labels: np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Per unit, the share of its top-``k`` images that belong to their most common class.

    Args:
        top: one layer's :class:`~zfcore.analysis.top9.TopActivations` (``image_index`` into ``labels``).
        labels: the class of every mined image, in the mining order.

    Returns:
        ``[C']`` float purities in [1/k, 1], one per unit that fires on all its ``k`` images (a unit whose
        ``k``-th strongest activation is 0 has ties at 0, so its top ``k`` is arbitrary, and is left out).

    Raises:
        ValueError: ``labels`` not whole numbers >= 0, or fewer labels than the largest image index needs.
    """
    labels = _labels(labels)
    needed = int(top.image_index.max()) + 1 if top.image_index.numel() else 0
    if len(labels) < needed:
        raise ValueError(f"labels has {len(labels)} entries, but {top.layer}'s top images reach index {needed - 1}; "
                         f"give one label per mined image")
    alive = top.values[:, -1] > 0
    classes = labels[top.image_index[alive]]  # [C', k]
    ones = torch.ones(classes.shape)
    counts = torch.zeros(len(classes), int(labels.max()) + 1).scatter_add_(1, classes, ones)  # per unit and class
    return counts.max(1).values / top.values.shape[1]


def chance_purity(labels: np.ndarray | torch.Tensor | Sequence[int], k: int = 9, *, draws: int = 20000,
                  seed: int = 0) -> float:
    """The mean purity (:func:`top9_purity`) of ``k`` distinct images drawn at random from ``labels``.

    Monte Carlo over ``draws`` seeded draws; it depends on the class sizes (Tiny ImageNet validation, 200 classes
    of 50 images: 0.129 for k = 9, a little above 1/9, since two of 9 images share a class one time in six).

    Raises:
        ValueError: ``k`` or ``draws`` < 1; ``k`` larger than the number of labels; labels not whole numbers >= 0.
    """
    check_positive("k", k)
    check_positive("draws", draws)
    labels = _labels(labels).numpy()
    if k > len(labels):
        raise ValueError(f"k={k} is more than the {len(labels)} labels; give k <= {len(labels)}")
    generator = np.random.default_rng(seed)
    subsets = np.stack([generator.choice(len(labels), k, replace=False) for _ in range(draws)])
    classes = labels[subsets]
    largest = np.max([(classes == classes[:, [j]]).sum(1) for j in range(k)], axis=0)  # the commonest class's count
    return float(largest.mean() / k)


def class_selectivity(model: ZFNet, pixels: np.ndarray, labels: np.ndarray | torch.Tensor | Sequence[int], *,
                      layers: Sequence[str] = CONV_LAYERS, batch_size: int = 500,
                      cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Per unit, the share of the variance of its strongest activation that the images' class explains (η²).

    In one streaming pass over ``pixels`` each unit's activation is reduced to its maximum over positions (as
    for the top 9); per class and unit the sums and the total sum of squares are accumulated, and
    η² = between-class sum of squares / total sum of squares, in [0, 1]. Cached on disk like
    :func:`~zfcore.analysis.top9.mine_top9`, keyed by the weights', pixels' and labels' digests.

    Args:
        model: the network (eval mode for the pass, restored after); batches go to its device.
        pixels: uint8 ``[N, S, S, 3]`` images.
        labels: ``[N]`` their classes.
        layers: conv layers to measure.
        batch_size: images per forward pass.
        cache_dir: where the result is cached (default ``<data root>/cache/selectivity``).

    Returns:
        layer -> ``[C']`` η² of the units whose activation varies over the images (a unit that never changes,
        e.g. never fires, has no variance to explain and is left out).

    Raises:
        ValueError: ``pixels`` not uint8 ``[N, S, S, 3]``; ``labels`` not one whole number >= 0 per image; an
            unknown layer; ``batch_size`` < 1.
    """
    from zfcore.data.locate import data_root

    check_pixels("pixels", pixels)
    check_positive("batch_size", batch_size)
    labels = _labels(labels)
    if len(labels) != len(pixels):
        raise ValueError(f"labels has {len(labels)} entries for {len(pixels)} images; give one label per image")
    layers = check_layers("layers", layers, [layer for layer in CONV_LAYERS if layer in model.layer_names],
                          what="conv layer")
    key = {"weights": weights_digest(model), "pixels": content_digest(pixels), "labels": content_digest(labels),
           "layers": list(layers)}
    name = f"{key['weights']}-{key['pixels']}-{key['labels']}-{'_'.join(layers)}.pt"
    path = Path(cache_dir or data_root() / "cache" / "selectivity") / name
    return cached(key, lambda: _selectivity(model, pixels, labels, layers, batch_size), path=path,
                  what="class-selectivity cache")


@torch.no_grad()
def _selectivity(model: ZFNet, pixels: np.ndarray, labels: torch.Tensor, layers: Sequence[str],
                 batch_size: int) -> dict[str, torch.Tensor]:
    """:func:`class_selectivity` without the cache."""
    classes = int(labels.max()) + 1
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts = torch.bincount(labels, minlength=classes).double()
    was_training = model.training
    model.eval()
    try:
        for start, images in zip(range(0, len(pixels), batch_size), pixel_batches(pixels, batch_size)):
            trace = model.trace(model.prepare_images(images), layers=layers)
            batch_labels = labels[start : start + images.shape[0]]
            for layer in layers:
                values = trace.activations[layer].float().flatten(2).max(dim=2).values.double().cpu()  # [B, C]
                if layer not in sums:
                    sums[layer] = torch.zeros(classes, values.shape[1], dtype=torch.float64)
                    squares[layer] = torch.zeros(values.shape[1], dtype=torch.float64)
                sums[layer].index_add_(0, batch_labels, values)
                squares[layer] += (values**2).sum(0)
    finally:
        model.train(was_training)
    result = {}
    present = counts > 0
    for layer in layers:
        total = sums[layer].sum(0)
        grand_mean_square = total**2 / counts.sum()
        total_ss = squares[layer] - grand_mean_square
        between_ss = (sums[layer][present] ** 2 / counts[present, None]).sum(0) - grand_mean_square
        varies = total_ss > 1e-9 * squares[layer].clamp_min(1e-30)
        result[layer] = (between_ss[varies] / total_ss[varies]).clamp(0, 1).float()
    return result


def layer_estimates(per_unit: Mapping[str, torch.Tensor], *, seed: int = 0) -> dict[str, Estimate]:
    """Per layer, the mean over units with its 95 % bootstrap interval (resampling the units; seeded).

    Raises:
        ValueError: a layer with fewer than 2 units (:func:`~zfcore.stats.bootstrap`), naming the layer.
    """
    estimates = {}
    for layer, values in per_unit.items():
        try:
            estimates[layer] = bootstrap(values, draws=BOOTSTRAP_DRAWS, seed=seed)
        except ValueError as error:
            raise ValueError(f"{layer}: {error}") from None
    return estimates


def hierarchy_table(verdict: Verdict) -> str:
    """The per-layer numbers behind a :func:`c1_verdict` as a Markdown table (mean over units [95 % interval], n).

    Raises:
        ValueError: a verdict that is not C1's (its details lack the per-layer estimates).
    """
    names = {"purity": "top-9 purity, trained", "purity_random": "top-9 purity, random weights",
             "selectivity": "η², trained", "selectivity_random": "η², random weights"}
    keys = {name: f"{name} [value, low, high, n]" for name in names}
    if verdict.claim != "C1" or any(key not in verdict.details for key in keys.values()):
        raise ValueError(f"a {verdict.claim} verdict is not valid here; give the verdict c1_verdict returned")
    lines = ["| layer | " + " | ".join(names.values()) + " |", "|---" * (len(names) + 1) + "|"]
    for layer in CONV_LAYERS:
        cells = []
        for key in keys.values():
            value, low, high, n = verdict.details[key][layer]
            cells.append(f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}] (n = {n})")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    chance = 100 * verdict.details["chance_purity"]
    return "\n".join(lines) + f"\n\nIn %. Chance purity (9 random images): {chance:.1f} %."


def c1_verdict(purity: Mapping[str, torch.Tensor], purity_random: Mapping[str, torch.Tensor],
               selectivity: Mapping[str, torch.Tensor], selectivity_random: Mapping[str, torch.Tensor],
               chance: float) -> Verdict:
    """C1 (§4, Fig. 2): do the units grow more class-specific with depth, beyond a random-weights network?

    The rule (fixed before the numbers were seen; "beyond CIs": the two 95 % bootstrap intervals over units do
    not overlap):

    - **purity rises** (primary): the trained network's mean top-9 purity is higher at conv5 than at conv1 beyond
      CIs, the Spearman correlation of the five layer means with depth is at least :data:`DEPTH_RANK_MIN`, and at
      each of :data:`TOP_LAYERS` the trained network's purity is above the random-weights network's beyond CIs;
    - **selectivity rises** (secondary): the trained network's mean class selectivity η² is higher at conv5 than
      at conv1 beyond CIs, and above the random-weights network's at conv5 beyond CIs.

    ``agree`` if both hold, ``partly`` if one does, ``differ`` if neither.

    Args:
        purity, purity_random: layer -> per-unit :func:`top9_purity`, trained and random-weights network,
            conv1 ... conv5 each.
        selectivity, selectivity_random: layer -> per-unit :func:`class_selectivity`, likewise.
        chance: :func:`chance_purity` of the mined images' labels.

    Raises:
        ValueError: a measure without all of conv1 ... conv5 (naming the missing layers); a layer with fewer
            than 2 units; ``chance`` outside [0, 1].
    """
    measures = {"purity": purity, "purity_random": purity_random, "selectivity": selectivity,
                "selectivity_random": selectivity_random}
    for name, values in measures.items():
        missing = [layer for layer in CONV_LAYERS if layer not in values]
        if missing:
            raise ValueError(f"{name} lacks {missing}; give per-unit values for every layer of {CONV_LAYERS}")
    if not 0.0 <= chance <= 1.0:
        raise ValueError(f"chance={chance!r} is not valid; a purity lies in [0, 1]")
    estimates = {name: layer_estimates({layer: values[layer] for layer in CONV_LAYERS})
                 for name, values in measures.items()}
    trained, random = estimates["purity"], estimates["purity_random"]
    depth_rank = float(scipy_stats.spearmanr(range(1, 6), [trained[layer].value for layer in CONV_LAYERS])[0])
    if not np.isfinite(depth_rank):  # all five means equal: no rise
        depth_rank = 0.0
    beats_random = {layer: trained[layer].low > random[layer].high for layer in TOP_LAYERS}
    purity_rises = trained["conv5"].low > trained["conv1"].high and depth_rank >= DEPTH_RANK_MIN and all(
        beats_random.values())
    selective, selective_random = estimates["selectivity"], estimates["selectivity_random"]
    selectivity_rises = (selective["conv5"].low > selective["conv1"].high
                         and selective["conv5"].low > selective_random["conv5"].high)
    outcome = {2: "agree", 1: "partly", 0: "differ"}[int(purity_rises) + int(selectivity_rises)]

    def path(values: dict[str, Estimate]) -> str:
        return " → ".join(f"{100 * values[layer].value:.0f}" for layer in CONV_LAYERS)

    reason = (f"top-9 purity (%) conv1→conv5: {path(trained)} trained, {path(random)} random weights, chance "
              f"{100 * chance:.0f}; Spearman with depth {depth_rank:.2f}; class selectivity η² (%): "
              f"{path(selective)} trained, {path(selective_random)} random; purity rises beyond the control: "
              f"{'yes' if purity_rises else 'no'}, selectivity rises beyond it: "
              f"{'yes' if selectivity_rises else 'no'}.")
    rule = (f"agree if both hold, partly if one, differ if neither (\"beyond CIs\": the 95 % bootstrap intervals "
            f"over units do not overlap). (1) purity rises: trained conv5 > conv1 beyond CIs, Spearman(depth, layer "
            f"mean) ≥ DEPTH_RANK_MIN = {DEPTH_RANK_MIN}, and trained > random weights beyond CIs at each of "
            f"TOP_LAYERS = {', '.join(TOP_LAYERS)}; (2) class selectivity rises: trained conv5 > conv1 and trained "
            f"conv5 > random conv5, beyond CIs.")

    def numbers(values: dict[str, Estimate]) -> dict[str, list[float]]:
        return {layer: [values[layer].value, values[layer].low, values[layer].high, values[layer].n]
                for layer in CONV_LAYERS}

    details = {"chance_purity": chance, "depth_rank": depth_rank, "purity_rises": purity_rises,
               "selectivity_rises": selectivity_rises, "beats_random": beats_random,
               **{f"{name} [value, low, high, n]": numbers(values) for name, values in estimates.items()}}
    return Verdict(
        "C1",
        measure=("top-9 class purity of conv5 (the share of a unit's 9 strongest validation images that belong to "
                 "their most common class; mean over units): a unit tuned to a class draws its top 9 from it, an "
                 "edge or colour detector from anywhere"),
        estimate=trained["conv5"],
        control=(f"the same measure on a random-weights network of the same architecture (what the architecture and "
                 f"images give alone); chance (9 random images) is {100 * chance:.1f} %"),
        control_estimate=random["conv5"], rule=rule, outcome=outcome, reason=reason, details=details,
        scale=100, digits=1, unit=" %")


def _labels(labels: np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
    """``labels`` as a long tensor of whole numbers >= 0 (``ValueError`` naming the bad values otherwise)."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"labels has shape {array.shape}; give a non-empty vector of classes")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels has dtype {array.dtype}; give whole-number classes (e.g. int64)")
    if array.min() < 0:
        raise ValueError(f"labels holds {int(array.min())}; classes are whole numbers >= 0")
    return torch.from_numpy(array.astype(np.int64))
