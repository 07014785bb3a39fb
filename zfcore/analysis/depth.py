"""C8 at the full budget: Table 3's cuts trained for 28 epochs, read against the seed band, image by image.

Zeiler & Fergus (2014, arXiv 1311.2901) retrain their network with layers removed (§5.1, Table 3) and
conclude (§6) that "having a minimum depth to the network, rather than any individual section, is vital to
the model's performance" (C8). The book's 6-epoch ablations (:mod:`zfcore.analysis.ablations`) cannot test
that: at 6 epochs the unmodified network is still underfit, and a smaller network simply learns faster. The
``verdict-runs`` experiment (:func:`zfcore.experiments.verdict_runs`) trains the cuts at the reference
run's full budget (28 epochs, 200 classes), with two more seeds of the reference, a dropout-0 run (removing
fc6-fc7 also removes their dropout) and a parameter-matched shallow network.

Every run records which of the 10,000 validation images it gets right (``val_correct``), so a run is
compared with the seeds image by image: its difference to the seeds' mean is a paired bootstrap over the
images (:func:`zfcore.stats.paired_difference`), and it is *real* only when that interval excludes 0 **and**
the difference is larger than the seeds' own range (:data:`SEEDS`: the reference and its two reseeded runs).

:func:`depth_table` gives the rows; :func:`c8_verdict` the verdict, by the rule of :data:`C8_RULE`;
:func:`seed_band_table` the seed band of every accuracy the runs record; :func:`full_budget_reading` what the
recorded rows say, the two controls included, as the chapter's paragraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from zfcore.analysis.ablations import Table
from zfcore.stats import Estimate, SeedBand, paired_difference, seed_band
from zfcore.store import unpack_flags
from zfcore.verdicts import Verdict, pending

__all__ = ["AGREE_RATIO", "BAND_ACCURACIES", "BOTH", "C8_RULE", "CHANGES", "CONTROLS", "SECTIONS_CUT", "SEEDS",
           "DepthRow", "c8_verdict", "depth_table", "full_budget_reading", "seed_band_table", "shown_table"]

SEEDS = ("book-seed0", "book-seed1", "book-seed2")
"""The reference recipe at three seeds: the seed band every other run is read against."""
SECTIONS_CUT = ("no-fc6-fc7", "no-conv3-conv4")
"""One section removed: the fully connected layers 6-7, or the middle convolutions 3-4 (Table 3)."""
BOTH = "no-conv3-conv4-fc6-fc7"
"""Both sections removed: the 4-layer network whose error the paper finds "dramatically worse"."""
CONTROLS = ("no-dropout", "no-conv3-conv4-matched")
"""Dropout 0 (what removing fc6-fc7's dropout alone does) and the conv3-conv4 cut widened back to the reference's
parameter count (depth or parameters?)."""
CHANGES = {"book-seed0": "the reference (seed 0)", "book-seed1": "seed 1", "book-seed2": "seed 2",
           "no-fc6-fc7": "fc6, fc7 removed (and their dropout)", "no-conv3-conv4": "conv3, conv4 removed",
           BOTH: "conv3, conv4, fc6, fc7 removed: 4 layers", "no-dropout": "dropout 0 (control)",
           "no-conv3-conv4-matched": "conv3, conv4 removed, the rest widened to 6.0 M parameters (control)"}
"""What each run changes, for the table."""
AGREE_RATIO = 0.5
"""C8 agrees when every single-section cut costs less than this share of the both-sections cut."""
C8_RULE = ("A run's difference is its val top-1 minus the 3 seeds' mean, with a paired 95 % bootstrap interval over "
           "the 10,000 validation images; it is *real* when that interval excludes 0 and it is larger than the seeds' "
           "range. **agree**: removing both sections is a real drop and each single-section cut costs less than "
           f"{AGREE_RATIO:g} of it; **partly**: removing both is a real drop, but a single section costs "
           f"{AGREE_RATIO:g} of it or more; **differ**: removing both is not a real drop. **pending** while a seed or "
           "one of the three cuts is not recorded. Fixed on 2026-12-02, before any cut at this budget was trained.")


BAND_ACCURACIES = {"val_top1": "val top-1, centre view", "val_top5": "val top-5, centre view",
                   "val_top1_10crop": "val top-1, 10 crops", "val_top5_10crop": "val top-5, 10 crops",
                   "train_top1_eval": "train top-1, eval mode"}
"""The accuracies a verdict run records, each with its name in the seed-band table."""


@dataclass(frozen=True)
class DepthRow:
    """One run against the seeds (accuracies as fractions; ``None`` while not recorded).

    Attributes:
        run: the run's name in ``verdict-runs``.
        val_top1: share of validation images right, from its per-image record (single centre view).
        val_top1_10crop, train_top1_eval: 10-crop val top-1, and train top-1 in eval mode (no dropout, no
            augmentation): how well it fits its training images.
        parameters: its parameter count.
        difference: ``val_top1`` minus the seeds' mean, with its paired interval (``None`` for a seed, or while
            the seeds are not all recorded).
        real: whether ``difference`` is real (see the module); ``None`` when there is no difference.
    """

    run: str
    val_top1: float | None = None
    val_top1_10crop: float | None = None
    train_top1_eval: float | None = None
    parameters: int | None = None
    difference: Estimate | None = None
    real: bool | None = None

    @property
    def pending(self) -> bool:
        return self.val_top1 is None


def _correct(run: str, record: Mapping[str, Any]) -> np.ndarray:
    """A record's per-image correctness; ``ValueError`` naming the run when it has none."""
    if "val_correct" not in record or "val_images" not in record:
        raise ValueError(f"runs[{run!r}] has no per-image record (val_correct); run the experiment's runner once "
                         f"more: it adds it to recorded runs whose weights it has")
    return unpack_flags(record["val_correct"], int(record["val_images"]))


