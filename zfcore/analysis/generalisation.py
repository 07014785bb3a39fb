"""Table 4 and Fig. 9 as one run, and the C9 verdict (Zeiler & Fergus 2014, §5.2).

* :func:`measure_transfer`: the frozen-fc7 softmax (the paper's "pretrained" row), fine-tuning and training from
  scratch (:mod:`zfcore.analysis.transfer`), at each size on the paper's splits. Given step grids, each network arm
  trains for the step count chosen on held-out training images of the first split (:mod:`zfcore.analysis.step_choice`).
* :func:`c9_verdict`: the frozen-fc7 softmax (and the layer chosen by cross-validation) against the network trained
  from scratch, paired over the splits, with the baseline's convergence checked.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from zfcore.analysis.journal import Journal
from zfcore.analysis.probes import SplitScores, frozen_transfer, in_points, paired_split_difference, split_train_per_class
from zfcore.analysis.step_choice import CONVERGED_WITHIN, StepChoice, check_step_grid, choose_steps
from zfcore.analysis.transfer import PAPER, NetworkRecipe, learning_curve, network_transfer, pooled_features
from zfcore.data.caltech import Split
from zfcore.models import ZFNet
from zfcore.profiles import TrainConfig
from zfcore.stats import t_interval
from zfcore.verdicts import Verdict, pending

__all__ = ["C9_WIDE_MARGIN", "c9_verdict", "control_minus_reference", "measure_transfer"]

C9_WIDE_MARGIN = 0.10
"""C9: the pretrained features beat training from scratch "widely" when the paired interval of their margin lies
above 10 points of mean per-class accuracy (the paper's margins on Caltech-101: 61.0 points at 15 and 40.0 at 30
training images per class)."""


def measure_transfer(model: ZFNet, config: TrainConfig, pixels: np.ndarray, labels: np.ndarray, *,
                     mean_image: torch.Tensor | None = None, frozen_sizes: Sequence[int] = (1, 2, 5, 10, 15, 30),
                     frozen_seeds: Sequence[int] = range(5), network_sizes: Sequence[int] = (15, 30),
                     network_seeds: Sequence[int] = range(1), scratch_sizes: Sequence[int] = (1, 5, 15, 30),
                     finetune_recipe: NetworkRecipe = NetworkRecipe(lr=0.02, pretrained_lr_scale=0.1),
                     scratch_recipe: NetworkRecipe = NetworkRecipe(lr=0.02, pretrained_lr_scale=1.0),
                     finetune_grid: Sequence[int] | None = None, scratch_grid: Sequence[int] | None = None,
                     device: torch.device | str = "cpu", journal: Journal | None = None) -> dict[str, Any]:
    """Table 4 and Fig. 9 in one run: the frozen-fc7 softmax, fine-tuning and training from scratch.

    Args:
        model: the pretrained network; config: its recipe (the architecture built for ``"scratch"``).
        pixels, labels: every image of the dataset (:func:`~zfcore.analysis.transfer.dataset_pixels`).
        mean_image: the preprocessing's mean image, else ``None``.
        frozen_sizes, frozen_seeds: training images per class and splits of the frozen softmax (cheap).
        network_sizes: sizes of the fine-tuning and from-scratch rows; network_seeds: their splits (costly).
        scratch_sizes: sizes of Fig. 9's from-scratch curve (with ``network_seeds``).
        finetune_recipe, scratch_recipe: the :class:`~zfcore.analysis.transfer.NetworkRecipe` of each.
        finetune_grid, scratch_grid: step counts to choose each arm's steps from, per size, on held-out training
            images of the first split (:func:`~zfcore.analysis.step_choice.choose_steps`); ``None``: the recipe's
            ``steps`` at every size.
        device: where the networks train.
        journal: where each network's finished split is recorded, and read back from when the run is
            repeated (:func:`~zfcore.analysis.transfer.network_transfer`); the held-out runs of a step choice too.

    Returns:
        A JSON-ready dict: ``config``, ``frozen``/``finetune``/``scratch`` (lists of
        :meth:`SplitScores.as_dict`, the networks' rows with their ``steps``), ``step_choice`` (per arm with a grid,
        per size: :meth:`StepChoice.as_dict`), ``paper``, ``seconds``.

    Raises:
        ValueError: a bad grid; a grid with a size of fewer than 2 training images per class; as the measurements.
    """
    started = time.perf_counter()
    grids = {mode: None if grid is None else check_step_grid(f"{mode}_grid", grid)
             for mode, grid in (("finetune", finetune_grid), ("scratch", scratch_grid))}
    scratch_sizes = sorted(set(network_sizes) | set(scratch_sizes))
    for mode, sizes in (("finetune", network_sizes), ("scratch", scratch_sizes)):
        if grids[mode] is not None and min(sizes) < 2:
            raise ValueError(f"{mode}_grid needs at least 2 training images per class at every size, to hold some "
                             f"out; sizes={tuple(sizes)!r}: drop the sizes below 2 or the grid")
    choices: dict[str, dict[str, StepChoice]] = {mode: {} for mode, grid in grids.items() if grid is not None}

    def arm(mode: str, source: ZFNet | TrainConfig, recipe: NetworkRecipe, sizes: Sequence[int]) -> list[dict[str, Any]]:
        def score(splits: list[Split]) -> SplitScores:
            if grids[mode] is not None:
                choice = choose_steps(source, pixels, labels, splits[0], mode=mode, recipe=recipe,
                                      step_grid=grids[mode], mean_image=mean_image, device=device, journal=journal)
                choices[mode][str(choice.train_per_class)] = choice
                steps[split_train_per_class(labels, splits)] = choice.chosen
            return network_transfer(source, pixels, labels, splits, mode=mode,
                                    recipe=replace(recipe, steps=steps.get(split_train_per_class(labels, splits),
                                                                           recipe.steps)),
                                    mean_image=mean_image, device=device, journal=journal)

        steps: dict[int, int] = {}
        rows = learning_curve(labels, sizes, score, seeds=network_seeds)
        return [{**row.as_dict(), "steps": steps.get(row.train_per_class, recipe.steps)} for row in rows]

    finetune = arm("finetune", model, finetune_recipe, network_sizes)
    scratch = arm("scratch", config, scratch_recipe, scratch_sizes)
    fc7 = pooled_features(model, pixels, mean_image=mean_image)["fc7"]  # all layers: the cache the probes share
    # the frozen softmax last: a run stopped among the networks goes on with them at once (journal)
    frozen = learning_curve(labels, frozen_sizes, lambda splits: frozen_transfer(
        fc7, labels, splits, method="frozen layers 1-7 + new softmax"), seeds=frozen_seeds)
    return {
        "config": {"images": len(labels), "classes": int(labels.max()) + 1, "input_size": int(pixels.shape[1]),
                   "test_per_class": 50, "frozen_sizes": list(frozen_sizes), "frozen_seeds": list(frozen_seeds),
                   "network_sizes": list(network_sizes), "scratch_sizes": scratch_sizes,
                   "network_seeds": list(network_seeds), "finetune_recipe": asdict(finetune_recipe),
                   "scratch_recipe": asdict(scratch_recipe),
                   "step_grids": {mode: list(grid) for mode, grid in grids.items() if grid is not None},
                   "features": "fc7 (ReLU output), standardised",
                   "images_to_input": "shorter side to the input size, centre square (bilinear)"},
        "frozen": [scores.as_dict() for scores in frozen],
        "finetune": finetune,
        "scratch": scratch,
        "step_choice": {mode: {size: choice.as_dict() for size, choice in by_size.items()}
                        for mode, by_size in choices.items()},
        "paper": PAPER,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _row_at(rows: Sequence[Mapping[str, Any]], size: int) -> Mapping[str, Any] | None:
    """The row with ``size`` training images per class, or ``None``."""
    return next((row for row in rows if row["train_per_class"] == size), None)


def c9_verdict(transfer: Mapping[str, Any], *, shorter_scratch: Mapping[int, Mapping[str, Any]] | None = None,
               cv_layer: Sequence[Mapping[str, Any]] | None = None, confidence: float = 0.95) -> Verdict:
    """C9 (§5.2, Table 4: with layers 1-7 fixed and a new softmax on top the ImageNet features beat the best
    reported results, while the same network trained on Caltech alone "does terribly") from the transfer results.

    Measure: the frozen-fc7 softmax (the paper's protocol) minus the same architecture trained from scratch on
    Caltech-101, paired over the splits (the same seeds draw the same images), at every size both were run at;
    beside it the same margin for the layer chosen by cross-validation on the training images (``cv_layer``) and
    for the fine-tuned network (details only). The absolute comparison with the paper's earlier methods is not
    testable at 64 px and is not scored.

    Rule (:data:`C9_WIDE_MARGIN`, :data:`~zfcore.analysis.step_choice.CONVERGED_WITHIN`), the intervals paired t
    intervals over the splits; the baseline has converged when the last doubling of its steps changed its accuracy by
    less than 2 points at every size: on held-out training images where its steps were chosen on them
    (``transfer["step_choice"]``), else on the first split against ``shorter_scratch``:

    * ``agree``: fc7's margin lies above the wide margin at every size, and the baseline has converged;
    * ``partly``: fc7's margin lies above 0 at every size but not above the wide margin, or fc7 does not beat the
      baseline while the CV-chosen layer's margin lies above the wide margin at every size; the baseline converged;
    * ``differ``: at some size fc7's interval lies below the wide margin and reaches 0 or below (it does not beat
      the baseline), and the CV-chosen layer's interval lies below the wide margin at some size (a baseline trained
      longer only narrows a margin, so convergence is not needed here);
    * ``inconclusive``: the rest: intervals across a threshold, the CV-chosen layer not measured, or an ``agree``
      or ``partly`` margin measured against a baseline that was still improving;
    * ``pending``: no from-scratch rows on the frozen rows' splits.

    Args:
        transfer: a transfer result (:func:`measure_transfer`, as read from ``transfer.json``).
        shorter_scratch: for a transfer result without a step choice, shorter from-scratch recipes, steps -> their
            transfer result (first split), or ``None``.
        cv_layer: rows of the frozen softmax on the layer chosen by CV (``transfer-cv-layer.json``'s ``rows``).
        confidence: the intervals' level.

    Raises:
        ValueError: as :func:`~zfcore.analysis.probes.paired_split_difference`.
    """
    pretrained = PAPER["table4_caltech101"]["ImageNet-pretrained convnet"]
    scratch_paper = PAPER["table4_caltech101"]["Non-pretrained convnet"]
    sizes = [row["train_per_class"] for row in transfer["frozen"]
             if (other := _row_at(transfer["scratch"], row["train_per_class"])) is not None
             and len(set(row["seeds"]) & set(other["seeds"])) >= 2]
    wide, converged_limit = 100 * C9_WIDE_MARGIN, 100 * CONVERGED_WITHIN
    measure = ("new softmax on frozen fc7 (layers 1-7 fixed, the paper's protocol) minus the same architecture "
               "trained from scratch on Caltech-101, points of mean per-class accuracy, paired over the splits")
    control = "the same network trained from scratch on Caltech-101 alone (pretraining removed)"
    rule = (f"paired {100 * confidence:.0f} % t intervals of the margin over from scratch. agree: fc7's interval above "
            f"C9_WIDE_MARGIN = {wide:g} points at every size and the baseline converged (the last doubling of its steps "
            f"changed its accuracy by < CONVERGED_WITHIN = {converged_limit:g} points: on held-out training images "
            f"where its steps were chosen there, else on the first split). partly: fc7 above 0 but not above "
            f"{wide:g} at every size, or fc7 not beating the baseline while the layer chosen by CV on training images "
            f"is above {wide:g} at every size, with a converged baseline. differ: fc7 does not beat the baseline "
            f"(interval below {wide:g} and reaching 0) at some size, and the CV-chosen layer is below {wide:g} at some "
            "size. Otherwise inconclusive")
    if not sizes:
        return pending("C9", measure=measure, control=control, rule=rule,
                       waiting_for="from-scratch rows on the frozen rows' splits")
    margins = {n: paired_split_difference(_row_at(transfer["frozen"], n), _row_at(transfer["scratch"], n),
                                          confidence=confidence) for n in sizes}
    cv_rows = {row["train_per_class"]: row for row in cv_layer or ()}
    cv_margins = {n: paired_split_difference(cv_rows[n], _row_at(transfer["scratch"], n), confidence=confidence)
                  for n in sizes if n in cv_rows}
    finetune_margins = {n: paired_split_difference(row, _row_at(transfer["scratch"], n), confidence=confidence)
                        for n in sizes if (row := _row_at(transfer.get("finetune", ()), n)) is not None}
    changes, held_out = _baseline_changes(transfer, sizes, shorter_scratch)
    converged = bool(changes) and set(changes) == set(sizes) and all(abs(c) < converged_limit for c in changes.values())
    steps = {n: _row_at(transfer["scratch"], n).get("steps", transfer["config"]["scratch_recipe"]["steps"])
             for n in sizes}
    fc7_wide = all(m.low > C9_WIDE_MARGIN for m in margins.values())
    fc7_beats = all(m.low > 0 for m in margins.values())
    fc7_fails = [n for n, m in margins.items() if m.high < C9_WIDE_MARGIN and m.low <= 0]
    cv_complete = set(cv_margins) == set(sizes)
    cv_wide = cv_complete and all(m.low > C9_WIDE_MARGIN for m in cv_margins.values())
    cv_narrow = [n for n, m in cv_margins.items() if m.high < C9_WIDE_MARGIN]
    where = "its held-out training images" if held_out else "the first split"
    baseline = (f"the last doubling of the from-scratch steps still changed {where} by "
                f"{', '.join(f'{c:+.1f}' for c in changes.values())} points" if changes and not converged
                else "nothing shows whether the from-scratch baseline converged" if not converged else "")
    longest = max(steps.values())
    longer = (f"the from-scratch steps chosen on held-out training images over a doubling grid that reaches "
              f"convergence (a doubling changing the held-out accuracy by less than {converged_limit:g} points; "
              f"e.g. up to {4 * longest:,} steps)")
    settle = ""
    if fc7_wide or (fc7_beats and not fc7_fails):
        outcome = ("agree" if fc7_wide else "partly") if converged else "inconclusive"
        reason = (f"Frozen fc7 beats training from scratch {'widely' if fc7_wide else 'but not widely'} at every size"
                  + ("." if converged else f"; but {baseline}, so the margin may shrink."))
        settle = "" if converged else longer
    elif fc7_fails and cv_wide:
        outcome = "partly" if converged else "inconclusive"
        reason = (f"Frozen fc7 does not beat training from scratch at {', '.join(map(str, fc7_fails))} per class, "
                  f"but the layer chosen by CV ({', '.join(sorted(set(layer for n in sizes for layer in cv_rows[n].get('layers', ()))))}) "
                  f"beats it by more than {wide:g} points at every size"
                  + ("." if converged else f"; {baseline}, so that margin may shrink."))
        settle = "" if converged else (longer + f": if the CV-chosen layer still wins by more than {wide:g} points, "
                                       "partly; if not, differ")
    elif fc7_fails and cv_narrow:
        outcome = "differ"
        reason = (f"Neither frozen fc7 nor the layer chosen by CV beats training from scratch by {wide:g} points "
                  f"(fc7 does not beat it at {', '.join(map(str, fc7_fails))} per class); a longer-trained baseline "
                  "would only narrow the margins.")
    elif fc7_fails and not cv_complete:
        outcome = "inconclusive"
        reason = ("Frozen fc7 does not beat training from scratch, and the layer chosen by CV is not measured at "
                  "every size.")
        settle = "frozen transfer from the layer chosen by CV on training images, at every size"
    else:
        outcome = "inconclusive"
        spanning = _spanning_intervals(margins, cv_margins, C9_WIDE_MARGIN)
        reason = ((f"Frozen fc7 does not beat training from scratch at {', '.join(map(str, fc7_fails))} per class, and "
                   if fc7_fails else "") + "an interval spans a threshold of the rule: " + "; ".join(spanning.values()))
        reason = reason[0].upper() + reason[1:] + "."
        settle = (f"more splits at {', '.join(map(str, sorted(set(spanning))))} per class, to narrow the paired "
                  "intervals" + ("" if converged else f", against {longer}"))
    headline = max(sizes)
    paper = {str(n): {"pretrained": pretrained[str(n)][0], "non_pretrained": scratch_paper[str(n)][0],
                      "margin": round(pretrained[str(n)][0] - scratch_paper[str(n)][0], 1)}
             for n in sizes if str(n) in pretrained and str(n) in scratch_paper}
    details = {"sizes": sizes, "headline_size": headline,
               "fc7_minus_scratch": {str(n): in_points(m) for n, m in margins.items()},
               "cv_layer_minus_scratch": {str(n): in_points(m) | {"layers": cv_rows[n].get("layers")}
                                          for n, m in cv_margins.items()},
               "finetune_minus_scratch": {str(n): in_points(m) for n, m in finetune_margins.items()},
               "scratch_steps": {str(n): s for n, s in steps.items()},
               "scratch_change_on_doubling": {str(n): round(c, 2) for n, c in changes.items()},
               "scratch_steps_chosen_on": "held-out training images" if held_out else "not chosen here",
               "converged": converged, "paper": paper}
    scratch_row = _row_at(transfer["scratch"], headline)
    return Verdict("C9", measure + f" (estimate at {headline} per class; every size in the details)",
                   margins[headline], control,
                   t_interval([a / 100 for a in scratch_row["accuracy_percent"]], confidence=confidence),
                   rule, outcome, reason, settle=settle, details=details, scale=100, digits=1)


def _spanning_intervals(fc7: Mapping[int, Any], cv_layer: Mapping[int, Any], wide: float) -> dict[int, str]:
    """Per size, the margins over from scratch whose interval spans ``wide``, the threshold that leaves
    :func:`c9_verdict`'s rule undecided (an fc7 interval below it that reaches 0 is decided: fc7 does not beat the
    baseline), each in words, with 0 too where fc7's interval spans both."""
    spanning: dict[int, list[str]] = {}
    for name, margins in (("frozen fc7", fc7), ("the layer chosen by CV", cv_layer)):
        for n, m in sorted(margins.items()):
            if m.low <= wide <= m.high:
                crossed = ("0 and " if name == "frozen fc7" and m.low <= 0 else "") + f"{100 * wide:g}"
                spanning.setdefault(n, []).append(
                    f"{name} − scratch at {n} per class, {100 * m.value:+.1f} "
                    f"[{100 * m.low:+.1f}, {100 * m.high:+.1f}] points, across {crossed}")
    return {n: "; ".join(parts) for n, parts in spanning.items()}


