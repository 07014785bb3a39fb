"""zfcore.stats: bootstrap intervals (percentile and BCa), paired differences, t intervals, seed bands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zfcore.stats import (Estimate, bootstrap, format_mean_std, independent_difference, mean_std, paired_difference,
                          seed_band,
                          t_interval)

pytestmark = pytest.mark.static  # needs no dataset


def test_bootstrap_percentile_is_seeded_and_covers_the_mean() -> None:
    values = torch.arange(100.0)
    estimate = bootstrap(values)
    assert estimate.value == 49.5 and estimate.low < 49.5 < estimate.high and estimate.high - estimate.low < 20
    assert (estimate.n, estimate.method, estimate.confidence) == (100, "bootstrap percentile", 0.95)
    assert bootstrap(values) == estimate  # seeded: the same call, the same interval
    assert bootstrap(values, seed=1) != estimate
    # the standard error of a mean of 0..99 is 29.01 / 10: the 95 % interval is about +-1.96 of it
    assert abs((estimate.high - estimate.low) / 2 - 1.96 * np.std(np.arange(100.0)) / 10) < 1.0
    assert bootstrap(values, confidence=0.5).high - bootstrap(values, confidence=0.5).low < estimate.high - estimate.low


def test_bootstrap_bca_corrects_a_skewed_statistic() -> None:
    values = np.random.default_rng(0).exponential(size=60)
    percentile = bootstrap(values, method="percentile")
    bca = bootstrap(values, method="bca")
    assert bca.method == "bootstrap bca" and bca.value == percentile.value
    assert bca.low > percentile.low and bca.high > percentile.high  # a right-skewed mean: BCa moves the interval up
    median = bootstrap(values, lambda x: x.median(-1).values)
    assert median.value == float(torch.from_numpy(values).median())


def test_paired_difference_removes_the_units_shared_variation() -> None:
    rng = np.random.default_rng(1)
    split_level = rng.normal(0.45, 0.05, size=5)  # what each split shares between the two arms
    first, second = split_level + 0.03 + rng.normal(0, 0.002, 5), split_level + rng.normal(0, 0.002, 5)
    paired = paired_difference(first, second)
    assert paired.excludes(0.0) and abs(paired.value - 0.03) < 0.005
    separate = t_interval(first).low - t_interval(second).high  # two intervals overlap: unpaired, no effect seen
    assert separate < 0
    with pytest.raises(ValueError, match="first has 5 values and second 4; paired arms need one value each per unit"):
        paired_difference(first, second[:4])


def test_t_interval_and_seed_band_of_a_few_runs() -> None:
    runs = [0.4093, 0.4121, 0.4050]
    interval = t_interval(runs)
    half = 4.302653 * np.std(runs, ddof=1) / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert interval.method == "t" and interval.n == 3
    assert interval.low == pytest.approx(np.mean(runs) - half) and interval.high == pytest.approx(np.mean(runs) + half)
    band = seed_band(runs)
    assert band.spread == pytest.approx(0.0071) and band.std == pytest.approx(np.std(runs, ddof=1)) and band.n == 3
    assert band.format(scale=100, unit=" %") == "40.9 ± 0.4 % (range 0.7 %, 3 seeds)"
    with pytest.raises(ValueError, match="values has 1 values; give at least 2"):
        seed_band([0.4])


def test_mean_std_is_the_sample_std_everywhere() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, None)
    assert format_mean_std([0.450, 0.444, 0.456], scale=100) == "45.0 ± 0.6"
    assert format_mean_std([0.398], scale=100) == "39.8"


@pytest.mark.parametrize("call, message", [
    (lambda: bootstrap([1.0]), "values has 1 values; give at least 2"),
    (lambda: bootstrap([1.0, float("nan")]), r"values holds NaN or infinite values \(1 of 2\)"),
    (lambda: bootstrap([1.0, 2.0], draws=10), "draws=10 is not valid; give a whole number >= 100"),
    (lambda: bootstrap([1.0, 2.0], confidence=95), "confidence=95 is not valid; give a number in"),
    (lambda: bootstrap([1.0, 2.0], method="normal"), r"method='normal' is not valid; valid methods: \('percentile', 'bca'\)"),
    (lambda: bootstrap([1.0, 2.0], seed=-1), "seed=-1 is not valid"),
    (lambda: mean_std([]), "values has 0 values; give at least 1"),
    (lambda: t_interval([1.0, float("inf")]), "NaN or infinite"),
])
def test_bad_inputs_are_refused_naming_the_value(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_estimate_formats_and_tests_a_value() -> None:
    estimate = Estimate(0.0412, 0.0398, 0.0426, 10000, "bootstrap percentile")
    assert estimate.format(scale=100, digits=2, unit=" %") == "4.12 % [3.98 %, 4.26 %]"
    assert str(estimate) == "0.041 [0.040, 0.043] (n = 10000, 95 % bootstrap percentile interval)"
    assert estimate.excludes(0.0) and not estimate.excludes(0.04)


def test_an_independent_difference_is_the_gap_of_the_means_and_its_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.normal(1.0, 1.0, 400), rng.normal(0.5, 1.0, 300)
    estimate = independent_difference(first, second)
    assert estimate.value == pytest.approx(first.mean() - second.mean())
    assert estimate.low < 0.5 < estimate.high and estimate.n == 700 and "two samples" in estimate.method
    assert not independent_difference(first, first).excludes(0.0)
    with pytest.raises(ValueError, match="second has 1 values; give at least 2"):
        independent_difference(first, [1.0])
