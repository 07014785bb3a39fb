"""Chapter 08 (ablations, §5.1, Table 3): every run's val top-1 against the seeds' band, and per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from zfcore.plots.style import WIDTH

if TYPE_CHECKING:
    from zfcore.analysis.ablations import AblationTable

__all__ = ["ablation_figure"]


def ablation_figure(table: "AblationTable") -> Figure:
    """Table 3 as a plot: (top) val top-1 of every recorded run, the seeds' mean ± spread shaded and mean ± 2 x
    spread dotted (beyond it a difference is real), pending runs named on the axis without a dot; (bottom) each
    recorded run's val top-1 per epoch (:class:`~zfcore.analysis.ablations.AblationTable`), seed runs in grey.
    The legends are right of the axes."""
    figure, (runs_axis, epochs_axis) = plt.subplots(2, 1, figsize=(WIDTH, 6.4), layout="constrained",
                                                    gridspec_kw={"height_ratios": [1.15, 1]})
    positions = range(len(table.rows))
    if table.seed_mean is not None:
        spread = table.spread or 0.0
        runs_axis.axhspan(100 * (table.seed_mean - spread), 100 * (table.seed_mean + spread), color="grey", alpha=0.25,
                          label="seeds: mean ± spread" if table.spread is not None else "seed (one run)")
        runs_axis.axhline(100 * table.seed_mean, color="grey", linewidth=1)
        if table.spread is not None:
            for sign in (-1, 1):
                runs_axis.axhline(100 * (table.seed_mean + sign * 2 * spread), color="grey", linestyle=":",
                                  label="real beyond: mean ± 2 × spread" if sign < 0 else None)
    for position, row in zip(positions, table.rows):
        if not row.pending:
            runs_axis.scatter(position, 100 * row.val_top1, color="grey" if row.kind == "seed" else "C0", zorder=3)
    runs_axis.set_xticks(list(positions), [row.run + (" (pending)" if row.pending else "") for row in table.rows],
                         rotation=35, ha="right", rotation_mode="anchor")
    runs_axis.set(ylabel="val top-1 (%)", title="val top-1 per run")
    seeds = [row.run for row in table.recorded if row.kind == "seed"]
    modified = [row.run for row in table.recorded if row.kind != "seed"]
    colours = [f"C{index}" for index in range(10) if index != 7]  # the default cycle without its grey: the seeds'
    for row in table.recorded:
        epochs = [point["epoch"] for point in row.history]
        seed = row.kind == "seed"
        epochs_axis.plot(epochs, [100 * point["val_top1"] for point in row.history], marker=".", label=row.run,
                         color="grey" if seed else colours[modified.index(row.run) % len(colours)],
                         linestyle=("-", "--", ":", "-.")[seeds.index(row.run) % 4] if seed else "-")
    epochs_axis.set(xlabel="epoch", ylabel="val top-1 (%)", title="val top-1 per epoch")
    for axis in (runs_axis, epochs_axis):
        axis.grid(alpha=0.3)
    for axis in (runs_axis, epochs_axis):  # the legends right of the axes, where they hide no point
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return figure
