"""The deconvnet's critics, measured: sanity checks and "switches vs neuron" (beyond Zeiler & Fergus 2014).

Zeiler & Fergus (2014, §2.1) read a deconvnet projection as what one activation responds to. Two
later papers question that reading; this module measures both questions on our network.

**Sanity checks** (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"). A map that explains
the network should change when the network's weights are destroyed. :func:`randomization_similarity`
re-initialises layers on a copy of the network, from the top down, and compares each image's map with
the trained network's map of the same image:

* ``order="cascading"``: fc8, then fc8 and fc7, ..., down to every layer;
* ``order="independent"``: one layer at a time, the others trained.

A layer is re-initialised with the network's own initialisation (:meth:`~zfcore.models.ZFNet.initialize`,
weights and biases, seeded), taken from one randomised copy for every step, so the cascading steps are
nested. The maps are those of Adebayo et al.'s class logit: the signal at ``fc8`` is the one-hot of the
image's true class (:func:`zfcore.deconv.project_signal`), run down by the deconvnet (the paper),
the gradient (``"backprop"``) or guided back-propagation.

**Similarity** (:func:`map_similarity`; :data:`MEASURES`). Each ``[3, H, W]`` map becomes one value per
pixel by summing over the colour channels: of the absolute values for ``"spearman_abs"`` (where the map
is strong) and of the signed values for ``"spearman_signed"`` (diverging maps); both are Spearman's rank
correlation (:func:`scipy.stats.spearmanr`) over the pixels. ``"ssim"`` is the structural similarity
(:func:`skimage.metrics.structural_similarity`, its default 7 x 7 window) of the absolute heat maps
(:func:`heat_map`: divided by their 99th percentile and clipped to [0, 1], as the book displays maps).
A map that is constant (e.g. all zero) has no ranks: its similarities are NaN, and summaries skip them.
The **baseline** pairs each image's trained map with the trained map of another image: a randomised
map no more like its original than that carries nothing of the trained weights.

**Switches vs neuron** (Mahendran & Vedaldi 2016, "Salient deconvolutional networks"). The deconvnet's
way down uses the image's max-pooling switches (their "bottleneck information"); they ask how much
of a reconstruction is about the chosen neuron and how much that information carries of the image
alone. :func:`neuron_vs_switches` projects several
channels of one layer on each image and compares projections of different channels on the same image
with projections of the same channel on different images, and with "switches only" projections: a
constant or random signal at the layer, run down through the same image's switches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from zfcore.checks import check_choice, check_finite, check_labels, check_layers, check_positive, check_whole
from zfcore.deconv import MODES, project, project_signal
from zfcore.devices import model_device
from zfcore.models import INITS, ZFNet

__all__ = ["MEASURES", "ORDERS", "NeuronVsSwitches", "RandomizationSimilarity", "heat_map", "map_similarity",
           "neuron_vs_switches", "randomization_similarity", "randomization_steps", "randomized_copy"]

MEASURES = ("spearman_abs", "spearman_signed", "ssim")
"""The similarity measures of :func:`map_similarity` (Adebayo et al. 2018 use these, and a HOG measure)."""
ORDERS = ("cascading", "independent")
"""How :func:`randomization_similarity` re-initialises layers (Adebayo et al. 2018: cascading and independent randomisation)."""
HEAT_PERCENTILE = 99.0
"""The percentile of |map| that :func:`heat_map` scales to 1 (the book's display contrast)."""


@dataclass(frozen=True)
class RandomizationSimilarity:
    """Similarity of each image's map to its trained-network map, after each randomisation step.

    Attributes:
        order: ``"cascading"`` or ``"independent"``.
        steps: ``("original", "fc8", "fc7", ..., "conv1")``: the step's label, the last layer re-initialised.
        randomized: per step, the layers re-initialised (``()`` for ``"original"``).
        methods: the projection modes compared (:data:`zfcore.deconv.MODES`).
        labels: ``[N]`` the classes whose logit was projected.
        similarity: method -> measure -> ``[N, len(steps)]`` float64 (NaN where a map is constant).
        baseline: method -> measure -> ``[N]``: the trained map of each image against that of another image.
        examples: method -> ``[E, len(steps), 3, S, S]`` the maps of the first ``E`` images, for display.
    """

    order: str
    steps: tuple[str, ...]
    randomized: tuple[tuple[str, ...], ...]
    methods: tuple[str, ...]
    labels: torch.Tensor
    similarity: dict[str, dict[str, torch.Tensor]]
    baseline: dict[str, dict[str, torch.Tensor]]
    examples: dict[str, torch.Tensor]

    def summary(self, step: int = -1) -> dict[str, dict[str, tuple[float, float, int]]]:
        """method -> measure -> ``(mean, std, images)`` over the images at ``step`` (NaNs left out)."""
        return {method: {measure: _mean_std(values[:, step]) for measure, values in measures.items()}
                for method, measures in self.similarity.items()}

    def still_similar(self, step: int = -1) -> dict[str, dict[str, float]]:
        """method -> measure -> share of images whose map at ``step`` is more like its original than the baseline's."""
        shares = {}
        for method, measures in self.similarity.items():
            shares[method] = {}
            for measure, values in measures.items():
                both = ~(values[:, step].isnan() | self.baseline[method][measure].isnan())
                above = values[both, step] > self.baseline[method][measure][both]
                shares[method][measure] = float(above.double().mean()) if bool(both.any()) else float("nan")
        return shares


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
        switches_random: ``[N, K]`` the same with a random signal (uniform in [0, 1), one per image).
        switches_other_image: ``[N, K]`` against the constant switches-only projection of ``partner[n]``.
        constant_vs_random: ``[N]`` the two switches-only projections of the same image.
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

    COMPARISONS = ("different_channels", "different_images", "switches_constant", "switches_random",
                   "switches_other_image", "constant_vs_random")

    def summary(self) -> dict[str, dict[str, tuple[float, float, int]]]:
        """comparison (:attr:`COMPARISONS`) -> measure -> ``(mean, std, pairs)`` (NaNs left out)."""
        return {name: {measure: _mean_std(values) for measure, values in getattr(self, name).items()}
                for name in self.COMPARISONS}


def heat_map(maps: torch.Tensor, percentile: float = HEAT_PERCENTILE) -> torch.Tensor:
    """``[..., 3, H, W]`` maps -> ``[..., H, W]`` in [0, 1]: |map| summed over colours, / its percentile, clipped.

    Raises:
        ValueError: ``percentile`` not in (0, 100].
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile!r} is not valid; valid: a number in (0, 100]")
    magnitude = maps.detach().double().abs().sum(-3)
    scale = torch.quantile(magnitude.flatten(-2), percentile / 100, dim=-1).clamp_min(1e-300)
    return (magnitude / scale[..., None, None]).clamp(0.0, 1.0)


def map_similarity(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
    """The :data:`MEASURES` between matching maps ``[B, 3, H, W]`` (see the module docstring).

    Returns:
        measure -> ``[B]`` float64; NaN for a pair in which either map is constant.

    Raises:
        ValueError: the two batches' shapes differ or are not ``[B, 3, H, W]``, or a map holds NaN or infinite
            values (a similarity of them would be NaN, or silently a number).
    """
    if first.shape != second.shape or first.dim() != 4 or first.shape[1] != 3:
        raise ValueError(f"maps have shapes {tuple(first.shape)} and {tuple(second.shape)}; "
                         "expected two equal [B, 3, H, W]")
    check_finite("first", first, per="maps")
    check_finite("second", second, per="maps")
    first, second = first.detach().double().cpu(), second.detach().double().cpu()
    pixels = {"spearman_abs": (first.abs().sum(1), second.abs().sum(1)),
              "spearman_signed": (first.sum(1), second.sum(1))}
    heat = (heat_map(first).numpy(), heat_map(second).numpy())
    result = {measure: torch.full((len(first),), float("nan"), dtype=torch.float64) for measure in MEASURES}
    for b in range(len(first)):
        a, c = pixels["spearman_signed"][0][b], pixels["spearman_signed"][1][b]
        if bool((a == a.flatten()[0]).all()) or bool((c == c.flatten()[0]).all()):
            continue  # no ranks (a zero map): NaN
        for measure in ("spearman_abs", "spearman_signed"):
            x, y = pixels[measure]
            result[measure][b] = float(spearmanr(x[b].flatten().numpy(), y[b].flatten().numpy()).statistic)
        result["ssim"][b] = float(structural_similarity(heat[0][b], heat[1][b], data_range=1.0))
    return result


def randomization_steps(model: ZFNet, order: str = "cascading") -> tuple[tuple[str, ...], ...]:
    """The layers re-initialised at each step: ``()`` first, then from ``fc8`` down to ``conv1``.

    ``"cascading"``: ``(), ("fc8",), ("fc8", "fc7"), ...``; ``"independent"``: ``(), ("fc8",), ("fc7",), ...``.

    Raises:
        ValueError: ``order`` not one of :data:`ORDERS`.
    """
    check_choice("order", order, ORDERS, "orders")
    top_down = tuple(reversed(model.layer_names))
    if order == "cascading":
        return tuple(top_down[:k] for k in range(len(top_down) + 1))
    return ((),) + tuple((layer,) for layer in top_down)


def randomized_copy(model: ZFNet, layers: Sequence[str], *, init: str = "he", seed: int = 0) -> ZFNet:
    """A deep copy of ``model`` whose ``layers`` are re-initialised (weights and biases); ``model`` is untouched.

    The new values come from a copy of the whole network initialised by ``initialize(init)`` under
    ``torch.manual_seed(seed)`` (the global generators are restored after), so a layer gets the same
    values whichever other layers are re-initialised with it.

    Args:
        model: a :class:`~zfcore.models.ZFNet`.
        layers: names of ``model.layer_names`` (may be empty), or one name.
        init: the initialisation (:meth:`~zfcore.models.ZFNet.initialize`); the book's networks: ``"he"``
            (``reference.config.init``).
        seed: seeds the new values.

    Raises:
        ValueError: an unknown layer or init; ``seed`` not an int.
    """
    return _take_layers(model, _initialized(model, init, seed), layers)


def randomization_similarity(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                             methods: Sequence[str] = MODES, order: str = "cascading", *, init: str = "he",
                             seed: int = 0, examples: int = 4, batch_size: int = 64) -> RandomizationSimilarity:
    """Adebayo et al.'s model-parameter randomisation test for the projections of :mod:`zfcore.deconv`.

    Args:
        model: the trained :class:`~zfcore.models.ZFNet` (never modified: every step works on a copy).
        images: float ``[N, 3, S, S]`` network inputs, ``N >= 2``.
        labels: ``[N]`` true classes; the map of image ``n`` is that of its class's logit (``fc8``).
        methods: modes of :func:`~zfcore.deconv.project_signal`, any of :data:`~zfcore.deconv.MODES`.
        order: ``"cascading"`` or ``"independent"`` (:func:`randomization_steps`).
        init, seed: how layers are re-initialised (:func:`randomized_copy`).
        examples: keep the maps of the first this many images (:attr:`RandomizationSimilarity.examples`).
        batch_size: images per projection pass.

    Returns:
        A :class:`RandomizationSimilarity`, on the CPU.

    Raises:
        ValueError: bad images, labels, methods, order, init, seed, ``examples`` or ``batch_size``.
    """
    model.check_images(images)
    if len(images) < 2:
        raise ValueError(f"{len(images)} images: need at least 2 (the baseline compares different images)")
    labels = check_labels("labels", labels, model.num_classes, count=len(images))
    if isinstance(methods, str) or not len(methods) or any(m not in MODES for m in methods) \
            or len(set(methods)) != len(methods):
        raise ValueError(f"methods={methods!r} is not valid; give distinct modes out of {MODES}")
    steps = randomization_steps(model, order)
    check_whole("examples", examples, minimum=0)
    check_positive("batch_size", batch_size)
    donor = _initialized(model, init, seed)
    partner = _derangement(len(images), seed)
    top = F.one_hot(labels, model.num_classes).to(images.dtype)

    def maps(network: ZFNet, method: str) -> torch.Tensor:
        return _batched(lambda part, rows: project_signal(network, part, "fc8", top[rows], method), images, batch_size)

    original = {method: maps(model, method) for method in methods}
    similarity = {method: {measure: [] for measure in MEASURES} for method in methods}
    kept = {method: [] for method in methods}
    for layers in steps:
        network = _take_layers(model, donor, layers) if layers else None
        for method in methods:
            randomized = maps(network, method) if layers else original[method]  # step "original": nothing re-initialised
            for measure, values in map_similarity(original[method], randomized).items():
                similarity[method][measure].append(values)
            kept[method].append(randomized[:examples])
    return RandomizationSimilarity(
        order=order, steps=("original",) + tuple(layers[-1] for layers in steps[1:]), randomized=steps,
        methods=tuple(methods), labels=labels,
        similarity={method: {measure: torch.stack(values, 1) for measure, values in measures.items()}
                    for method, measures in similarity.items()},
        baseline={method: map_similarity(original[method], original[method][partner]) for method in methods},
        examples={method: torch.stack(values, 1) for method, values in kept.items()},
    )


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
    projections = torch.stack([_batched(lambda part, rows: project(model, part, layer, int(c), mode=mode),
                                        images, batch_size) for c in channels], 1)  # [N, K, 3, S, S]
    generator = torch.Generator().manual_seed(seed)
    random_top = torch.rand((len(images), *activation_shape), generator=generator, dtype=images.dtype)
    constant_top = torch.ones_like(random_top)
    constant_maps = _batched(lambda part, rows: project_signal(model, part, layer, constant_top[rows], mode), images,
                        batch_size)
    random_maps = _batched(lambda part, rows: project_signal(model, part, layer, random_top[rows], mode), images,
                      batch_size)
    partner = _derangement(len(images), seed)
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
    )


def _initialized(model: ZFNet, init: str, seed: int) -> ZFNet:
    """A deep copy of ``model`` re-initialised with ``init`` under ``seed`` (global generators restored)."""
    check_choice("init", init, INITS, "inits")
    check_whole("seed", seed, minimum=0)
    donor = copy.deepcopy(model)
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        donor.initialize(init)
    return donor


def _take_layers(model: ZFNet, donor: ZFNet, layers: Sequence[str]) -> ZFNet:
    """A deep copy of ``model`` with the weights and biases of ``layers`` taken from ``donor``."""
    layers = check_layers("layers", layers, model.layer_names, allow_empty=True)
    network = copy.deepcopy(model)
    with torch.no_grad():
        for layer in layers:
            target, source = _layer_module(network, layer), _layer_module(donor, layer)
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    return network


def _layer_module(model: ZFNet, layer: str) -> nn.Module:
    """The conv or linear module of ``layer``."""
    return getattr(model.features if layer.startswith("conv") else model.classifier, layer)


def _batched(project_part: Callable[[torch.Tensor, slice], torch.Tensor], images: torch.Tensor,
             batch_size: int) -> torch.Tensor:
    """``project_part(images[rows], rows)`` over batches of rows, concatenated on the CPU."""
    return torch.cat([project_part(images[start : start + batch_size], slice(start, start + batch_size)).cpu()
                      for start in range(0, len(images), batch_size)])


def _derangement(count: int, seed: int) -> torch.Tensor:
    """``[count]`` partner of each index: a seeded random cycle through all of them (no index is its own)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    partner = torch.empty(count, dtype=torch.long)
    partner[order] = order.roll(-1)
    return partner


def _mean_std(values: torch.Tensor) -> tuple[float, float, int]:
    """``(mean, std, count)`` of the non-NaN ``values`` (NaNs for none; std 0 for one)."""
    kept = values[~values.isnan()].double()
    if not kept.numel():
        return float("nan"), float("nan"), 0
    return float(kept.mean()), float(kept.std()) if kept.numel() > 1 else 0.0, int(kept.numel())
