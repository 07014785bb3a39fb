"""Where and in which precision zfcore computes: one place that chooses the device and the autocast dtype.

:func:`default_device` picks CUDA when a GPU is there, else the CPU; notebooks and analyses call it
once and pass the result on; analyses given a model compute where it is (:func:`model_device`). :func:`autocast_dtype` and :func:`autocast` give the mixed precision the
trainer and the evaluation use: bf16 on CUDA (fp16 where bf16 is missing) and on CPUs with
AVX512-BF16, fp32 elsewhere. :func:`exact_float32` turns TF32 off for work that must match the CPU
(the deconvnet's projections).
"""

from __future__ import annotations

import contextlib
import platform
from typing import Iterator

import torch

__all__ = ["PRECISIONS", "autocast", "autocast_dtype", "default_device", "describe_device", "exact_float32",
           "model_device"]

PRECISIONS = ("auto", "fp32", "bf16")


def default_device() -> torch.device:
    """CUDA device 0 when a GPU is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device | str) -> str:
    """What ``device`` is, in words, for the record of a run: the GPU's name, or the CPU's model, its bf16
    support and the threads used (e.g. ``"cpu: Intel(R) Xeon(R) Processor, AVX512-BF16, 2 threads"``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    bf16 = "AVX512-BF16" if torch.cpu._is_avx512_bf16_supported() else "no AVX512-BF16 (fp32)"
    return f"{device.type}: {model}, {bf16}, {torch.get_num_threads()} threads"


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain fp32).

    Args:
        device: where the computation runs.
        precision: ``"auto"`` (bf16 where the hardware has it), ``"fp32"`` or ``"bf16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; valid values: {PRECISIONS}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16" or torch.cpu._is_avx512_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with ``dtype``, disabled when ``dtype`` is ``None``."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Float32 matrix products and convolutions in full float32 on CUDA: TF32 off, the previous setting restored after.

    By default cuDNN convolutions on Ampere and later GPUs round their float32 inputs to TF32 (a 10-bit
    mantissa). The deconvnet's max-pooling switches then flip at near-ties and projections differ
    from the CPU's by several percent of their maximum; in full float32 they agree to rounding.
    Restores ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` even
    when the body raises. Without CUDA the flags change nothing.
    """
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
