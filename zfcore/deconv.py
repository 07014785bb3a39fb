"""The deconvnet of Zeiler & Fergus (2014, §2.1), with plain and guided back-propagation beside it.

To see what one activation of a layer responds to, Zeiler & Fergus keep that activation, set every
other activation of the layer to zero and run the result back to pixel space through a *deconvnet*
attached to the convnet: each layer is undone by

* **unpooling**: the max-pooling *switches* recorded on the way up say which input of each pooling
  window was the maximum; the signal goes back to that position only;
* **rectification**: the signal is passed through a ReLU;
* **filtering**: the transposed filters of the same layer (a transposed convolution with the
  layer's weights, stride and padding; no bias). Fully connected layers use their transposed weight.

The contrast normalisation is passed as the identity, as in the paper (``through_norm=False``), or
back-propagated through exactly (``through_norm=True``: the vector-Jacobian product of the norm at
its recorded input). :func:`project` walks :meth:`~zfcore.models.ZFNet.named_steps` backwards from
the layer's activation with these rules. Changing only the rule at the ReLUs gives

* ``"backprop"``, the gradient of the activation (Simonyan et al. 2013, "Deep inside convolutional
  networks"): the signal is masked where the forward ReLU output was zero;
* ``"guided"``, guided back-propagation (Springenberg et al. 2014, "Striving for simplicity"):
  both the deconvnet's rectification and the gradient's mask.

:func:`project_signal` runs any given signal at a layer's activation back with the same rules,
the image's switches (and, for the gradient, its ReLU masks) included: e.g. a constant or random
signal, which no single activation made (Mahendran & Vedaldi 2016, "Salient deconvolutional networks").

Projections are computed with evaluation-mode semantics (dropout is the identity) whatever
``model.training`` is; the model itself is never modified. :func:`receptive_field` gives the image
box an activation sees, to crop the patches shown beside the projections in Fig. 2.
"""

from __future__ import annotations

from numbers import Integral
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.checks import check_finite
from zfcore.devices import exact_float32
from zfcore.models import CONV_LAYERS, ContrastNorm, ZFNet

__all__ = ["MODES", "project", "project_signal", "receptive_field"]

MODES = ("deconvnet", "backprop", "guided")
_NORMS = (ContrastNorm, nn.LocalResponseNorm)
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
Positions = Sequence[Sequence[int]] | torch.Tensor


