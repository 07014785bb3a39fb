"""The deconvnet's second critic, measured: "switches vs neuron" (Mahendran & Vedaldi 2016; beyond Zeiler & Fergus 2014).

**Switches vs neuron** (Mahendran & Vedaldi 2016, "Salient deconvolutional networks"). The deconvnet's
way down uses the image's max-pooling switches (their "bottleneck information"); they ask how much
of a reconstruction is about the chosen neuron and how much that information carries of the image
alone. :func:`neuron_vs_switches` projects several
channels of one layer on each image and compares projections of different channels on the same image
with projections of the same channel on different images, and with "switches only" projections: a
signal that no unit made, run down through the same image's switches (in ``"deconvnet"`` mode the image
enters only there: the deconvnet keeps no ReLU masks; the gradient and guided back-propagation also keep
the forward ReLU masks). The signal is constant (ones), non-negative random (uniform in [0, 1)) or zero-mean
random (standard normal): a non-negative signal adds up every unit's contribution, the chosen unit's among
them, so only the zero-mean one tells how much of a projection the image's way down makes by itself.

**Verdict** (:func:`mahendran_verdict`): the claim scored with the book's rules (:mod:`zfcore.verdicts`), thresholds in the module constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from zfcore.analysis.maps import MEASURES, batched_maps, derangement, map_similarity, nan_mean_std
from zfcore.checks import check_choice, check_number, check_positive, check_whole
from zfcore.deconv import MODES, project, project_signal
from zfcore.models import ZFNet
from zfcore.stats import Estimate, paired_difference
from zfcore.verdicts import Verdict

__all__ = ["MAHENDRAN_LAYER", "MAHENDRAN_MARGIN", "NeuronVsSwitches", "mahendran_verdict", "neuron_vs_switches",
           "switch_example", "switches_only_signals"]

MAHENDRAN_LAYER = "conv5"
"""The layer :func:`mahendran_verdict` scores (the last conv layer, whose units Fig. 2 projects)."""

MAHENDRAN_MARGIN = 0.1
"""How much more (Spearman, absolute maps) the image's switches-only map must share with a unit's projection
than the same unit on another image does, for :func:`mahendran_verdict` to call the switches dominant."""


@dataclass(frozen=True)
class NeuronVsSwitches:
    """How much a projection depends on the chosen unit and how much on the image's switches.

    Every field but ``layer``, ``mode``, ``channels`` and ``partner`` maps a measure of :data:`MEASURES`
    to float64 similarities (NaN where a projection is constant, e.g. a unit that did not fire).

    Attributes:
        layer, mode: what was projected, and how.
        channels: ``[K]`` the channels (units) projected: the ``K`` with the largest mean maximum activation.
        partner: ``[N]`` the other image each image is compared with (a seeded derangement).
        different_channels: ``[N, K (K - 1) / 2]`` same image, every pair of different channels.
        different_images: ``[N, K]`` same channel, image ``n`` against image ``partner[n]``.
        switches_constant: ``[N, K]`` a channel's projection against the image's switches-only projection
            of a constant signal (ones over the whole layer).
        switches_random: ``[N, K]`` the same with a non-negative random signal (uniform in [0, 1), one per image).
        switches_other_image: ``[N, K]`` against the constant switches-only projection of ``partner[n]``.
        constant_vs_random: ``[N]`` the two switches-only projections of the same image.
        switches_zero_mean: ``[N, K]`` against the image's switches-only projection of a zero-mean random
            signal (standard normal, one per image): no unit's contribution is summed into it.
        zero_mean_other_image: ``[N, K]`` against the zero-mean switches-only projection of ``partner[n]``.
    """

    layer: str
    mode: str
    channels: torch.Tensor
    partner: torch.Tensor
    different_channels: dict[str, torch.Tensor]
    different_images: dict[str, torch.Tensor]
    switches_constant: dict[str, torch.Tensor]
    switches_random: dict[str, torch.Tensor]
    switches_other_image: dict[str, torch.Tensor]
    constant_vs_random: dict[str, torch.Tensor]
    switches_zero_mean: dict[str, torch.Tensor]
    zero_mean_other_image: dict[str, torch.Tensor]

    COMPARISONS = ("different_channels", "different_images", "switches_constant", "switches_random",
                   "switches_zero_mean", "switches_other_image", "zero_mean_other_image", "constant_vs_random")

    def summary(self) -> dict[str, dict[str, tuple[float, float, int]]]:
        """comparison (:attr:`COMPARISONS`) -> measure -> ``(mean, std, pairs)`` (NaNs left out)."""
        return {name: {measure: nan_mean_std(values) for measure, values in getattr(self, name).items()}
                for name in self.COMPARISONS}

    def per_image(self, comparison: str, measure: str = "spearman_abs") -> torch.Tensor:
        """``[N]`` one value per image: the mean over its pairs of ``comparison`` (NaN where it has none).

        Raises:
            ValueError: an unknown comparison or measure.
        """
        check_choice("comparison", comparison, self.COMPARISONS, "comparisons")
        check_choice("measure", measure, MEASURES, "measures")
        values = getattr(self, comparison)[measure]
        return values if values.dim() == 1 else values.nanmean(1)


SIGNALS = ("ones", "uniform", "zero-mean")
"""The switches-only signals of :func:`switches_only_signals`, in the order they are drawn."""


def switches_only_signals(shape: Sequence[int], *, seed: int = 0,
                          dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The signals that no unit made, for switches-only projections (:func:`~zfcore.deconv.project_signal`).

    Args:
        shape: ``[N, *activation]``: one signal per image, of the layer's activation shape for one image.
        seed: seeds the two random signals (one generator, uniform drawn first).
        dtype: the signals' dtype (the images').

    Returns:
        :data:`SIGNALS` -> a tensor of ``shape``: ``"ones"`` (constant), ``"uniform"`` (non-negative, in [0, 1))
        and ``"zero-mean"`` (standard normal, so no unit's contribution is summed into its projection).
    """
    check_whole("seed", seed, minimum=0)
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(tuple(shape), generator=generator, dtype=dtype)
    zero_mean = torch.randn(tuple(shape), generator=generator, dtype=dtype)
    return dict(zip(SIGNALS, (torch.ones_like(uniform), uniform, zero_mean)))


