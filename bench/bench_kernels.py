"""The ZF-64 training step with zfcore's CPU backward passes vs the same step through plain autograd.

Same model (ZF-64 of the ``book`` profile), same weights, batch 128, bf16 autocast + channels-last where
supported; the two variants alternate for ``--rounds`` rounds so machine noise hits both alike:

* ``autograd``: every ``zfcore.cpu_kernels.Conv2d`` turned back into ``torch.nn.Conv2d`` and the
  contrast norm differentiated by autograd;
* ``zfcore``: the model as built (weight gradients of stride-1 convolutions as forward convolutions,
  contrast-norm backward without a second power).

Also prints, per conv layer, the weight-gradient time of oneDNN's kernel vs the forward-convolution
form, which is why :class:`zfcore.cpu_kernels.Conv2d` only takes stride-1 convolutions.

Usage: ``python bench/bench_kernels.py [--rounds 5] [--steps 10]``
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.checkpoints import build_model
from zfcore.models import ContrastNorm
from zfcore.profiles import get_profile
from zfcore.training_step import TrainingStep, sgd_optimizer


class AutogradContrastNorm(ContrastNorm):
    """The same normalisation, differentiated by autograd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (F.conv2d(x * x, self.band.to(x.dtype)) + self.k).pow(-self.beta)


def autograd_variant(model: nn.Module) -> nn.Module:
    """``model`` with plain ``torch.nn.Conv2d`` layers and its contrast norm differentiated by autograd."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.__class__ = nn.Conv2d
        elif isinstance(module, ContrastNorm):
            module.__class__ = AutogradContrastNorm
    return model


def make_step(model: nn.Module, precision: str) -> TrainingStep:
    """The trainer's step (:class:`zfcore.training_step.TrainingStep`) with the ``book`` recipe's optimiser, label
    smoothing and filter renormalisation; ``precision`` ``"auto"`` (bf16 where supported) or ``"fp32"``."""
    config = get_profile("book").train
    optimizer = sgd_optimizer(model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return TrainingStep(model, optimizer, precision=precision, label_smoothing=config.label_smoothing,
                        renorm_rms=config.renorm_rms)


def timed(step: Callable[[torch.Tensor, torch.Tensor], object], batches: Iterator, steps: int, warmup: int = 3) -> float:
    """Images per second over ``steps`` steps after ``warmup`` (the batch source's time included)."""
    for _ in range(warmup):
        step(*next(batches))
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(batches)
        step(x, y)
        images += len(y)
    return images / (time.perf_counter() - start)


def per_layer(bf16: bool) -> None:
    dtype = torch.bfloat16 if bf16 else torch.float32
    layers = {"conv1": (3, 96, 7, 2, 3, 64), "conv2": (96, 256, 5, 2, 2, 16), "conv3": (256, 384, 3, 1, 1, 4),
              "conv4": (384, 384, 3, 1, 1, 4), "conv5": (384, 256, 3, 1, 1, 4)}
    print("weight gradient, batch 128 (ms): oneDNN kernel vs forward convolution")
    for name, (c_in, c_out, kernel, stride, padding, size) in layers.items():
        x = torch.randn(128, c_in, size, size, dtype=dtype).to(memory_format=torch.channels_last)
        weight = torch.randn(c_out, c_in, kernel, kernel, dtype=dtype).to(memory_format=torch.channels_last)
        grad = torch.randn_like(F.conv2d(x, weight, None, stride, padding))

        def native() -> torch.Tensor:
            return torch.ops.aten.convolution_backward(grad, x, weight, None, [stride] * 2, [padding] * 2, [1, 1],
                                                       False, [0, 0], 1, [False, True, False])[1]

        def as_forward() -> torch.Tensor:
            return F.conv2d(x.transpose(0, 1).contiguous(), grad.transpose(0, 1).contiguous(), None, 1, padding,
                            dilation=stride)[:, :, :kernel, :kernel]

        times = [min(_milliseconds(f) for _ in range(3)) for f in (native, as_forward)]
        print(f"  {name} stride {stride}: {times[0]:6.2f} vs {times[1]:6.2f}  ({times[0] / times[1]:.2f}x)")


def _milliseconds(function, repeats: int = 5) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    config = get_profile("book").train
    bf16 = torch.cpu._is_avx512_bf16_supported()
    torch.manual_seed(0)
    ours = build_model(config).to(memory_format=torch.channels_last)
    baseline = autograd_variant(build_model(config).to(memory_format=torch.channels_last))
    baseline.load_state_dict(ours.state_dict())
    images = torch.randn(config.batch_size, 3, 64, 64).to(memory_format=torch.channels_last)
    labels = torch.randint(0, config.num_classes, (config.batch_size,))
    results: dict[str, list[float]] = {"autograd": [], "zfcore": []}
    for _ in range(args.rounds):
        for name, model in (("autograd", baseline), ("zfcore", ours)):
            step = make_step(model, "auto" if bf16 else "fp32")
            results[name].append(timed(step, itertools.repeat((images, labels)), args.steps))
    print(f"threads: {torch.get_num_threads()}, bf16 autocast: {bf16}, batch {config.batch_size}, "
          f"{args.rounds} alternating rounds of {args.steps} steps (median img/s)")
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, value in medians.items():
        print(f"  {name:<9} {value:7.1f} img/s")
    print(f"zfcore / autograd: {medians['zfcore'] / medians['autograd']:.3f}x")
    per_layer(bf16)


if __name__ == "__main__":
    main()
