"""Deconvnet and gradient (Zeiler & Fergus 2014, §2.1): an implementation check, and the real difference.

Two separate questions, answered by separate functions:

* **Is our deconvnet code right?** :func:`autograd_projection` computes a projection with PyTorch's
  autograd instead of the explicit layers of :mod:`zfcore.deconv`: the gradient of one activation
  with respect to the image, where backward hooks replace each ReLU's gradient rule (``"backprop"``:
  unchanged; ``"deconvnet"``: ReLU of the incoming signal, ignoring the forward pass; ``"guided"``:
  both) and, with ``through_norm=False``, pass the contrast normalisation as the identity.
  Max-pooling's gradient is exactly the switch unpooling and a convolution's is filtering with its
  transposed filters, so each variant must equal :func:`zfcore.deconv.project` up to rounding;
  :func:`implementation_check` measures that. It checks code, not a claim about the paper: the
  deconvnet equals *a modified* gradient, not the gradient.
* **How far is the paper's deconvnet from the gradient?** :func:`projection_differences` measures it
  over the top-9 activations of each layer, one difference at a time: the ReLU rule alone, going
  through the norm alone, and both (the paper's deconvnet against the true gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from zfcore.analysis.top9 import TopActivations
from zfcore.checks import check_pixels, check_positive
from zfcore.data.loader import pixel_batches
from zfcore.deconv import MODES, project, receptive_field
from zfcore.models import CONV_LAYERS, ContrastNorm, ZFNet

__all__ = ["CHECKED_VARIANTS", "ImplementationCheck", "LayerDifference", "VariantProjections", "autograd_projection",
           "differences_table", "implementation_check", "projection_differences", "strongest_units",
           "variant_projections"]

# column name -> (mode, through_norm) of the projections compared with autograd
CHECKED_VARIANTS: dict[str, tuple[str, bool]] = {
    "deconvnet (paper)": ("deconvnet", False),
    "backprop, norm as identity": ("backprop", False),
    "backprop (the gradient)": ("backprop", True),
    "guided": ("guided", True),
}
_NORMS = (ContrastNorm, nn.LocalResponseNorm)


def autograd_projection(model: ZFNet, image: torch.Tensor, layer: str, channel: int,
                        position: tuple[int, int] | None = None, mode: str = "deconvnet", *,
                        through_norm: bool | None = None) -> torch.Tensor:
    """Kept activation value x d(activation)/d(image) with ``mode``'s ReLU rule, via autograd.

    Args:
        model: a :class:`~zfcore.models.ZFNet` (with or without the contrast normalisation),
            evaluated in eval mode (its mode is restored after).
        image: one image ``[1, 3, S, S]``.
        layer, channel, position: the activation (``position`` ``(row, col)`` for conv layers).
        mode: ``"deconvnet"``, ``"backprop"`` or ``"guided"``.
        through_norm: differentiate the contrast normalisation (``True``) or pass the signal through
            it unchanged (``False``); default as in :func:`zfcore.deconv.project` (``False`` for
            ``"deconvnet"``, ``True`` otherwise).

    Returns:
        ``[1, 3, S, S]`` the projection, comparable with :func:`zfcore.deconv.project`.

    Raises:
        ValueError: unknown mode; no position for a conv layer; ``image`` not one finite float image
            (:meth:`~zfcore.models.ZFNet.prepare_images`, which also casts it to the model's dtype).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; valid modes: {MODES}")
    image = _one_image(model, image)
    through_norm = mode != "deconvnet" if through_norm is None else bool(through_norm)
    was_training = model.training
    model.eval()
    activation_module = model.activation_module(layer)

    def relu_rule(module: nn.Module, grad_input: tuple[torch.Tensor, ...], grad_output: tuple[torch.Tensor, ...]):
        if mode == "deconvnet":
            return (grad_output[0].clamp_min(0),)
        if mode == "guided":
            return (grad_input[0].clamp_min(0),)
        return None

    def norm_as_identity(module: nn.Module, grad_input: tuple[torch.Tensor, ...], grad_output: tuple[torch.Tensor, ...]):
        return (grad_output[0],)

    handles = [module.register_full_backward_hook(relu_rule) for module in model.modules()
               if isinstance(module, nn.ReLU) and module is not activation_module]
    if not through_norm:
        handles += [module.register_full_backward_hook(norm_as_identity) for module in model.modules()
                    if isinstance(module, _NORMS)]
    captured: dict[str, torch.Tensor] = {}
    handles.append(activation_module.register_forward_hook(lambda m, args, out: captured.__setitem__("a", out)))
    try:
        image = image.detach().clone().requires_grad_(True)
        model(image)
        activation = captured["a"][0, channel]
        value = activation if position is None else activation[position]
        if value.dim():
            raise ValueError(f"position is required for conv layer {layer!r}")
        (gradient,) = torch.autograd.grad(value, image)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return gradient * value.detach()


def strongest_units(model: ZFNet, image: torch.Tensor,
                    layers: str | Sequence[str] = CONV_LAYERS) -> dict[str, tuple[int, tuple[int, int]]]:
    """Each layer's strongest activation of one image: its channel with the largest maximum, at that maximum.

    Args:
        model: the network.
        image: one normalised image ``[1, 3, S, S]``.
        layers: a layer or layers (default conv1-conv5).

    Returns:
        layer -> ``(channel, (row, column))`` in the layer's map, in the order of ``layers``.

    Raises:
        ValueError: ``image`` not one finite float image ``[1, 3, S, S]``; an unknown layer.
    """
    image = _one_image(model, image)
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    with torch.no_grad():
        trace = model.trace(image, layers=layers)
    units = {}
    for layer in layers:
        activation = trace.activations[layer][0]
        channel = int(activation.flatten(1).max(1).values.argmax())
        units[layer] = (channel, divmod(int(activation[channel].argmax()), activation.shape[-1]))
    return units


@dataclass(frozen=True)
class VariantProjections:
    """One image's strongest unit per layer, projected by each variant of :data:`CHECKED_VARIANTS` (chapter 02's
    side-by-side view of the deconvnet and the gradients).

    Attributes:
        projections: layer -> ``[len(CHECKED_VARIANTS), 3, S, S]``, one projection per variant in its order.
        boxes: layer -> the unit's receptive field in the image (:func:`zfcore.deconv.receptive_field`).
        labels: one ``"layer, map C"`` per layer.
    """

    projections: dict[str, torch.Tensor]
    boxes: dict[str, tuple[int, int, int, int]]
    labels: list[str]


def variant_projections(model: ZFNet, image: torch.Tensor, layers: str | Sequence[str] = CONV_LAYERS) -> VariantProjections:
    """Project the strongest activation of each layer (:func:`strongest_units`) of ``image`` with every variant of
    :data:`CHECKED_VARIANTS`: the paper's deconvnet, backprop with the norm as identity, the true gradient and
    guided backprop.

    Args:
        model: the network.
        image: one normalised image ``[1, 3, S, S]``.
        layers: a layer or layers (default conv1-conv5).

    Returns:
        A :class:`VariantProjections`.

    Raises:
        ValueError: as :func:`strongest_units`.
    """
    image = _one_image(model, image)
    projections, boxes, labels = {}, {}, []
    for layer, (channel, position) in strongest_units(model, image, layers).items():
        projections[layer] = torch.cat([project(model, image, layer, channel, [position], mode=mode,
                                                through_norm=through_norm)
                                        for mode, through_norm in CHECKED_VARIANTS.values()])
        boxes[layer] = receptive_field(model, layer, position)
        labels.append(f"{layer}, map {channel}")
    return VariantProjections(projections, boxes, labels)


@dataclass(frozen=True)
class ImplementationCheck:
    """How far :func:`zfcore.deconv.project` is from :func:`autograd_projection`, per layer and variant.

    Attributes:
        errors: layer -> variant (a key of :data:`CHECKED_VARIANTS`) -> max |ours - autograd| / max |autograd|.
    """

    errors: dict[str, dict[str, float]]

    @property
    def worst(self) -> float:
        """The largest relative error over every layer and variant."""
        return max(error for row in self.errors.values() for error in row.values())

    def markdown(self, tolerance: float = 1e-5) -> str:
        """A Markdown table: ``equal`` where the relative error is at most ``tolerance``, else the error."""
        variants = list(next(iter(self.errors.values())))
        lines = ["| layer | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
        for layer, row in self.errors.items():
            cells = ["equal" if row[v] <= tolerance else f"DIFFERENT ({row[v]:.1e})" for v in variants]
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def implementation_check(model: ZFNet, image: torch.Tensor, layers: Sequence[str] = CONV_LAYERS) -> ImplementationCheck:
    """Compare our explicit deconvnet layers with autograd, for the strongest activation of each layer.

    For each layer the activation kept is the largest one of ``image`` (:func:`strongest_units`), projected
    with every variant of :data:`CHECKED_VARIANTS` by both
    :func:`zfcore.deconv.project` and :func:`autograd_projection`.

    Args:
        model: the network (with its contrast normalisation, if it has one).
        image: one normalised image ``[1, 3, S, S]``.
        layers: the layers to check (default conv1-conv5).

    Returns:
        An :class:`ImplementationCheck` of relative errors.

    Raises:
        ValueError: ``image`` not one finite float image ``[1, 3, S, S]``; an unknown layer.
    """
    image = _one_image(model, image)
    errors: dict[str, dict[str, float]] = {}
    for layer, (channel, position) in strongest_units(model, image, layers).items():
        errors[layer] = {}
        for variant, (mode, through_norm) in CHECKED_VARIANTS.items():
            ours = project(model, image, layer, channel, [position], mode=mode, through_norm=through_norm)
            reference = autograd_projection(model, image, layer, channel, position, mode=mode, through_norm=through_norm)
            errors[layer][variant] = float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
    return ImplementationCheck(errors)


@dataclass(frozen=True)
class LayerDifference:
    """Per-projection dissimilarity ``1 - cos`` between two kinds of projection of the same activations.

    Each tensor has one entry per projected top activation of the layer (those with a positive value).

    Attributes:
        layer: the layer name.
        relu_rule: deconvnet vs backprop, both passing the norm as the identity: the ReLU rule alone.
        norm: backprop through the norm vs backprop with the norm as the identity: the norm alone.
        both: the paper's deconvnet (norm as identity) vs the true gradient (through the norm).
    """

    layer: str
    relu_rule: torch.Tensor
    norm: torch.Tensor
    both: torch.Tensor

    @property
    def count(self) -> int:
        """How many projections were compared."""
        return int(self.both.numel())


def projection_differences(model: ZFNet, pixels: np.ndarray | torch.Tensor, tops: Mapping[str, TopActivations], *,
                           channels_per_layer: int | None = None, chunk: int = 256) -> list[LayerDifference]:
    """Measure how the deconvnet differs from the gradient over the top activations of each layer.

    For every top activation (image, channel, position) of each layer, three projections are made
    with :func:`zfcore.deconv.project` on the real network (the forward pass always includes the
    contrast normalisation): the deconvnet and backprop with the norm passed as the identity, and
    backprop through the norm (the true gradient). Their pairwise dissimilarity ``1 - cos`` (cosine
    of the flattened projections, in float64) is scale-free, like the display, which scales each
    projection to its own range: 0 means the same picture, 1 unrelated pictures.
    Activations whose value is 0 (a map that never fires) project to zero and are left out.

    Args:
        model: the network the activations were mined from.
        pixels: the mined images, uint8 ``[N, S, S, 3]`` (indexed by ``TopActivations.image_index``).
        tops: layer -> its :class:`~zfcore.analysis.top9.TopActivations` (e.g. from ``mine_top9``).
        channels_per_layer: compare only the first this many channels of each layer (default: all),
            as ``mine_top9`` projects them.
        chunk: projections per batched pass.

    Returns:
        One :class:`LayerDifference` per layer of ``tops``, in its order.

    Raises:
        ValueError: ``pixels`` not uint8 ``[N, S, S, 3]``; ``chunk`` or ``channels_per_layer`` < 1.
    """
    check_pixels("pixels", pixels)
    check_positive("chunk", chunk)
    if channels_per_layer is not None:
        check_positive("channels_per_layer", channels_per_layer)
    differences = []
    for layer, top in tops.items():
        width, k = top.values.shape
        chosen = torch.arange(width if channels_per_layer is None else min(channels_per_layer, width))
        live = top.values[chosen].flatten() > 0
        image_index = top.image_index[chosen].flatten()[live]
        channel_of = chosen[:, None].expand(-1, k).flatten()[live]
        positions = top.positions[chosen].flatten(0, 1)[live]
        measured: dict[str, list[torch.Tensor]] = {"relu_rule": [], "norm": [], "both": []}
        selected = pixels[image_index.numpy()]  # a copy in memory, in the order of the projections
        for start, batch in zip(range(0, len(image_index), chunk), pixel_batches(selected, batch_size=chunk)):
            part = slice(start, start + chunk)
            deconvnet, backprop, gradient = (
                project(model, batch, layer, channel_of[part], positions[part], mode=mode, through_norm=through_norm)
                for mode, through_norm in (("deconvnet", False), ("backprop", False), ("backprop", True))
            )
            measured["relu_rule"].append(_dissimilarity(deconvnet, backprop))
            measured["norm"].append(_dissimilarity(gradient, backprop))
            measured["both"].append(_dissimilarity(deconvnet, gradient))
        empty = torch.zeros(0, dtype=torch.float64)
        differences.append(LayerDifference(layer, *(torch.cat(values) if values else empty
                                                     for values in measured.values())))
    return differences


def _one_image(model: ZFNet, image: torch.Tensor) -> torch.Tensor:
    """``image`` checked to be one finite float image ``[1, 3, S, S]``, on the model's device and in its dtype."""
    image = model.prepare_images(image)
    if image.shape[0] != 1:
        raise ValueError(f"image has shape {tuple(image.shape)}; expected one image [1, 3, S, S] (e.g. images[:1])")
    return image


def differences_table(differences: Sequence[LayerDifference]) -> str:
    """A Markdown table of :func:`projection_differences`: mean ± std of ``1 - cos`` per layer and difference.

    Values of 0.001 and above are written with three decimals, smaller ones in scientific notation.
    """
    lines = ["| layer | projections | ReLU rule alone | norm alone | both (paper's deconvnet vs gradient) |",
             "|---|---|---|---|---|"]
    for row in differences:
        cells = [_mean_std(values) for values in (row.relu_rule, row.norm, row.both)]
        lines.append(f"| {row.layer} | {row.count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: torch.Tensor) -> str:
    """``mean ± std`` of ``values`` for :func:`differences_table` (``–`` when empty)."""
    if not values.numel():
        return "–"
    mean, std = float(values.mean()), float(values.std()) if values.numel() > 1 else 0.0
    if mean == 0.0 and std == 0.0:
        return "0"
    return f"{mean:.3f} ± {std:.3f}" if mean >= 1e-3 else f"{mean:.1e} ± {std:.1e}"


def _dissimilarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between matching projections ``[B, ...]``, in float64: ``[B]`` (rounding below 0 clamped)."""
    first, second = first.flatten(1).double(), second.flatten(1).double()
    cosine = (first * second).sum(1) / (first.norm(dim=1) * second.norm(dim=1)).clamp_min(1e-300)
    return (1.0 - cosine).clamp_min(0.0)
