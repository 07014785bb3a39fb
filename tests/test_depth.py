"""zfcore.analysis.depth: C8 from the 28-epoch verdict runs, each run against the seed band image by image."""

from __future__ import annotations

import numpy as np
import pytest

from zfcore.analysis.depth import (BOTH, CONTROLS, SECTIONS_CUT, SEEDS, c8_verdict, depth_table, full_budget_reading,
                                   seed_band_table)
from zfcore.store import pack_flags

pytestmark = pytest.mark.static  # needs no dataset

IMAGES = 4000


def record(accuracy: float, seed: int) -> dict:
    """A run that gets ``accuracy`` of the images right: the same easy images as every run, plus its own noise."""
    rng = np.random.default_rng(seed)
    difficulty = np.random.default_rng(99).random(IMAGES)  # shared by every run, as real images are
    correct = difficulty < accuracy + 0.04 * (rng.random(IMAGES) - 0.5)
    return {"val_correct": pack_flags(correct), "val_images": IMAGES, "val_top1": float(correct.mean()),
            "val_top1_10crop": float(correct.mean()) + 0.02, "train_top1_eval": 0.66, "parameters": 1000}


def results(**accuracies: float) -> dict:
    """Seeds at 40 % (± noise) and the named runs (``no_fc6_fc7=0.39`` ...) at theirs."""
    runs = {name: record(0.40, index) for index, name in enumerate(SEEDS)}
    runs.update({name.replace("_", "-"): record(value, 10 + index)
                 for index, (name, value) in enumerate(accuracies.items())})
    return {"experiment": "verdict-runs", "version": 1, "runs": runs}


ALL_CUTS = dict(no_fc6_fc7=0.39, no_conv3_conv4=0.385, no_conv3_conv4_fc6_fc7=0.30, no_dropout=0.39,
                no_conv3_conv4_matched=0.395)


def test_a_large_drop_for_both_sections_and_small_single_cuts_agree() -> None:
    verdict = c8_verdict(results(**ALL_CUTS))
    assert verdict.outcome == "agree", verdict.reason
    assert verdict.estimate.value == pytest.approx(-0.10, abs=0.01) and verdict.estimate.high < 0
    assert verdict.control_estimate is not None and verdict.details["ratio"] < 0.5
    assert verdict.reason.startswith("removing both sections costs -") and "each section alone at most" in verdict.reason


def test_a_single_section_as_costly_as_both_is_partly() -> None:
    verdict = c8_verdict(results(**{**ALL_CUTS, "no_fc6_fc7": 0.33}))
    assert verdict.outcome == "partly" and "`no-fc6-fc7` alone costs" in verdict.reason


def test_no_real_drop_for_both_sections_differs() -> None:
    verdict = c8_verdict(results(**{**ALL_CUTS, "no_conv3_conv4_fc6_fc7": 0.405}))
    assert verdict.outcome == "differ" and "not a real drop" in verdict.reason


def test_a_difference_inside_the_seed_range_is_not_real_even_when_its_interval_excludes_zero() -> None:
    rows, band = depth_table(results(**ALL_CUTS))
    assert band is not None and band.n == 3
    for row in rows:
        if row.difference is not None:
            assert row.real == (row.difference.excludes(0.0) and abs(row.difference.value) > band.spread)
    assert {row.run: row.real for row in rows}[BOTH] is True


def test_missing_seeds_or_cuts_keep_the_verdict_pending_and_name_them() -> None:
    partial = results(no_dropout=0.39)
    del partial["runs"][SEEDS[2]]
    verdict = c8_verdict(partial)
    assert verdict.outcome == "pending" and verdict.estimate is None
    for run in (SEEDS[2], *SECTIONS_CUT, BOTH):
        assert f"`{run}`" in verdict.reason
    rows, band = depth_table(partial)
    assert band is None and all(row.difference is None for row in rows)
    assert [row.run for row in rows] == [*SEEDS, *SECTIONS_CUT, BOTH, *CONTROLS]


def test_bad_results_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="give the content of verdict-runs.json"):
        depth_table([1, 2])
    runs = results(**ALL_CUTS)
    del runs["runs"]["no-fc6-fc7"]["val_correct"]
    with pytest.raises(ValueError, match=r"runs\['no-fc6-fc7'\] has no per-image record"):
        c8_verdict(runs)


