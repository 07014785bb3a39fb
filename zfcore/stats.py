"""Statistics for the book's verdicts: bootstrap intervals, paired differences and seed bands, in one place.

Every estimate the book reports comes with an interval (``../notes``: "a 95 % interval on every
estimate"), computed here rather than in each analysis:

- :func:`bootstrap` — the mean (or any statistic) of per-unit values (images, splits, seeds) and its
  seeded bootstrap interval, percentile (Efron 1979) or bias-corrected and accelerated (BCa; Efron 1987);
- :func:`paired_difference` — the mean difference of two arms measured on the same units (the same
  images, splits or seeds), with its bootstrap interval: pairing removes the units' shared variation;
- :func:`t_interval` — the mean of a few values (e.g. 3-5 seeds or splits, too few to bootstrap) with
  Student's t interval;
- :func:`seed_band` — what seeds alone change: the runs' mean, standard deviation and range;
- :func:`mean_std` and :func:`format_mean_std` — "mean ± std" with one meaning everywhere: the sample
  standard deviation (``ddof=1``) over the units named beside it.

An :class:`Estimate` carries its value, interval, ``n`` and method, so a verdict can state all four.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import stats as scipy_stats

__all__ = ["BOOTSTRAP_METHODS", "Estimate", "SeedBand", "bootstrap", "format_mean_std", "independent_difference",
           "mean_std", "paired_difference", "seed_band", "t_interval"]

BOOTSTRAP_METHODS = ("percentile", "bca")
Values = Sequence[float] | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Estimate:
    """A number with its interval.

    Attributes:
        value: the estimate (e.g. a mean over images).
        low, high: the interval's ends.
        n: how many units (images, splits, seeds, pairs) it rests on.
        method: how the interval was made (``"bootstrap percentile"``, ``"bootstrap bca"``, ``"t"``).
        confidence: the interval's level (default 0.95).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (e.g. 0 for a difference: a real effect)."""
        return not self.low <= value <= self.high

    def format(self, *, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
        """``"0.412 [0.398, 0.426]"``, each number times ``scale`` (100 for percent) with ``unit`` after it."""
        numbers = [f"{scale * number:.{digits}f}{unit}" for number in (self.value, self.low, self.high)]
        return f"{numbers[0]} [{numbers[1]}, {numbers[2]}]"

    def __str__(self) -> str:
        return f"{self.format()} (n = {self.n}, {100 * self.confidence:.0f} % {self.method} interval)"


@dataclass(frozen=True)
class SeedBand:
    """What seeds alone change in one recipe: ``values`` (one per seed), their mean, sample std and range."""

    values: tuple[float, ...]
    mean: float
    std: float
    spread: float

    @property
    def n(self) -> int:
        return len(self.values)

    def format(self, *, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """``"41.0 ± 0.4 % (range 0.9, 3 seeds)"``."""
        return (f"{format_mean_std(self.values, scale=scale, digits=digits)}{unit} "
                f"(range {scale * self.spread:.{digits}f}{unit}, {self.n} seeds)")


def _as_array(name: str, values: Values, minimum: int) -> np.ndarray:
    """``values`` as a float64 vector; ``ValueError`` for non-finite entries or fewer than ``minimum``."""
    array = (values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor)
             else np.asarray(values, dtype=np.float64)).reshape(-1)
    if len(array) < minimum:
        raise ValueError(f"{name} has {len(array)} values; give at least {minimum}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values ({int((~np.isfinite(array)).sum())} of {len(array)}); "
                         f"drop or fix them first")
    return array


def _check_options(draws: object, confidence: object, method: object, seed: object) -> None:
    if isinstance(draws, bool) or not isinstance(draws, Integral) or draws < 100:
        raise ValueError(f"draws={draws!r} is not valid; give a whole number >= 100")
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is not valid; give a number in (0, 1), e.g. 0.95")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method={method!r} is not valid; valid methods: {BOOTSTRAP_METHODS}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; give a whole number >= 0")


