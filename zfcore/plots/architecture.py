"""Chapter 05 (architecture selection, §4.1, Fig. 6): where the first-layer filters put their energy, and how
much each network changes under shifts smaller than its stride."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.architecture import FilterSpectra, ShiftConsistency
    from zfcore.weights import WeightsMeta

__all__ = ["REFERENCE_TITLES", "fig6_accuracy_table", "filter_rms_table", "frequency_coverage_plot",
           "lattice_table", "paper_inputs_summary", "shift_consistency_plot", "shift_table", "spectrum_table", "structure_table"]


def frequency_coverage_plot(spectra: Mapping[str, "FilterSpectra"], strides: Mapping[str, int]) -> Figure:
    """Fig. 6(b)/(c) in numbers: where each network's conv1 filters put their energy.

    Left: a histogram of each filter's peak radial frequency, with the low / mid / high bands
    (:data:`zfcore.analysis.architecture.FREQUENCY_BANDS`). Right: the mean share of a filter's energy
    above a cutoff (per axis) against the cutoff, with each network's Nyquist frequency ``1 / (2 * stride)``.

    Args:
        spectra: network name -> its conv1 :class:`~zfcore.analysis.architecture.FilterSpectra`.
        strides: network name -> its conv1 stride.
    """
    from zfcore.analysis.architecture import FREQUENCY_BANDS

    figure, (histogram, coverage) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    bins = np.linspace(0, 0.71, 18)
    cutoffs = np.linspace(0, 0.49, 50)
    for index, (name, spectrum) in enumerate(spectra.items()):
        colour = f"C{index}"
        histogram.hist(spectrum.peak_frequency.numpy(), bins=bins, histtype="step", linewidth=1.5, color=colour,
                       label=name)
        shares = [float(spectrum.share_above(float(cutoff)).mean()) for cutoff in cutoffs]
        coverage.plot(cutoffs, shares, color=colour, label=name)
        if name in strides:
            coverage.axvline(0.5 / strides[name], color=colour, linestyle=":", linewidth=1)
    for (band, (low, high)), shade in zip(FREQUENCY_BANDS.items(), (0.0, 0.08, 0.0)):
        histogram.axvspan(low, high, color="grey", alpha=shade)
        histogram.text((low + min(high, 0.71)) / 2, 0.98, band, transform=histogram.get_xaxis_transform(),
                       ha="center", va="top")
    histogram.set(xlabel="peak frequency of a conv1 filter\n(cycles / px)", ylabel="filters")
    coverage.set(xlabel="cutoff (cycles / px);\ndotted: Nyquist of the stride", ylabel="energy above the cutoff",
                 ylim=(0, 1))
    histogram.legend(loc="center right")
    coverage.legend()
    for axis in (histogram, coverage):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def shift_consistency_plot(results: Mapping[str, "ShiftConsistency"]) -> Figure:
    """Forward aliasing: how often the top-1 class flips (left) and how much the pool1 / pool2 maps change
    (right, ``1 - cos``) when the input moves by a few pixels, per network.

    Args:
        results: network name -> its :class:`~zfcore.analysis.architecture.ShiftConsistency` (the same shifts).
    """
    from zfcore.analysis.architecture import SHIFT_LAYERS

    figure, (flips, maps) = plt.subplots(1, 2, figsize=(WIDTH, 2.7))
    for index, (name, result) in enumerate(results.items()):
        by_shift = result.flip_rate_by_shift()
        flips.plot(list(by_shift), [100 * value for value in by_shift.values()], marker="o", color=f"C{index}",
                   label=name)
        count = len(result.shifts)
        for layer, style in zip(SHIFT_LAYERS, ("-", "--")):
            change = result.map_change[layer].mean(0)
            maps.plot(result.shifts, [float(change[i] + change[count + i]) / 2 for i in range(count)], marker="o",
                      linestyle=style, color=f"C{index}", label=f"{name}, {layer}")
    flips.set(xlabel="shift (px)", ylabel="top-1 class flips (%)", xticks=list(by_shift), ylim=(0, None))
    maps.set(xlabel="shift (px)", ylabel="map change, 1 − cos", xticks=list(by_shift), ylim=(0, None))
    flips.legend()
    maps.legend(fontsize=7)
    for axis in (flips, maps):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def spectrum_table(spectra: Mapping[str, "FilterSpectra"], strides: Mapping[str, int],
                   conv1: Mapping[str, torch.Tensor]) -> str:
    """Fig. 6(b)-(c) in numbers, one row per first layer: the share of its filters peaking in the low / mid / high
    band, the mean share of energy above its stride's Nyquist frequency, above 0.125 and above 0.25 cycles per
    pixel, and its largest filter RMS over the median (:func:`zfcore.analysis.architecture.dominance`).

    Args:
        spectra: name -> the filters' spectra (:func:`zfcore.analysis.architecture.filter_spectra`).
        strides: name -> the first layer's stride.
        conv1: name -> the first layer's weights ``[filters, 3, k, k]``.

    Returns:
        A markdown table.
    """
    from zfcore.analysis.architecture import dominance

    rows = ["| conv1 of | peaks low / mid / high | energy above its stride's Nyquist | above 0.125 | above 0.25 "
            "| largest RMS / median |", "|---|---|---|---|---|---|"]
    for name, spectrum in spectra.items():
        bands = " / ".join(f"{100 * value:.0f} %" for value in spectrum.band_fractions().values())
        above = [100 * float(spectrum.share_above(cutoff).mean()) for cutoff in (0.5 / strides[name], 0.125, 0.25)]
        rows.append(f"| {name} (stride {strides[name]}) | {bands} | " + " | ".join(f"{value:.0f} %" for value in above)
                    + f" | {dominance(conv1[name]):.2f} |")
    return "\n".join(rows)


def filter_rms_table(conv1: Mapping[str, torch.Tensor], *, cap: float) -> str:
    """How large each first layer's filters are, one row per bank: their RMS (min / median / max,
    :func:`zfcore.analysis.architecture.filter_rms`), how many sit at the renormalisation cap (within 0.5 %), and
    the largest RMS over the median (:func:`zfcore.analysis.architecture.dominance`: Fig. 6(a)'s "one feature
    dominates").

    Args:
        conv1: name -> the first layer's weights ``[filters, 3, k, k]``.
        cap: the RMS that §3's renormalisation scales a filter back to (the recipe's ``renorm_rms``; the paper: 0.1).

    Returns:
        A markdown table.
    """
    from zfcore.analysis.architecture import dominance, filter_rms

    rows = [f"| conv1 of | filter RMS min / median / max | filters at the cap (RMS ≥ {0.995 * cap:.4f}) "
            "| largest RMS / median |", "|---|---|---|---|"]
    for name, weights in conv1.items():
        rms = filter_rms(weights)
        rows.append(f"| {name} | {float(rms.min()):.4f} / {float(rms.median()):.4f} / {float(rms.max()):.4f} | "
                    f"{int((rms >= 0.995 * cap).sum())} of {len(rms)} | {dominance(weights):.2f} |")
    return "\n".join(rows)


def paper_inputs_summary(paper_inputs: Mapping[str, torch.Tensor] | None, panel_a: torch.Tensor, *, cap: float) -> str:
    """Fig. 6(a) at the paper's input scale in numbers, as markdown: :func:`filter_rms_table` of the two runs
    (renormalised, then not) beside panel (a) (ZF-64 at the book's input scale, not renormalised), then how much
    the largest filter dominates with and without the cap. Not scored: one run per arm, and the paper gives no
    number. While the runs are not recorded (``paper_inputs`` is ``None``), a sentence saying so.

    Args:
        paper_inputs: panel name -> conv1 ``[filters, 3, k, k]`` of the renormalised run, then of the one without
            renormalisation (:func:`zfcore.book.paper_inputs_conv1`), or ``None``.
        panel_a: conv1 of the run of panel (a).
        cap: as :func:`filter_rms_table`.

    Raises:
        ValueError: ``paper_inputs`` without exactly two banks.
    """
    from zfcore.analysis.architecture import dominance

    if paper_inputs is None:
        return ("**Pending.** The verdict runs `paper-inputs-renorm` and `paper-inputs-no-renorm` are not recorded yet; "
                "their filters and numbers appear here when they are.")
    if len(paper_inputs) != 2:
        raise ValueError(f"paper_inputs has {len(paper_inputs)} banks ({list(paper_inputs)}); give the renormalised "
                         "run's conv1, then that of the run without renormalisation")
    (capped_name, capped), (free_name, free) = paper_inputs.items()
    table = filter_rms_table({**paper_inputs, "ZF-64 at the book's input scale, not renormalised (panel (a))": panel_a},
                             cap=cap)
    return (f"{table}\n\nAt the paper's input scale the largest conv1 filter's RMS is {dominance(free):.2f} times the "
            f"median without the cap ({free_name}) and {dominance(capped):.2f} times with it ({capped_name}); at the "
            f"book's input scale without the cap, {dominance(panel_a):.2f} times. The paper shows one filter dominating "
            "without renormalisation and gives no number: these are one run per arm, reported, not scored.")


def structure_table(conv1: Mapping[str, torch.Tensor], unstructured: Mapping[str, torch.Tensor],
                    mid: Mapping[str, torch.Tensor]) -> str:
    """C5's "fewer dead features" as the paper meant it (unstructured filters), one row per first layer: each
    filter's concentration (median and minimum) beside that of noise filters of the same shape (median and the
    :data:`~zfcore.analysis.architecture.STRUCTURE_QUANTILE` quantile), the share of unstructured filters and the
    share peaking in the mid band, with bootstrap 95 % intervals over filters.

    Args:
        conv1: name -> the first layer's weights ``[filters, 3, k, k]``.
        unstructured, mid: name -> per filter, whether it is unstructured
            (:func:`zfcore.analysis.architecture.unstructured`) and whether it peaks in the mid band
            (:func:`zfcore.analysis.architecture.mid_band`).

    Returns:
        A line naming the number of filters, then a markdown table.
    """
    from zfcore.analysis import architecture as arch
    from zfcore.stats import bootstrap

    rows = ["| conv1 of | concentration: median (min) | noise filters: median / 95th pct. | unstructured "
            "| peaks in the mid band |", "|---|---|---|---|---|"]
    for name, weights in conv1.items():
        score, noise = arch.filter_concentration(weights), arch.random_concentration(tuple(weights.shape[1:]))
        shares = [bootstrap(flags[name].double()).format(scale=100, digits=0, unit=" %") for flags in (unstructured, mid)]
        rows.append(f"| {name} | {float(score.median()):.2f} ({float(score.min()):.2f}) | {float(noise.median()):.2f} / "
                    f"{float(noise.quantile(arch.STRUCTURE_QUANTILE)):.2f} | {shares[0]} | {shares[1]} |")
    return (f"Per filter (n = {len(conv1[arch.STRIDE2])} per network; bootstrap 95 % intervals over filters):\n\n"
            + "\n".join(rows))


def lattice_table(lattice: Mapping[str, Mapping[str, Any]]) -> str:
    """C5's aliasing control: per network, the share of its conv2 projections' energy on the unpooling lattice
    with the image's own switches and with another image's, and the paired difference (bootstrap 95 % intervals).

    Args:
        lattice: name -> ``{"own": shares, "null": shares, "period": px}``, the shares of
            :func:`zfcore.analysis.architecture.box_lattice_shares` per projection.

    Returns:
        A markdown table.
    """
    from zfcore.stats import bootstrap, paired_difference

    def shown(estimate) -> str:
        return estimate.format(scale=100, digits=2, unit=" %")

    rows = [f"| {name} | {value['period']} px | {shown(bootstrap(value['own']))} | {shown(bootstrap(value['null']))} | "
            f"{shown(paired_difference(value['own'], value['null']))} | {len(value['own'])} |"
            for name, value in lattice.items()]
    return ("| conv2 projections of | lattice | own switches | another image's switches | own − other (paired) | n |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows))


def shift_table(shifts: Mapping[str, "ShiftConsistency"], images: int) -> str:
    """C5's forward control: per network, how often top-1 flips after a shift of 1, 2, 3 px, the mean flip rate and
    the pooled maps' mean change (bootstrap 95 % intervals over images), and the AlexNet-style − ZF difference in
    flip rate, paired over images.

    Args:
        shifts: name -> :func:`zfcore.analysis.architecture.shift_consistency` of that network, with both
            :data:`~zfcore.analysis.architecture.STRIDE4` and :data:`~zfcore.analysis.architecture.STRIDE2`.
        images: how many images were shifted.

    Returns:
        A line, a markdown table and the paired difference.
    """
    from zfcore.analysis.architecture import SHIFT_LAYERS, STRIDE2, STRIDE4
    from zfcore.stats import bootstrap, paired_difference

    rows = [f"| {name} | " + " / ".join(f"{100 * rate:.1f} %" for rate in result.flip_rate_by_shift().values())
            + f" | {bootstrap(result.flip_rate()).format(scale=100, digits=1, unit=' %')} | "
            + " | ".join(bootstrap(result.map_change[layer].mean(1)).format(digits=3) for layer in SHIFT_LAYERS) + " |"
            for name, result in shifts.items()]
    difference = paired_difference(shifts[STRIDE4].flip_rate(), shifts[STRIDE2].flip_rate())
    return (f"On {images:,} validation images:\n\n| network | top-1 flips at 1 / 2 / 3 px | mean flips | "
            "pool1 change | pool2 change |\n|---|---|---|---|---|\n" + "\n".join(rows)
            + f"\n\nAlexNet-style − ZF, paired over images: {difference.format(scale=100, digits=2, unit=' points')}.")


REFERENCE_TITLES = {"zf": "ZF-64, the book's reference run", "alexnet": "AlexNet-style ZF-64, Fig. 6's reference run"}
"""The published networks (:class:`zfcore.weights.ReferenceWeights`) by style, as chapter 05 names them."""


def fig6_accuracy_table(references: Sequence["WeightsMeta"], runs: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 2's single networks (as accuracies: 100 % − its error) beside ours: the published reference networks
    and runs of an experiment (e.g. ZF-64 without renormalisation), with 10-crop accuracy.

    Args:
        references: the published networks' metadata (:class:`zfcore.weights.WeightsMeta`), each named by its
            style (:data:`REFERENCE_TITLES`).
        runs: a row's title -> the run's record in an experiment's results (``val_top1``, ``val_top5``, their
            ``_10crop`` versions, ``wall_minutes`` and ``device``).

    Returns:
        A markdown table.
    """
    from zfcore.analysis.ablations import PAPER_TABLE2

    paper = [("Krizhevsky et al., 1 convnet", PAPER_TABLE2[0]),
             ("Zeiler & Fergus' replication of Krizhevsky et al., 1 convnet", PAPER_TABLE2[2]),
             ("1 convnet as per Fig. 3", PAPER_TABLE2[3])]
    rows = ["| network | top-1 | top-5 | top-1, 10 crops | top-5, 10 crops |", "|---|---|---|---|---|"]
    rows += [f"| Paper (ImageNet, 224 px, 70 epochs; accuracy = 100 % − Table 2's error): {name} | {100 - top1:.1f} % "
             f"| {100 - top5:.1f} % | – | – |" for name, (_, top1, top5, _) in paper]
    ours = [(f"{REFERENCE_TITLES[meta.style]} ({meta.hardware}, {meta.train_minutes:.0f} min)",
             meta.top1, meta.top5, meta.top1_10crop, meta.top5_10crop) for meta in references]
    ours += [(f"{title} ({run['device']}, {run['wall_minutes']:.0f} min)", run["val_top1"], run["val_top5"],
              run["val_top1_10crop"], run["val_top5_10crop"]) for title, run in runs.items()]
    rows += [f"| Ours (Tiny ImageNet, 64 px, 28 epochs): {name} | " + " | ".join(f"{100 * value:.1f} %" for value in values)
             + " |" for name, *values in ours]
    return "\n".join(rows)