def _seeds(runs: Mapping[str, Any]) -> tuple[np.ndarray | None, SeedBand | None]:
    """The seeds' per-image mean correctness and their band (``None`` until all of :data:`SEEDS` are recorded)."""
    if any(seed not in runs for seed in SEEDS):
        return None, None
    correct = np.stack([_correct(seed, runs[seed]) for seed in SEEDS]).astype(float)
    return correct.mean(0), seed_band(correct.mean(1))


def seed_band_table(results: Mapping[str, Any]) -> str:
    """The 28-epoch recipe's seed band (:data:`SEEDS`) for each accuracy of :data:`BAND_ACCURACIES`, in Markdown:
    each seed's value, the mean ± sample std and the range (max − min), in %; a seed not yet recorded shows as
    *pending*, and so do its row's mean and range.

    Args:
        results: the content of ``data/experiments/verdict-runs.json``.

    Raises:
        ValueError: ``results`` without ``runs``.
    """
    runs = _runs(results)
    rows = ["| accuracy | " + " | ".join(f"`{seed}`" for seed in SEEDS) + " | mean ± std | range (points) |",
            "|---" * (len(SEEDS) + 3) + "|"]
    for key, name in BAND_ACCURACIES.items():
        values = [runs[seed].get(key) if seed in runs else None for seed in SEEDS]
        cells = ["pending" if value is None else f"{100 * value:.2f} %" for value in values]
        if None in values:
            cells += ["pending", "pending"]
        else:
            band = seed_band(values)
            cells += [f"{100 * band.mean:.2f} ± {100 * band.std:.2f} %", f"{100 * band.spread:.2f}"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _runs(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """``results["runs"]``; ``ValueError`` with the fix when ``results`` is not a verdict-runs result."""
    if not isinstance(results, Mapping) or not isinstance(results.get("runs"), Mapping):
        raise ValueError(f"results={type(results).__name__} is not valid; give the content of verdict-runs.json, a "
                         f"mapping with 'runs' (run name -> record)")
    return results["runs"]


def depth_table(results: Mapping[str, Any], *, seed: int = 0) -> tuple[tuple[DepthRow, ...], SeedBand | None]:
    """The seeds, the three cuts and the two controls of ``verdict-runs``, each against the seeds' mean.

    Args:
        results: the content of ``data/experiments/verdict-runs.json`` (its ``runs``: name -> record).
        seed: the bootstrap's seed.

    Returns:
        ``(rows, band)``: one :class:`DepthRow` per run of :data:`SEEDS`, :data:`SECTIONS_CUT`, :data:`BOTH`
        and :data:`CONTROLS` (pending ones empty), and the seed band (``None`` until all seeds are recorded).

    Raises:
        ValueError: ``results`` without ``runs``, or a recorded run without its per-image record.
    """
    runs = _runs(results)
    seed_mean, band = _seeds(runs)
    rows = []
    for run in (*SEEDS, *SECTIONS_CUT, BOTH, *CONTROLS):
        if run not in runs:
            rows.append(DepthRow(run))
            continue
        record, correct = runs[run], _correct(run, runs[run])
        difference = real = None
        if seed_mean is not None and run not in SEEDS:
            difference = paired_difference(correct.astype(float), seed_mean, seed=seed)
            real = _is_real(difference, band)
        rows.append(DepthRow(run, float(correct.mean()), record.get("val_top1_10crop"), record.get("train_top1_eval"),
                             record.get("parameters"), difference, real))
    return tuple(rows), band


def shown_table(rows: tuple[DepthRow, ...]) -> Table:
    """:func:`depth_table`'s rows as the chapter's table (accuracies in %, differences in points)."""
    def percent(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f} %"

    cells = []
    for row in rows:
        if row.pending:
            cells.append((f"`{row.run}`", CHANGES[row.run], *("pending",) * 6))
            continue
        difference = "–" if row.difference is None else row.difference.format(scale=100, digits=1)
        cells.append((f"`{row.run}`", CHANGES[row.run], f"{row.parameters:,}", percent(row.val_top1),
                      percent(row.val_top1_10crop), percent(row.train_top1_eval), difference,
                      "–" if row.real is None else "yes" if row.real else "no"))
    return Table(("run", "what changed", "parameters", "val top-1", "val top-1, 10 crops", "train top-1 (eval mode)",
                  "Δ val top-1 vs the seeds [95 % CI], points", "real?"), tuple(cells))


def c8_verdict(results: Mapping[str, Any], *, seed: int = 0) -> Verdict:
    """C8 ("a minimum depth, rather than any individual section, is vital", §6) by the rule of :data:`C8_RULE`.

    Args:
        results: the content of ``data/experiments/verdict-runs.json``.
        seed: the bootstrap's seed.

    Returns:
        The :class:`~zfcore.verdicts.Verdict`: the both-sections cut's difference as the estimate, the dropout-0
        run as the control, the single cuts and the parameter-matched run in ``details``; ``pending`` (naming
        the runs) while a seed or a cut is not recorded.

    Raises:
        ValueError: as :func:`depth_table`.
    """
    rows, band = depth_table(results, seed=seed)
    by_run = {row.run: row for row in rows}
    measure = (f"val top-1 of `{BOTH}` (conv3, conv4, fc6 and fc7 removed) minus the 3 seeds' mean, beside each "
               f"single-section cut (`{SECTIONS_CUT[0]}`, `{SECTIONS_CUT[1]}`), at the reference's full budget")
    control = (f"`{CONTROLS[0]}` (dropout 0: what removing fc6-fc7's dropout alone does) and `{CONTROLS[1]}` (the "
               f"conv3-conv4 cut widened back to the reference's parameter count)")
    missing = [run for run in (*SEEDS, *SECTIONS_CUT, BOTH) if by_run[run].pending]
    if missing:
        return pending("C8", measure=measure, control=control, rule=C8_RULE,
                       waiting_for="the verdict runs " + ", ".join(f"`{run}`" for run in missing))
    both = by_run[BOTH]
    singles = [by_run[run] for run in SECTIONS_CUT]
    largest = max(singles, key=lambda row: abs(row.difference.value))
    ratio = abs(largest.difference.value) / abs(both.difference.value) if both.difference.value else float("inf")
    drop = both.real and both.difference.value < 0
    outcome = "differ" if not drop else "agree" if ratio < AGREE_RATIO else "partly"
    points = lambda row: f"{100 * row.difference.value:+.1f} points"  # noqa: E731
    reason = {"differ": f"removing both sections changes val top-1 by {points(both)}, not a real drop",
              "agree": f"removing both sections costs {points(both)}, each section alone at most {points(largest)} "
                       f"({ratio:.2f} of it)",
              "partly": f"removing both sections costs {points(both)}, but `{largest.run}` alone costs "
                        f"{points(largest)} ({ratio:.2f} of it)"}[outcome]
    dropout = by_run[CONTROLS[0]]
    details = {"seed_band": {"values": list(band.values), "mean": band.mean, "spread": band.spread},
               "ratio": ratio, **{row.run: {"difference": row.difference.value, "low": row.difference.low,
                                            "high": row.difference.high, "real": row.real}
                                  for row in rows if row.difference is not None}}
    return Verdict("C8", measure, both.difference, control, None if dropout.pending else dropout.difference,
                   C8_RULE, outcome, reason + ".", details=details, scale=100, digits=1, unit=" points")


def _points(estimate: Estimate) -> str:
    """``"-2.7 [-3.4, -2.0] points"``: a difference in accuracy, signed, in points."""
    value, low, high = (f"{100 * number:+.1f}" for number in (estimate.value, estimate.low, estimate.high))
    return f"{value} [{low}, {high}] points"


def _is_real(estimate: Estimate, band: SeedBand) -> bool:
    """The module's rule for a difference: its interval excludes 0 and it is larger than the seeds' range."""
    return estimate.excludes(0.0) and abs(estimate.value) > band.spread


def _change(row: DepthRow) -> str:
    """``"-2.7 [-3.4, -2.0] points, a real drop"`` for a row with a difference."""
    direction = "drop" if row.difference.value < 0 else "gain"
    return f"{_points(row.difference)}, {'a real ' + direction if row.real else 'not a real difference'}"


def _pending(*rows: DepthRow) -> str:
    """``"`a` is pending"`` or ``"`a` and `b` are pending"`` for the pending ones of ``rows``."""
    names = [f"`{row.run}`" for row in rows if row.pending]
    return " and ".join(names) + (" is pending" if len(names) == 1 else " are pending")


def _fit(row: DepthRow, seeds: list[DepthRow]) -> str:
    """How well ``row`` fits its training images against the seeds (train top-1 in eval mode)."""
    low, high = (f(seed.train_top1_eval for seed in seeds) for f in (min, max))
    if row.train_top1_eval is None or None in (low, high):
        return "its train top-1 in eval mode is not recorded"
    relation = ("more closely than" if row.train_top1_eval > high else "less closely than"
                if row.train_top1_eval < low else "as closely as")
    return (f"it fits its training images {relation} the seeds (train top-1 in eval mode "
            f"{100 * row.train_top1_eval:.1f} %, the seeds {100 * low:.1f}–{100 * high:.1f} %)")


def full_budget_reading(results: Mapping[str, Any], *, seed: int = 0) -> list[str]:
    """What the full-budget table says, as markdown paragraphs, each from the recorded runs only.

    1. **One section at a time**: each of :data:`SECTIONS_CUT` against the seeds, and how well it fits its
       training images.
    2. **The dropout control**: ``no-dropout`` against the seeds, and ``no-fc6-fc7`` against ``no-dropout``
       image by image (neither has dropout in front of fc8, so what is left is the layers' own effect).
    3. **Depth or parameters**: ``no-conv3-conv4-matched`` against the seeds and against the plain cut, image by
       image, and what that says about conv3-conv4's depth at this budget.
    4. **Both sections**: the 4-layer network, on which :data:`C8_RULE` decides, and against ``no-dropout`` image by
       image (it has no dropout either).
    5. **What the interval covers**: a paired interval is over the images of one run of each change, so the rule
       also asks for the seeds' range.

    A paragraph whose runs are not all recorded says which are pending and what waits on them. Two runs compared
    directly follow the module's rule for *real* (interval excludes 0, larger than the seeds' range).

    Args:
        results: the content of ``data/experiments/verdict-runs.json``.
        seed: the bootstrap's seed.

    Returns:
        The paragraphs, in the order above; only the last one while a seed is missing.

    Raises:
        ValueError: as :func:`depth_table`.
    """
    rows, band = depth_table(results, seed=seed)
    runs, by_run = _runs(results), {row.run: row for row in rows}
    caveat = ("**What the interval covers.** Each change is one run, and its interval resamples the 10,000 validation "
              "images: it says how surely that run differs from the seeds' mean on these images, not how much a "
              "second seed of the change would move. That is why a difference must also exceed the seeds' range to "
              "be called real.")
    if band is None:
        return [f"**Pending.** The seeds {', '.join(f'`{run}`' for run in SEEDS if by_run[run].pending)} are not "
                "recorded yet; every difference is read against the three seeds, so none is given.", caveat]
    seeds = [by_run[run] for run in SEEDS]

    def direct(first: str, second: str) -> tuple[Estimate, bool]:
        estimate = paired_difference(_correct(first, runs[first]).astype(float),
                                     _correct(second, runs[second]).astype(float), seed=seed)
        return estimate, _is_real(estimate, band)

    singles = [f"`{row.run}` is pending." if row.pending else f"`{row.run}`: {_change(row)}; {_fit(row, seeds)}."
               for row in (by_run[run] for run in SECTIONS_CUT)]
    paragraphs = ["**One section at a time.** " + " ".join(singles)]

    dropout, fc_cut = by_run[CONTROLS[0]], by_run[SECTIONS_CUT[0]]
    if dropout.pending or fc_cut.pending:
        waiting = _pending(dropout, fc_cut)
        paragraphs.append(f"**The dropout control.** {waiting}: until both are recorded, the effect of "
                          f"removing fc6–fc7 cannot be split between the layers and the dropout in front of them.")
    else:
        layers, real = direct(fc_cut.run, dropout.run)
        paragraphs.append(
            f"**The dropout control.** Dropout 0 alone (`{dropout.run}`): {_change(dropout)}; {_fit(dropout, seeds)}. "
            f"Neither it nor `{fc_cut.run}` has dropout in front of fc8, so `{fc_cut.run}` minus `{dropout.run}`, "
            f"image by image, is what removing the layers themselves does: {_points(layers)}, "
            + ("a real difference: fc6–fc7 matter beyond the dropout in front of them." if real else
               "not a real difference: what removing fc6–fc7 does is what removing their dropout does."))

    matched, plain = by_run[CONTROLS[1]], by_run[SECTIONS_CUT[1]]
    if matched.pending or plain.pending:
        waiting = _pending(matched, plain)
        paragraphs.append(f"**Depth or parameters.** {waiting}: until both are recorded, removing "
                          "conv3–conv4 cannot be told apart from removing their parameters.")
    else:
        widened, real = direct(matched.run, plain.run)
        reading = ("at this budget, conv3–conv4's depth is worth less than the parameters they hold"
                   if matched.real and matched.difference.value > 0 else
                   "even with their parameters given back, the network without conv3–conv4 is worse: here their "
                   "depth matters beyond their parameter count" if matched.real else
                   "given their parameters back, the network without conv3–conv4 matches the reference: at this "
                   "budget their depth is not needed")
        paragraphs.append(
            f"**Depth or parameters.** `{matched.run}` removes conv3–conv4 and widens every other layer by one factor "
            f"to {matched.parameters:,} parameters (the reference: {seeds[0].parameters:,}): {_change(matched)}; "
            f"{_fit(matched, seeds)}. Against the plain cut, image by image: {_points(widened)}, "
            f"{'a real' if real else 'not a real'} difference. So {reading}. This is a control: C8's rule is decided "
            f"on `{BOTH}`.")

    both = by_run[BOTH]
    if both.pending:
        paragraphs.append(f"**Both sections.** `{BOTH}`, the 4-layer network on which the rule decides C8, is pending, "
                          "and so is the verdict.")
        return paragraphs + [caveat]
    if dropout.pending:
        beyond = f"`{dropout.run}` is pending, so its drop cannot yet be split from the dropout it also removes."
    else:
        layers, real = direct(both.run, dropout.run)
        reading = ("a real drop: the four layers cost more than their dropout." if real and layers.value < 0 else
                   "a real gain: without dropout, the 4-layer network does better than the full one." if real else
                   f"not a real difference: it does as well as `{dropout.run}`.")
        beyond = f"It has no dropout either, so against `{dropout.run}`, image by image: {_points(layers)}, {reading}"
    paragraphs.append(f"**Both sections.** `{BOTH}`, the 4-layer network: {_change(both)}; {_fit(both, seeds)}. "
                      f"{beyond} The verdict below applies the rule to it and to the single cuts.")
    return paragraphs + [caveat]
