"""The deconvnet is the gradient with the rule at the ReLUs changed: an independent check of §2.1.

:func:`autograd_projection` computes a projection with PyTorch's autograd instead of the explicit
layers of :mod:`zfcore.deconv`: the gradient of one activation with respect to the image, where a
backward hook replaces each ReLU's gradient rule (``"backprop"``: unchanged; ``"deconvnet"``: ReLU of
the incoming signal, ignoring the forward pass; ``"guided"``: both). Max-pooling's gradient is
exactly the switch unpooling, and a convolution's is filtering with its transposed filters, so with
the contrast normalisation treated alike this equals :func:`zfcore.deconv.project` — which the
book's Fig. 2 chapter prints as numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from zfcore.models import ZFNet

__all__ = ["autograd_projection"]

RULES = ("deconvnet", "backprop", "guided")


def autograd_projection(model: ZFNet, image: torch.Tensor, layer: str, channel: int,
                        position: tuple[int, int] | None = None, mode: str = "deconvnet") -> torch.Tensor:
    """Kept activation value x d(activation)/d(image) with ``mode``'s ReLU rule, via autograd.

    Args:
        model: a ZFNet built with ``lrn=False`` (the deconvnet passes the normalisation as the identity,
            autograd would differentiate it), evaluated in eval mode (restored after).
        image: one image ``[1, 3, S, S]``.
        layer, channel, position: the activation (``position`` ``(row, col)`` for conv layers).
        mode: ``"deconvnet"``, ``"backprop"`` or ``"guided"``.

    Returns:
        ``[1, 3, S, S]`` the projection, comparable with :func:`zfcore.deconv.project`.
    """
    if mode not in RULES:
        raise ValueError(f"mode={mode!r} is not valid; valid modes: {RULES}")
    if any(isinstance(m, nn.LocalResponseNorm) or type(m).__name__ == "ContrastNorm" for m in model.modules()):
        raise ValueError("autograd_projection needs a model built with lrn=False (the deconvnet skips the norm)")
    was_training = model.training
    model.eval()
    activation_module = model.activation_module(layer)

    def rule(module: nn.Module, grad_input: tuple[torch.Tensor, ...], grad_output: tuple[torch.Tensor, ...]):
        signal = grad_output[0]
        if mode == "deconvnet":
            return (signal.clamp_min(0),)
        if mode == "guided":
            return (grad_input[0].clamp_min(0),)
        return None

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU) and m is not activation_module]
    handles = [relu.register_full_backward_hook(rule) for relu in relus]
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