def bootstrap(values: Values, statistic: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
              draws: int = 2000, confidence: float = 0.95, method: str = "percentile", seed: int = 0) -> Estimate:
    """The statistic of ``values`` and its bootstrap interval, resampling the values (units) with replacement.

    Args:
        values: one number per unit (image, split, seed, pair difference); at least 2, all finite.
        statistic: maps ``[draws, n]`` resamples to ``[draws]`` statistics along the last dimension
            (default: the mean, ``lambda x: x.mean(-1)``); it must also accept ``[n]`` for the estimate.
        draws: bootstrap resamples (default 2000; at least 100).
        confidence: the interval's level (default 0.95).
        method: ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated: better when the
            statistic's distribution is skewed; its acceleration comes from the jackknife).
        seed: seeds the resampling (default 0): the same call gives the same interval.

    Returns:
        An :class:`Estimate`.

    Raises:
        ValueError: fewer than 2 values, NaN or infinite values, or an option out of range.
    """
    _check_options(draws, confidence, method, seed)
    data = torch.from_numpy(_as_array("values", values, 2))
    statistic = statistic or (lambda x: x.mean(-1))
    generator = torch.Generator().manual_seed(seed)
    resampled = statistic(data[torch.randint(0, len(data), (draws, len(data)), generator=generator)])
    estimate = float(statistic(data))
    alpha = (1 - confidence) / 2
    if method == "percentile":
        quantiles = (alpha, 1 - alpha)
    else:
        below = float((resampled < estimate).double().mean()) + 0.5 * float((resampled == estimate).double().mean())
        bias = scipy_stats.norm.ppf(min(max(below, 1e-9), 1 - 1e-9))
        leave_one_out = torch.stack([statistic(torch.cat([data[:i], data[i + 1:]])) for i in range(len(data))])
        deviations = leave_one_out.mean() - leave_one_out
        denominator = 6 * float((deviations**2).sum()) ** 1.5
        acceleration = float((deviations**3).sum()) / denominator if denominator else 0.0
        quantiles = tuple(float(scipy_stats.norm.cdf(bias + (bias + z) / (1 - acceleration * (bias + z))))
                          for z in scipy_stats.norm.ppf([alpha, 1 - alpha]))
    low, high = (float(resampled.quantile(q)) for q in quantiles)
    return Estimate(estimate, low, high, len(data), f"bootstrap {method}", confidence)


def paired_difference(first: Values, second: Values, *, draws: int = 2000, confidence: float = 0.95,
                      method: str = "percentile", seed: int = 0) -> Estimate:
    """The mean of ``first - second`` over paired units, with its bootstrap interval (resampling the pairs).

    Use it wherever two arms are measured on the same units (the same images, splits or seeds): the
    units' shared variation cancels, so the interval is narrower than that of two separate means.

    Args:
        first, second: one number per unit each, in the same unit order.
        draws, confidence, method, seed: as :func:`bootstrap`.

    Raises:
        ValueError: different lengths, fewer than 2 pairs, NaN or infinite values.
    """
    a, b = _as_array("first", first, 2), _as_array("second", second, 2)
    if len(a) != len(b):
        raise ValueError(f"first has {len(a)} values and second {len(b)}; paired arms need one value each per unit")
    return bootstrap(a - b, draws=draws, confidence=confidence, method=method, seed=seed)


def independent_difference(first: Values, second: Values, *, draws: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> Estimate:
    """``mean(first) - mean(second)`` of two independent samples, each resampled on its own (percentile interval).

    Use it where the two arms share no units (the 96 conv1 filters of two networks); where they do, use
    :func:`paired_difference`.

    Args:
        first, second: one number per unit each (at least 2 each, finite).
        draws, confidence, seed: as :func:`bootstrap`.

    Raises:
        ValueError: fewer than 2 values in an arm, NaN or infinite values, or an option out of range.
    """
    _check_options(draws, confidence, "percentile", seed)
    a, b = (torch.from_numpy(_as_array(name, values, 2)) for name, values in (("first", first), ("second", second)))
    generator = torch.Generator().manual_seed(seed)
    resampled = (a[torch.randint(0, len(a), (draws, len(a)), generator=generator)].mean(1)
                 - b[torch.randint(0, len(b), (draws, len(b)), generator=generator)].mean(1))
    alpha = (1 - confidence) / 2
    low, high = (float(resampled.quantile(q)) for q in (alpha, 1 - alpha))
    return Estimate(float(a.mean() - b.mean()), low, high, len(a) + len(b), "bootstrap percentile (two samples)",
                    confidence)


def t_interval(values: Values, *, confidence: float = 0.95) -> Estimate:
    """The mean of a few values with Student's t interval (for 2-10 seeds or splits, too few to bootstrap).

    Raises:
        ValueError: fewer than 2 values, or NaN or infinite values.
    """
    _check_options(100, confidence, "percentile", 0)
    array = _as_array("values", values, 2)
    mean, std = float(array.mean()), float(array.std(ddof=1))
    half = float(scipy_stats.t.ppf(1 - (1 - confidence) / 2, len(array) - 1)) * std / math.sqrt(len(array))
    return Estimate(mean, mean - half, mean + half, len(array), "t", confidence)


def seed_band(values: Values) -> SeedBand:
    """What seeds alone change: the mean, sample std (``ddof=1``) and range (max - min) of one value per seed.

    Raises:
        ValueError: fewer than 2 values (one seed has no band), or NaN or infinite values.
    """
    array = _as_array("values", values, 2)
    return SeedBand(tuple(float(value) for value in array), float(array.mean()), float(array.std(ddof=1)),
                    float(array.max() - array.min()))


def mean_std(values: Values) -> tuple[float, float | None]:
    """``(mean, sample std)`` of ``values`` (``ddof=1``; ``None`` for a single value).

    Raises:
        ValueError: no values, or NaN or infinite values.
    """
    array = _as_array("values", values, 1)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else None


def format_mean_std(values: Values, *, scale: float = 1.0, digits: int = 1) -> str:
    """``"45.0 ± 0.6"`` (the sample std, :func:`mean_std`), or the mean alone for a single value; each times ``scale``."""
    mean, std = mean_std(values)
    return f"{scale * mean:.{digits}f}" + ("" if std is None else f" ± {scale * std:.{digits}f}")
