"""Maps of the deconvnet's critics compared: similarity measures, heat maps, sign-free summaries, and the small
helpers the comparisons share (:mod:`zfcore.analysis.sanity`, :mod:`zfcore.analysis.switches`,
:mod:`zfcore.analysis.attribution`).

**Similarity** (:func:`map_similarity`; :data:`MEASURES`). Each ``[3, H, W]`` map becomes one value per
pixel by summing over the colour channels: of the absolute values for ``"spearman_abs"`` (where the map
is strong) and of the signed values for ``"spearman_signed"`` (diverging maps); both are Spearman's rank
correlation (:func:`scipy.stats.spearmanr`) over the pixels. ``"ssim"`` is the structural similarity
(:func:`skimage.metrics.structural_similarity`, its default 7 x 7 window) of the absolute heat maps
(:func:`heat_map`: divided by their 99th percentile and clipped to [0, 1], as the book displays maps).
A map that is constant (e.g. all zero) has no ranks: its similarities are NaN, and summaries skip them.
The **baseline** pairs each image's trained map with the trained map of another image: a randomised
map no more like its original than that carries nothing of the trained weights.

**Signs** (:func:`sign_free`). A signed similarity can flip its sign without losing the picture (the
gradient is linear in the top signal: a random ``fc8`` row can give the trained map times −1). Its mean
over images then tends to 0 whatever is kept, so wherever a sign can flip the chapter reports the mean of
``|ρ|`` with a bootstrap interval over images, the share of images with ``|ρ|`` above
:data:`SIGN_FREE_THRESHOLD`, and the same for the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from zfcore.checks import check_finite, check_labels, check_number
from zfcore.models import ZFNet
from zfcore.stats import Estimate, bootstrap

__all__ = ["HEAT_PERCENTILE", "MEASURES", "SIGN_FREE_THRESHOLD", "SignFree", "batched_maps",
           "check_images_and_methods", "derangement", "finite_values", "heat_map", "map_similarity", "nan_mean_std",
           "sign_free"]

MEASURES = ("spearman_abs", "spearman_signed", "ssim")
"""The similarity measures of :func:`map_similarity` (Adebayo et al. 2018 use these, and a HOG measure)."""
MEASURE_NAMES = {"spearman_abs": "Spearman (absolute maps)", "spearman_signed": "Spearman (signed maps)",
                 "ssim": "SSIM (absolute maps)"}
"""Each of :data:`MEASURES` in words, for tables and figures."""

HEAT_PERCENTILE = 99.0
"""The percentile of |map| that :func:`heat_map` scales to 1 (the book's display contrast)."""

SIGN_FREE_THRESHOLD = 0.3
""":func:`sign_free` counts the images whose ``|ρ|`` exceeds this (a clear correlation of either sign)."""


def heat_map(maps: torch.Tensor, percentile: float = HEAT_PERCENTILE) -> torch.Tensor:
    """``[..., 3, H, W]`` maps -> ``[..., H, W]`` in [0, 1]: |map| summed over colours, / its percentile, clipped.

    Raises:
        ValueError: ``percentile`` not in (0, 100].
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile!r} is not valid; valid: a number in (0, 100]")
    magnitude = maps.detach().double().abs().sum(-3)
    scale = torch.quantile(magnitude.flatten(-2), percentile / 100, dim=-1).clamp_min(1e-300)
    return (magnitude / scale[..., None, None]).clamp(0.0, 1.0)


def map_similarity(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
    """The :data:`MEASURES` between matching maps ``[B, 3, H, W]`` (see the module docstring).

    Returns:
        measure -> ``[B]`` float64; NaN for a pair in which either map is constant.

    Raises:
        ValueError: the two batches' shapes differ or are not ``[B, 3, H, W]``, or a map holds NaN or infinite
            values (a similarity of them would be NaN, or silently a number).
    """
    if first.shape != second.shape or first.dim() != 4 or first.shape[1] != 3:
        raise ValueError(f"maps have shapes {tuple(first.shape)} and {tuple(second.shape)}; "
                         "expected two equal [B, 3, H, W]")
    check_finite("first", first, per="maps")
    check_finite("second", second, per="maps")
    first, second = first.detach().double().cpu(), second.detach().double().cpu()
    pixels = {"spearman_abs": (first.abs().sum(1), second.abs().sum(1)),
              "spearman_signed": (first.sum(1), second.sum(1))}
    heat = (heat_map(first).numpy(), heat_map(second).numpy())
    result = {measure: torch.full((len(first),), float("nan"), dtype=torch.float64) for measure in MEASURES}
    for b in range(len(first)):
        a, c = pixels["spearman_signed"][0][b], pixels["spearman_signed"][1][b]
        if bool((a == a.flatten()[0]).all()) or bool((c == c.flatten()[0]).all()):
            continue  # no ranks (a zero map): NaN
        for measure in ("spearman_abs", "spearman_signed"):
            x, y = pixels[measure]
            result[measure][b] = float(spearmanr(x[b].flatten().numpy(), y[b].flatten().numpy()).statistic)
        result["ssim"][b] = float(structural_similarity(heat[0][b], heat[1][b], data_range=1.0))
    return result


@dataclass(frozen=True)
class SignFree:
    """A signed similarity summarised so that a sign flip cannot hide what is kept (:func:`sign_free`).

    Attributes:
        mean: the signed mean over the images (a sign flip pulls it towards 0 whatever is kept).
        mean_abs: the mean of ``|ρ|`` with its bootstrap interval over the images.
        share_above: the share of images with ``|ρ| > threshold``.
        quartiles: the signed values' 25th, 50th and 75th percentiles.
        threshold: the ``|ρ|`` that ``share_above`` counts.
        baseline_abs: the baseline's mean ``|ρ|`` with its interval (``None`` without a baseline).
        baseline_share_above: the baseline's share above ``threshold`` (NaN without a baseline).
    """

    mean: float
    mean_abs: Estimate
    share_above: float
    quartiles: tuple[float, float, float]
    threshold: float
    baseline_abs: Estimate | None
    baseline_share_above: float

    def format(self) -> str:
        """``"0.31 [0.27, 0.35]; 41 % > 0.3"`` (mean ``|ρ|`` with its interval; the share above the threshold)."""
        return f"{self.mean_abs.format(digits=2)}; {100 * self.share_above:.0f} % > {self.threshold:g}"


def sign_free(values: torch.Tensor, baseline: torch.Tensor | None = None, *, threshold: float = SIGN_FREE_THRESHOLD,
              seed: int = 0) -> SignFree:
    """A signed similarity per image summarised by ``|ρ|``: a map kept up to its sign counts as kept.

    Args:
        values: ``[N]`` signed similarities (e.g. Spearman of signed maps); NaNs are left out.
        baseline: ``[M]`` the same measure for pairs that share nothing (another image), or ``None``.
        threshold: ``|ρ|`` above which an image counts in :attr:`SignFree.share_above`, in (0, 1).
        seed: seeds the bootstrap over the images.

    Returns:
        A :class:`SignFree`.

    Raises:
        ValueError: fewer than 2 non-NaN values (in ``values`` or ``baseline``), or ``threshold`` not in (0, 1).
    """
    threshold = check_number("threshold", threshold, "in (0, 1)", lambda value: 0 < value < 1)
    kept = finite_values("values", values)
    quartiles = torch.quantile(kept, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    base = None if baseline is None else finite_values("baseline", baseline).abs()
    return SignFree(
        mean=float(kept.mean()), mean_abs=bootstrap(kept.abs(), seed=seed),
        share_above=float((kept.abs() > threshold).double().mean()),
        quartiles=tuple(float(q) for q in quartiles), threshold=threshold,
        baseline_abs=None if base is None else bootstrap(base, seed=seed),
        baseline_share_above=float("nan") if base is None else float((base > threshold).double().mean()))


def batched_maps(project_part: Callable[[torch.Tensor, slice], torch.Tensor], images: torch.Tensor,
             batch_size: int) -> torch.Tensor:
    """``project_part(images[rows], rows)`` over batches of rows, concatenated on the CPU."""
    return torch.cat([project_part(images[start : start + batch_size], slice(start, start + batch_size)).cpu()
                      for start in range(0, len(images), batch_size)])


def derangement(count: int, seed: int) -> torch.Tensor:
    """``[count]`` partner of each index: a seeded random cycle through all of them (no index is its own)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    partner = torch.empty(count, dtype=torch.long)
    partner[order] = order.roll(-1)
    return partner


def nan_mean_std(values: torch.Tensor) -> tuple[float, float, int]:
    """``(mean, std, count)`` of the non-NaN ``values`` (NaNs for none; std 0 for one)."""
    kept = values[~values.isnan()].double()
    if not kept.numel():
        return float("nan"), float("nan"), 0
    return float(kept.mean()), float(kept.std()) if kept.numel() > 1 else 0.0, int(kept.numel())


def finite_values(name: str, values: torch.Tensor) -> torch.Tensor:
    """The non-NaN ``values`` as float64; ``ValueError`` for fewer than 2."""
    kept = values[~values.isnan()].double()
    if kept.numel() < 2:
        raise ValueError(f"{name} has {kept.numel()} values that are not NaN; need at least 2")
    return kept


def check_images_and_methods(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                              methods: Sequence[str], valid: tuple[str, ...], kind: str) -> torch.Tensor:
    """The checks shared by the randomisation and attribution comparisons: at least 2 images (the baseline compares
    different images), one valid label each, and distinct ``methods`` out of ``valid``; returns the labels."""
    model.check_images(images)
    if len(images) < 2:
        raise ValueError(f"{len(images)} images: need at least 2 (the baseline compares different images)")
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    if isinstance(methods, str) or not len(methods) or any(m not in valid for m in methods) \
            or len(set(methods)) != len(methods):
        raise ValueError(f"methods={methods!r} is not valid; give distinct {kind} out of {valid}")
    return labels
