"""zfcore.plots.architecture's tables (chapter 05): each row shows the numbers of the measures it names."""

from __future__ import annotations

import pytest
import torch

from zfcore.analysis.ablations import PAPER_TABLE2
from zfcore.analysis.architecture import STRIDE2, STRIDE4, ShiftConsistency, filter_spectra, mid_band, unstructured
from zfcore.plots.architecture import (fig6_accuracy_table, filter_rms_table, lattice_table, paper_inputs_summary,
                                      shift_table, spectrum_table, structure_table)
from zfcore.weights import WeightsMeta


def _rows(table: str) -> list[list[str]]:
    """The body rows of the markdown table in ``table``, as cells."""
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_spectrum_table_shows_each_first_layers_bands_and_energy_above_its_nyquist() -> None:
    flat, checker = torch.ones(2, 3, 7, 7), (torch.arange(7) % 2 * 2 - 1.0).expand(2, 3, 7, 7).clone()
    conv1 = {"flat": flat, "checker": checker}
    spectra = {name: filter_spectra(weights) for name, weights in conv1.items()}
    rows = _rows(spectrum_table(spectra, {"flat": 2, "checker": 4}, conv1))
    assert [row[0] for row in rows] == ["flat (stride 2)", "checker (stride 4)"]
    assert rows[0][1] == "100 % / 0 % / 0 %" and rows[1][1] == "0 % / 0 % / 100 %"
    assert int(rows[0][2].rstrip(" %")) < 10 < 90 < int(rows[1][2].rstrip(" %"))  # above 1/4 and 1/8 cycles/px
    assert rows[0][5] == rows[1][5] == "1.00"  # every filter as strong as the median


def _bank(*rms: float) -> torch.Tensor:
    """A ``[F, 3, 7, 7]`` bank whose filters have exactly these RMS values."""
    return torch.tensor(rms, dtype=torch.float64)[:, None, None, None] * torch.ones(len(rms), 3, 7, 7)


def test_filter_rms_table_counts_capped_filters_and_the_dominant_one() -> None:
    (capped, free) = _rows(filter_rms_table({"capped": _bank(0.1, 0.0996, 0.05), "free": _bank(0.02, 0.04, 0.4)},
                                                cap=0.1))
    assert capped == ["capped", "0.0500 / 0.0996 / 0.1000", "2 of 3", "1.00"]
    assert free == ["free", "0.0200 / 0.0400 / 0.4000", "1 of 3", "10.00"]  # 0.4 is above the cap too
    assert _rows(filter_rms_table({"free": _bank(0.02, 0.04, 0.4)}, cap=0.03))[0][2] == "2 of 3"


def test_paper_inputs_summary_compares_dominance_with_and_without_the_cap_and_waits_for_the_runs() -> None:
    assert paper_inputs_summary(None, _bank(1, 1), cap=0.1).startswith("**Pending.** The verdict runs `paper-inputs-renorm`")
    runs = {"renormalised": _bank(0.1, 0.1, 0.1), "not renormalised": _bank(0.1, 0.2, 1.0)}
    summary = paper_inputs_summary(runs, _bank(0.1, 0.2, 0.3), cap=0.1)
    assert [row[0] for row in _rows(summary)] == ["renormalised", "not renormalised",
                                                  "ZF-64 at the book's input scale, not renormalised (panel (a))"]
    assert "5.00 times the median without the cap (not renormalised) and 1.00 times with it" in summary
    assert "without the cap, 1.50 times" in summary and "not scored" in summary
    with pytest.raises(ValueError, match="paper_inputs has 1 banks"):
        paper_inputs_summary({"renormalised": runs["renormalised"]}, _bank(1, 1), cap=0.1)