def switch_example(model: ZFNet, image: torch.Tensor, layer: str, channels: Sequence[int] | torch.Tensor, *,
                   mode: str = "deconvnet", seed: int = 0) -> dict[str, torch.Tensor]:
    """One image's maps as :func:`neuron_vs_switches` compares them, for a figure: each channel's projection
    (at its maximum), then the image's switches-only projections of :func:`switches_only_signals`.

    Args:
        model: a :class:`~zfcore.models.ZFNet` (not modified).
        image: float ``[1, 3, S, S]``, one network input.
        layer: one of ``model.layer_names``.
        channels: the channels to project (e.g. :attr:`NeuronVsSwitches.channels`).
        mode: the projection's mode (default the paper's deconvnet).
        seed: seeds the random signals.

    Returns:
        ``"unit C"`` for each channel, then :data:`SIGNALS` -> ``[3, S, S]`` maps, in that order.

    Raises:
        ValueError: not one image, a bad layer, mode or seed.
    """
    model.check_images(image)
    if len(image) != 1:
        raise ValueError(f"{len(image)} images: switch_example takes one image, e.g. images[:1]")
    model.check_layer(layer)
    check_choice("mode", mode, MODES, "modes")
    with torch.no_grad():
        shape = model.trace(model.prepare_images(image), [layer]).activations[layer].shape[1:]
    channels = [int(c) for c in channels]
    units = project(model, image, layer, channels, mode=mode)
    signals = switches_only_signals((1, *shape), seed=seed, dtype=image.dtype)
    return {**{f"unit {c}": unit for c, unit in zip(channels, units)},
            **{name: project_signal(model, image, layer, signal, mode)[0] for name, signal in signals.items()}}


