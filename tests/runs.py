"""Helpers the run and checkpoint tests share: synthetic training data, and a snapshot of a folder's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from zfcore.data.loader import TensorBatches
from zfcore.data.sources import TrainingData
from zfcore.profiles import TrainConfig


def synthetic_data(config: TrainConfig, seed: int = 0, images: int = 48) -> TrainingData:
    """Random 64-px uint8 images with labels cycling over ``config.num_classes``: a run in seconds, no dataset."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (images, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(images) % config.num_classes
    return TrainingData(
        train=TensorBatches(pixels, labels, config.batch_size, train=True, seed=config.seed, channels_last=True),
        val=TensorBatches(pixels[:16], labels[:16], 16, train=False),
        classes=[f"c{i}" for i in range(config.num_classes)],
        class_names=[f"class {i}" for i in range(config.num_classes)],
        sha256=f"synthetic-{seed}", train_images=images,
    )


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (or ``folder`` itself, a file) with its SHA-256, and folders as such: to prove
    nothing changed."""
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": hashlib.sha256(folder.read_bytes()).hexdigest()}
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            for path in sorted(folder.rglob("*"))}