def test_structure_table_counts_filters_and_tells_noise_from_structure() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(32, 3, 7, 7, generator=generator)
    xs = torch.arange(7) - 3.0
    blob = torch.exp(-(xs[:, None] ** 2 + xs[None, :] ** 2) / 4).expand(32, 3, 7, 7).clone()
    conv1 = {STRIDE4: noise, STRIDE2: blob}
    table = structure_table(conv1, {name: unstructured(weights) for name, weights in conv1.items()},
                            {name: mid_band(weights) for name, weights in conv1.items()})
    assert table.startswith("Per filter (n = 32 per network;")
    (_, *noise_row), (_, *blob_row) = _rows(table)
    shares = [float(row[2].split(" %")[0]) for row in (noise_row, blob_row)]
    assert shares[0] > 50 > shares[1] == 0  # noise filters are unstructured, smooth blobs are not


def test_lattice_table_gives_the_paired_difference_of_own_and_other_switches() -> None:
    own, other = torch.full((40,), 0.3), torch.full((40,), 0.1)
    (row,) = _rows(lattice_table({"net": {"own": own, "null": other, "period": 4}}))
    assert row[:2] == ["net", "4 px"] and row[5] == "40"
    assert row[2].startswith("30.00 %") and row[3].startswith("10.00 %") and row[4].startswith("20.00 %")
    with pytest.raises(KeyError):
        lattice_table({"net": {"own": own, "period": 4}})


def test_shift_table_shows_flip_rates_per_shift_and_the_paired_difference() -> None:
    def result(flipped: float) -> ShiftConsistency:
        flips = torch.zeros(10, 6, dtype=torch.bool)  # right and down per shift
        flips[: int(10 * flipped)] = True
        return ShiftConsistency(shifts=(1, 2, 3), flips=flips, map_change={"pool1": torch.zeros(10, 6),
                                                                           "pool2": torch.ones(10, 6)})
    table = shift_table({STRIDE4: result(0.5), STRIDE2: result(0.2)}, 10)
    rows = _rows(table)
    assert table.startswith("On 10 validation images:") and rows[0][1] == "50.0 % / 50.0 % / 50.0 %"
    assert rows[1][2].startswith("20.0 %") and rows[1][4].startswith("1.000")
    assert "paired over images: 30.00 points" in table


def test_fig6_accuracy_table_quotes_table2_as_accuracies_beside_our_runs() -> None:
    run = {"val_top1": 0.40, "val_top5": 0.65, "val_top1_10crop": 0.42, "val_top5_10crop": 0.67, "wall_minutes": 75.4,
           "device": "cpu: a third CPU"}
    meta = WeightsMeta("tiny-imagenet", 200, 64, "book", "mean-std", 28, 80.0, 0.409, 0.66, 0.43, 0.68, 10000, 1,
                       hardware="a CPU")
    alexnet = WeightsMeta("tiny-imagenet", 200, 64, "book-alexnet", "mean-std", 28, 40.2, 0.381, 0.63, 0.39, 0.65,
                          10000, 1, style="alexnet", hardware="another CPU")
    rows = _rows(fig6_accuracy_table((meta, alexnet), {"ZF-64 without renormalisation": run}))
    paper = [f"{100 - PAPER_TABLE2[i][1]:.1f} %" for i in (0, 2, 3)]
    assert [row[1] for row in rows[:3]] == paper == ["59.3 %", "59.5 %", "61.6 %"]
    assert rows[3][0].endswith("ZF-64, the book's reference run (a CPU, 80 min)")
    assert rows[3][1:] == ["40.9 %", "66.0 %", "43.0 %", "68.0 %"]
    assert rows[4][0].endswith("AlexNet-style ZF-64, Fig. 6's reference run (another CPU, 40 min)")
    assert rows[4][1:] == ["38.1 %", "63.0 %", "39.0 %", "65.0 %"]
    assert len(rows) == 6 and rows[5][0].endswith(": ZF-64 without renormalisation (cpu: a third CPU, 75 min)")
    assert rows[5][1:] == ["40.0 %", "65.0 %", "42.0 %", "67.0 %"]