def project(
    model: ZFNet,
    images: torch.Tensor,
    layer: str,
    channels: int | Sequence[int] | torch.Tensor,
    positions: Positions | None = None,
    mode: str = "deconvnet",
    *,
    through_norm: bool | None = None,
) -> torch.Tensor:
    """Project single activations of ``layer`` down to pixel space (Zeiler & Fergus 2014, §2.1).

    For projection ``b`` the activation of channel ``channels[b]`` at ``positions[b]`` of image ``b``
    is kept, every other activation of the layer is set to zero, and the result is run back through
    the network with the rules of ``mode`` (see the module docstring). The result is scaled by the
    kept activation's value, so it is linear in it: for a ReLU output (every layer but ``fc8``)
    this is the same as injecting the value itself, as the paper does, since every rule is
    positively homogeneous. All projections run in one batched pass, in evaluation-mode semantics
    (dropout is the identity); the model is not modified. On CUDA they run with TF32 off
    (:func:`~zfcore.devices.exact_float32`), so that they agree with the CPU's.

    Args:
        model: a :class:`~zfcore.models.ZFNet`.
        images: float ``[N, 3, S, S]`` with ``S = model.input_size``, all finite. ``N`` is the number
            of projections ``B``, or 1: then the one image is projected for every channel, with a
            single forward pass. Another float dtype than the model's (fp16, bf16, fp64) is cast to
            the model's parameter dtype for the computation (:meth:`~zfcore.models.ZFNet.prepare_images`).
        layer: one of ``model.layer_names`` (``"conv1"`` ... ``"fc8"``); its activation is the
            output of its ReLU (``fc8``: the logits).
        channels: the channel (feature map, or unit of a fc layer) of each projection: one int for
            all, or a sequence / 1-d integer tensor of length ``B``. With an int, ``B = N``.
        positions: for conv layers, the ``(row, col)`` of each projection in the activation map, as
            a sequence of pairs or a ``[B, 2]`` integer tensor. Default ``None``: the position of
            that channel's maximum in its image (the first one on ties). Must be ``None`` for fc
            layers.
        mode: ``"deconvnet"`` (default, the paper), ``"backprop"`` (the gradient) or ``"guided"``
            (guided back-propagation).
        through_norm: back-propagate through the contrast normalisation (``True``) or pass it as
            the identity (``False``). Default ``None``: ``False`` for ``"deconvnet"`` (the paper),
            ``True`` otherwise, so that ``"backprop"`` is the true gradient.

    Returns:
        ``[B, 3, S, S]`` tensor (dtype and device of ``images``, no autograd graph): the projections.
        They are computed on the model's device and in its dtype (``images`` are moved and cast
        there, the result back).

    Raises:
        ValueError: unknown layer or mode; ``through_norm`` not a bool or ``None``; images not float
            ``[N, 3, S, S]`` (integer pixels: normalise them with :func:`zfcore.data.loader.normalize`)
            or not finite (naming how many values and which images); a channel or position out of
            range; ``N``, the channels and the positions disagree on ``B``; positions given for a
            fc layer.
        TypeError: the model has a step other than conv, ReLU, max-pool, norm, flatten, dropout
            and linear.
    """
    model.check_layer(layer)
    through_norm = _check_mode(mode, through_norm)
    inputs = model.prepare_images(images)
    with torch.no_grad(), exact_float32():
        steps, activation = _forward(model, inputs, model.activation_step(layer), mode, through_norm)
        index = _kept_index(layer, activation, channels, positions)
        count = index.shape[0]
        flat = activation.flatten(1).expand(count, -1)
        values = flat.gather(1, index[:, None])
        signal = flat.new_zeros(flat.shape).scatter_(1, index[:, None], 1.0).view(count, *activation.shape[1:])
        signal = _run_back(steps, signal, mode)
        return (signal * values.view(count, 1, 1, 1)).to(images.device, images.dtype)


