"""The data a :class:`~zfcore.profiles.TrainConfig` trains and evaluates on, as batch iterables."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np

from zfcore.data.loader import TensorBatches
from zfcore.data.tiny_imagenet import CachedSplit, cached_split
from zfcore.profiles import TrainConfig

__all__ = ["Batches", "TrainingData", "subset", "training_data"]

DATASETS = ("tiny-imagenet", "imagenette", "imagenet")


class Batches(Protocol):
    """What the trainer iterates: ``(images, labels)`` batches, re-shuffled by ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self): ...
    def __len__(self) -> int: ...


@dataclass
class TrainingData:
    train: Batches
    val: Batches
    classes: list[str]
    class_names: list[str]
    sha256: str
    """A checksum of the exact images and labels used (decoded pixels for cached data)."""
    train_images: int


def subset(split: CachedSplit, classes: int, per_class: int) -> CachedSplit:
    """The first ``per_class`` images of each of the first ``classes`` classes (``0``: all), relabelled."""
    if not classes and not per_class:
        return split
    keep_classes = classes or len(split.classes)
    chosen: list[np.ndarray] = []
    for label in range(keep_classes):
        indices = np.flatnonzero(split.labels == label)
        chosen.append(indices[:per_class] if per_class else indices)
    order = np.concatenate(chosen)
    return CachedSplit(
        images=np.ascontiguousarray(split.images[order]), labels=split.labels[order],
        classes=split.classes[:keep_classes], class_names=split.class_names[:keep_classes],
    )


def _checksum(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        for start in range(0, len(array), 8192):
            digest.update(np.ascontiguousarray(array[start : start + 8192]).tobytes())
    return digest.hexdigest()


def training_data(config: TrainConfig, *, num_replicas: int = 1, rank: int = 0) -> TrainingData:
    """Train and validation batches for ``config`` (its dataset, subset, batch size and DDP shard)."""
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not valid; valid datasets: {DATASETS}")
    if config.batch_size % num_replicas:
        raise ValueError(f"batch_size={config.batch_size} does not split over {num_replicas} processes")
    per_process = config.batch_size // num_replicas
    if config.dataset != "tiny-imagenet":
        from zfcore.data.imagenet import file_training_data

        return file_training_data(config, per_process, num_replicas=num_replicas, rank=rank)
    train = subset(cached_split("train"), config.classes_limit, config.train_per_class)
    val = subset(cached_split("val"), config.classes_limit, config.val_per_class)
    if len(train.classes) != config.num_classes:
        raise ValueError(f"num_classes={config.num_classes} but the data has {len(train.classes)} classes")
    return TrainingData(
        train=TensorBatches(train.images, train.labels, per_process, train=True, seed=config.seed,
                            channels_last=True, num_replicas=num_replicas, rank=rank),
        val=TensorBatches(val.images, val.labels, 500 if len(val) >= 500 else len(val), train=False,
                          channels_last=True),
        classes=train.classes,
        class_names=train.class_names,
        sha256=_checksum([train.images, train.labels, val.images, val.labels]),
        train_images=len(train),
    )
