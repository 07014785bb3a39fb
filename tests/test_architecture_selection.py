"""zfcore.analysis.architecture (Fig. 6): each measure on inputs whose answer is known."""

from __future__ import annotations

import pytest
import torch

from zfcore.analysis.architecture import (ALEXNET_SEEDS, BOOK_SEEDS, FLIP_MARGIN, STRIDE2, STRIDE4, box_lattice_shares,
                                          c5_verdict, combine, dominance, filter_concentration, filter_rms,
                                          filter_spectra, lattice_energy_share, mid_band, null_switch_projections,
                                          random_concentration, shift_consistency, unpooling_period, unstructured)
from zfcore.analysis.top9 import TopActivations, top_activations, top_projections
from zfcore.data.loader import pixel_batches
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


def test_dominance_and_the_alexnet_style_first_layer() -> None:
    weights = torch.ones(8, 3, 7, 7)
    assert dominance(weights) == pytest.approx(1.0)
    weights[2] *= 10
    assert dominance(weights) == pytest.approx(10.0)
    conv1 = alexnet_style(10, 64, widths=(12, 32, 48, 48, 32), fc=64).features.conv1.weight
    assert tuple(conv1.shape) == (12, 3, 11, 11) and filter_spectra(conv1).power.shape == (12, 64, 64)
    model = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he")
    with torch.no_grad():
        model.features.conv1.weight[3] *= 0.5
    rms = filter_rms(model.features.conv1.weight)
    assert rms.shape == (12,) and float(rms[3]) == pytest.approx(float(model.features.conv1.weight[3].detach().double().pow(2).mean().sqrt()))


def _gabor(size: int, frequency: float, angle: float = 0.0) -> torch.Tensor:
    """A ``[3, size, size]`` Gabor filter: a cosine of ``frequency`` cycles / px under a Gaussian."""
    grid = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    along = x * torch.cos(torch.tensor(angle)) + y * torch.sin(torch.tensor(angle))
    envelope = torch.exp(-(x**2 + y**2) / (2 * (size / 4) ** 2))
    return (envelope * torch.cos(2 * torch.pi * frequency * along)).expand(3, size, size)


def test_concentration_tells_gabor_filters_from_noise() -> None:
    for size in (7, 11):
        gabors = torch.stack([_gabor(size, frequency, angle) for frequency in (0.1, 0.25, 0.4) for angle in (0.0, 1.0)])
        noise = torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
        assert filter_concentration(gabors).min() > random_concentration((3, size, size)).quantile(0.99)
        assert not unstructured(gabors).any() and unstructured(noise).sum() >= 5
    mid = mid_band(torch.stack([_gabor(11, 0.25), _gabor(11, 0.05), _gabor(11, 0.45)]))
    assert mid.tolist() == [True, False, False]
    with pytest.raises(ValueError, match=r"shape=\(3, 5, 7\) is not valid"):
        random_concentration((3, 5, 7))
    with pytest.raises(ValueError, match=r"count"):
        random_concentration((3, 7, 7), count=0)


def test_box_lattice_shares_crop_to_the_box() -> None:
    grid = (_checkerboard(64, 8) * 0 - 1).expand(3, 64, 64).clone()
    grid[:, 8:40, 8:40] = _checkerboard(32, 8)  # a grid inside the box, flat (no energy but DC) outside
    smooth = torch.cos(2 * torch.pi * torch.arange(64) / 32).expand(3, 64, 64)  # one cycle across the box
    boxes = torch.tensor([[8, 8, 40, 40], [8, 8, 40, 40]])
    shares = box_lattice_shares(torch.stack([grid, smooth]), boxes, 8)
    assert float(shares[0]) == pytest.approx(1.0) and float(shares[1]) < 1e-6
    with pytest.raises(ValueError, match=r"must agree"):
        box_lattice_shares(torch.stack([grid, smooth]), boxes[:1], 8)
    with pytest.raises(ValueError, match=r"no receptive-field box is at least period=8"):
        box_lattice_shares(grid[None], torch.tensor([[0, 0, 4, 64]]), 8)


def _tiny(style: str = "zf") -> torch.nn.Module:
    build = zfnet if style == "zf" else alexnet_style
    return build(10, 64, widths=(8, 16, 16, 16, 16), fc=32, init="he").eval()


def test_null_switches_are_the_own_projection_when_every_image_is_the_same() -> None:
    model = _tiny()
    assert unpooling_period(model) == 4 and unpooling_period(_tiny("alexnet")) == 8
    generator = torch.Generator().manual_seed(2)
    one = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8, generator=generator)
    same = one.expand(5, 64, 64, 3).contiguous()
    top = top_activations(model, pixel_batches(same, 5), ["conv2"], k=3, progress=False)["conv2"]
    own = top_projections(model, same, top, channels=[0, 3], progress=False)
    null, other = null_switch_projections(model, same, top, [0, 3])
    assert bool((other != top.image_index[[0, 3]]).all())
    torch.testing.assert_close(null, own.projections, rtol=1e-4, atol=1e-6)
    varied = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8, generator=generator)
    top = top_activations(model, pixel_batches(varied, 5), ["conv2"], k=3, progress=False)["conv2"]
    own = top_projections(model, varied, top, channels=[1], progress=False)
    null, _ = null_switch_projections(model, varied, top, [1])
    assert not torch.allclose(null, own.projections)
    with pytest.raises(ValueError, match=r"at least 2"):
        null_switch_projections(model, varied[:1], top, [1])
    with pytest.raises(ValueError, match=r"channels=\[16\] are not valid"):
        null_switch_projections(model, varied, top, [16])


