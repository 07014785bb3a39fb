"""ZFNet (Zeiler & Fergus 2014, Fig. 3), its 64-px scaling "ZF-64", and the AlexNet-style variant.

The network is a plain stack of named layers::

    conv1 -> relu1 -> pool1 -> norm1 -> conv2 -> relu2 -> pool2 -> norm2
    -> conv3 -> relu3 -> conv4 -> relu4 -> conv5 -> relu5 -> pool5
    -> flatten -> drop6 -> fc6 -> relu6 -> drop7 -> fc7 -> relu7 -> fc8

The *activation* of ``convN`` (and of ``fc6``/``fc7``) is the output of its ReLU, before pooling;
``fc8`` is the logits. :meth:`ZFNet.activation_module` returns the module whose output that is, so
forward hooks (and Captum) can attach to it; :meth:`ZFNet.trace` returns any activations and the
max-pool switches from one forward pass.

Layer geometry (``widths=(96, 256, 384, 384, 256)``): output size and receptive field (pixels)

============  ==================  ==========  ==================  ==========
layer         ZFNet-224 output    RF (224)    ZF-64 output        RF (64)
============  ==================  ==========  ==================  ==========
conv1 7x7/2   96 x 110 x 110      7           96 x 32 x 32        7
pool1 3x3/2   96 x 55 x 55        11          96 x 16 x 16        11
conv2 5x5/2   256 x 26 x 26       27          256 x 8 x 8         27
pool2 3x3/2   256 x 13 x 13       43          256 x 4 x 4         43
conv3 3x3/1   384 x 13 x 13       75          384 x 4 x 4         75
conv4 3x3/1   384 x 13 x 13       107         384 x 4 x 4         107
conv5 3x3/1   256 x 13 x 13       139         256 x 4 x 4         139
pool5 3x3/2   256 x 6 x 6         171         256 x 2 x 2         171
fc6, fc7      4096                all         ``fc`` (1024 in     all
                                              the ``book`` run)
fc8           classes             all         classes             all
============  ==================  ==========  ==================  ==========

At 224 px the padding is conv1 1, pool1 1, conv2 0, pool2 1, pool5 0: exactly the map sizes of
Fig. 3 (110, 55, 26, 13, 13, 13, 6). At 64 px (ZF-64) conv1 pads 3, conv2 pads 2 and every pool
pads 1, so each map keeps a meaningful size (32, 16, 8, 4, 4, 4, 2); receptive fields in pixels are
the same as at 224 px, so from conv3 on (75 px and more) a unit sees most or all of a 64-px image.
The AlexNet-style variant replaces conv1 by Krizhevsky's 11x11 stride 4 and conv2 by his 5x5
stride 1 (Fig. 6 of the paper), which keeps the maps from conv3 on identical.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.checks import check_bool, check_choice, check_finite, check_layers, check_number, check_whole
from zfcore.cpu_kernels import Conv2d, contrast_norm

__all__ = [
    "CONV_LAYERS",
    "FC_LAYERS",
    "LAYER_NAMES",
    "REMOVABLE_LAYERS",
    "ContrastNorm",
    "Trace",
    "ZFNet",
    "alexnet_style",
    "renormalize_filters",
    "zfnet",
]

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7", "fc8")
LAYER_NAMES = CONV_LAYERS + FC_LAYERS
REMOVABLE_LAYERS = ("conv3", "conv4", "fc6", "fc7")
SUPPORTED_INPUT_SIZES = (64, 224)
PAPER_WIDTHS = (96, 256, 384, 384, 256)
INITS = ("paper", "he", "torch")
STYLES = ("zf", "alexnet")
# the keyword options of zfnet() and alexnet_style(), with their defaults (the paper's values)
OPTIONS: dict[str, Any] = dict(widths=PAPER_WIDTHS, fc=4096, lrn=True, dropout=0.5, remove=(), init="paper")

# (kernel, stride, padding) of conv1, conv2 and the padding of pool1, pool2, pool5, per style and size.
_GEOMETRY = {
    ("zf", 224): dict(conv1=(7, 2, 1), conv2=(5, 2, 0), pool_padding=(1, 1, 0)),
    ("zf", 64): dict(conv1=(7, 2, 3), conv2=(5, 2, 2), pool_padding=(1, 1, 1)),
    ("alexnet", 224): dict(conv1=(11, 4, 2), conv2=(5, 1, 2), pool_padding=(0, 0, 0)),
    ("alexnet", 64): dict(conv1=(11, 4, 5), conv2=(5, 1, 2), pool_padding=(1, 1, 1)),
}


class ContrastNorm(nn.Module):
    """Local contrast normalisation across feature maps, as a banded 1x1 convolution.

    Computes exactly what :class:`torch.nn.LocalResponseNorm` computes,
    ``b_c = a_c * (k + alpha / size * sum_{c' near c} a_{c'}^2) ** -beta`` with the window
    ``c - size // 2 <= c' <= c + (size - 1) // 2`` zero-padded at the ends, but sums the squares with
    one matrix product over channels instead of a 3-d average pool: about 10x faster on a CPU; its
    backward reuses the forward's power (:func:`zfcore.cpu_kernels.contrast_norm`).
    Defaults are Krizhevsky et al.'s (size 5, alpha 1e-4, beta 0.75, k 2), which ZFNet follows.

    Args:
        channels: number of feature maps it normalises.
        size, alpha, beta, k: as in :class:`torch.nn.LocalResponseNorm`.
    """

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.channels, self.size, self.alpha, self.beta, self.k = channels, size, alpha, beta, k
        offset = torch.arange(channels)[None, :] - torch.arange(channels)[:, None]  # c' - c
        band = ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).float() * (alpha / size)
        self.register_buffer("band", band[:, :, None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = self.band.to(dtype=x.dtype) if x.dtype != self.band.dtype else self.band
        return contrast_norm(x, band, self.k, self.beta)

    def extra_repr(self) -> str:
        return f"{self.channels}, size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@dataclass
class Trace:
    """What one forward pass of :meth:`ZFNet.trace` recorded.

    Attributes:
        logits: the ``fc8`` output, ``[B, num_classes]``.
        activations: layer name -> activation (ReLU output of ``convN``/``fc6``/``fc7``; ``fc8`` logits).
        switches: pool name (``pool1``, ``pool2``, ``pool5``) -> the flat argmax indices of each pooling
            window into its input map, as :func:`torch.nn.functional.max_pool2d` returns them.
    """

    logits: torch.Tensor
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    switches: dict[str, torch.Tensor] = field(default_factory=dict)


class ZFNet(nn.Module):
    """The ZFNet family: ``features`` (conv1-conv5 with pools and norms) and ``classifier`` (fc6-fc8).

    Build it with :func:`zfnet` or :func:`alexnet_style`; see the module docstring for the layers.
    """

    def __init__(
        self,
        *,
        style: str,
        num_classes: int,
        input_size: int,
        widths: Sequence[int],
        fc: int,
        lrn: bool,
        dropout: float,
        remove: Iterable[str],
        init: str,
    ) -> None:
        super().__init__()
        check_choice("style", style, STYLES)
        num_classes, fc = check_whole("num_classes", num_classes, 1), check_whole("fc", fc, 1)
        input_size = check_whole("input_size", input_size, 1)
        check_choice("input_size", input_size, SUPPORTED_INPUT_SIZES)
        check_choice("init", init, INITS)
        if isinstance(remove, str) or not isinstance(remove, Iterable):
            raise ValueError(f"remove={remove!r}: give a sequence of layer names, any of {REMOVABLE_LAYERS}")
        remove = tuple(remove)
        for name in remove:
            check_choice("remove", name, REMOVABLE_LAYERS)
        if (isinstance(widths, str) or not isinstance(widths, Sequence) or len(widths) != 5
                or not all(isinstance(w, Integral) and not isinstance(w, bool) and w >= 1 for w in widths)):
            raise ValueError(f"widths={widths!r}: give five positive whole channel counts for conv1..conv5, "
                             f"e.g. {PAPER_WIDTHS}")
        widths = tuple(int(w) for w in widths)
        check_number("dropout", dropout, "in [0, 1) (the paper: 0.5)", lambda value: 0 <= value < 1)
        check_bool("lrn", lrn)
        self.style, self.input_size, self.num_classes = style, input_size, num_classes
        self.removed = remove
        geometry = _GEOMETRY[(style, input_size)]
        pad1, pad2, pad5 = geometry["pool_padding"]

        features: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = 3
        for index, (name, width) in enumerate(zip(CONV_LAYERS, widths), start=1):
            if name in remove:
                continue
            kernel, stride, padding = geometry.get(name, (3, 1, 1))
            features[name] = Conv2d(in_channels, width, kernel, stride, padding)
            features[f"relu{index}"] = nn.ReLU()
            if index in (1, 2):
                features[f"pool{index}"] = nn.MaxPool2d(3, 2, padding=pad1 if index == 1 else pad2)
                if lrn:
                    features[f"norm{index}"] = ContrastNorm(width)
            in_channels = width
        features["pool5"] = nn.MaxPool2d(3, 2, padding=pad5)
        self.features = nn.Sequential(features)

        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, input_size, input_size)).numel()
        classifier: OrderedDict[str, nn.Module] = OrderedDict()
        in_features = flat
        for index in (6, 7):
            if f"fc{index}" in remove:
                continue
            classifier[f"drop{index}"] = nn.Dropout(dropout)
            classifier[f"fc{index}"] = nn.Linear(in_features, fc)
            classifier[f"relu{index}"] = nn.ReLU()
            in_features = fc
        classifier["fc8"] = nn.Linear(in_features, num_classes)
        self.classifier = nn.Sequential(classifier)
        self.flatten = nn.Flatten(1)
        self.initialize(init)

    # ------------------------------------------------------------------ structure
    @property
    def layer_names(self) -> tuple[str, ...]:
        """The named layers this network has (``remove`` drops some)."""
        return tuple(name for name in LAYER_NAMES if name not in self.removed)

    def named_steps(self) -> Iterator[tuple[str, nn.Module]]:
        """Every step of the forward pass in order, ``flatten`` included, as ``(name, module)``."""
        yield from self.features.named_children()
        yield "flatten", self.flatten
        yield from self.classifier.named_children()

    def activation_module(self, layer: str) -> nn.Module:
        """The module whose output is the activation of ``layer`` (its ReLU; ``fc8`` itself)."""
        self.check_layer(layer)
        if layer == "fc8":
            return self.classifier.fc8
        index = layer[-1]
        return getattr(self.features if layer.startswith("conv") else self.classifier, f"relu{index}")

    def activation_step(self, layer: str) -> str:
        """The step name (as in :meth:`named_steps`) whose output is the activation of ``layer``."""
        self.check_layer(layer)
        return "fc8" if layer == "fc8" else f"relu{layer[-1]}"

    # ------------------------------------------------------------------ checks
    def check_layer(self, layer: str) -> None:
        """Raise ``ValueError`` unless ``layer`` is one of :attr:`layer_names`."""
        if layer not in self.layer_names:
            raise ValueError(f"layer={layer!r} is not a layer of this network; valid layers: {self.layer_names}")

    def check_images(self, images: torch.Tensor, *, finite: bool = True) -> None:
        """Raise ``ValueError`` unless ``images`` is a finite float ``[B, 3, input_size, input_size]`` tensor.

        Args:
            images: the network's input (normalised pixels).
            finite: also refuse NaN or infinite values (:func:`zfcore.checks.check_finite`); one NaN pixel makes
                the image's activations, and so its projections, entirely NaN. :meth:`forward` skips
                this check: the trainer's inputs are normalised uint8 pixels, and a data-dependent
                check would stall the GPU and split ``torch.compile`` graphs at every step.
        """
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor [B, 3, H, W], got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images have shape {tuple(images.shape)}; expected [B, 3, H, W]")
        if not images.is_floating_point():
            raise ValueError(
                f"images have dtype {images.dtype}; expected float (normalised pixels): turn uint8 pixels "
                "[B, H, W, 3] into inputs with zfcore.data.loader.normalize (or pixel_batches)"
            )
        if tuple(images.shape[2:]) != (self.input_size, self.input_size):
            raise ValueError(
                f"images are {images.shape[2]}x{images.shape[3]} px but this network takes "
                f"{self.input_size}x{self.input_size}; resize/crop them or build it with input_size="
                f"{images.shape[2]} (supported: {SUPPORTED_INPUT_SIZES})"
            )
        if finite:
            check_finite("images", images)

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` checked (:meth:`check_images`), on the network's device and in its parameters' dtype.

        Float images of another dtype (fp16, bf16, fp64) are cast to the parameters' dtype (float32
        for a network as built), so that any float input gives the network's own arithmetic.
        """
        self.check_images(images)
        parameter = next(self.parameters())
        # asynchronous only towards a GPU: a GPU -> CPU copy could be read before it has landed
        return images.to(device=parameter.device, dtype=parameter.dtype, non_blocking=parameter.device.type == "cuda")

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images, finite=False)
        return self.classifier(self.flatten(self.features(images)))

    def trace(self, images: torch.Tensor, layers: Iterable[str] | None = None) -> Trace:
        """One forward pass that records activations of ``layers`` (default: all) and every pool's switches."""
        self.check_images(images)
        wanted = set(self.layer_names if layers is None else
                     check_layers("layers", layers, self.layer_names, allow_empty=True))
        record = {self.activation_step(layer): layer for layer in wanted}
        result = Trace(logits=images)
        x = images
        for name, module in self.named_steps():
            if isinstance(module, nn.MaxPool2d):
                x, result.switches[name] = F.max_pool2d(
                    x, module.kernel_size, module.stride, module.padding, module.dilation,
                    module.ceil_mode, return_indices=True,
                )
            else:
                x = module(x)
            if name in record:
                result.activations[record[name]] = x
        result.logits = x
        return result

    # ------------------------------------------------------------------ weights
    def initialize(self, init: str = "paper") -> None:
        """Re-initialise every conv and fc layer.

        ``"paper"``: weights N(0, 1e-2), biases 0 (§3). ``"he"``: Kaiming-normal (fan-in, ReLU gain),
        biases 0. ``"torch"``: PyTorch's default ``reset_parameters``.
        """
        check_choice("init", init, INITS)
        for module in self.modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            if init == "torch":
                module.reset_parameters()
                continue
            if init == "paper":
                nn.init.normal_(module.weight, 0.0, 1e-2)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)


