"""Architecture selection (§4.1, Fig. 6): dead filters and aliasing, measured instead of judged by eye.

Zeiler & Fergus looked at the first two layers of Krizhevsky et al.'s network and saw two problems
(Fig. 6(b), (d); Zeiler & Fergus 2014, §4.1): "The first layer filters are a mix of extremely high
and low frequency information, with little coverage of the mid frequencies. Additionally, the 2nd
layer visualization shows aliasing artifacts caused by the large stride 4 used in the 1st layer
convolutions." Their fix — conv1 7x7 with stride 2 instead of 11x11 with stride 4, and stride 2 in
conv2 — gave "more distinctive features" with "no aliasing artifacts" (Fig. 6(c), (e)) and better
accuracy (Table 2). They also renormalise every filter whose RMS exceeds 0.1 (§3), because without it
"one feature dominates" (Fig. 6(a)).

This module turns each of these words into a number, each with the control that could make it fail:

* **frequency coverage** of conv1 — :func:`filter_spectra`: each filter's 2-D power spectrum (zero-padded
  to 64 x 64, colour channels summed); the share of its energy above a frequency, per axis
  (``max(|fx|, |fy|) > cutoff``, in cycles per pixel: a component aliases when it is above the
  Nyquist frequency ``1 / (2 * stride)`` of the layer's output grid along either axis), and the
  radial frequency of its spectral peak, binned as low / mid / high (``FREQUENCY_BANDS``; :func:`mid_band`);
* **"dead" features**, as the paper means them ("more distinctive features and fewer 'dead' features"):
  not filters that never fire (on thousands of images every conv1 filter fires), but filters without
  structure — :func:`filter_concentration`, the share of a filter's spectral energy at its peak, against
  noise filters of the same size (:func:`random_concentration`, :func:`unstructured`);
* **aliasing**, in the visualisation and in the network. In conv2 projections, :func:`box_lattice_shares`:
  the share of a projection's spectral energy (DC left out, inside its receptive field) on the lattice of
  frequencies ``(i / period, j / period)``, where a pattern repeating every ``period`` pixels (a
  checkerboard) puts all of its energy (:func:`lattice_energy_share`); a deconvnet puts its grid where its
  unpooling and transposed strides put it, every :func:`unpooling_period` pixels (8 for the AlexNet-style
  network, 4 for ZF). Its control, :func:`null_switch_projections`, projects the same signals through
  another image's switches: a grid that is as strong there is the visualiser's, not the image's. In the
  network itself, :func:`shift_consistency`: how much the pool1 / pool2 maps and the top-1 class change
  when the input moves by less than the stride;
* **dominance** without renormalisation — :func:`dominance`: the largest filter RMS over the median
  (:func:`filter_rms`: whether the 0.1 cap binds);
* :func:`c5_verdict` scores the parts (and Table 2's accuracy gap over the seed band) by rules fixed in
  advance and combines them (:func:`combine`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from zfcore.analysis.top9 import TopActivations
from zfcore.checks import check_pixels, check_positive
from zfcore.data.loader import normalize, pixel_batches
from zfcore.deconv import project_signal
from zfcore.devices import model_device
from zfcore.models import CONV_LAYERS, ZFNet
from zfcore.stats import Estimate, bootstrap, independent_difference, paired_difference, seed_band, t_interval
from zfcore.verdicts import Verdict

__all__ = [
    "ALEXNET_SEEDS",
    "BOOK_SEEDS",
    "FILTER_MARGIN",
    "FLIP_MARGIN",
    "FREQUENCY_BANDS",
    "PARTS",
    "REAL_SPREADS",
    "SHIFT_LAYERS",
    "STRIDE2",
    "STRIDE4",
    "STRUCTURE_QUANTILE",
    "FilterSpectra",
    "ShiftConsistency",
    "box_lattice_shares",
    "c5_verdict",
    "combine",
    "dominance",
    "filter_concentration",
    "filter_rms",
    "filter_spectra",
    "lattice_energy_share",
    "mid_band",
    "null_switch_projections",
    "random_concentration",
    "shift_consistency",
    "unpooling_period",
    "unstructured",
]

FREQUENCY_BANDS = {"low": (0.0, 1 / 6), "mid": (1 / 6, 1 / 3), "high": (1 / 3, 0.71)}
"""Radial frequency bands (cycles per pixel; the corner of the spectrum is at 0.5 * sqrt(2) = 0.707)."""
SPECTRUM_SIZE = 64


@dataclass
class FilterSpectra:
    """The power spectra of a bank of filters and what they say about frequency coverage.

    Attributes:
        power: ``[F, S, S]`` power spectrum of each filter (colour channels summed), zero-padded to
            ``S = 64``, with frequencies in ``torch.fft.fftfreq(S)`` order (cycles per pixel).
        peak_frequency: ``[F]`` radial frequency of each filter's spectral peak (0 for a colour blob).
    """

    power: torch.Tensor
    peak_frequency: torch.Tensor

    def share_above(self, cutoff: float) -> torch.Tensor:
        """``[F]`` share of each filter's energy at ``max(|fx|, |fy|) > cutoff`` cycles per pixel."""
        if not 0 <= cutoff < 0.5:
            raise ValueError(f"cutoff={cutoff!r} is not valid; give cycles per pixel in [0, 0.5)")
        fx, fy = _frequency_grid(self.power.shape[-1])
        above = torch.maximum(fx.abs(), fy.abs()) > cutoff
        return (self.power * above).sum((-2, -1)) / self.power.sum((-2, -1)).clamp_min(1e-30)

    def band_fractions(self) -> dict[str, float]:
        """The fraction of filters whose spectral peak lies in each of :data:`FREQUENCY_BANDS`."""
        return {band: float(((self.peak_frequency >= low) & (self.peak_frequency < high)).float().mean())
                for band, (low, high) in FREQUENCY_BANDS.items()}


