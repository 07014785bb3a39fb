"""Architecture selection (§4.1, Fig. 6): dead filters and aliasing, measured instead of judged by eye.

Zeiler & Fergus looked at the first two layers of Krizhevsky et al.'s network and saw two problems
(Fig. 6(b), (d); Zeiler & Fergus 2014, §4.1): "The first layer filters are a mix of extremely high
and low frequency information, with little coverage of the mid frequencies. Additionally, the 2nd
layer visualization shows aliasing artifacts caused by the large stride 4 used in the 1st layer
convolutions." Their fix — conv1 7x7 with stride 2 instead of 11x11 with stride 4, and stride 2 in
conv2 — gave "more distinctive features" with "no aliasing artifacts" (Fig. 6(c), (e)) and better
accuracy (Table 2). They also renormalise every filter whose RMS exceeds 0.1 (§3), because without it
"one feature dominates" (Fig. 6(a)).

This module turns each of these words into a number:

* **dead filters** — :func:`filter_use`: the channels of a layer that never fire (largest ReLU output
  0 over all images and positions, :attr:`~zfcore.analysis.top9.TopActivations.dead_fraction`), and
  the filters whose weight RMS is below a tenth of the layer's median filter RMS (``DEAD_RMS_FRACTION``:
  a filter that never fires gets no gradient and decays under weight decay);
* **frequency coverage** of conv1 — :func:`filter_spectra`: each filter's 2-D power spectrum (zero-padded
  to 64 x 64, colour channels summed); the share of its energy above a frequency, per axis
  (``max(|fx|, |fy|) > cutoff``, in cycles per pixel: a component aliases when it is above the
  Nyquist frequency ``1 / (2 * stride)`` of the layer's output grid along either axis), and the
  radial frequency of its spectral peak, binned as low / mid / high (``FREQUENCY_BANDS``);
* **aliasing** in conv2 projections — :func:`lattice_energy_share`: the share of an image's spectral
  energy (DC left out) on the lattice of frequencies ``(i / period, j / period)``, where a pattern
  repeating every ``period`` pixels (a checkerboard) puts all of its energy; :func:`lattice_excess`
  divides it, inside each projection's receptive field, by the same share of the image patch there,
  so that 1 means "no more grid than the image itself has". A deconvnet puts its grid where its
  unpooling and transposed strides put it: every ``conv1 stride x pool1 stride`` pixels (8 for the
  AlexNet-style network, 4 for ZF);
* **dominance** without renormalisation — :func:`dominance`: the largest filter RMS over the median.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from zfcore.analysis.top9 import TopActivations
from zfcore.models import CONV_LAYERS, ZFNet

__all__ = [
    "DEAD_RMS_FRACTION",
    "FREQUENCY_BANDS",
    "FilterSpectra",
    "FilterUse",
    "dominance",
    "filter_rms",
    "filter_spectra",
    "filter_use",
    "lattice_energy_share",
    "lattice_excess",
]

DEAD_RMS_FRACTION = 0.1
"""A filter counts as dead by its weights when its RMS is below this fraction of its layer's median RMS."""
FREQUENCY_BANDS = {"low": (0.0, 1 / 6), "mid": (1 / 6, 1 / 3), "high": (1 / 3, 0.71)}
"""Radial frequency bands (cycles per pixel; the corner of the spectrum is at 0.5 * sqrt(2) = 0.707)."""
SPECTRUM_SIZE = 64


@dataclass
class FilterUse:
    """How many filters of a layer are alive.

    Attributes:
        layer: the layer name.
        never_fire: ``[C]`` bool, the channel's largest activation over all images and positions is 0.
        weight_rms: ``[C]`` the RMS of each filter's weights.
        low_rms: ``[C]`` bool, ``weight_rms < DEAD_RMS_FRACTION * median``.
    """

    layer: str
    never_fire: torch.Tensor
    weight_rms: torch.Tensor
    low_rms: torch.Tensor

    @property
    def never_fire_fraction(self) -> float:
        return float(self.never_fire.float().mean())

    @property
    def low_rms_fraction(self) -> float:
        return float(self.low_rms.float().mean())


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


