"""Chapter 10 (beyond the paper): Adebayo et al.'s (2018) model-randomisation curves and image rows, the
distribution of signed similarities (which a sign flip can hide in a mean), and the chapter's tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from zfcore.analysis.maps import MEASURE_NAMES
from zfcore.plots.images import image_grid, to_display
from zfcore.plots.style import WIDTH
from zfcore.stats import bootstrap, format_mean_std

if TYPE_CHECKING:
    from zfcore.analysis.attribution import AttributionComparison
    from zfcore.analysis.sanity import RandomizationSimilarity
    from zfcore.analysis.switches import NeuronVsSwitches

SIGN_FREE_ROW = "\\|spearman_signed\\|"
"""The table row (pipes escaped for Markdown) that gives the signed Spearman's mean ``|ρ|`` [95 % interval over
images] and the share of images above :data:`zfcore.analysis.maps.SIGN_FREE_THRESHOLD`
(:func:`zfcore.analysis.maps.sign_free`)."""
SWITCH_COMPARISONS = {"different_channels": "same image, two different units",
                      "different_images": "same unit, two different images",
                      "switches_constant": "a unit vs its image's switches-only map (ones)",
                      "switches_random": "a unit vs its image's switches-only map (uniform [0, 1))",
                      "switches_zero_mean": "a unit vs its image's switches-only map (zero-mean normal)",
                      "switches_other_image": "a unit vs another image's switches-only map (ones)",
                      "zero_mean_other_image": "a unit vs another image's switches-only map (zero-mean)",
                      "constant_vs_random": "switches-only: ones vs uniform, same image"}
"""The rows of :func:`switches_table`: each comparison of :class:`~zfcore.analysis.switches.NeuronVsSwitches` in words."""
__all__ = ["SIGN_FREE_ROW", "SWITCH_COMPARISONS", "attribution_table", "randomization_curves",
           "randomization_examples", "randomization_panel", "signed_distribution", "similarity_table", "switches_table"]


def randomization_curves(result: "RandomizationSimilarity") -> Figure:
    """Adebayo et al.'s (2018) curves: similarity to the trained network's map against the randomised layer.

    One panel per measure; per method the mean over the images, a band of one standard deviation, and
    a dotted line at the baseline (the trained maps of two different images). The methods are named
    below the panels.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity`.
    """
    from zfcore.analysis.maps import MEASURES

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(WIDTH, 3.1), sharey=True, squeeze=False,
                                layout="constrained")
    steps = np.arange(len(result.steps))
    for axis, measure in zip(axes[0], MEASURES):
        for index, method in enumerate(result.methods):
            values = result.similarity[method][measure].numpy()
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
            color = f"C{index}"
            axis.plot(steps, mean, marker="o", markersize=3, color=color, label=method)
            axis.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            axis.axhline(float(np.nanmean(result.baseline[method][measure].numpy())), color=color, linestyle=":",
                         linewidth=1)
        axis.set_xticks(steps, result.steps, rotation=90)
        axis.set(title=MEASURE_NAMES[measure], ylim=(-0.3, 1.05))
        axis.grid(alpha=0.3)
    axes[0, len(MEASURES) // 2].set_xlabel(f"{result.order} randomisation (down to the layer)"
                                           if result.order == "cascading" else "independent randomisation (the layer)")
    axes[0, 0].set_ylabel(f"similarity to the trained map\n({result.labels.numel()} images)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1))
    labels.append("dotted: another image (baseline)")
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
    return figure


def randomization_panel(result: "RandomizationSimilarity", image: np.ndarray, index: int = 0) -> Figure:
    """Adebayo et al.'s (2018) image rows: one image's maps (absolute heat maps) after each step, a row per method.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity` holding ``index`` in its examples.
        image: the input, uint8 ``[S, S, 3]``.
        index: which of ``result.examples``' images.

    Raises:
        ValueError: ``index`` not among the kept examples.
    """
    from zfcore.analysis.maps import heat_map

    kept = next(iter(result.examples.values())).shape[0]
    if not 0 <= index < kept:
        raise ValueError(f"index={index!r} is not valid; the result keeps examples 0 .. {kept - 1}")
    rows = []
    for method in result.methods:
        heat = heat_map(result.examples[method][index]).numpy()[..., None].repeat(3, -1)  # [steps, S, S, 3]
        rows.append(np.concatenate([np.asarray(image, dtype=np.float64)[None] / 255.0, heat]))
    return image_grid(np.stack(rows), titles=["input", *result.steps], row_labels=list(result.methods), cell=1.0)


def randomization_examples(result: "RandomizationSimilarity", pixels: np.ndarray, method: str = "guided",
                           randomised: str = "conv5") -> Figure:
    """The kept example images of a cascading randomisation (Adebayo et al., 2018): each one's trained map and its
    map once the layers from the top down to ``randomised`` are re-initialised, signed and as absolute heat maps,
    with their Spearman correlation (absolute maps).

    Args:
        result: a cascading :class:`~zfcore.analysis.sanity.RandomizationSimilarity` that kept examples.
        pixels: uint8 ``[N, S, S, 3]``, the inputs in the result's order (at least its examples).
        method: one of ``result.methods``.
        randomised: one of ``result.steps``, the lowest re-initialised layer.

    Raises:
        ValueError: an unknown ``method`` or ``randomised``; fewer ``pixels`` than kept examples.
    """
    from zfcore.analysis.maps import heat_map

    if method not in result.methods:
        raise ValueError(f"method={method!r} is not valid; valid methods: {tuple(result.methods)}")
    if randomised not in result.steps:
        raise ValueError(f"randomised={randomised!r} is not valid; valid steps: {tuple(result.steps)}")
    step = result.steps.index(randomised)
    maps = result.examples[method]  # [E, steps, 3, S, S]
    if len(pixels) < len(maps):
        raise ValueError(f"{len(pixels)} images in pixels for {len(maps)} kept examples: give the result's inputs")
    rows = []
    for example in range(len(maps)):
        heat = heat_map(maps[example, [0, step]]).numpy()[..., None].repeat(3, -1)
        rows.append([pixels[example] / 255.0, *to_display(maps[example, [0, step]], percentile=99.0), *heat])
    rho = result.similarity[method]["spearman_abs"][: len(maps), step]
    return image_grid(np.stack(rows), cell=1.3,
                      titles=["input", "trained", f"random to {randomised}", "|trained|", f"|random to {randomised}|"],
                      row_labels=[f"Spearman |.| {float(r):.2f}" for r in rho],
                      title=f"{method}: cascading randomisation down to {randomised}")


def signed_distribution(result: "RandomizationSimilarity", method: str = "backprop") -> Figure:
    """The signed Spearman correlation of every image after each randomisation step, not only its mean.

    Left: one dot per image and step (signed ρ), the mean as a line; the baseline's spread as a grey band.
    Right: mean ``|ρ|`` per step with its 95 % bootstrap interval over the images, against the baseline's.
    A map kept up to its sign sits far from 0 on the left and high on the right, whatever the signed mean.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity`.
        method: one of ``result.methods``.

    Raises:
        ValueError: ``method`` not in the result.
    """
    from zfcore.analysis.maps import sign_free

    if method not in result.methods:
        raise ValueError(f"method={method!r} is not valid; valid methods: {result.methods}")
    values = result.similarity[method]["spearman_signed"].numpy()
    baseline = result.baseline[method]["spearman_signed"]
    steps = np.arange(1, len(result.steps))  # "original" is 1 for every image
    figure, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 2.9), layout="constrained")
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=values.shape[0])
    for step in steps:
        left.scatter(step + jitter, values[:, step], s=4, color="C1", alpha=0.6, linewidths=0)
    left.plot(steps, np.nanmean(values[:, 1:], 0), color="black", marker="o", markersize=3, label="mean ρ")
    low, high = np.nanpercentile(baseline.numpy(), [2.5, 97.5])
    left.axhspan(low, high, color="grey", alpha=0.3, linewidth=0, label="another image (95 % of pairs)")
    left.set(ylabel="signed Spearman ρ", ylim=(-1.05, 1.05), title=f"{method}: every image")
    summaries = [sign_free(result.similarity[method]["spearman_signed"][:, step], baseline) for step in steps]
    means = np.array([summary.mean_abs.value for summary in summaries])
    errors = np.array([[summary.mean_abs.value - summary.mean_abs.low, summary.mean_abs.high - summary.mean_abs.value]
                       for summary in summaries]).T
    right.errorbar(steps, means, yerr=errors, color="C1", marker="o", markersize=3, capsize=2, label="mean |ρ|")
    base = summaries[0].baseline_abs
    right.axhspan(base.low, base.high, color="grey", alpha=0.5, linewidth=0, label="another image")
    right.set(ylabel="mean |ρ| (95 % interval)", ylim=(0, 1.05), title=f"{method}: mean |ρ|")
    for axis, corner in ((left, "lower left"), (right, "upper right")):
        axis.set_xticks(steps, result.steps[1:], rotation=90)
        axis.grid(alpha=0.3)
        axis.legend(loc=corner, frameon=False)
    figure.supxlabel(f"{result.order} randomisation (down to the layer)" if result.order == "cascading"
                     else "independent randomisation (the layer)")
    return figure


def similarity_table(result: "RandomizationSimilarity", columns: dict[str, str]) -> str:
    """Markdown: per method and measure, mean ± std over the images after the steps named in ``columns``.

    Each method also gets the :data:`SIGN_FREE_ROW`: the signed Spearman's mean ``|ρ|`` [95 % interval] and the share
    of images above the threshold. The last columns give the baseline (another image) and the share of images whose
    last-step map is more like its original than the baseline.

    Args:
        result: a :class:`~zfcore.analysis.sanity.RandomizationSimilarity`.
        columns: step name -> the column's heading.

    Raises:
        ValueError: a step not in the result.
    """
    from zfcore.analysis.maps import MEASURES, sign_free

    unknown = [step for step in columns if step not in result.steps]
    if unknown:
        raise ValueError(f"steps {unknown} are not valid; valid steps: {result.steps}")
    above = result.still_similar()
    rows = ["| method | measure | " + " | ".join(columns.values()) + " | another image (baseline) | "
            "above baseline, last step |", "|---|---|" + "---|" * (len(columns) + 2)]
    for method in result.methods:
        for measure in MEASURES:
            values, baseline = result.similarity[method][measure], result.baseline[method][measure]
            cells = [_mean_std(values[:, result.steps.index(step)]) for step in columns]
            rows.append(f"| {method} | {measure} | " + " | ".join(cells) + f" | {_mean_std(baseline)} | "
                        f"{100 * above[method][measure]:.0f} % |")
            if measure == "spearman_signed":
                free = [sign_free(values[:, result.steps.index(step)], baseline) for step in columns]
                rows.append(f"| {method} | {SIGN_FREE_ROW} | " + " | ".join(summary.format() for summary in free)
                            + f" | {free[0].baseline_abs.format(digits=2)}; "
                            f"{100 * free[0].baseline_share_above:.0f} % > {free[0].threshold:g} | |")
    return "\n".join(rows)


def attribution_table(comparison: "AttributionComparison") -> str:
    """Markdown: per method, true vs runner-up class and trained vs classifier-randomised, three measures each
    (mean ± std over the images), then the signed Spearman's mean ``|ρ|`` [95 % interval] and the baseline's."""
    from zfcore.analysis.maps import MEASURES, sign_free

    rows = ["| method | true vs runner-up: Spearman abs / signed / SSIM | its mean \\|ρ\\| (signed) | "
            "trained vs classifier randomised: Spearman abs / signed / SSIM | its mean \\|ρ\\| (signed) | "
            "another image: mean \\|ρ\\| (signed) |", "|---|---|---|---|---|---|"]
    for method in comparison.methods:
        baseline = comparison.baseline[method]["spearman_signed"]
        cells = []
        for name in ("other_class", "randomised"):
            values = getattr(comparison, name)[method]
            cells.append(" / ".join(_mean_std(values[measure]) for measure in MEASURES))
            cells.append(sign_free(values["spearman_signed"], baseline).format())
        base = sign_free(comparison.baseline[method]["spearman_signed"]).mean_abs.format(digits=2)
        rows.append(f"| {method} | " + " | ".join(cells) + f" | {base} |")
    return "\n".join(rows)


def switches_table(results: dict[str, "NeuronVsSwitches"]) -> str:
    """Markdown: for each result (key: its label, e.g. ``"conv5, deconvnet"``), every comparison of
    :data:`SWITCH_COMPARISONS` as mean ± std over the pairs for the three measures, the signed Spearman's mean
    ``|ρ|`` with its 95 % bootstrap interval over the images (each image's pairs averaged first), and the pairs
    counted."""
    from zfcore.analysis.maps import MEASURES

    rows = ["| projection | comparison | Spearman, absolute | Spearman, signed | its mean \\|ρ\\| [95 % over images] | "
            "SSIM | pairs |", "|---|---|---|---|---|---|---|"]
    for label, result in results.items():
        for name, title in SWITCH_COMPARISONS.items():
            values = getattr(result, name)
            magnitude = values["spearman_signed"].abs()
            per_image = magnitude if magnitude.dim() == 1 else magnitude.nanmean(1)
            per_image = per_image[~per_image.isnan()]
            free = bootstrap(per_image).format(digits=2) if per_image.numel() > 1 else "–"
            cells = [_mean_std(values[measure]) for measure in MEASURES]
            rows.append(f"| {label} | {title} | {cells[0]} | {cells[1]} | {free} | {cells[2]} | "
                        f"{int((~values['spearman_abs'].isnan()).sum())} |")
    return "\n".join(rows)


def _mean_std(values) -> str:
    """``"0.48 ± 0.13"`` over the non-NaN values (the sample std)."""
    kept = values[~values.isnan()]
    return format_mean_std(kept, digits=2) if kept.numel() else "–"