def renormalize_filters(model: nn.Module, max_rms: float = 0.1) -> None:
    """Scale back every conv filter whose RMS exceeds ``max_rms`` to RMS ``max_rms`` (paper §3).

    A filter is one output channel's weights ``[in, kh, kw]``; biases are untouched. Called by the
    trainer after each optimiser step.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                weight = module.weight
                rms = weight.float().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
                weight.mul_((max_rms / rms.clamp_min(1e-12)).clamp(max=1.0).to(weight.dtype))


def zfnet(num_classes: int = 1000, input_size: int = 224, **options: Any) -> ZFNet:
    """ZFNet of Zeiler & Fergus (2014), Fig. 3; at ``input_size=64`` the CPU-scale "ZF-64".

    Args:
        num_classes: size of fc8 (1000 for ImageNet, 200 for Tiny ImageNet).
        input_size: 224 (exactly Fig. 3) or 64 (ZF-64: same widths and strides, paddings chosen for 64 px).
        **options: keyword-only, each with the paper's value as default:

            - ``widths`` — output channels of conv1..conv5 (default ``(96, 256, 384, 384, 256)``;
              Table 2 varies them);
            - ``fc`` — width of fc6 and fc7 (default 4096);
            - ``lrn`` — contrast normalisation after pool1 and pool2 (:class:`ContrastNorm`, default ``True``);
            - ``dropout`` — dropout rate before fc6 and fc7 (default 0.5);
            - ``remove`` — layers to drop for Table 3: one name or a sequence of names, any of
              ``("conv3", "conv4", "fc6", "fc7")`` (default none);
            - ``init`` — ``"paper"`` (N(0, 1e-2), default), ``"he"`` or ``"torch"``; see :meth:`ZFNet.initialize`.

    Returns:
        A :class:`ZFNet` in training mode.

    Raises:
        ValueError: a value of the wrong type or out of range, naming the argument and the valid values.
        TypeError: an unknown option, listing the valid ones.
    """
    return _build("zfnet", "zf", num_classes, input_size, options)


def alexnet_style(num_classes: int = 1000, input_size: int = 224, **options: Any) -> ZFNet:
    """ZFNet with Krizhevsky et al.'s first layers (conv1 11x11 stride 4, conv2 5x5 stride 1), for Fig. 6.

    Same arguments as :func:`zfnet`; from conv3 on the maps have the same sizes.
    """
    return _build("alexnet_style", "alexnet", num_classes, input_size, options)


def _build(builder: str, style: str, num_classes: int, input_size: int, options: dict[str, Any]) -> ZFNet:
    """The one builder behind :func:`zfnet` and :func:`alexnet_style`: checks the option names, builds.

    ``remove`` may be one layer name or a sequence of them; :class:`ZFNet` checks every value.
    """
    unknown = [name for name in options if name not in OPTIONS]
    if unknown:
        raise TypeError(f"{builder}() got unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"valid options: {', '.join(OPTIONS)}")
    values = {**OPTIONS, **options}
    if isinstance(values["remove"], str):
        values["remove"] = (values["remove"],)
    return ZFNet(style=style, num_classes=num_classes, input_size=input_size, **values)
