"""Checkpoints: atomic saving, validated loading, and the network a config builds.

The published reference networks and their metadata are in :mod:`zfcore.weights`.
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from zfcore.models import ZFNet, alexnet_style, zfnet
from zfcore.profiles import TrainConfig
from zfcore.store import torch_save_atomic

__all__ = [
    "CheckpointError",
    "build_model",
    "check_finite",
    "checkpoint_state",
    "config_from_dict",
    "load_checkpoint",
    "load_weights",
    "read_torch_file",
    "save_checkpoint",
]

FORMAT = "zfbook-checkpoint"
ARCH_FIELDS = ("style", "input_size", "num_classes", "widths", "fc", "remove", "lrn")
NUMPY_RNG_TYPES = (np.ndarray.__reduce__(np.zeros(0))[0], np.ndarray, np.dtype, type(np.dtype(np.uint32)))
"""What ``np.random.get_state()`` pickles to besides plain values: numpy's array rebuilder (its module moved in
numpy 2, so it is taken from an array's own pickle), the array and dtype classes."""
KINDS = {
    "network": (("config", "model"), "a run's checkpoint.pt or a reference weights file (data/reference)"),
    "training": (("config", "model", "optimizer", "scheduler", "epoch", "rng", "history"),
                 "a run's own checkpoint.pt (a reference weights file holds no optimizer state to resume)"),
    "snapshot": (("epoch", "features"), "a run's snapshots/epoch_NNN.pt"),
}
"""What each kind of file must hold, and where such a file comes from (for the error message)."""


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, not ours, or of another architecture."""


def build_model(config: TrainConfig) -> ZFNet:
    """The network a :class:`~zfcore.profiles.TrainConfig` trains."""
    builder = alexnet_style if config.style == "alexnet" else zfnet
    return builder(config.num_classes, config.input_size, widths=config.widths, fc=config.fc, lrn=config.lrn,
                   dropout=config.dropout, remove=config.remove, init=config.init)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from ``asdict`` output (tuples restored, unknown keys dropped)."""
    known = {f.name for f in fields(TrainConfig)}
    clean = {key: value for key, value in values.items() if key in known}
    clean["widths"] = tuple(clean.get("widths", TrainConfig.widths))
    clean["deviations"] = tuple(tuple(pair) for pair in clean.get("deviations", ()))
    clean["remove"] = tuple(clean.get("remove", ()))  # () also for checkpoints written before the field existed
    clean.setdefault("preprocessing", "mean-std")  # checkpoints written before the field existed
    clean.setdefault("style", "zf")  # likewise
    return TrainConfig(**clean)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    torch_save_atomic(path, {"format": FORMAT, **state})