def project_signal(
    model: ZFNet,
    images: torch.Tensor,
    layer: str,
    signal: torch.Tensor,
    mode: str = "deconvnet",
    *,
    through_norm: bool | None = None,
) -> torch.Tensor:
    """Run a given ``signal`` at the activation of ``layer`` back to pixel space, with the images' switches.

    :func:`project` is the special case of a one-hot signal at the kept activation (times its
    value). Here the signal is anything of the activation's shape: a class's one-hot at ``fc8``
    (the logit's gradient, whatever the logit's sign), or a constant or random signal, so that
    with ``"deconvnet"`` the image enters only through its switches (max-pooling positions).
    The rules, the evaluation-mode semantics and the exact float32 arithmetic are those of
    :func:`project`; the model is not modified.

    Args:
        model: a :class:`~zfcore.models.ZFNet`.
        images: float ``[N, 3, S, S]`` with ``S = model.input_size``, all finite.
        layer: one of ``model.layer_names``.
        signal: float ``[B, *shape]``, finite, where ``shape`` is the activation's shape for one image
            (``[C, H, W]`` for conv layers, ``[C]`` for fc layers); ``B = N``, or any ``B`` when ``N = 1``.
        mode: ``"deconvnet"`` (default), ``"backprop"`` or ``"guided"``.
        through_norm: as for :func:`project`.

    Returns:
        ``[B, 3, S, S]`` (dtype and device of ``images``, no autograd graph). It is linear in ``signal``
        for ``"backprop"`` and positively homogeneous for the other modes.

    Raises:
        ValueError: unknown layer or mode; ``through_norm`` not a bool or ``None``; bad images (as for
            :func:`project`); ``signal`` not a finite float tensor of the activation's shape, or its
            batch not ``N`` (with ``N > 1``).
    """
    model.check_layer(layer)
    through_norm = _check_mode(mode, through_norm)
    inputs = model.prepare_images(images)
    if not isinstance(signal, torch.Tensor) or not signal.is_floating_point():
        raise ValueError(f"signal must be a float torch.Tensor [B, *activation shape], got {type(signal).__name__}"
                         + (f" of dtype {signal.dtype}" if isinstance(signal, torch.Tensor) else ""))
    check_finite("signal", signal)
    with torch.no_grad(), exact_float32():
        steps, activation = _forward(model, inputs, model.activation_step(layer), mode, through_norm)
        if signal.dim() < 1 or tuple(signal.shape[1:]) != tuple(activation.shape[1:]) \
                or (len(inputs) > 1 and signal.shape[0] != len(inputs)):
            batch = "B" if len(inputs) == 1 else str(len(inputs))
            raise ValueError(f"signal has shape {tuple(signal.shape)}; expected [{batch}, "
                             f"{', '.join(map(str, activation.shape[1:]))}] for {layer!r} and {len(inputs)} image(s)")
        # a copy of our own: the way back works in place
        signal = signal.to(device=activation.device, dtype=activation.dtype, copy=True)
        return _run_back(steps, signal, mode).to(images.device, images.dtype)