def test_shift_consistency_is_zero_for_flat_images_and_not_for_textures() -> None:
    model = _tiny()
    colours = torch.randint(0, 256, (4, 1, 1, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    flat = shift_consistency(model, colours.expand(4, 64, 64, 3).contiguous(), (1, 2))
    assert flat.flips.shape == (4, 4) and not flat.flips.any()
    assert float(flat.map_change["pool1"].abs().max()) < 1e-6
    texture = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    shifted = shift_consistency(model, texture, (1, 2))
    assert float(shifted.map_change["pool1"].min()) > 1e-3
    assert set(shifted.flip_rate_by_shift()) == {1, 2} and shifted.flip_rate().shape == (4,)
    with pytest.raises(ValueError, match=r"shifts=\(0,\) are not valid"):
        shift_consistency(model, texture, (0,))


def test_combine_gives_an_outcome_only_when_a_pending_part_cannot_change_it() -> None:
    assert combine({"a": "agree", "b": "agree"}) == "agree"
    assert combine({"a": "differ", "b": "differ"}) == "differ"
    assert combine({"a": "agree", "b": "differ", "c": "inconclusive"}) == "partly"
    assert combine({"a": "agree", "b": "inconclusive"}) == "inconclusive"
    assert combine({"a": "agree", "b": "differ", "c": "pending"}) == "partly"
    assert combine({"a": "differ", "b": "differ", "c": "pending"}) == "pending"
    with pytest.raises(ValueError, match=r"parts=.* are not valid"):
        combine({"a": "partly"})


def _parts(alexnet_flips: float, alexnet_mid: int, alexnet_unstructured: int) -> dict:
    """Synthetic measurements: ZF fixed, the AlexNet-style arm set by the arguments."""
    generator = torch.Generator().manual_seed(5)
    flips_zf = torch.rand(400, generator=generator) * 0.2
    filters = torch.zeros(96, dtype=torch.bool)
    mid_zf, mid_alex, dead_alex = filters.clone(), filters.clone(), filters.clone()
    mid_zf[:24], mid_alex[:alexnet_mid], dead_alex[:alexnet_unstructured] = True, True, True
    shares = torch.rand(288, generator=generator) * 0.05
    return {"mid": {STRIDE4: mid_alex, STRIDE2: mid_zf},
            "unstructured_filters": {STRIDE4: dead_alex, STRIDE2: filters},
            "flip_rates": {STRIDE4: flips_zf + alexnet_flips, STRIDE2: flips_zf},
            "lattice_own": {STRIDE4: shares, STRIDE2: shares}, "lattice_null": {STRIDE4: shares * 2, STRIDE2: shares}}


def test_c5_verdict_follows_its_rule() -> None:
    seeds = {run: 0.41 + 0.002 * index for index, run in enumerate(BOOK_SEEDS)}
    alexnet = {run: 0.38 + 0.002 * index for index, run in enumerate(ALEXNET_SEEDS)}
    claim = c5_verdict(**_parts(3 * FLIP_MARGIN, 4, 30), accuracies={**seeds, **alexnet})
    assert claim.outcome == "agree" and claim.details["parts"]["accuracy"] == "agree"
    assert claim.control_estimate.value > claim.estimate.value  # the null switches' grid is stronger here
    same = c5_verdict(**_parts(0.0, 44, 0), accuracies={**seeds, **{run: 0.41 + 0.002 * index for index, run
                                                                    in enumerate(ALEXNET_SEEDS)}})
    assert same.outcome == "differ" and set(same.details["parts"].values()) == {"differ"}
    mixed = c5_verdict(**_parts(3 * FLIP_MARGIN, 24, 0), accuracies=seeds)
    assert mixed.details["parts"]["accuracy"] == "pending" and mixed.outcome == "partly"
    assert mixed.details["accuracy"]["missing"] == list(ALEXNET_SEEDS) and "waiting for alexnet-seed0" in mixed.reason
    undecided = c5_verdict(**_parts(0.0, 24, 0), accuracies={})
    assert undecided.outcome == "pending"
    with pytest.raises(ValueError, match=r"give one entry per network"):
        c5_verdict(**{**_parts(0.0, 24, 0), "mid": {STRIDE4: torch.zeros(3)}}, accuracies={})
    with pytest.raises(ValueError, match=r"accuracies=.*book-seed0.* are not valid"):
        c5_verdict(**_parts(0.0, 24, 0), accuracies={"book-seed0": 41.0})
    with pytest.raises(ValueError, match=r"give the same images to both"):
        c5_verdict(**{**_parts(0.0, 24, 0), "flip_rates": {STRIDE4: torch.zeros(3), STRIDE2: torch.zeros(4)}},
                   accuracies={})