def control_minus_reference(reference: Sequence[Mapping[str, Any]], control: Sequence[Mapping[str, Any]], *,
                            confidence: float = 0.95) -> dict[int, dict[str, float]]:
    """The control network's accuracy minus the reference's, paired over the splits, at every size both were measured
    at: e.g. the network trained without label smoothing against the reference, both read out from the layer chosen by
    CV (``transfer-cv-layer.json``'s ``rows`` of each), the test of whether label smoothing explains C9's margins.

    Returns:
        images per class -> :func:`~zfcore.analysis.probes.in_points` (points with the paired t interval).

    Raises:
        ValueError: as :func:`~zfcore.analysis.probes.paired_split_difference` (fewer than 2 shared splits).
    """
    by_size = {row["train_per_class"]: row for row in reference}
    return {row["train_per_class"]: in_points(paired_split_difference(row, by_size[row["train_per_class"]],
                                                                      confidence=confidence))
            for row in sorted(control, key=lambda row: row["train_per_class"]) if row["train_per_class"] in by_size}


def _baseline_changes(transfer: Mapping[str, Any], sizes: Sequence[int],
                      shorter_scratch: Mapping[int, Mapping[str, Any]] | None) -> tuple[dict[int, float], bool]:
    """Per size, the points of accuracy the from-scratch baseline's last doubling of steps changed, and whether they
    were measured on held-out training images (a step choice) rather than on the first split's test images."""
    choices = transfer.get("step_choice", {}).get("scratch", {})
    if choices:
        return {n: (record := StepChoice.from_dict(choices[str(n)])).held_out_accuracy[-1] * 100
                - record.held_out_accuracy[-2] * 100 for n in sizes
                if str(n) in choices and len(choices[str(n)]["steps"]) > 1}, True
    long_steps = transfer["config"]["scratch_recipe"]["steps"]
    shorter = [steps for steps in (shorter_scratch or {}) if steps < long_steps]
    if not shorter:
        return {}, False
    changes = {}
    for n in sizes:
        long_row, short_row = _row_at(transfer["scratch"], n), _row_at(shorter_scratch[max(shorter)]["scratch"], n)
        if short_row is not None:
            seed = short_row["seeds"][0]
            changes[n] = long_row["accuracy_percent"][long_row["seeds"].index(seed)] - short_row["accuracy_percent"][0]
    return changes, False