def read_torch_file(path: str | Path, *, what: str = "checkpoint", allow: Iterable[type | Any] = ()) -> Any:
    """``torch.load`` that can never run code: ``weights_only=True``, numpy's RNG-state types and ``allow`` allowed.

    Args:
        path: the file.
        what: what the file should be, for the error message ("checkpoint", "Fig. 4 data", ...).
        allow: further classes or functions the file may name (e.g. a cache's dataclasses).

    Raises:
        CheckpointError: missing, corrupt or not a PyTorch file, or a pickle naming anything else (which
            could run code); nothing in the file was executed. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with torch.serialization.safe_globals([*NUMPY_RNG_TYPES, *allow]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", str(error))
        if refused is None:
            raise CheckpointError(f"{what} {path} is corrupt or not a PyTorch file ({_reason(error)})") from None
        raise CheckpointError(
            f"{what} {path} was refused: its pickle names {refused.group(1) or refused.group(2)}, which could run "
            f"code, and only tensors, numbers, strings and containers may be loaded (nothing was executed); use a "
            f"file written by zfcore"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError, IndexError, KeyError,
            struct.error) as error:  # what the unpickler raises on random bytes
        raise CheckpointError(f"{what} {path} is corrupt or not a PyTorch file ({_reason(error)})") from None


_UNSAFE_ADVICE = re.compile(r"weights_only|trusted source|can still be loaded|file an issue|check the documentation",
                            re.IGNORECASE)


def _reason(error: BaseException) -> str:
    """What ``torch.load`` found wrong with a file, in one short line, without its advice to load the file with
    ``weights_only=False`` (which would run whatever code the file holds)."""
    text = str(error)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if found:
        return found.group(1).strip().splitlines()[0].strip().rstrip(".")
    sentences = [part.strip() for line in text.splitlines() for part in re.split(r"(?<=\.)\s+", line) if part.strip()]
    kept = [part for part in sentences if not _UNSAFE_ADVICE.search(part)]
    return kept[0].rstrip(".") if kept else type(error).__name__


def check_finite(tensors: dict[str, torch.Tensor], path: str | Path, *, what: str = "checkpoint") -> None:
    """Refuse weights holding a NaN or an infinity: a network trained into them computes nothing meaningful.

    Args:
        tensors: a state dict (name -> tensor; other values are skipped).
        path: the file they came from, for the message.
        what: what the file is, for the message.

    Raises:
        CheckpointError: one line naming the file, the first tensor (in the file's order) with a non-finite
            value and how many it holds.
    """
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(f"{what} {path} holds non-finite weights: {name} has {bad} NaN or infinite "
                                      f"value(s) of {tensor.numel()}; the run that wrote it diverged or the file "
                                      f"was damaged. Use an earlier checkpoint")


def load_checkpoint(path: str | Path, *, expect: TrainConfig | None = None, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely (:func:`read_torch_file`).

    Args:
        path: the file.
        expect: if given, the architecture the caller will load the weights into.
        kind: what the file must hold: ``"network"`` (config and weights: a training checkpoint or a
            reference weights file), ``"training"`` (everything a run needs to resume), ``"snapshot"``
            (a Fig. 4 snapshot: epoch and conv weights) or ``None`` (any file :func:`save_checkpoint` wrote).

    Raises:
        CheckpointError: missing, corrupt or unsafe file, not a zfbook checkpoint, another kind of file
            (e.g. a Fig. 4 snapshot given as a network), an unreadable config, or (with ``expect``) a
            network of another architecture; the message names the file and what is wrong.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not valid; valid kinds: {(*KINDS, None)}")
    if kind is None and expect is not None:
        kind = "network"  # an architecture to compare needs the config
    path = Path(path)
    state = read_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a zfbook checkpoint (no '{FORMAT}' format marker)")
    required, source = KINDS[kind] if kind is not None else ((), "")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is {_describe(state)}, not a {kind} checkpoint: it lacks "
                              f"{', '.join(missing)}; pass {source}")
    if "config" in state:
        try:
            saved = config_from_dict(state["config"])
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"checkpoint {path} holds an unreadable config ({_first_line(error)})") from error
        if expect is not None:
            mismatches = [
                f"{name}: checkpoint {getattr(saved, name)!r} vs expected {getattr(expect, name)!r}"
                for name in ARCH_FIELDS if getattr(saved, name) != getattr(expect, name)
            ]
            if mismatches:
                raise CheckpointError(f"checkpoint {path} holds another architecture: " + "; ".join(mismatches))
    return state


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """``model.load_state_dict(weights)`` (as fp32), with a mismatch reported as the file's fault.

    Raises:
        CheckpointError: the weights in ``path`` do not fit ``model`` (missing or unexpected keys,
            other shapes): the file's config and weights disagree.
    """
    try:
        model.load_state_dict({key: value.float() if value.is_floating_point() else value
                               for key, value in weights.items()})
    except (RuntimeError, AttributeError) as error:
        problems = [line.strip().rstrip(".") for line in str(error).splitlines()[1:] if line.strip()]
        details = problems[0] if problems else _first_line(error)
        if len(problems) > 1:
            details += f"; and {len(problems) - 1} more"
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the network its config describes "
                              f"({details}); the file is damaged or was edited") from error


def _describe(state: dict[str, Any]) -> str:
    """What a zfbook file is, judged by its keys (for error messages)."""
    if "features" in state and "config" not in state:
        return "a Fig. 4 snapshot (conv weights only)"
    if "meta" in state and "optimizer" not in state:
        return "a reference weights file (no optimizer state)"
    if "optimizer" in state:
        return "a training checkpoint"
    return "a file holding only " + ", ".join(sorted(key for key in state if key != "format"))


def _first_line(error: BaseException) -> str:
    """An exception's message on one line (for one-line CLI errors)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def checkpoint_state(config: TrainConfig, **state: Any) -> dict[str, Any]:
    """The dictionary :func:`save_checkpoint` stores for a training run."""
    return {"config": asdict(config), **state}