def _frequency_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    frequencies = torch.fft.fftfreq(size, dtype=torch.float64)
    return frequencies[None, :].expand(size, size), frequencies[:, None].expand(size, size)


def _conv(model: ZFNet, layer: str) -> torch.nn.Conv2d:
    if layer not in CONV_LAYERS:
        raise ValueError(f"layer={layer!r} is not valid; valid layers: {CONV_LAYERS}")
    model.check_layer(layer)
    return getattr(model.features, layer)


def filter_rms(weights: torch.Tensor) -> torch.Tensor:
    """``[F]`` the RMS of each filter of a bank ``[F, ...]`` (float64, on the CPU): what §3's renormalisation caps."""
    return weights.detach().double().cpu().flatten(1).pow(2).mean(1).sqrt()


def filter_spectra(weights: torch.Tensor) -> FilterSpectra:
    """Power spectra of first-layer filters ``[F, 3, k, k]`` (any ``k`` up to 64), colour channels summed.

    Zero padding to 64 x 64 samples each filter's continuous spectrum finely, so that filters of
    different sizes (7x7, 11x11) are compared on the same frequencies; by Parseval's theorem the
    total energy is the filter's sum of squares.

    Raises:
        ValueError: ``weights`` not ``[F, C, k, k]`` with ``k <= 64``.
    """
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] > SPECTRUM_SIZE:
        raise ValueError(f"weights of shape {tuple(weights.shape)}: give filters [F, C, k, k] with k <= {SPECTRUM_SIZE}")
    power = torch.fft.fft2(weights.detach().double().cpu(), s=(SPECTRUM_SIZE, SPECTRUM_SIZE)).abs().pow(2).sum(1)
    fx, fy = _frequency_grid(SPECTRUM_SIZE)
    radius = (fx.pow(2) + fy.pow(2)).sqrt().flatten()
    peak = radius[power.flatten(1).argmax(1)]
    return FilterSpectra(power=power, peak_frequency=peak)


