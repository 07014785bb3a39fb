"""Checkpoints: atomic saving, validated loading, the network a config builds, and the code version.

The published reference networks and their metadata are in :mod:`zfcore.weights`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import zipfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from zfcore.models import ZFNet, zfnet
from zfcore.profiles import TrainConfig

__all__ = [
    "CheckpointError",
    "build_model",
    "checkpoint_state",
    "code_version",
    "config_from_dict",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "zfbook-checkpoint"
ARCH_FIELDS = ("input_size", "num_classes", "widths", "fc", "lrn")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, not ours, or of another architecture."""


def build_model(config: TrainConfig) -> ZFNet:
    """The network a :class:`~zfcore.profiles.TrainConfig` trains."""
    return zfnet(config.num_classes, config.input_size, widths=config.widths, fc=config.fc, lrn=config.lrn,
                 dropout=config.dropout, init=config.init)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from ``asdict`` output (tuples restored, unknown keys dropped)."""
    known = {f.name for f in fields(TrainConfig)}
    clean = {key: value for key, value in values.items() if key in known}
    clean["widths"] = tuple(clean.get("widths", TrainConfig.widths))
    clean["deviations"] = tuple(tuple(pair) for pair in clean.get("deviations", ()))
    clean.setdefault("preprocessing", "mean-std")  # checkpoints written before the field existed
    return TrainConfig(**clean)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save({"format": FORMAT, **state}, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, *, expect: TrainConfig | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the file.
        expect: if given, the architecture the caller will load the weights into.

    Raises:
        CheckpointError: missing or corrupt file, not a zfbook checkpoint, or (with ``expect``) a network
            of another architecture; the message names the file and the mismatching fields.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a zfbook checkpoint (no '{FORMAT}' format marker)")
    if expect is not None:
        saved = config_from_dict(state["config"])
        mismatches = [
            f"{name}: checkpoint {getattr(saved, name)!r} vs expected {getattr(expect, name)!r}"
            for name in ARCH_FIELDS if getattr(saved, name) != getattr(expect, name)
        ]
        if mismatches:
            raise CheckpointError(f"checkpoint {path} holds another architecture: " + "; ".join(mismatches))
    return state


def code_version() -> str:
    """The git commit of the code (``+dirty`` if changed), or ``"unknown"`` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "zfcore"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def checkpoint_state(config: TrainConfig, **state: Any) -> dict[str, Any]:
    """The dictionary :func:`save_checkpoint` stores for a training run."""
    return {"config": asdict(config), **state}