def receptive_field(model: ZFNet, layer: str, position: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """The box of input pixels that one activation of ``layer`` depends on.

    Composes the kernel, stride, padding and dilation of every conv and max-pool of
    ``model.features`` up to the layer. Pixels outside the box cannot change the activation.

    Args:
        model: a :class:`~zfcore.models.ZFNet`.
        layer: one of ``model.layer_names``.
        position: ``(row, col)`` of the activation in the layer's map, for conv layers; must be
            ``None`` for fc layers, whose units see the whole image.

    Returns:
        ``(top, left, bottom, right)`` in pixels, clipped to the image; ``bottom`` and ``right``
        are exclusive, so ``image[..., top:bottom, left:right]`` is the patch.

    Raises:
        ValueError: unknown layer; position missing, malformed or outside the map; position given
            for a fc layer.
    """
    model.check_layer(layer)
    limit = model.input_size
    if layer not in CONV_LAYERS:
        if position is not None:
            raise ValueError(f"position={position!r} given for fc layer {layer!r}; use None (whole image)")
        return 0, 0, limit, limit
    last, size, geometry = model.activation_step(layer), limit, []  # geometry: (kernel, stride, padding, dilation)
    for name, module in model.features.named_children():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            kernel, stride, padding, dilation = (
                _int(getattr(module, attr)) for attr in ("kernel_size", "stride", "padding", "dilation")
            )
            geometry.append((kernel, stride, padding, dilation))
            size = _output_size(size, kernel, stride, padding, dilation, getattr(module, "ceil_mode", False))
        if name == last:
            break
    row, col = _check_pair(position, size, size, "position")
    top, bottom, left, right = row, row, col, col  # inclusive span, in the map of each step
    for kernel, stride, padding, dilation in reversed(geometry):
        top, left = top * stride - padding, left * stride - padding
        bottom = bottom * stride - padding + dilation * (kernel - 1)
        right = right * stride - padding + dilation * (kernel - 1)
    return max(top, 0), max(left, 0), min(bottom + 1, limit), min(right + 1, limit)


def _forward(
    model: ZFNet, images: torch.Tensor, last: str, mode: str, through_norm: bool
) -> tuple[list[tuple[nn.Module, object]], torch.Tensor]:
    """Run ``model`` up to step ``last`` (eval semantics), saving what each step's way back needs."""
    named = list(model.named_steps())
    named = named[: [name for name, _ in named].index(last) + 1]
    steps: list[tuple[nn.Module, object]] = []
    x = images
    for name, module in named:
        saved: object = None
        if isinstance(module, nn.MaxPool2d):
            pooled, indices = F.max_pool2d(
                x, module.kernel_size, module.stride, module.padding, module.dilation,
                module.ceil_mode, return_indices=True,
            )
            saved, x = (x, indices), pooled
        elif isinstance(module, nn.ReLU):
            x = F.relu(x)
            saved = x > 0 if mode != "deconvnet" else None
        elif isinstance(module, (nn.Conv2d, nn.Flatten)):
            saved, x = x.shape, module(x)
        elif isinstance(module, _NORMS):
            saved, x = (x if through_norm else None), module(x)
        elif isinstance(module, nn.Linear):
            x = module(x)
        elif not isinstance(module, nn.Dropout):  # dropout: the identity, as in eval mode
            raise TypeError(f"step {name!r} is a {type(module).__name__}, which project() cannot invert")
        steps.append((module, saved))
    return steps, x


def _check_mode(mode: str, through_norm: bool | None) -> bool:
    """``through_norm`` resolved for ``mode`` (its default when ``None``), after checking both."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; valid modes: {MODES}")
    if through_norm is not None and not isinstance(through_norm, bool):
        raise ValueError(f"through_norm={through_norm!r}: must be True, False or None (the mode's default)")
    return mode != "deconvnet" if through_norm is None else through_norm


def _run_back(steps: list[tuple[nn.Module, object]], signal: torch.Tensor, mode: str) -> torch.Tensor:
    """Take ``signal`` (a tensor of our own, changed in place) from the last of ``steps`` down to the image."""
    for module, saved in reversed(steps):
        signal = _backward_step(module, saved, signal, mode)
    return signal


def _backward_step(module: nn.Module, saved: object, signal: torch.Tensor, mode: str) -> torch.Tensor:
    """Take ``signal`` from the output of one forward step back to its input."""
    if isinstance(module, nn.ReLU):  # in place: every signal is a fresh tensor of our own
        if mode != "deconvnet":
            signal = signal.mul_(saved)  # saved: forward output > 0
        return signal if mode == "backprop" else signal.clamp_min_(0)
    if isinstance(module, nn.MaxPool2d):
        pool_input, indices = saved
        shape = (signal.shape[0], *pool_input.shape[1:])
        # Unpooling is the adjoint of max pooling: every window sends its signal to its switch and
        # switches that coincide (3x3 windows with stride 2 overlap) add up. This is the kernel
        # autograd uses, so "backprop" is exactly the gradient; it is deterministic on CPU and CUDA
        # (torch.use_deterministic_algorithms does not list it), unlike max_unpool2d, which
        # writes instead of adding and is nondeterministic when indices repeat.
        return torch.ops.aten.max_pool2d_with_indices_backward(
            signal, pool_input.expand(shape), module.kernel_size, module.stride, module.padding,
            module.dilation, module.ceil_mode, indices.expand(signal.shape),
        )
    if isinstance(module, nn.Conv2d):
        if signal.device.type == "cpu" and module.in_channels <= 4 and module.groups == 1:
            # The same sum as conv_transpose2d below, as a matmul and a col2im (fold): oneDNN's CPU
            # kernel runs ~10x below its usual speed when it makes so few channels (conv1 -> RGB);
            # this is ~2x faster there (and ~2x slower for the wide layers, hence only here).
            columns = module.weight.flatten(1).t() @ signal.flatten(2)  # [B, in * kh * kw, h * w]
            return F.fold(columns, saved[-2:], module.kernel_size, module.dilation, module.padding, module.stride)
        output_padding = [
            size - ((out - 1) * stride - 2 * pad + dil * (kernel - 1) + 1)
            for size, out, stride, pad, dil, kernel in zip(
                saved[-2:], signal.shape[-2:], module.stride, module.padding, module.dilation, module.kernel_size
            )
        ]
        return F.conv_transpose2d(
            signal, module.weight, None, module.stride, module.padding, output_padding, module.groups, module.dilation
        )
    if isinstance(module, nn.Linear):
        return signal @ module.weight
    if isinstance(module, nn.Flatten):
        return signal.reshape(signal.shape[0], *saved[1:])
    if isinstance(module, _NORMS) and saved is not None:
        with torch.enable_grad():  # vector-Jacobian product of the norm at its recorded input
            x = saved.expand(signal.shape).detach().clone().requires_grad_(True)
            (signal,) = torch.autograd.grad(module(x), x, signal)
    return signal  # dropout; the norm passed as the identity


def _kept_index(
    layer: str, activation: torch.Tensor, channels: int | Sequence[int] | torch.Tensor, positions: Positions | None
) -> torch.Tensor:
    """Flat index into ``activation[b].flatten()`` of the activation kept by each projection."""
    images, width = activation.shape[0], activation.shape[1]
    channels = _as_long(channels, "channels", dims=(0, 1))
    channels = channels.expand(images) if channels.dim() == 0 else channels
    count = channels.shape[0]
    if images not in (1, count):
        raise ValueError(f"{images} images but {count} channels; give one channel per image, or one image")
    bad = channels[(channels < 0) | (channels >= width)].unique()
    if bad.numel():
        raise ValueError(f"channels={bad.tolist()} out of range for {layer!r}: valid 0..{width - 1}")
    channels = channels.to(activation.device)
    if activation.dim() == 2:
        if positions is not None:
            raise ValueError(f"positions={positions!r} given for fc layer {layer!r}; use None")
        return channels
    height, cols = activation.shape[2:]
    if positions is None:
        maps = activation.expand(count, -1, -1, -1)[torch.arange(count, device=activation.device), channels]
        return channels * height * cols + maps.flatten(1).argmax(1)
    positions = _as_long(positions, "positions", dims=(2,))
    if positions.shape != (count, 2):
        raise ValueError(f"positions have shape {tuple(positions.shape)}; expected ({count}, 2): (row, col) each")
    bad = ((positions < 0) | (positions >= torch.tensor([height, cols], device=positions.device))).any(1)
    if bad.any():
        raise ValueError(f"positions={positions[bad].tolist()} outside the {height}x{cols} map of {layer!r}: "
                         f"valid rows 0..{height - 1}, cols 0..{cols - 1}")
    positions = positions.to(activation.device)
    return (channels * height + positions[:, 0]) * cols + positions[:, 1]


def _as_long(value: object, name: str, dims: tuple[int, ...]) -> torch.Tensor:
    shape = "an int or a 1-d sequence of ints" if dims == (0, 1) else "a [B, 2] sequence of (row, col) ints"
    try:
        tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name}={value!r}: expected {shape}") from error
    if tensor.dim() not in dims or tensor.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name}={value!r}: expected {shape}")
    return tensor.long()


def _check_pair(position: object, height: int, width: int, name: str) -> tuple[int, int]:
    if not (isinstance(position, Sequence) and len(position) == 2 and all(isinstance(v, Integral) for v in position)):
        raise ValueError(f"{name}={position!r}: expected a (row, col) pair of ints")
    row, col = int(position[0]), int(position[1])
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"{name}: (row, col)=({row}, {col}) is outside the {height}x{width} map; "
                         f"valid rows 0..{height - 1}, cols 0..{width - 1}")
    return row, col


def _int(value: int | tuple[int, ...]) -> int:
    """One number from a square kernel/stride/padding/dilation, as modules store them."""
    return value[0] if isinstance(value, tuple) else value


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output size of a conv or max-pool, as PyTorch computes it."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    return out - 1 if ceil_mode and (out - 1) * stride >= size + padding else out