def lattice_energy_share(images: torch.Tensor, period: int) -> torch.Tensor:
    """Share of each image's spectral energy (DC left out) at the frequencies of a ``period``-pixel pattern.

    A pattern that repeats every ``period`` pixels along both axes (a checkerboard of that period)
    has all of its energy at ``(i / period, j / period)`` cycles per pixel; a smooth image has almost
    none there (about ``period**2 / H / W`` of it for white noise).

    Args:
        images: float ``[N, C, H, W]`` (projections of any sign, or pixels), ``H`` and ``W`` multiples
            of ``period``; the colour channels' spectra are summed.
        period: the pattern's period in pixels (e.g. 4: conv1's stride in the AlexNet-style network).

    Returns:
        ``[N]`` float64 shares in [0, 1] (0 for an image without energy outside DC).

    Raises:
        ValueError: ``period`` < 2, or the image size not a multiple of it.
    """
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ValueError(f"period={period!r} is not valid; give a whole number of pixels >= 2")
    if images.dim() != 4 or images.shape[-1] % period or images.shape[-2] % period:
        raise ValueError(f"images of shape {tuple(images.shape)}: give [N, C, H, W] with H and W multiples of "
                         f"period={period}")
    power = torch.fft.fft2(images.detach().double().cpu()).abs().pow(2).sum(1)
    power[:, 0, 0] = 0.0  # the mean (DC) is no pattern
    height, width = power.shape[-2:]
    lattice = power[:, :: height // period, :: width // period].sum((-2, -1))
    return lattice / power.sum((-2, -1)).clamp_min(1e-30)


def dominance(weights: torch.Tensor) -> float:
    """The largest filter RMS of a bank ``[F, ...]`` divided by the median: how much one filter dominates."""
    rms = filter_rms(weights)
    return float(rms.max() / rms.median().clamp_min(1e-30))


# ------------------------------------------------------------------ filter structure (in place of "never fires")

def filter_concentration(weights: torch.Tensor) -> torch.Tensor:
    """``[F]`` how much of each first-layer filter's spectral energy lies at its peak: a structure score.

    A Gabor-like edge or a colour blob puts most of its energy in one small region of the spectrum (and its
    mirror image: a real filter's power spectrum is symmetric); an unstructured, noise-like filter spreads
    it over all frequencies. The score is the share of the power (:func:`filter_spectra`) within one
    main-lobe radius ``1 / k`` cycles per pixel of the spectral peak or its mirror, for ``k x k`` filters
    (distances wrap around the spectrum's edges, as frequencies do).

    Raises:
        ValueError: as :func:`filter_spectra`.
    """
    power = filter_spectra(weights).power
    size, kernel = power.shape[-1], weights.shape[-1]
    fx, fy = _frequency_grid(size)
    flat = power.flatten(1)
    peak = flat.argmax(1)
    peak_x, peak_y = fx.flatten()[peak], fy.flatten()[peak]

    def wrapped(difference: torch.Tensor) -> torch.Tensor:
        return (difference + 0.5) % 1.0 - 0.5

    near = torch.zeros_like(power, dtype=torch.bool)
    for sign in (1.0, -1.0):
        distance = (wrapped(fx[None] - sign * peak_x[:, None, None]).pow(2)
                    + wrapped(fy[None] - sign * peak_y[:, None, None]).pow(2)).sqrt()
        near |= distance <= 1.0 / kernel
    return (power * near).sum((-2, -1)) / power.sum((-2, -1)).clamp_min(1e-30)


def random_concentration(shape: tuple[int, ...], count: int = 2000, seed: int = 0) -> torch.Tensor:
    """``[count]`` :func:`filter_concentration` of white-noise filters of ``shape`` (``(C, k, k)``): the control.

    What an unstructured filter of that size scores; a learned filter whose score is not above
    :data:`STRUCTURE_QUANTILE` of these is counted as unstructured (:func:`unstructured_fraction`).

    Raises:
        ValueError: ``shape`` not ``(C, k, k)``, or ``count`` < 1.
    """
    check_positive("count", count)
    if len(shape) != 3 or shape[-1] != shape[-2]:
        raise ValueError(f"shape={tuple(shape)!r} is not valid; give one filter's shape (C, k, k)")
    noise = torch.randn(count, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return filter_concentration(noise)


def unstructured(weights: torch.Tensor, *, count: int = 2000, seed: int = 0) -> torch.Tensor:
    """``[F]`` bool: the filter scores no more structure than :data:`STRUCTURE_QUANTILE` of noise filters.

    The paper's "dead" features, as the paper means them ("more distinctive features and fewer 'dead'
    features", §4.1): filters without a clear spectral structure, by :func:`filter_concentration` against
    :func:`random_concentration` of the same shape.
    """
    threshold = random_concentration(tuple(weights.shape[1:]), count, seed).quantile(STRUCTURE_QUANTILE)
    return filter_concentration(weights) <= threshold


def mid_band(weights: torch.Tensor) -> torch.Tensor:
    """``[F]`` bool: the filter's spectral peak lies in the ``"mid"`` band of :data:`FREQUENCY_BANDS`."""
    low, high = FREQUENCY_BANDS["mid"]
    peak = filter_spectra(weights).peak_frequency
    return (peak >= low) & (peak < high)


# ------------------------------------------------------------------ aliasing: the visualiser and the network

def unpooling_period(model: ZFNet) -> int:
    """The period (px) of a conv2 projection's grid: conv1's stride times pool1's (AlexNet-style 8, ZF-64 4)."""
    pool = model.features.pool1.stride
    return _conv(model, "conv1").stride[0] * (pool if isinstance(pool, int) else pool[0])


def box_lattice_shares(projections: torch.Tensor, boxes: torch.Tensor, period: int) -> torch.Tensor:
    """``[M]`` :func:`lattice_energy_share` of each projection inside its receptive-field box.

    Each projection is cropped to its box (its top-left corner, both sides cut down to multiples of
    ``period``); boxes narrower or lower than ``period`` are left out.

    Args:
        projections: float ``[..., 3, S, S]``.
        boxes: ``[..., 4]`` (top, left, bottom, right) of each.
        period: the lattice's period in pixels.

    Raises:
        ValueError: shapes that disagree, a ``period`` < 2, or no box at least ``period`` wide and high.
    """
    if boxes.shape != (*projections.shape[:-3], 4):
        raise ValueError(f"projections {tuple(projections.shape)} and boxes {tuple(boxes.shape)} must agree "
                         f"([..., 3, S, S] and [..., 4])")
    shares = []
    for projection, box in zip(projections.flatten(0, -4), boxes.reshape(-1, 4)):
        top, left, bottom, right = (int(value) for value in box)
        height, width = (bottom - top) // period * period, (right - left) // period * period
        if height and width:
            shares.append(lattice_energy_share(projection[None, :, top:top + height, left:left + width], period))
    if not shares:
        raise ValueError(f"no receptive-field box is at least period={period} px wide and high")
    return torch.cat(shares)


def null_switch_projections(model: ZFNet, pixels: np.ndarray | torch.Tensor, top: TopActivations,
                            channels: Sequence[int], *, seed: int = 0, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The control of every measure on a deconvnet projection: the same activations through another image's switches.

    For each top activation of ``channels`` (channel, image, position, value), the one-hot signal of
    :func:`~zfcore.deconv.project` is run back with the switches (max-pooling positions) of a randomly
    chosen *other* image of ``pixels`` (:func:`~zfcore.deconv.project_signal`): whatever a measure finds in
    these projections comes from the deconvnet and the weights, not from the image the unit responded to.

    Args:
        model: the network ``top`` was mined from (a conv layer).
        pixels: the mined images, uint8 ``[N, S, S, 3]`` (``N`` >= 2).
        top: one layer's :class:`~zfcore.analysis.top9.TopActivations`.
        channels: the channels to project (as in :func:`~zfcore.analysis.top9.top_projections`).
        seed: seeds the choice of the other images.
        chunk: projections per batched pass.

    Returns:
        ``(projections [C, k, 3, S, S], other_image [C, k])`` on the CPU.

    Raises:
        ValueError: ``pixels`` not uint8 ``[N, S, S, 3]`` with ``N`` >= 2, a channel out of range, ``chunk`` < 1.
    """
    check_pixels("pixels", pixels)
    check_positive("chunk", chunk)
    count = len(pixels)
    if count < 2:
        raise ValueError(f"pixels hold {count} image; give at least 2 (another image's switches are needed)")
    width = top.values.shape[0]
    chosen = torch.as_tensor(list(channels), dtype=torch.long)
    if chosen.numel() == 0 or bool(((chosen < 0) | (chosen >= width)).any()):
        raise ValueError(f"channels={chosen.tolist()} are not valid for {top.layer!r}: give some of 0..{width - 1}")
    k = top.values.shape[1]
    own = top.image_index[chosen].flatten()
    other = (own + torch.randint(1, count, own.shape, generator=torch.Generator().manual_seed(seed))) % count
    channel_of = chosen[:, None].expand(-1, k).flatten()
    positions = top.positions[chosen].flatten(0, 1)
    values = top.values[chosen].flatten().double()
    device = model_device(model)
    first = normalize(torch.from_numpy(np.asarray(pixels[:1]).copy())).contiguous().to(device)  # copied: no read-only memmap
    with torch.no_grad():
        shape = model.trace(first, layers=[top.layer]).activations[top.layer].shape[1:]
    outputs = []
    for start in range(0, len(other), chunk):
        part = slice(start, start + chunk)
        selected = torch.as_tensor(np.asarray(pixels[other[part].numpy()]))
        images = normalize(selected).contiguous().to(device)
        signal = torch.zeros(len(selected), *shape, device=device)
        rows = torch.arange(len(selected))
        signal[rows, channel_of[part], positions[part, 0], positions[part, 1]] = values[part].float().to(device)
        outputs.append(project_signal(model, images, top.layer, signal).cpu())
    return torch.cat(outputs).view(len(chosen), k, *outputs[0].shape[1:]), other.view(len(chosen), k)


@dataclass
class ShiftConsistency:
    """How one network's maps and prediction change when its input moves by a few pixels.

    Attributes:
        shifts: the shifts in pixels (each applied right and down: ``2 * len(shifts)`` views per image).
        flips: ``[N, 2 * len(shifts)]`` bool, the top-1 class of the shifted view differs from the original's.
        map_change: layer (``"pool1"``, ``"pool2"``) -> ``[N, 2 * len(shifts)]``, ``1 - cos`` between the
            layer's output map for the original and for the shifted view (the maps compared as they are).
    """

    shifts: tuple[int, ...]
    flips: torch.Tensor
    map_change: dict[str, torch.Tensor]

    def flip_rate(self) -> torch.Tensor:
        """``[N]`` the fraction of each image's shifted views whose top-1 class flips."""
        return self.flips.double().mean(1)

    def flip_rate_by_shift(self) -> dict[int, float]:
        """shift -> the fraction of flips over all images and both directions."""
        per_view = self.flips.double().mean(0)
        count = len(self.shifts)
        return {shift: float((per_view[index] + per_view[count + index]) / 2) for index, shift in enumerate(self.shifts)}


SHIFT_LAYERS = ("pool1", "pool2")


def shift_consistency(model: ZFNet, pixels: np.ndarray | torch.Tensor, shifts: Sequence[int] = (1, 2, 3), *,
                      batch_size: int = 250) -> ShiftConsistency:
    """Forward aliasing: the network's pool1 / pool2 maps and its top-1 class under sub-stride shifts.

    Each image is reflect-padded by ``max(shifts)`` pixels and cropped back to its size ``s`` pixels to the
    right and ``s`` pixels down, for each ``s`` of ``shifts``: the same content moved by ``s`` px, its
    border filled by reflection (the training recipe crops the same way, so the network has seen such
    shifts). A network that samples its first layer below the Nyquist rate of its stride changes its maps,
    and with them its answer, more under a shift smaller than that stride (Zhang 2019, "Making
    convolutional networks shift-invariant again").

    Args:
        model: the network (evaluation mode for the pass, restored after).
        pixels: uint8 ``[N, S, S, 3]``.
        shifts: whole pixels, each >= 1 and < ``S``.
        batch_size: images per forward pass.

    Returns:
        A :class:`ShiftConsistency` on the CPU.

    Raises:
        ValueError: ``pixels`` not uint8 ``[N, S, S, 3]``; ``shifts`` empty or not whole numbers in ``1..S-1``;
            ``batch_size`` < 1.
    """
    check_pixels("pixels", pixels)
    check_positive("batch_size", batch_size)
    size = int(pixels.shape[1])
    shifts = tuple(shifts)
    if not shifts or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s < size for s in shifts):
        raise ValueError(f"shifts={shifts!r} are not valid; give whole numbers of pixels in 1..{size - 1}")
    pad = max(shifts)
    flips, changes = [], {layer: [] for layer in SHIFT_LAYERS}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for images in pixel_batches(pixels, batch_size, device=model_device(model)):
                padded = torch.nn.functional.pad(images, (pad,) * 4, mode="reflect")
                views = [images] + [padded[..., pad - s:pad - s + size, pad:pad + size] for s in shifts] \
                    + [padded[..., pad:pad + size, pad - s:pad - s + size] for s in shifts]
                outputs = [_pool_maps_and_logits(model, view.contiguous()) for view in views]
                original = outputs[0]
                flips.append(torch.stack([output["logits"].argmax(1) != original["logits"].argmax(1)
                                          for output in outputs[1:]], 1).cpu())
                for layer in SHIFT_LAYERS:
                    base = original[layer].flatten(1).double()
                    changes[layer].append(torch.stack([
                        1 - torch.nn.functional.cosine_similarity(base, output[layer].flatten(1).double(), dim=1)
                        for output in outputs[1:]], 1).cpu())
    finally:
        model.train(was_training)
    return ShiftConsistency(shifts, torch.cat(flips), {layer: torch.cat(parts) for layer, parts in changes.items()})


def _pool_maps_and_logits(model: ZFNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """One forward pass, keeping the outputs of pool1 and pool2 and the logits."""
    kept = {}
    x = model.prepare_images(images)
    for name, module in model.named_steps():
        x = module(x)
        if name in SHIFT_LAYERS:
            kept[name] = x
    kept["logits"] = x
    return kept


# ------------------------------------------------------------------ the C5 verdict

STRIDE4, STRIDE2 = "AlexNet-style", "ZF"
"""The two networks' names, as the verdict's inputs are keyed: conv1 11x11 / 4 and 7x7 / 2."""
STRUCTURE_QUANTILE = 0.95
"""A filter is unstructured when its :func:`filter_concentration` is not above this quantile of noise filters'."""
FILTER_MARGIN = 0.05
"""Differences in a fraction of filters smaller than this (5 points of 96 filters) do not matter."""
FLIP_MARGIN = 0.01
"""Differences in the top-1 flip rate under 1-3 px shifts smaller than this (1 point) do not matter."""
REAL_SPREADS = 2.0
"""An accuracy gap is real when it exceeds this many seed spreads (max - min), as for Table 3 (C8)."""
BOOK_SEEDS = ("book-seed0", "book-seed1", "book-seed2")
ALEXNET_SEEDS = ("alexnet-seed0", "alexnet-seed1", "alexnet-seed2")
"""The verdict-runs that give each network's 28-epoch seed band (``data/experiments/verdict-runs.json``)."""
PARTS = ("mid frequencies", "unstructured filters", "aliasing", "accuracy")
"""The parts of C5, each decided on its own (:func:`c5_verdict`)."""
DECIDED = ("agree", "differ", "inconclusive")


def _three_way(estimate: Estimate, margin: float) -> str:
    """agree: a real effect (interval above 0) of at least ``margin``; differ: the interval below ``margin``."""
    if estimate.low > 0 and estimate.value >= margin:
        return "agree"
    return "differ" if estimate.high < margin else "inconclusive"


def combine(parts: Mapping[str, str]) -> str:
    """The overall outcome of C5 from its parts' outcomes (``agree``, ``differ``, ``inconclusive``, ``pending``).

    ``agree`` if every part agrees, ``differ`` if every part differs, ``partly`` if at least one agrees and one
    differs, ``inconclusive`` otherwise. A pending part is replaced by each outcome it could still have; the
    overall outcome is given when all of them lead to the same one, ``pending`` otherwise.

    Raises:
        ValueError: no parts, or an outcome outside ``agree``, ``differ``, ``inconclusive``, ``pending``.
    """
    wrong = {name: outcome for name, outcome in parts.items() if outcome not in (*DECIDED, "pending")}
    if not parts or wrong:
        raise ValueError(f"parts={dict(parts)!r} are not valid; give each part one of {(*DECIDED, 'pending')}")
    pending_parts = [name for name, outcome in parts.items() if outcome == "pending"]
    possible = set()
    for filled in product(DECIDED, repeat=len(pending_parts)):
        outcomes = [*(outcome for outcome in parts.values() if outcome != "pending"), *filled]
        if all(outcome == "agree" for outcome in outcomes):
            possible.add("agree")
        elif all(outcome == "differ" for outcome in outcomes):
            possible.add("differ")
        elif "agree" in outcomes and "differ" in outcomes:
            possible.add("partly")
        else:
            possible.add("inconclusive")
    return possible.pop() if len(possible) == 1 else "pending"


def _keyed(name: str, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(values, Mapping) or set(values) != {STRIDE4, STRIDE2}:
        raise ValueError(f"{name} has keys {sorted(values) if isinstance(values, Mapping) else type(values).__name__}; "
                         f"give one entry per network: {STRIDE4!r} and {STRIDE2!r}")
    return (torch.as_tensor(values[STRIDE4]).double().flatten(), torch.as_tensor(values[STRIDE2]).double().flatten())


def c5_verdict(*, mid: Mapping[str, torch.Tensor], unstructured_filters: Mapping[str, torch.Tensor],
               flip_rates: Mapping[str, torch.Tensor], lattice_own: Mapping[str, torch.Tensor],
               lattice_null: Mapping[str, torch.Tensor], accuracies: Mapping[str, float], seed: int = 0) -> Verdict:
    """C5 (§4.1, Fig. 6, Table 2) from its measured parts, each by a rule fixed before the numbers were seen.

    Parts (rules: :func:`_three_way` with the margin named; :func:`combine` for the overall outcome):

    * **mid frequencies**: the fraction of conv1 filters whose spectral peak is in the mid band, ZF minus
      AlexNet-style (two-sample bootstrap over filters), margin :data:`FILTER_MARGIN`;
    * **unstructured filters** (the paper's "dead" features): the fraction of :func:`unstructured` conv1
      filters, AlexNet-style minus ZF, margin :data:`FILTER_MARGIN`;
    * **aliasing**, in the network: the top-1 flip rate under 1-3 px shifts (:func:`shift_consistency`),
      AlexNet-style minus ZF, paired over images, margin :data:`FLIP_MARGIN`. The conv2 projections' lattice
      share with the image's own switches against another image's (:func:`null_switch_projections`) is the
      headline estimate and its control: it says whether the visualisation's grid is the image's, and is
      reported, not scored (the control keeps the weights and the grid of the unpooling);
    * **accuracy** (Table 2): mean val top-1 of :data:`BOOK_SEEDS` minus that of :data:`ALEXNET_SEEDS`, real
      (agree) when above :data:`REAL_SPREADS` times the larger seed spread (max - min) of the two, differ
      otherwise; pending until all six runs are recorded. Its interval: Student's t over the per-seed gaps.

    Args:
        mid, unstructured_filters: network name (:data:`STRIDE4`, :data:`STRIDE2`) -> ``[F]`` bool per conv1
            filter (:func:`mid_band`, :func:`unstructured`).
        flip_rates: network name -> ``[N]`` per image (:meth:`ShiftConsistency.flip_rate`), the same images.
        lattice_own, lattice_null: network name -> ``[M]`` :func:`box_lattice_shares` of the conv2 top
            projections with their own switches and with another image's, in the same order.
        accuracies: verdict run name -> val top-1 (fraction), for the runs recorded so far.
        seed: seeds the bootstraps.

    Returns:
        The :class:`~zfcore.verdicts.Verdict` (estimate: AlexNet-style's own-switch lattice share; control: the
        same with another image's switches); ``details`` holds every part's numbers.

    Raises:
        ValueError: inputs not keyed by the two networks; flip rates or lattice shares of different lengths
            between arms that must be paired; an accuracy outside [0, 1].
    """
    mid_alex, mid_zf = _keyed("mid", mid)
    dead_alex, dead_zf = _keyed("unstructured_filters", unstructured_filters)
    flips_alex, flips_zf = _keyed("flip_rates", flip_rates)
    own, null = _keyed("lattice_own", lattice_own), _keyed("lattice_null", lattice_null)
    if len(flips_alex) != len(flips_zf):
        raise ValueError(f"flip_rates has {len(flips_alex)} images for {STRIDE4} and {len(flips_zf)} for {STRIDE2}; "
                         f"give the same images to both")
    for index, name in enumerate((STRIDE4, STRIDE2)):
        if len(own[index]) != len(null[index]):
            raise ValueError(f"lattice_own[{name!r}] has {len(own[index])} shares and lattice_null[{name!r}] "
                             f"{len(null[index])}; give one pair per projection")
    bad = {run: value for run, value in accuracies.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1}
    if bad:
        raise ValueError(f"accuracies={bad!r} are not valid; give val top-1 as a fraction in [0, 1] per run")

    estimates = {"mid frequencies": independent_difference(mid_zf, mid_alex, seed=seed),
                 "unstructured filters": independent_difference(dead_alex, dead_zf, seed=seed),
                 "aliasing": paired_difference(flips_alex, flips_zf, seed=seed)}
    parts = {"mid frequencies": _three_way(estimates["mid frequencies"], FILTER_MARGIN),
             "unstructured filters": _three_way(estimates["unstructured filters"], FILTER_MARGIN),
             "aliasing": _three_way(estimates["aliasing"], FLIP_MARGIN)}
    missing = [run for run in (*BOOK_SEEDS, *ALEXNET_SEEDS) if run not in accuracies]
    accuracy: dict[str, Any] = {"recorded": {run: accuracies[run] for run in (*BOOK_SEEDS, *ALEXNET_SEEDS)
                                             if run in accuracies}, "missing": missing}
    if missing:
        parts["accuracy"] = "pending"
    else:
        zf_runs = torch.tensor([accuracies[run] for run in BOOK_SEEDS], dtype=torch.float64)
        alex_runs = torch.tensor([accuracies[run] for run in ALEXNET_SEEDS], dtype=torch.float64)
        gap = float(zf_runs.mean() - alex_runs.mean())
        spread = max(seed_band(zf_runs).spread, seed_band(alex_runs).spread)
        estimates["accuracy"] = t_interval(zf_runs - alex_runs)
        parts["accuracy"] = "agree" if gap > REAL_SPREADS * spread else "differ"
        accuracy.update(gap=gap, spread=spread)
    parts = {name: parts[name] for name in PARTS}
    outcome = combine(parts)

    visual = {}
    for index, name in enumerate((STRIDE4, STRIDE2)):
        visual[name] = {"own": bootstrap(own[index], seed=seed), "null": bootstrap(null[index], seed=seed),
                        "own_minus_null": paired_difference(own[index], null[index], seed=seed)}
    grid_is_the_images = visual[STRIDE4]["own_minus_null"].low > 0

    def shown(estimate: Estimate, digits: int = 1) -> str:
        return estimate.format(scale=100, digits=digits, unit=" %")

    findings = (f"mid-band filters ZF − AlexNet-style {shown(estimates['mid frequencies'], 0)} ({parts['mid frequencies']}); "
                f"unstructured filters AlexNet-style − ZF {shown(estimates['unstructured filters'], 0)} "
                f"({parts['unstructured filters']}); top-1 flips under 1-3 px shifts AlexNet-style − ZF "
                f"{shown(estimates['aliasing'])} ({parts['aliasing']}); accuracy "
                + (f"{shown(estimates['accuracy'])} ({parts['accuracy']})" if "accuracy" in estimates
                   else f"pending (waiting for {', '.join(missing)})"))
    grid = ("the AlexNet-style conv2 projections' grid is " + ("more than" if grid_is_the_images else "no more than")
            + " another image's switches give")
    reason = f"By part: {findings}; {grid}."
    settle = ""
    if outcome == "inconclusive":
        undecided = [name for name, value in parts.items() if value == "inconclusive"]
        settle = (f"narrower intervals on {', '.join(undecided)}: more filters (wider or more networks per arm) or "
                  f"more seeds of both networks")
    return Verdict(
        "C5",
        measure=("four parts, each with its interval (in details): conv1 mid-band peaks and unstructured filters "
                 "(spectral concentration against noise filters) per filter; top-1 flips under 1-3 px shifts, "
                 "paired over images; Table 2's gap over the 28-epoch seed band. Shown here: the share of the "
                 "AlexNet-style conv2 projections' spectral energy on their 8-px unpooling lattice (inside the "
                 "receptive field), with the image's own switches"),
        estimate=visual[STRIDE4]["own"],
        control="the same one-hot conv2 signals projected through a random other image's switches (the grid "
                "the deconvnet draws whatever the image)",
        control_estimate=visual[STRIDE4]["null"],
        rule=(f"per part: agree if the difference's 95 % interval is above 0 and the difference ≥ its margin, "
              f"differ if the interval is below the margin, inconclusive otherwise (margins: {FILTER_MARGIN:.0%} "
              f"of filters, FILTER_MARGIN; {FLIP_MARGIN:.0%} of flips, FLIP_MARGIN); accuracy agrees if the gap "
              f"of the seed means exceeds REAL_SPREADS = {REAL_SPREADS:g} × the larger seed spread, else differs. "
              f"Overall: agree if all parts agree, differ if all differ, partly if some agree and some differ, "
              f"inconclusive otherwise; a pending part stays pending unless every outcome it could have gives "
              f"the same overall outcome. The projections' lattice share is reported, not scored"),
        outcome=outcome,
        reason=reason,
        settle=settle,
        details={"parts": parts,
                 "estimates": {name: asdict(value) for name, value in estimates.items()},
                 "lattice": {name: {key: asdict(value) for key, value in values.items()}
                             for name, values in visual.items()},
                 "accuracy": accuracy,
                 "flip_rate": {STRIDE4: float(flips_alex.mean()), STRIDE2: float(flips_zf.mean())}},
        scale=100, digits=2, unit=" %")
