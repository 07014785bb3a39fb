"""Table 3's analysis (zfcore.analysis.ablations) on synthetic results files, and on the `ci` miniature run for real."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")

from zfcore import plots  # noqa: E402
from zfcore.analysis.ablations import (PAPER_ROWS, PAPER_TABLE2, PAPER_TABLE3, AblationTable, Table,  # noqa: E402
                                       ablation_table, short_budget_depth)
from zfcore.experiments import get_experiment, parameter_count  # noqa: E402
from zfcore.runner import run_experiment  # noqa: E402

ABLATIONS = get_experiment("ablations")
SEEDS = ("fig3-seed0", "fig3-seed1", "fig3-seed2")


def record(val_top1: float, minutes: float = 10.0, parameters: int = 1000) -> dict:
    """A run record as the runner writes it (only the fields the table reads, plus a two-epoch history)."""
    return {"parameters": parameters, "train_top1": val_top1 - 0.01, "val_top1": val_top1, "val_top5": val_top1 + 0.3,
            "wall_minutes": minutes,
            "history": [{"epoch": 1, "val_top1": val_top1 / 2}, {"epoch": 2, "val_top1": val_top1}]}


def results(runs: dict, experiment=ABLATIONS) -> dict:
    return {"experiment": experiment.name, "version": experiment.version, "budget": "a test budget",
            "runs": {name: record(value) if isinstance(value, float) else value for name, value in runs.items()}}


SEED_VALUES = dict(zip(SEEDS, (0.30, 0.31, 0.32)))  # mean 0.31, spread 0.02: real beyond 0.04


def full(**changes: float) -> dict:
    """Every run recorded: seeds as above, the depth cut 20 points down, the other changes 1 point, unless given."""
    values = {name: 0.30 for name, _ in ABLATIONS.runs} | SEED_VALUES | {"no-conv3-conv4-fc6-fc7": 0.11}
    return results(values | {name.replace("_", "-"): value for name, value in changes.items()})


def test_rows_follow_the_definition_and_unrecorded_runs_are_pending() -> None:
    table = ablation_table(results(dict(list(SEED_VALUES.items())[:2])), ABLATIONS)
    assert [row.run for row in table.rows] == [name for name, _ in ABLATIONS.runs]
    assert [row.pending for row in table.rows] == [False, False] + [True] * 10
    assert table.seed_mean == pytest.approx(0.305) and table.spread == pytest.approx(0.01)
    assert table.total_minutes == pytest.approx(20.0) and table.budget == "a test budget"
    pending = table.row("conv3-5-wide")
    assert (pending.val_top1, pending.difference, pending.real, pending.history) == (None, None, None, ())
    assert pending.parameters == parameter_count(dict(ABLATIONS.runs)["conv3-5-wide"])
    assert pending.kind == "resized" and "conv4 384→1024" in pending.change
    assert table.row("no-conv3-conv4-matched").kind == "removed+resized"
    assert table.row("no-fc6-fc7").removed == ("fc6", "fc7") and table.row("fig3-seed1").kind == "seed"
    lines = table.table()._repr_markdown_().splitlines()
    assert len(lines) == 2 + len(ABLATIONS.runs)
    assert "| no-conv3-conv4 | conv3, conv4 removed |" in lines[5] and "| pending |" in lines[5]
    assert "Removed layers 3,4, on their replication of Krizhevsky et al. | 45.4 % | -4.9 |" in lines[5]
    assert "| 30.0 % |" in lines[2] and "| -0.5 | no | Our Model (as per Fig. 3) | 38.4 % | +0.0 |" in lines[2]


def test_a_difference_is_real_only_beyond_twice_the_seed_spread() -> None:
    table = ablation_table(results(SEED_VALUES | {"no-fc7": 0.31 - 0.041, "fc-512": 0.31 + 0.039,
                                                  "fc-2048": 0.31 + 0.041}), ABLATIONS)
    assert table.spread == pytest.approx(0.02)
    assert table.row("no-fc7").difference == pytest.approx(-0.041) and table.row("no-fc7").real is True
    assert table.row("fc-512").real is False and table.row("fc-2048").real is True
    assert [table.row(seed).real for seed in SEEDS] == [False] * 3  # a seed is never beyond twice the spread
    one_seed = ablation_table(results({"fig3-seed0": 0.30, "no-fc7": 0.10}), ABLATIONS)
    assert one_seed.spread is None and one_seed.row("no-fc7").real is None  # no spread from one seed
    assert one_seed.row("no-fc7").difference == pytest.approx(-0.20)


def test_c8_verdict_needs_its_runs_and_compares_the_depth_cut_with_every_other_change() -> None:
    verdict = short_budget_depth(ablation_table(full(no_fc6_fc7=0.25, no_conv3_conv4_matched=0.20), ABLATIONS))
    assert (verdict.depth_run, verdict.largest_run, verdict.matched_run) == ("no-conv3-conv4-fc6-fc7", "no-fc6-fc7",
                                                                             "no-conv3-conv4-matched")
    assert verdict.depth == pytest.approx(-0.20) and verdict.largest == pytest.approx(-0.06)
    assert verdict.ratio == pytest.approx(0.3) and verdict.verdict == "agree" and verdict.missing == ()
    assert verdict.matched == pytest.approx(-0.11) and verdict.matched_real is True
    assert verdict.sentence() == ("**agree**: removing the layers of both sections (`no-conv3-conv4-fc6-fc7`) changes "
                                  "val top-1 by -20.0 points; the largest change of any other modification "
                                  "(`no-fc6-fc7`) is -6.0, 0.30 of it; the shallow network widened to the same "
                                  "parameter count (`no-conv3-conv4-matched`) is at -11.0 (real).")
    assert short_budget_depth(ablation_table(full(conv3_5_wide=0.16), ABLATIONS)).verdict == "partly"  # 15 of 20 points
    assert short_budget_depth(ablation_table(full(conv3_5_wide=0.55), ABLATIONS)).verdict == "differ"  # a bigger change
    assert short_budget_depth(ablation_table(full(no_conv3_conv4_fc6_fc7=0.28), ABLATIONS)).verdict == "differ"  # not real
    # a depth cut that *helps* by 20 points (small changes elsewhere) contradicts "depth is vital"
    assert short_budget_depth(ablation_table(full(no_conv3_conv4_fc6_fc7=0.51), ABLATIONS)).verdict == "differ"
    partial = full()
    del partial["runs"]["fc-2048"], partial["runs"]["no-conv3-conv4-matched"]
    verdict = short_budget_depth(ablation_table(partial, ABLATIONS))
    assert verdict.verdict == "pending" and verdict.missing == ("fc-2048",)
    assert verdict.sentence().startswith("**pending**: removing") and verdict.sentence().endswith(
        "Not recorded yet: `fc-2048`.")
    assert verdict.depth == pytest.approx(-0.20) and verdict.matched is None and verdict.matched_real is None
    only_seeds = short_budget_depth(ablation_table(results({"fig3-seed0": 0.3}), ABLATIONS))
    assert only_seeds.verdict == "pending" and only_seeds.depth is None and only_seeds.ratio is None
    assert {"no-conv3-conv4-fc6-fc7", "fig3-seed1", "fig3-seed2"} <= set(only_seeds.missing)


@pytest.mark.parametrize("bad, message", [
    ([1, 2], r"results=list is not valid; give a results file's content"),
    ({"runs": []}, r"results=dict is not valid"),
    ({"experiment": "ci", "version": 1, "runs": {}}, r"experiment='ci' version=1 are not valid here; give results "
                                                       r"of 'ablations' version 1"),
    ({"experiment": "ablations", "version": 2, "runs": {}}, r"version=2 are not valid here"),
    (results({"fig9": 0.3}), r"runs=\['fig9'\] are not valid; valid runs of 'ablations': \('fig3-seed0'"),
    (results({"no-fc7": record(0.3) | {"val_top1": 1.5}}),
     r"runs\['no-fc7'\]\['val_top1'\]=1.5 is not valid; give a finite number in \[0, 1\]"),
    (results({"no-fc7": record(0.3) | {"val_top5": math.nan}}), r"\['val_top5'\]=nan is not valid"),
    (results({"no-fc7": record(0.3) | {"wall_minutes": True}}), r"\['wall_minutes'\]=True is not valid"),
    (results({"no-fc7": {"val_top1": 0.3}}), r"\['train_top1'\]=None is not valid"),
    (results({"no-fc7": record(0.3) | {"history": [{"epoch": 1}]}}), r"\['history'\] is not valid"),
    (results({"no-fc7": "done"}), r"runs\['no-fc7'\]=str is not valid; give a run record"),
])
def test_malformed_results_are_refused_naming_what_is_wrong(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        ablation_table(bad, ABLATIONS)


def test_bad_arguments_of_the_table_and_the_verdict() -> None:
    table = ablation_table(results({}), ABLATIONS)
    with pytest.raises(ValueError, match=r"run='fig9' is not valid; valid runs: \('fig3-seed0'"):
        table.row("fig9")
    with pytest.raises(ValueError, match=r"table=dict is not valid; give an AblationTable"):
        short_budget_depth({})


def test_a_table_shows_as_markdown_in_jupyter_and_as_html_in_the_book() -> None:
    box = Table(("Claim", "§6: depth"), (("**Ours**", "`book` <b>"),), admonition="Paper vs ours")
    assert box._repr_markdown_().splitlines() == [
        ":::{admonition} Paper vs ours", ":class: tip paper-vs-ours", "", "| Claim | §6: depth |", "|---|---|",
        "| **Ours** | `book` <b> |", ":::"]
    assert box._repr_html_() == ('<div class="tip paper-vs-ours admonition"><p class="admonition-title">Paper vs ours'
                                 '</p><table class="table"><thead><tr><th>Claim</th><th>§6: depth</th></tr></thead>'
                                 '<tbody><tr><td><strong>Ours</strong></td><td><code>book</code> &lt;b&gt;</td></tr>'
                                 '</tbody></table></div>')
    with pytest.raises(ValueError, match=r"rows=\[\('x',\)\] are not valid; give 2 cells per row"):
        Table(("a", "b"), (("x",),))


def test_paper_tables_are_consistent_with_each_other() -> None:
    table2 = {name: val for name, val, _, _ in PAPER_TABLE2}
    table3 = {(network, name): val for network, name, _, val, _ in PAPER_TABLE3}
    assert table3[("fig3", "Our Model (as per Fig. 3)")] == table2["1 convnet as per Fig. 3"] == 38.4
    assert table3[("krizhevsky", "Our replication of (Krizhevsky et al., 2012), 1 convnet")] == 40.5
    assert table3[("fig3", "Adjust layers 3,4,5: 512,1024,512 maps")] == table2[
        "1 convnet as per Fig. 3 but with layers 3,4,5: 512,1024,512 maps - (b)"]
    assert set(PAPER_ROWS) < {name for name, _ in ABLATIONS.runs}
    assert PAPER_TABLE3[7][1] == "Our Model (as per Fig. 3)"  # the row the seed runs map to


def test_the_ci_miniature_runs_and_gives_its_table_and_figure(tmp_path) -> None:
    experiment = get_experiment("ci")
    table = ablation_table(run_experiment("ci", results_dir=tmp_path / "results", runs_dir=tmp_path / "runs",
                                          progress=False), experiment)
    assert isinstance(table, AblationTable) and [row.kind for row in table.rows] == ["seed", "removed"]
    assert not any(row.pending for row in table.rows) and table.spread is None  # one seed: no spread
    shallow = table.row("no-conv3-conv4")
    assert shallow.parameters < table.row("fig3").parameters and len(shallow.history) == 2
    assert shallow.difference == pytest.approx(shallow.val_top1 - table.row("fig3").val_top1)
    verdict = short_budget_depth(table)
    assert verdict.verdict == "n/a" and verdict.depth_run is None and verdict.largest_run == "no-conv3-conv4"
    assert verdict.sentence() == "**n/a**: this experiment has no run that removes layers of both sections."
    figure = plots.ablation_figure(table)
    assert [axis.get_title() for axis in figure.axes] == ["val top-1 per run", "val top-1 per epoch"]
    assert len(figure.axes[1].get_lines()) == 2


def test_figure_keeps_grey_for_the_seeds_and_gives_every_other_run_its_own_colour() -> None:
    figure = plots.ablation_figure(ablation_table(full(), ABLATIONS))
    lines = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in figure.axes[1].get_lines()}
    assert len(lines) == len(ABLATIONS.runs)

    def is_grey(colour: str) -> bool:  # any grey, the default cycle's own included
        red, green, blue = matplotlib.colors.to_rgb(colour)
        return max(red, green, blue) - min(red, green, blue) < 0.05

    assert {run for run, colour in lines.items() if is_grey(colour)} == set(SEEDS)
    others = [colour for run, colour in lines.items() if run not in SEEDS]
    assert len(set(others)) == len(others)  # 9 modified runs, 9 colours
    matplotlib.pyplot.close(figure)


def test_the_summary_names_the_seeds_the_real_differences_and_each_papers_row() -> None:
    table = ablation_table(full(no_fc7=0.25, fc_512=0.305), ABLATIONS)
    lines = table.summary(short_budget_depth(table)).splitlines()
    assert lines[0] == ("- **Seeds.** 3 seed(s) of the unmodified network: val top-1 30.0 %, 31.0 %, 32.0 %; spread "
                        "2.0 points, so a difference is real beyond 4.0 points.")
    assert lines[1] == ("- **Rows.** 9 of 9 modified networks recorded; real differences: "
                        "`no-fc7` -6.0 points, `no-conv3-conv4-fc6-fc7` -20.0 points.")
    assert "`fc-512`" not in lines[1]  # -0.5 points: within the seed band
    assert "- `fc-512`: -0.5 points (within the seed band); the paper's" in table.summary(short_budget_depth(table))
    assert lines[-1].startswith("- **Scale.**") and "ours: a test budget" in lines[-1] and "120 min (2.0 h)" in lines[-1]
    one_seed = ablation_table(results({"fig3-seed0": 0.30, "no-fc7": 0.10}), ABLATIONS)
    assert "real differences: unknown with fewer than two seeds." in one_seed.summary(short_budget_depth(one_seed))


def test_the_budget_reading_explains_a_depth_cut_that_helps() -> None:
    harmful = ablation_table(full(), ABLATIONS)
    assert len(harmful.budget_reading(short_budget_depth(harmful))) == 1  # the depth cut costs: the rule alone
    helps = ablation_table(full(no_conv3_conv4_fc6_fc7=0.40), ABLATIONS)
    depth = short_budget_depth(helps)
    assert depth.verdict == "differ"
    rule, budget = helps.budget_reading(depth)
    assert rule.startswith("**The depth cut at 6 epochs:** **differ**")
    assert budget.startswith("**What this budget can say.** Here the 4-layer network is *better* than the unmodified "
                             "one, by +9.0 points. Every network had 2 epochs")
    assert "train top-1 (measured during training, with augmentation and dropout) is 29.0–31.0 % against 30.0–32.0 %" in budget


def test_table2_puts_ours_beside_the_papers_rows_with_the_conv1_conv2_gain() -> None:
    class Meta:  # a published network's metadata (zfcore.weights)
        def __init__(self, top1: float) -> None:
            self.top1, self.top5, self.dataset, self.num_classes = top1, top1 + 0.25, "tiny-imagenet", 200
            self.input_size, self.epochs, self.hardware, self.train_minutes = 64, 28, "a CPU", 83.1

    table, gain = ablation_table(full(conv3_5_wide=0.33), ABLATIONS).table2({"ZF": Meta(0.409), "AlexNet-style": Meta(0.382)})
    assert [row[0] for row in table.rows][:len(PAPER_TABLE2)] == [f"Paper: {row[0]}" for row in PAPER_TABLE2]
    assert table.rows[len(PAPER_TABLE2)] == ("Ours: ZF", "59.1 %", "34.1 %", "40.9 %",
                                             "tiny-imagenet, 200 classes, 64 px, 28 epochs, a CPU, 83 min")
    assert table.rows[-1][1:4] == ("67.0 %", "37.0 %", "33.0 %") and "31.0 % top-1" in table.rows[-1][4]
    assert gain == (f"Fig. 3's changes to conv1 and conv2 gain +2.7 points of val top-1 here, "
                    f"{PAPER_TABLE2[2][1] - PAPER_TABLE2[3][1]:+.1f} in the paper (replication vs Fig. 3).")