def filter_rms(model: ZFNet, layer: str) -> torch.Tensor:
    """``[C]`` the RMS of each filter of conv ``layer`` (float64, on the CPU)."""
    weight = _conv(model, layer).weight.detach().double().cpu()
    return weight.pow(2).mean(dim=(1, 2, 3)).sqrt()


def filter_use(model: ZFNet, tops: Mapping[str, TopActivations]) -> dict[str, FilterUse]:
    """Dead filters of each mined layer: channels that never fire, and filters with a tiny weight RMS.

    Args:
        model: the network the activations were mined from.
        tops: layer -> its :class:`~zfcore.analysis.top9.TopActivations` over the images to judge (e.g.
            all 10,000 validation images, from :func:`~zfcore.analysis.top9.mine_top9`).

    Returns:
        layer -> :class:`FilterUse`.

    Raises:
        ValueError: a layer that is not a conv layer of ``model``, or mined activations of another width.
    """
    result = {}
    for layer, top in tops.items():
        rms = filter_rms(model, layer)
        if top.values.shape[0] != rms.shape[0]:
            raise ValueError(f"tops[{layer!r}] has {top.values.shape[0]} channels but the model's {layer} has "
                             f"{rms.shape[0]}: mine the same model")
        result[layer] = FilterUse(layer, top.values[:, 0].cpu() <= 0, rms, rms < DEAD_RMS_FRACTION * rms.median())
    return result


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


def lattice_excess(projections: torch.Tensor, patches: torch.Tensor, boxes: torch.Tensor, period: int) -> float:
    """How much more energy the projections have on a ``period``-pixel lattice than their image patches.

    Each projection and its patch are cropped to the receptive-field box (its top-left corner, both
    sides cut down to multiples of ``period``); the result is the mean :func:`lattice_energy_share` of
    the projection crops over that of the patch crops. About 1: no more grid than the images have.

    Args:
        projections: float ``[..., 3, S, S]`` (e.g. :attr:`~zfcore.analysis.top9.TopProjections.projections`).
        patches: uint8 or float ``[..., 3, S, S]``, the images at the same places.
        boxes: ``[..., 4]`` (top, left, bottom, right) of each receptive field.
        period: the lattice's period in pixels.

    Raises:
        ValueError: shapes that disagree, a ``period`` < 2, or no box at least ``period`` wide and high.
    """
    if projections.shape != patches.shape or boxes.shape != (*projections.shape[:-3], 4):
        raise ValueError(f"projections {tuple(projections.shape)}, patches {tuple(patches.shape)} and boxes "
                         f"{tuple(boxes.shape)} must agree ([..., 3, S, S] twice and [..., 4])")
    shares: list[tuple[torch.Tensor, torch.Tensor]] = []
    for projection, patch, box in zip(projections.flatten(0, -4), patches.flatten(0, -4), boxes.reshape(-1, 4)):
        top, left, bottom, right = (int(value) for value in box)
        height, width = (bottom - top) // period * period, (right - left) // period * period
        if height and width:
            window = (slice(None), slice(top, top + height), slice(left, left + width))
            shares.append((lattice_energy_share(projection[window][None], period),
                           lattice_energy_share(patch[window][None].double(), period)))
    if not shares:
        raise ValueError(f"no receptive-field box is at least period={period} px wide and high")
    projected, natural = (torch.cat(column) for column in zip(*shares))
    return float(projected.mean() / natural.mean().clamp_min(1e-30))


def dominance(weights: torch.Tensor) -> float:
    """The largest filter RMS of a bank ``[F, ...]`` divided by the median: how much one filter dominates."""
    rms = weights.detach().double().flatten(1).pow(2).mean(1).sqrt()
    return float(rms.max() / rms.median().clamp_min(1e-30))