def neuron_vs_switches(model: ZFNet, images: torch.Tensor, layer: str, *, units: int = 8, mode: str = "deconvnet",
                       seed: int = 0, batch_size: int = 64) -> NeuronVsSwitches:
    """Mahendran & Vedaldi's question for one layer: does a projection show the unit, or the image's switches?

    The ``units`` channels of ``layer`` with the largest mean (over the images) maximum activation are
    projected on every image (:func:`~zfcore.deconv.project`, at each channel's maximum), and the
    switches-only projections of each image are made with :func:`~zfcore.deconv.project_signal`;
    see :class:`NeuronVsSwitches` for what is compared with what.

    Args:
        model: a :class:`~zfcore.models.ZFNet` (not modified).
        images: float ``[N, 3, S, S]`` network inputs, ``N >= 2``.
        layer: one of ``model.layer_names`` (``"conv5"``, ``"fc6"``, ...).
        units: how many channels (units) to project, at least 2.
        mode: the projection's mode (default the paper's deconvnet).
        seed: seeds the image pairing and the random signal.
        batch_size: images per pass.

    Returns:
        A :class:`NeuronVsSwitches`, on the CPU.

    Raises:
        ValueError: bad images, layer, mode, ``units``, seed or ``batch_size``.
    """
    model.check_images(images)
    model.check_layer(layer)
    check_choice("mode", mode, MODES, "modes")
    if len(images) < 2:
        raise ValueError(f"{len(images)} images: need at least 2 (same channel, different images)")
    check_positive("batch_size", batch_size)
    check_whole("seed", seed, minimum=0)
    check_whole("units", units, minimum=2)
    activations = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            activation = model.trace(model.prepare_images(images[start : start + batch_size]), [layer]).activations[layer]
            activations.append((activation.flatten(2).amax(-1) if activation.dim() == 4 else activation).float().cpu())
    peaks, activation_shape = torch.cat(activations), activation.shape[1:]  # [N, C]: each channel's maximum
    width = peaks.shape[1]
    if units > width:
        raise ValueError(f"units={units!r} is not valid for {layer!r}: valid 2 .. {width}")
    channels = peaks.mean(0).topk(units).indices
    projections = torch.stack([batched_maps(lambda part, rows: project(model, part, layer, int(c), mode=mode),
                                        images, batch_size) for c in channels], 1)  # [N, K, 3, S, S]
    signals = switches_only_signals((len(images), *activation_shape), seed=seed, dtype=images.dtype)

    def switches_only(top: torch.Tensor) -> torch.Tensor:
        return batched_maps(lambda part, rows: project_signal(model, part, layer, top[rows], mode), images, batch_size)

    constant_maps, random_maps, zero_mean_maps = (switches_only(signals[name]) for name in SIGNALS)
    partner = derangement(len(images), seed)
    count = len(images)
    first, second = torch.triu_indices(units, units, offset=1)
    each = projections.flatten(0, 1)  # [N K, ...], image-major

    def compare(a: torch.Tensor, b: torch.Tensor, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {measure: values.view(shape) for measure, values in map_similarity(a, b).items()}

    per_channel = (count, units)
    return NeuronVsSwitches(
        layer=layer, mode=mode, channels=channels, partner=partner,
        different_channels=compare(projections[:, first].flatten(0, 1), projections[:, second].flatten(0, 1),
                                   (count, len(first))),
        different_images=compare(each, projections[partner].flatten(0, 1), per_channel),
        switches_constant=compare(each, constant_maps.repeat_interleave(units, 0), per_channel),
        switches_random=compare(each, random_maps.repeat_interleave(units, 0), per_channel),
        switches_other_image=compare(each, constant_maps[partner].repeat_interleave(units, 0), per_channel),
        constant_vs_random=compare(constant_maps, random_maps, (count,)),
        switches_zero_mean=compare(each, zero_mean_maps.repeat_interleave(units, 0), per_channel),
        zero_mean_other_image=compare(each, zero_mean_maps[partner].repeat_interleave(units, 0), per_channel),
    )


def mahendran_verdict(deconvnet: NeuronVsSwitches, calibration: Sequence[NeuronVsSwitches] = (), *,
                      margin: float = MAHENDRAN_MARGIN, seed: int = 0) -> Verdict:
    """Mahendran & Vedaldi's switches-vs-neuron claim scored on :func:`neuron_vs_switches` (claim ``"Mahendran"``).

    Per image (Spearman of absolute maps, mean over the image's units), **D** = similarity of a unit's
    projection to its image's switches-only projection of a zero-mean random signal (no unit, and no sum of
    units) − similarity to the same unit's projection on another image. **Control**: D with *another* image's
    zero-mean switches-only map (the image's own switches removed). Both are paired over images with bootstrap
    intervals. **Rule**: ``agree`` when D's interval lies above ``margin`` (:data:`MAHENDRAN_MARGIN`) and above
    the control's interval; ``partly`` when it lies above 0 (and above the control's) but not above
    ``margin``; ``differ`` when it lies below 0 (the unit decides more than the image's way down);
    ``inconclusive`` when it spans 0 or the control's interval reaches it. The ``calibration`` results (the
    gradient, guided back-propagation: same statistic, their way down adds the ReLU masks) go to ``details``.

    Args:
        deconvnet: a ``"deconvnet"`` :func:`neuron_vs_switches` result.
        calibration: results of other modes at the same layer.
        margin: the D that counts as dominant, in (0, 1).
        seed: seeds the bootstrap.

    Returns:
        A :class:`~zfcore.verdicts.Verdict` on ``"Mahendran"``.

    Raises:
        ValueError: ``deconvnet`` not a deconvnet result; a calibration result of another layer; fewer than 2
            images with every comparison; ``margin`` not in (0, 1).
    """
    if not isinstance(deconvnet, NeuronVsSwitches) or deconvnet.mode != "deconvnet":
        raise ValueError(f"deconvnet={getattr(deconvnet, 'mode', type(deconvnet).__name__)!r} is not valid; give a "
                         "neuron_vs_switches result with mode='deconvnet'")
    others = [result.layer for result in calibration if result.layer != deconvnet.layer]
    if others:
        raise ValueError(f"calibration layers {others} are not valid; give results at {deconvnet.layer!r}")
    margin = check_number("margin", margin, "in (0, 1)", lambda value: 0 < value < 1)

    def scored(result: NeuronVsSwitches) -> tuple[Estimate, Estimate]:
        own, unit, other = (result.per_image(name) for name in
                            ("switches_zero_mean", "different_images", "zero_mean_other_image"))
        live = ~(own.isnan() | unit.isnan() | other.isnan())
        if int(live.sum()) < 2:
            raise ValueError(f"{int(live.sum())} images of the {result.mode} result have every comparison; need 2")
        return (paired_difference(own[live], unit[live], seed=seed),
                paired_difference(other[live], unit[live], seed=seed))

    estimate, control = scored(deconvnet)
    if estimate.high < 0:
        outcome = "differ"
    elif estimate.low <= 0 or control.high >= estimate.low:
        outcome = "inconclusive"
    else:
        outcome = "agree" if estimate.low > margin else "partly"
    details = {"layer": deconvnet.layer, "units": int(deconvnet.channels.numel()), "margin": margin, "modes": {}}
    for result in (deconvnet, *calibration):
        d, c = scored(result)
        details["modes"][result.mode] = {
            "D": {"value": d.value, "low": d.low, "high": d.high, "n": d.n},
            "control": {"value": c.value, "low": c.low, "high": c.high, "n": c.n},
            **{name: float(result.per_image(name).nanmean()) for name in result.COMPARISONS}}
    calibrated = {mode: values["D"] for mode, values in details["modes"].items() if mode != "deconvnet"}
    dominant = [mode for mode, d in calibrated.items() if d["low"] > margin]
    comparison = ""
    if calibrated:
        comparison = ("; D for " + ", ".join(f"{mode} {d['value']:.2f} [{d['low']:.2f}, {d['high']:.2f}]"
                                             for mode, d in calibrated.items())
                      + (": the image's way down dominates for every method, so D does not single out the "
                         "deconvnet's switches" if len(dominant) == len(calibrated) else
                         f": above the margin also for {', '.join(dominant)}" if dominant else
                         ": below the margin for the other methods"))
    reason = (f"At {deconvnet.layer}, a zero-mean signal that no unit made, run down this image's switches, shares "
              f"{estimate.value:.2f} more (Spearman, absolute maps) with a unit's projection than the same unit on "
              f"another image does (another image's switches: {control.value:+.2f}){comparison}.")
    return Verdict(
        claim="Mahendran",
        measure=(f"D, per image at {deconvnet.layer} (Spearman of absolute maps, mean over "
                 f"{int(deconvnet.channels.numel())} units): a unit's deconvnet projection against its image's "
                 "switches-only projection of a zero-mean random signal, minus against the same unit's projection "
                 "on another image"),
        estimate=estimate,
        control="D with another image's zero-mean switches-only map (the image's own switches removed)",
        control_estimate=control,
        rule=(f"agree if D's interval lies above MAHENDRAN_MARGIN = {margin:g} and above the control's interval; "
              "partly if above 0 (and the control's) but not above the margin; differ if below 0; inconclusive if "
              "it spans 0 or the control's interval reaches it"),
        outcome=outcome, reason=reason,
        settle="" if outcome != "inconclusive" else "more images and units, or the test on a 224-px network",
        details=details, digits=2)
