"""Helpers the run and checkpoint tests share: a tiny recipe, synthetic training data, a trained run (module
fixtures ``run_dir`` and ``run_copy``, imported by the test modules), and a snapshot of a folder's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from zfcore.data.loader import TensorBatches
from zfcore.data.sources import TrainingData
from zfcore.profiles import TrainConfig
from zfcore.train import train

TINY = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=(4, 8, 8, 8, 8), fc=16,
                   dropout=0.3, init="he", preprocessing="mean-std", epochs=2, batch_size=8, lr=0.05,
                   schedule="cosine", warmup_epochs=0.5, workers=0)
"""A recipe that trains in seconds on :func:`synthetic_data`."""


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


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of ``TINY`` stopped after epoch 1 (checkpoint.pt, metrics.csv, snapshots/epoch_001.pt), read only."""
    folder = tmp_path_factory.mktemp("run")
    train(TINY, folder, data=synthetic_data(TINY), progress=False, stop_after=1)
    return folder


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`run_dir` that a test may try to resume, refuse or damage."""
    copy = tmp_path / "run"
    for path in run_dir.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(run_dir)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(run_dir)).write_bytes(path.read_bytes())
    return copy
