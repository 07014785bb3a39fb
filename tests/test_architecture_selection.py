"""zfcore.analysis.architecture (Fig. 6): each measure on inputs whose answer is known."""

from __future__ import annotations

import pytest
import torch

from zfcore.analysis.architecture import (DEAD_RMS_FRACTION, dominance, filter_rms, filter_spectra, filter_use,
                                          lattice_energy_share, lattice_excess)
from zfcore.analysis.top9 import TopActivations
from zfcore.models import alexnet_style, zfnet


def _checkerboard(size: int, period: int) -> torch.Tensor:
    """A ``[size, size]`` pattern of +-1 squares repeating every ``period`` pixels."""
    cells = torch.arange(size) // (period // 2)
    return ((cells[:, None] + cells[None, :]) % 2).double() * 2 - 1


def test_spectra_put_a_checkerboard_filter_high_and_a_flat_one_low() -> None:
    flat = torch.ones(1, 3, 7, 7)
    checker = _checkerboard(7, 2).expand(1, 3, 7, 7)
    spectra = filter_spectra(torch.cat([flat, checker]))
    assert spectra.peak_frequency[0] == 0 and spectra.peak_frequency[1] == pytest.approx(0.5 * 2 ** 0.5)
    above = spectra.share_above(0.25)
    assert above[0] < 0.1 and above[1] > 0.9  # a 7-px box leaks 7 % through its sidelobes
    assert spectra.band_fractions() == {"low": 0.5, "mid": 0.0, "high": 0.5}
    # Parseval: the zero-padded spectrum holds the filter's energy
    assert spectra.power[1].sum() / 64 ** 2 == pytest.approx(float(checker.pow(2).sum()))
    with pytest.raises(ValueError, match=r"cutoff=0.6 is not valid"):
        spectra.share_above(0.6)
    with pytest.raises(ValueError, match=r"give filters \[F, C, k, k\]"):
        filter_spectra(torch.ones(2, 3, 5, 7))


def test_lattice_share_is_one_for_a_grid_and_tiny_for_smooth_images() -> None:
    grid = _checkerboard(32, 4).expand(1, 3, 32, 32).float()
    wave = torch.cos(2 * torch.pi * torch.arange(32) / 32).expand(1, 3, 32, 32)  # one cycle across: no lattice
    noise = torch.randn(200, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(lattice_energy_share(grid, 4)) == pytest.approx(1.0)
    assert float(lattice_energy_share(wave, 8)) < 1e-9
    assert float(lattice_energy_share(noise, 4).mean()) == pytest.approx((16 - 1) / (32 * 32 - 1), rel=0.15)
    with pytest.raises(ValueError, match=r"period=1 is not valid"):
        lattice_energy_share(grid, 1)
    with pytest.raises(ValueError, match=r"multiples of period=5"):
        lattice_energy_share(grid, 5)


def test_lattice_excess_is_one_without_a_grid_and_grows_with_one() -> None:
    generator = torch.Generator().manual_seed(1)
    patches = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=generator)
    boxes = torch.tensor([[0, 0, 40, 40], [10, 20, 58, 64], [5, 5, 29, 29]] * 2)
    same = patches.double() - 128
    assert lattice_excess(same, patches, boxes, 8) == pytest.approx(1.0)
    gridded = same + 200 * _checkerboard(64, 8)
    assert lattice_excess(gridded, patches, boxes, 8) > 3
    with pytest.raises(ValueError, match=r"must agree"):
        lattice_excess(same[:3], patches, boxes, 8)
    with pytest.raises(ValueError, match=r"no receptive-field box is at least period=8"):
        lattice_excess(same[:1], patches[:1], torch.tensor([[0, 0, 4, 64]]), 8)


def test_filter_use_counts_silent_channels_and_decayed_filters() -> None:
    model = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he")
    with torch.no_grad():
        model.features.conv1.weight[3] *= DEAD_RMS_FRACTION / 2
    values = torch.rand(12, 9) + 0.1
    values[[0, 5]] = 0.0
    top = TopActivations("conv1", values, torch.zeros(12, 9, dtype=torch.long), torch.zeros(12, 9, 2, dtype=torch.long))
    use = filter_use(model, {"conv1": top})["conv1"]
    assert use.never_fire.nonzero().flatten().tolist() == [0, 5] and use.never_fire_fraction == pytest.approx(2 / 12)
    assert use.low_rms.nonzero().flatten().tolist() == [3]
    torch.testing.assert_close(use.weight_rms, filter_rms(model, "conv1"))
    with pytest.raises(ValueError, match=r"has 12 channels but the model's conv2 has 32"):
        filter_use(model, {"conv2": top})
    with pytest.raises(ValueError, match=r"layer='fc6' is not valid"):
        filter_rms(model, "fc6")


def test_dominance_and_the_alexnet_style_first_layer() -> None:
    weights = torch.ones(8, 3, 7, 7)
    assert dominance(weights) == pytest.approx(1.0)
    weights[2] *= 10
    assert dominance(weights) == pytest.approx(10.0)
    conv1 = alexnet_style(10, 64, widths=(12, 32, 48, 48, 32), fc=64).features.conv1.weight
    assert tuple(conv1.shape) == (12, 3, 11, 11) and filter_spectra(conv1).power.shape == (12, 64, 64)
