"""Hand-written backward passes that make a ZF-64 training step faster on a CPU.

Both compute exactly the gradients autograd computes (up to floating-point summation order); they only
choose cheaper kernels, measured on the 2-core AVX512-BF16 CPU of the book's reference run
(``bench/bench_kernels.py``):

* :class:`Conv2d` — an :class:`torch.nn.Conv2d` whose weight gradient, for stride-1 convolutions on a
  CPU, is computed as a *forward* convolution of the input with the output gradient (batch and
  channel axes swapped): ``dW[o, i] = sum_b x[b, i] * g[b, o]`` (cross-correlation). oneDNN's forward
  kernels are much better tuned than its weight-gradient kernels for the small maps of conv3-conv5
  (4 x 4 at 64 px): 1.3-2x faster there, but 1.2-5x slower for the strided conv1 and conv2, so
  strided convolutions, GPUs and inference use the ordinary path.
* :func:`contrast_norm` — local response normalisation ``y = x * s ** -beta`` with
  ``s = k + band @ x**2`` whose backward reuses the forward's ``s ** -beta`` instead of evaluating a
  second power: ``dx = g * t - 2 * beta * x * band.T @ (g * t * x / s)`` with ``t = s ** -beta``.

Neither supports double backward (nothing in zfcore differentiates twice).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["Conv2d", "contrast_norm"]


def _autocast_cast(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """Cast to the CPU autocast dtype when autocast is on, as autocast itself would for a convolution."""
    if not torch.is_autocast_enabled("cpu"):
        return tensors
    dtype = torch.get_autocast_dtype("cpu")
    return tuple(None if t is None else t.to(dtype) for t in tensors)


class _StrideOneConv(torch.autograd.Function):
    """``F.conv2d`` with stride 1, no dilation, one group; weight gradient as a forward convolution.

    Its backward sees one dtype only: :class:`Conv2d` casts input, weight and bias to one dtype and
    turns autocast off around it, and autograd hands the gradient over in the output's dtype.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(ctx.padding), [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            # [C_in, B, H, W] correlated with [C_out, B, H', W'] -> [C_in, C_out, kh, kw]
            swapped = F.conv2d(x.transpose(0, 1).contiguous(), grad.transpose(0, 1).contiguous(), None, 1, ctx.padding)
            layout = torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            grad_weight = swapped.transpose(0, 1).contiguous(memory_format=layout)
        if ctx.needs_input_grad[2]:  # False without a bias
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, grad_weight, grad_bias, None


class Conv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` with the faster weight gradient above for stride-1 training on a CPU.

    Same parameters, state-dict keys and results as :class:`torch.nn.Conv2d`; the special path is taken
    only when the input is on a CPU, gradients are being recorded and the convolution has stride 1,
    dilation 1, one group and zero padding given as numbers.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        special = (
            input.device.type == "cpu" and torch.is_grad_enabled() and weight.requires_grad
            and self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
            and self.padding_mode == "zeros" and not isinstance(self.padding, str)
        )
        if not special:
            return super()._conv_forward(input, weight, bias)
        input, weight, bias = _autocast_cast(input, weight, bias)
        with torch.autocast("cpu", enabled=False):
            return _StrideOneConv.apply(input, weight, bias, self.padding)


class _ContrastNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
        s = F.conv2d(x * x, band).add_(k)
        t = s.pow(-beta)
        ctx.save_for_backward(x, band, s, t)
        ctx.beta = beta
        return x * t

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # Under CUDA autocast ``pow`` runs in fp32, so ``t`` and ``grad`` are fp32 while ``x``, ``band``
        # and ``s`` are bf16: the products promote to fp32 and ``band`` must follow them into the conv.
        x, band, s, t = ctx.saved_tensors
        grad_t = grad * t
        weighted = grad_t.mul(x).div_(s)
        spread = F.conv2d(weighted, band.to(weighted.dtype).transpose(0, 1))
        return grad_t.addcmul_(x, spread, value=-2.0 * ctx.beta), None, None, None


def contrast_norm(x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
    """``x * (k + conv1x1(x**2, band)) ** -beta`` with the cheaper backward (see the module docstring).

    Args:
        x: ``[B, C, H, W]`` feature maps.
        band: ``[C, C, 1, 1]`` weights summing the squares of the neighbouring maps (already scaled by
            ``alpha / size``), in ``x``'s dtype.
        k, beta: the normalisation's constants.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x * F.conv2d(x * x, band).add_(k).pow_(-beta)
    return _ContrastNorm.apply(x, band, k, beta)
