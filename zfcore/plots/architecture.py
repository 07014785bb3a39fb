"""Chapter 05 (architecture selection, §4.1, Fig. 6): where the first-layer filters put their energy, and how
much each network changes under shifts smaller than its stride."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.architecture import FilterSpectra, ShiftConsistency

__all__ = ["frequency_coverage_plot", "shift_consistency_plot"]


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
