"""Table 3 of Zeiler & Fergus (2014), §5.1: the ablations, read against the seed noise, and the C8 verdict.

The paper removes and resizes layers, trains each network from scratch on ImageNet 2012 and concludes
(§6) that "having a minimum depth to the network, rather than any individual section, is vital to the
model's performance" (C8): removing fc6-fc7, or conv3-conv4, costs a few points of error, removing both
(a 4-layer network) "is dramatically worse". Its removal rows change its replication of Krizhevsky et
al.'s network, its width rows both networks. The book re-does them all on ZF-64 at one reduced budget
(:func:`zfcore.experiments.ablations`), with three seeds of the unmodified network, and one row the
paper does not have: conv3-conv4 removed and the rest widened back to the same parameter count.

* :func:`ablation_table` turns a results file (as read from ``data/experiments/NAME.json``) and its
  experiment's definition into rows; runs not recorded yet are pending rows.
* **Seed band and "real" differences.** The seed runs are the runs whose recipe differs from the first
  run's in the seed only. Every row's difference is its val top-1 minus the seeds' mean; the seed
  *spread* is max - min of the seeds' val top-1, and a difference is real when it exceeds twice the
  spread in size (``|difference| > 2 x spread``). With fewer than two recorded seeds there is no spread
  and realness is unknown (``None``).
* :func:`short_budget_depth` reads the depth cut at this budget (C8 itself is scored at the full budget, :mod:`zfcore.analysis.depth`): the drop of the run that removes layers of both
  sections (middle convs conv3-conv4 and fully connected fc6-fc7) against the largest change of any
  other single modification, and the parameter-matched shallow network against the unmodified one.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from zfcore.experiments import Experiment, parameter_count
from zfcore.models import CONV_LAYERS

__all__ = ["PAPER_TABLE2", "PAPER_TABLE3", "PAPER_ROWS", "SECTIONS", "AblationRow", "AblationTable", "ShortBudgetDepth",
           "Table", "ablation_table", "short_budget_depth"]

PAPER_TABLE3 = (
    # (network the row modifies, row as printed, train top-1, val top-1, val top-5): error %
    ("krizhevsky", "Our replication of (Krizhevsky et al., 2012), 1 convnet", 35.1, 40.5, 18.1),
    ("krizhevsky", "Removed layers 3,4", 41.8, 45.4, 22.1),
    ("krizhevsky", "Removed layer 7", 27.4, 40.0, 18.4),
    ("krizhevsky", "Removed layers 6,7", 27.4, 44.8, 22.4),
    ("krizhevsky", "Removed layer 3,4,6,7", 71.1, 71.3, 50.1),
    ("krizhevsky", "Adjust layers 6,7: 2048 units", 40.3, 41.7, 18.8),
    ("krizhevsky", "Adjust layers 6,7: 8192 units", 26.8, 40.0, 18.1),
    ("fig3", "Our Model (as per Fig. 3)", 33.1, 38.4, 16.5),
    ("fig3", "Adjust layers 6,7: 2048 units", 38.2, 40.2, 17.6),
    ("fig3", "Adjust layers 6,7: 8192 units", 22.0, 38.8, 17.0),
    ("fig3", "Adjust layers 3,4,5: 512,1024,512 maps", 18.8, 37.5, 16.0),
    ("fig3", "Adjust layers 6,7: 8192 units and Layers 3,4,5: 512,1024,512 maps", 10.0, 38.3, 16.9),
)
"""Zeiler & Fergus 2014, Table 3 ("ImageNet 2012 classification error rates with various architectural changes
to the model of (Krizhevsky et al., 2012) and our model (see Fig. 3)"), as printed; the first row of each
network is its unmodified base."""
PAPER_TABLE2 = (
    # (row as printed, val top-1, val top-5, test top-5 or None): error %, single networks only
    ("(Krizhevsky et al., 2012), 1 convnet", 40.7, 18.2, None),
    ("(Krizhevsky et al., 2012)*, 1 convnets (ImageNet 2011 and 2012 training sets)", 39.0, 16.6, None),
    ("Our replication of (Krizhevsky et al., 2012), 1 convnet", 40.5, 18.1, None),
    ("1 convnet as per Fig. 3", 38.4, 16.5, None),
    ("1 convnet as per Fig. 3 but with layers 3,4,5: 512,1024,512 maps - (b)", 37.5, 16.0, 16.1),
)
"""Zeiler & Fergus 2014, Table 2 (ImageNet 2012 classification error rates), its single-network rows as printed."""
PAPER_ROWS = {"no-conv3-conv4": 1, "no-fc7": 2, "no-fc6-fc7": 3, "no-conv3-conv4-fc6-fc7": 4, "fc-512": 8,
              "fc-2048": 9, "conv3-5-wide": 10, "conv3-5-wide-fc-2048": 11}
"""Our run -> its row of :data:`PAPER_TABLE3` (seed runs map to Fig. 3's row; fc6/fc7 "halved"/"doubled" are
512/2048 units in ZF-64, 2048/8192 in the paper)."""
SECTIONS = {"conv3": "middle conv", "conv4": "middle conv", "fc6": "fully connected", "fc7": "fully connected"}
"""The two sections of the removable layers: a removal within one section is one modification; removing
layers of both sections is the depth cut of C8."""
METRICS = ("train_top1", "val_top1", "val_top5", "wall_minutes")


@dataclass(frozen=True)
class AblationRow:
    """One run of the table (accuracies as fractions; ``None`` while pending).

    ``kind`` is ``"seed"`` (only the seed differs from the first run), ``"removed"``, ``"resized"`` or
    ``"removed+resized"``; ``difference`` is val top-1 minus the seeds' mean, ``real`` whether
    ``|difference| > 2 x spread`` (``None`` without two recorded seeds).
    """

    run: str
    change: str
    kind: str
    parameters: int
    removed: tuple[str, ...] = ()
    train_top1: float | None = None
    val_top1: float | None = None
    val_top5: float | None = None
    wall_minutes: float | None = None
    difference: float | None = None
    real: bool | None = None
    history: tuple[Mapping[str, float], ...] = ()

    @property
    def pending(self) -> bool:
        """Not recorded yet."""
        return self.val_top1 is None


@dataclass(frozen=True)
class AblationTable:
    """All rows of an experiment in its order, the seed band and the budget."""

    experiment: str
    budget: str
    rows: tuple[AblationRow, ...]
    seed_mean: float | None
    spread: float | None

    @property
    def recorded(self) -> tuple[AblationRow, ...]:
        return tuple(row for row in self.rows if not row.pending)

    @property
    def total_minutes(self) -> float:
        """Total CPU time so far: the sum of the recorded runs' wall times (one run at a time)."""
        return sum(row.wall_minutes for row in self.recorded)

    def row(self, run: str) -> AblationRow:
        """The row of ``run``; ``ValueError`` naming the runs otherwise."""
        for row in self.rows:
            if row.run == run:
                return row
        raise ValueError(f"run={run!r} is not valid; valid runs: {tuple(row.run for row in self.rows)}")

    def table(self) -> Table:
        """Ours (accuracies; Δ in points from the seeds' mean) beside the paper's row for the same change (its val
        top-1 error as printed, and its Δ as accuracy: base error minus row error)."""
        header = ("run", "what changed", "parameters", "train top-1", "val top-1", "val top-5", "wall (min)",
                  "Δ val top-1", "real?", "paper's row (Table 3)", "paper: val top-1 error", "paper: Δ val top-1")
        rows = []
        for row in self.rows:
            index = 7 if row.kind == "seed" else PAPER_ROWS.get(row.run)
            paper = ("–",) * 3
            if index is not None:
                network, name, _, val, _ = PAPER_TABLE3[index]
                base = next(item for item in PAPER_TABLE3 if item[0] == network)
                where = "Fig. 3" if network == "fig3" else "their replication of Krizhevsky et al."
                paper = (name if base[1] == name else f"{name}, on {where}", f"{val:.1f} %", f"{base[3] - val:+.1f}")
            ours = (("pending",) * 6 if row.pending else
                    (_percent(row.train_top1), _percent(row.val_top1), _percent(row.val_top5),
                     f"{row.wall_minutes:.1f}",
                     "–" if row.difference is None else f"{100 * row.difference:+.1f}",
                     "–" if row.real is None else "yes" if row.real else "no"))
            rows.append((row.run, row.change, f"{row.parameters:,}", *ours, *paper))
        return Table(header, tuple(rows))

    def summary(self, depth: ShortBudgetDepth) -> str:
        """What the table says, as a markdown list: the seeds and their spread, the real differences, the depth cut at
        this budget (``depth``, :func:`short_budget_depth`), each row that has a paper's row beside the paper's
        difference and its train-minus-val gap, and the scale of the runs."""
        def points(value: float | None) -> str:
            return "pending" if value is None else f"{100 * value:+.1f} points"

        seeds = [row for row in self.recorded if row.kind == "seed"]
        modified = [row for row in self.recorded if row.kind != "seed"]
        paper_base = {network: val for network, name, _, val, _ in reversed(PAPER_TABLE3)}  # each network's first row
        spread = "" if self.spread is None else (f"; spread {100 * self.spread:.1f} points, so a difference is real "
                                                 f"beyond {200 * self.spread:.1f} points")
        real = ", ".join(f"`{row.run}` {points(row.difference)}" for row in modified if row.real)
        lines = [f"- **Seeds.** {len(seeds)} seed(s) of the unmodified network: val top-1 "
                 + ", ".join(f"{100 * row.val_top1:.1f} %" for row in seeds) + spread + ".",
                 f"- **Rows.** {len(modified)} of {len([row for row in self.rows if row.kind != 'seed'])} modified "
                 "networks recorded; real differences: "
                 + (real or ("none so far" if self.spread is not None else "unknown with fewer than two seeds")) + ".",
                 f"- **The depth cut at 6 epochs.** {depth.sentence()}"]
        for run, index in PAPER_ROWS.items():
            row = next((row for row in self.recorded if row.run == run), None)
            if row is not None:
                network, name, _, val, _ = PAPER_TABLE3[index]
                state = "real" if row.real else "within the seed band" if row.real is False else "no seed band"
                lines.append(f"- `{run}`: {points(row.difference)} ({state}); the paper's “{name}”: "
                             f"{paper_base[network] - val:+.1f} points; train top-1 minus val top-1 "
                             f"{100 * (row.train_top1 - row.val_top1):+.1f} points (seeds: "
                             + ", ".join(f"{100 * (seed.train_top1 - seed.val_top1):+.1f}" for seed in seeds) + ").")
        lines.append(f"- **Scale.** The paper trains every network on ImageNet 2012 at 224 px for 70 epochs on a GPU; "
                     f"ours: {self.budget}. Total CPU time of the {len(self.recorded)} recorded runs, the sum of their "
                     f"wall times: {self.total_minutes:.0f} min ({self.total_minutes / 60:.1f} h). Wall times depend on "
                     "what else the machine ran at the time.")
        return "\n".join(lines)

    def budget_reading(self, depth: ShortBudgetDepth) -> list[str]:
        """The depth cut at this budget and its rule, a markdown paragraph; where the 4-layer network comes out
        *better*, a second one: what that says about the budget (the unmodified network is far from fitting its
        training images)."""
        text = (f"**The depth cut at 6 epochs:** {depth.sentence()} The reading: *agree* when the depth cut is a real "
                "drop (beyond twice the seed spread) and more than twice as large as any other single change, "
                "*partly* when it is the largest but less than twice the next, *differ* otherwise (a cut that helps "
                "included); *pending* while a run it needs is not recorded.")
        row = None if depth.depth_run is None else self.row(depth.depth_run)
        if depth.verdict != "differ" or row.difference <= 0:
            return [text]
        seeds = [seed for seed in self.recorded if seed.kind == "seed"]
        return [text, (
            f"**What this budget can say.** Here the 4-layer network is *better* than the unmodified one, by "
            f"{100 * row.difference:+.1f} points. Every network had {len(row.history)} epochs on the budget's images; "
            f"the paper's had 70 epochs on ImageNet's 1.3 million. The unmodified network's train top-1 (measured "
            f"during training, with augmentation and dropout) is {min(100 * seed.train_top1 for seed in seeds):.1f}–"
            f"{max(100 * seed.train_top1 for seed in seeds):.1f} % against {min(100 * seed.val_top1 for seed in seeds):.1f}–"
            f"{max(100 * seed.val_top1 for seed in seeds):.1f} % on validation: it is still far from fitting its training "
            f"images, and a smaller network learns faster in a few epochs. So this budget measures which network "
            f"learns fastest, not the paper's claim about networks trained to the end: this budget cannot test C8, "
            f"and the next section tests it at the reference's full budget.")]

    def table2(self, references: Mapping[str, Any]) -> tuple[Table, str]:
        """Table 2 beside ours: the paper's rows, each of ``references`` (name -> a published network's metadata:
        ``top1``, ``top5``, ``dataset``, ``num_classes``, ``input_size``, ``epochs``, ``hardware``,
        ``train_minutes``) and this table's widened network (the paper's row 10); then the gain of Fig. 3's changes
        to conv1 and conv2 (the first reference over the second) beside the paper's, as a markdown sentence."""
        rows = [(f"Paper: {name}", f"{top1:.1f} %", f"{top5:.1f} %", f"{100 - top1:.1f} %",
                 "ImageNet 2012, 224 px, 70 epochs") for name, top1, top5, _ in PAPER_TABLE2]
        rows += [(f"Ours: {name}", f"{100 - 100 * meta.top1:.1f} %", f"{100 - 100 * meta.top5:.1f} %",
                  f"{100 * meta.top1:.1f} %", f"{meta.dataset}, {meta.num_classes} classes, {meta.input_size} px, "
                  f"{meta.epochs} epochs, {meta.hardware}, {meta.train_minutes:.0f} min")
                 for name, meta in references.items()]
        wide = next((row for row in self.rows if PAPER_ROWS.get(row.run) == 10), None)
        if wide is not None:
            rows.append((f"Ours: ZF-64 with conv3–conv5 at 512, 1024, 512 maps (`{wide.run}`)",
                         *(("pending",) * 3 if wide.pending else
                           (f"{100 - 100 * wide.val_top1:.1f} %", f"{100 - 100 * wide.val_top5:.1f} %",
                            f"{100 * wide.val_top1:.1f} %")),
                         "this chapter's budget; the seeds' mean there: "
                         + ("pending" if self.seed_mean is None else f"{100 * self.seed_mean:.1f} % top-1")))
        table = Table(("network", "val top-1 error", "val top-5 error", "val top-1 accuracy", "setting"), tuple(rows))
        zf, alexnet = (meta.top1 for meta in list(references.values())[:2])
        gain = (f"Fig. 3's changes to conv1 and conv2 gain {100 * (zf - alexnet):+.1f} points of val top-1 here, "
                f"{PAPER_TABLE2[2][1] - PAPER_TABLE2[3][1]:+.1f} in the paper (replication vs Fig. 3).")
        return table, gain


@dataclass(frozen=True)
class Table:
    """A table for a notebook, shown as markdown in Jupyter and as HTML in the book (whose markdown outputs are
    rendered as CommonMark, without tables). Cells may hold ``**bold**`` and ```code```.

    Attributes:
        header: the column titles.
        rows: the cells, one tuple per row, as many as ``header``.
        admonition: a title to show the table as the book's "Paper vs ours" box instead (``tip paper-vs-ours``).
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    admonition: str | None = None

    def __post_init__(self) -> None:
        bad = [row for row in self.rows if len(row) != len(self.header)]
        if bad:
            raise ValueError(f"rows={bad!r} are not valid; give {len(self.header)} cells per row, as in the header")

    def _repr_markdown_(self) -> str:
        lines = [" | ".join(("", *self.header, "")).strip(), "|" + "---|" * len(self.header)]
        lines += [" | ".join(("", *row, "")).strip() for row in self.rows]
        text = "\n".join(lines)
        if self.admonition is None:
            return text
        return f":::{{admonition}} {self.admonition}\n:class: tip paper-vs-ours\n\n{text}\n:::"

    def _repr_html_(self) -> str:
        def cell(tag: str, text: str) -> str:
            text = re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>",
                                                                     html.escape(text)))
            return f"<{tag}>{text}</{tag}>"

        head = "<tr>" + "".join(cell("th", title) for title in self.header) + "</tr>"
        body = "".join("<tr>" + "".join(cell("td", text) for text in row) + "</tr>" for row in self.rows)
        table = f'<table class="table"><thead>{head}</thead><tbody>{body}</tbody></table>'
        return (f'<div class="tip paper-vs-ours admonition"><p class="admonition-title">{html.escape(self.admonition)}'
                f"</p>{table}</div>" if self.admonition else table)


def _percent(value: float | None) -> str:
    return "pending" if value is None else f"{100 * value:.1f} %"


def _describe(config: Any, base: Any) -> tuple[str, str]:
    """What ``config`` (a :class:`~zfcore.profiles.TrainConfig`) changes relative to ``base`` (text), and its kind."""
    removed = [name for name in config.remove if name not in base.remove]
    widths = [f"{name} {old}→{new}" for name, old, new in zip(CONV_LAYERS, base.widths, config.widths)
              if old != new and name not in config.remove]
    keeps_fc = not {"fc6", "fc7"} <= set(config.remove)
    fc = [f"fc6/fc7 {base.fc}→{config.fc}"] if config.fc != base.fc and keeps_fc else []
    before = asdict(base)
    others = [f"{key} {before[key]}→{value}" for key, value in asdict(config).items()
              if key not in ("remove", "widths", "fc", "seed") and value != before[key]]
    parts = ([f"{', '.join(removed)} removed"] if removed else []) + widths + fc + others
    kind = ("removed+resized" if removed and (widths or fc) else "removed" if removed
            else "resized" if widths or fc or others else "seed")
    return ("; ".join(parts) if parts else f"unmodified, seed {config.seed}"), kind


def _check_record(run: str, record: Any) -> None:
    """``ValueError`` unless ``record`` holds the numbers a row needs."""
    if not isinstance(record, Mapping):
        raise ValueError(f"runs[{run!r}]={type(record).__name__} is not valid; give a run record (a mapping)")
    for key in (*METRICS, "parameters"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                or (key != "wall_minutes" and key != "parameters" and value > 1):
            raise ValueError(f"runs[{run!r}][{key!r}]={value!r} is not valid; give a finite number "
                             f"{'>= 0' if key in ('wall_minutes', 'parameters') else 'in [0, 1]'}")
    history = record.get("history")
    if not isinstance(history, list) or not all(isinstance(row, Mapping) and "epoch" in row and "val_top1" in row
                                                for row in history):
        raise ValueError(f"runs[{run!r}]['history'] is not valid; give a list of per-epoch rows with 'epoch' and "
                         f"'val_top1'")


def ablation_table(results: Mapping[str, Any], experiment: Experiment) -> AblationTable:
    """The table of ``experiment``'s runs from its results file's content; unrecorded runs are pending rows.

    Args:
        results: the content of ``data/experiments/NAME.json`` (``experiment``, ``version``, ``budget``,
            ``runs``: run name -> record as :func:`zfcore.runner.run_experiment` writes it).
        experiment: its definition (:func:`zfcore.experiments.get_experiment`), which gives the runs, their
            order, what each changes and the parameter counts of pending runs.

    Returns:
        An :class:`AblationTable`: rows in the definition's order, the seeds' mean val top-1 and spread.

    Raises:
        ValueError: ``results`` is not a mapping, belongs to another experiment or version, records a run the
            definition does not have, or a record lacks a number (or has one out of range).
    """
    if not isinstance(results, Mapping) or not isinstance(results.get("runs"), Mapping):
        raise ValueError(f"results={type(results).__name__} is not valid; give a results file's content, a mapping "
                         f"with 'runs' (run name -> record)")
    if (results.get("experiment"), results.get("version")) != (experiment.name, experiment.version):
        raise ValueError(f"results of experiment={results.get('experiment')!r} version={results.get('version')!r} "
                         f"are not valid here; give results of {experiment.name!r} version {experiment.version}")
    names = [name for name, _ in experiment.runs]
    unknown = [name for name in results["runs"] if name not in names]
    if unknown:
        raise ValueError(f"runs={unknown!r} are not valid; valid runs of {experiment.name!r}: {tuple(names)}")
    for name, record in results["runs"].items():
        _check_record(name, record)
    base = experiment.runs[0][1]
    described = {name: _describe(config, base) for name, config in experiment.runs}
    seeds = [results["runs"][name]["val_top1"] for name, (_, kind) in described.items()
             if kind == "seed" and name in results["runs"]]
    mean = sum(seeds) / len(seeds) if seeds else None
    spread = max(seeds) - min(seeds) if len(seeds) >= 2 else None
    rows = []
    for name, config in experiment.runs:
        change, kind = described[name]
        record = results["runs"].get(name)
        if record is None:
            rows.append(AblationRow(name, change, kind, parameter_count(config), config.remove))
            continue
        difference = None if mean is None else record["val_top1"] - mean
        rows.append(AblationRow(name, change, kind, int(record["parameters"]), config.remove,
                                **{key: float(record[key]) for key in METRICS}, difference=difference,
                                real=None if spread is None else abs(difference) > 2 * spread,
                                history=tuple(record["history"])))
    return AblationTable(experiment.name, str(results.get("budget", experiment.budget)), tuple(rows), mean, spread)


@dataclass(frozen=True)
class ShortBudgetDepth:
    """C8's numbers (differences in val top-1, fractions; ``None`` where a run is missing).

    Attributes:
        depth_run, depth: the run removing layers of both sections, and its difference.
        largest_run, largest: the other single modification (one section removed, or layers resized)
            with the largest ``|difference|``, over the recorded ones.
        ratio: ``|largest| / |depth|``.
        matched_run, matched: the run with layers removed *and* the rest widened, and its difference.
        matched_real: whether ``matched`` is real (``|matched| > 2 x spread``).
        missing: runs the verdict needs that are not recorded yet.
        verdict: ``"agree"`` (the depth cut is a real drop and costs more than twice any other single
            change: ratio < 1/2), ``"partly"`` (a real drop, 1/2 <= ratio < 1), ``"differ"`` (not real, not
            a drop, or ratio >= 1),
            ``"pending"`` (a needed run is missing, or fewer than two seeds), ``"n/a"`` (the experiment has
            no depth cut).
    """

    depth_run: str | None
    depth: float | None
    largest_run: str | None
    largest: float | None
    ratio: float | None
    matched_run: str | None
    matched: float | None
    matched_real: bool | None
    missing: tuple[str, ...]
    verdict: str

    def findings(self) -> str:
        """The numbers the verdict rests on, in points of val top-1, as markdown ("" while none is recorded)."""
        parts = []
        if self.depth is not None:
            parts.append(f"removing the layers of both sections (`{self.depth_run}`) changes val top-1 by "
                         f"{100 * self.depth:+.1f} points")
        if self.largest is not None:
            parts.append(f"the largest change of any other modification (`{self.largest_run}`) is "
                         f"{100 * self.largest:+.1f}" + ("" if self.ratio is None else f", {self.ratio:.2f} of it"))
        if self.matched is not None:
            parts.append(f"the shallow network widened to the same parameter count (`{self.matched_run}`) is at "
                         f"{100 * self.matched:+.1f}" + ("" if self.matched_real is None else
                                                         " (real)" if self.matched_real else " (within the seed band)"))
        return "; ".join(parts)

    def sentence(self) -> str:
        """The verdict in one markdown sentence: the verdict, :meth:`findings` and the runs still missing."""
        if self.verdict == "n/a":
            return "**n/a**: this experiment has no run that removes layers of both sections."
        text = f"**{self.verdict}**" + (f": {self.findings()}" if self.findings() else "")
        return text + (f". Not recorded yet: {', '.join(f'`{run}`' for run in self.missing)}." if self.missing else ".")


def short_budget_depth(table: AblationTable) -> ShortBudgetDepth:
    """C8 ("a minimum depth, rather than any individual section, is vital", §6) from ``table``'s rows.

    Args:
        table: an :func:`ablation_table`.

    Returns:
        A :class:`ShortBudgetDepth`; parts whose runs are not recorded are ``None`` and listed in ``missing``.

    Raises:
        ValueError: ``table`` is not an :class:`AblationTable`.
    """
    if not isinstance(table, AblationTable):
        raise ValueError(f"table={type(table).__name__} is not valid; give an AblationTable (ablation_table)")

    depth = next((row for row in table.rows
                  if row.kind == "removed" and len({SECTIONS[name] for name in row.removed}) == 2), None)
    singles = [row for row in table.rows if row is not depth and row.kind in ("removed", "resized")]
    matched = next((row for row in table.rows if row.kind == "removed+resized"), None)
    needed = [row for row in (depth, *singles) if row is not None]
    missing = tuple(row.run for row in needed if row.pending)
    seeds = [row for row in table.rows if row.kind == "seed"]
    recorded = [row for row in singles if not row.pending and row.difference is not None]
    largest = max(recorded, key=lambda row: abs(row.difference), default=None)
    depth_value = None if depth is None else depth.difference
    ratio = (None if largest is None or depth_value is None  # a depth cut that changes nothing: infinitely smaller
             else abs(largest.difference) / abs(depth_value) if depth_value else math.inf)
    if depth is None:
        verdict = "n/a"
    elif missing or table.spread is None or ratio is None:
        verdict = "pending"
    elif not depth.real or depth_value > 0 or ratio >= 1:  # a cut that helps cannot show depth is vital
        verdict = "differ"
    else:
        verdict = "agree" if ratio < 0.5 else "partly"
    if table.spread is None:
        missing += tuple(row.run for row in seeds if row.pending)
    return ShortBudgetDepth(None if depth is None else depth.run, depth_value,
                     None if largest is None else largest.run, None if largest is None else largest.difference,
                     ratio, None if matched is None else matched.run, None if matched is None else matched.difference,
                     None if matched is None else matched.real, missing, verdict)