def test_the_seed_band_table_gives_every_accuracy_of_the_three_seeds_and_waits_for_a_missing_one() -> None:
    runs = results()
    for index, seed in enumerate(SEEDS):
        runs["runs"][seed] |= {"val_top5": 0.66 + 0.01 * index, "val_top5_10crop": 0.68}
    lines = seed_band_table(runs).splitlines()
    assert lines[0] == "| accuracy | `book-seed0` | `book-seed1` | `book-seed2` | mean ± std | range (points) |"
    assert len(lines) == 7 and lines[3] == "| val top-5, centre view | 66.00 % | 67.00 % | 68.00 % | 67.00 ± 1.00 % | 2.00 |"
    assert lines[5].endswith("| 68.00 % | 68.00 % | 68.00 % | 68.00 ± 0.00 % | 0.00 |")
    top1 = [runs["runs"][seed]["val_top1"] for seed in SEEDS]
    assert lines[2].endswith(f"| {100 * (max(top1) - min(top1)):.2f} |")
    del runs["runs"]["book-seed2"]
    assert seed_band_table(runs).splitlines()[3] == "| val top-5, centre view | 66.00 % | 67.00 % | pending | pending | pending |"
    with pytest.raises(ValueError, match="give the content of verdict-runs.json"):
        seed_band_table({"book-seed0": {}})


def test_the_reading_splits_the_fc_cut_from_its_dropout_and_depth_from_parameters() -> None:
    paragraphs = full_budget_reading(results(**ALL_CUTS))
    assert [paragraph.split("**")[1] for paragraph in paragraphs] == [
        "One section at a time.", "The dropout control.", "Depth or parameters.", "Both sections.",
        "What the interval covers."]
    single, dropout, matched, both, _ = paragraphs
    assert "`no-fc6-fc7`: -1." in single and "`no-conv3-conv4`: -1." in single and "a real drop" in single
    assert "train top-1 in eval mode 66.0 %" in single and "as closely as the seeds" in single
    # no-fc6-fc7 (39 %) and no-dropout (39 %) differ by noise only: the layers add nothing beyond their dropout
    assert "`no-fc6-fc7` minus `no-dropout`" in dropout and dropout.endswith("what removing their dropout does.")
    # the widened cut (39.5 %) is still below the seeds (40 %): not the "worth less than the parameters" reading
    assert "to 1,000 parameters (the reference: 1,000)" in matched and "worth less than" not in matched
    assert "`no-conv3-conv4-fc6-fc7`, the 4-layer network: -9." in both and "a real drop" in both
    assert "against `no-dropout`, image by image: -8." in both
    assert "the four layers cost more than their dropout" in both


def test_the_reading_follows_the_controls_either_way() -> None:
    fc_layers_matter = full_budget_reading(results(**{**ALL_CUTS, "no_dropout": 0.405}))[1]
    assert fc_layers_matter.endswith("a real difference: fc6–fc7 matter beyond the dropout in front of them.")
    widened_wins = full_budget_reading(results(**{**ALL_CUTS, "no_conv3_conv4_matched": 0.42}))[2]
    assert "+2." in widened_wins and "a real gain" in widened_wins
    assert "conv3–conv4's depth is worth less than the parameters they hold" in widened_wins
    widened_loses = full_budget_reading(results(**{**ALL_CUTS, "no_conv3_conv4_matched": 0.37}))[2]
    assert "their depth matters beyond their parameter count" in widened_loses
    widened_ties = full_budget_reading(results(**{**ALL_CUTS, "no_conv3_conv4_matched": 0.40}))[2]
    assert "not a real difference" in widened_ties.split("Against")[0] and "their depth is not needed" in widened_ties
    as_dropout = full_budget_reading(results(**{**ALL_CUTS, "no_conv3_conv4_fc6_fc7": 0.39}))[3]
    assert "not a real difference: it does as well as `no-dropout`." in as_dropout
    better_than_dropout = full_budget_reading(results(**{**ALL_CUTS, "no_conv3_conv4_fc6_fc7": 0.42}))[3]
    assert "a real gain: without dropout, the 4-layer network does better than the full one." in better_than_dropout


def test_the_reading_names_what_is_pending() -> None:
    single, dropout, matched, both, _ = full_budget_reading(results(no_fc6_fc7=0.39))
    assert "`no-conv3-conv4` is pending." in single and "`no-fc6-fc7`: " in single
    assert dropout.startswith("**The dropout control.** `no-dropout` is pending: until both are recorded")
    assert "`no-conv3-conv4-matched` and `no-conv3-conv4` are pending" in matched
    assert "is pending, and so is the verdict" in both
    without_control = {name: value for name, value in ALL_CUTS.items() if name != "no_dropout"}
    no_control = full_budget_reading(results(**without_control))[3]
    assert "`no-dropout` is pending, so its drop cannot yet be split" in no_control and "-9." in no_control
    no_seeds = results(**ALL_CUTS)
    del no_seeds["runs"][SEEDS[1]]
    pending, caveat = full_budget_reading(no_seeds)
    assert "`book-seed1`" in pending and "`book-seed0`" not in pending and caveat.startswith("**What the interval")
