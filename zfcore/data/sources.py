"""The data a :class:`~zfcore.profiles.TrainConfig` trains and evaluates on, as batch iterables.

One place chooses between the two kinds of data: Tiny ImageNet (64 px) comes from a uint8 cache
(:class:`~zfcore.data.loader.TensorBatches`), ImageNet and Imagenette (224 px) from image files
(:class:`~zfcore.data.loader.FileBatches`). :func:`training_data` gives the train and validation
batches of a run; :func:`eval_batches` the validation (or training) batches of a trained network,
single centre view or the paper's 10 crops. :func:`training_labels` gives the labels a run trains on
(permuted once for Adebayo et al.'s data-randomisation test, ``TrainConfig.random_labels``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from zfcore.data.gpu_batches import DeviceBatches
from zfcore.data.imagenet import imagenet, imagenet_class_names, imagenette
from zfcore.data.loader import FileBatches, TensorBatches
from zfcore.data.tiny_imagenet import cached_split
from zfcore.data.transforms import eval_transform, paper_resize, ten_crop_transform, train_transform
from zfcore.profiles import DATASETS, PREPROCESSING, TrainConfig

__all__ = [
    "DATASETS",
    "PREPROCESSING",
    "Batches",
    "TrainingData",
    "eval_batches",
    "file_sha256",
    "mean_image_for",
    "pixel_mean",
    "ten_crops",
    "training_data",
    "training_labels",
]

FILE_DATASETS = ("imagenette", "imagenet")
CACHED_PAD = 4  # ZF-64 trains on 64-px crops of the 4-px reflect-padded image
RANDOM_LABELS_SEED = 20180000
"""Seeds the one permutation of the training labels of ``random_labels`` runs (the same for every such run)."""


class Batches(Protocol):
    """What the trainer iterates: ``(images, labels)`` batches, re-shuffled by ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


@dataclass
class TrainingData:
    """A run's batches and what they are.

    Attributes:
        train, val: the batches (``val`` in a fixed order, every image).
        classes, class_names: the label order (wnids) and readable names.
        sha256: a checksum of the exact images and labels used (decoded pixels for cached data, the
            file list for file-based data).
        train_images: the number of training images.
        mean_image: the per-pixel mean the batches subtract (``"pixel-mean"`` preprocessing), else ``None``.
    """

    train: Batches
    val: Batches
    classes: list[str]
    class_names: list[str]
    sha256: str
    train_images: int
    mean_image: torch.Tensor | None = None


# -- preprocessing -------------------------------------------------------------------------------


def pixel_mean(pixels: np.ndarray, chunk: int = 8192) -> torch.Tensor:
    """The per-pixel mean ``[H, W, 3]`` (float32, 0-255 scale) of uint8 ``pixels`` ``[N, H, W, 3]``."""
    total = np.zeros(pixels.shape[1:], dtype=np.float64)
    for start in range(0, len(pixels), chunk):
        total += pixels[start : start + chunk].sum(axis=0, dtype=np.float64)
    return torch.from_numpy(total / len(pixels)).float()


def mean_image_for(config: TrainConfig) -> torch.Tensor | None:
    """The mean image ``config.preprocessing`` subtracts: ``None`` for ``"mean-std"``.

    For ``"pixel-mean"`` (the paper's) it is the per-pixel mean of the run's training images, computed
    from the same cache the run trained on, so training and any later evaluation agree.
    """
    if config.preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing={config.preprocessing!r} is not valid; valid values: {PREPROCESSING}")
    if config.preprocessing == "mean-std":
        return None
    if config.dataset != "tiny-imagenet":
        raise ValueError(f"preprocessing={config.preprocessing!r} is not available for file-based data "
                         f"({config.dataset}); valid value here: 'mean-std'")
    return pixel_mean(cached_split("train", classes=config.classes_limit, per_class=config.train_per_class).images)


# -- the two kinds of data -----------------------------------------------------------------------


def training_data(config: TrainConfig, *, num_replicas: int = 1, rank: int = 0,
                  device: torch.device | str = "cpu") -> TrainingData:
    """Train and validation batches for ``config`` (its dataset, subset, batch size and DDP shard).

    ``device``: where the run trains. On CUDA, file-based data is decoded and cropped on the GPU
    (:class:`~zfcore.data.gpu_batches.DeviceBatches`: workers only read file bytes); elsewhere
    :class:`~zfcore.data.loader.FileBatches` decodes with PIL in the workers.

    Raises:
        ValueError: an unknown dataset, a batch that does not split over the processes, or
            ``config.num_classes`` not matching the data.
        DatasetNotFoundError: the data is missing.
    """
    _check_dataset(config)
    if config.batch_size % num_replicas:
        raise ValueError(f"batch_size={config.batch_size} does not split over {num_replicas} processes")
    per_process = config.batch_size // num_replicas
    if config.dataset in FILE_DATASETS:
        return _file_training_data(config, per_process, num_replicas=num_replicas, rank=rank,
                                   device=torch.device(device))
    train = cached_split("train", classes=config.classes_limit, per_class=config.train_per_class)
    val = cached_split("val", classes=config.classes_limit, per_class=config.val_per_class)
    _check_classes(config, train.classes)
    mean_image = mean_image_for(config)
    labels = training_labels(config, train.labels)
    return TrainingData(
        train=TensorBatches(train.images, labels, per_process, train=True, seed=config.seed, pad=CACHED_PAD,
                            channels_last=True, mean_image=mean_image, num_replicas=num_replicas, rank=rank),
        val=TensorBatches(val.images, val.labels, min(500, len(val)), train=False, channels_last=True,
                          mean_image=mean_image),
        classes=train.classes,
        class_names=train.class_names,
        sha256=_checksum([train.images, labels, val.images, val.labels]),
        train_images=len(train),
        mean_image=mean_image,
    )


def training_labels(config: TrainConfig, labels: np.ndarray) -> np.ndarray:
    """The labels ``config`` trains on: ``labels`` themselves, or with ``config.random_labels`` the same labels
    permuted across the images by one fixed permutation (seeded by :data:`RANDOM_LABELS_SEED`, so every
    such run and its evaluation see the same; the class sizes are kept). Cached data only (the config
    refuses ``random_labels`` for file-based datasets).
    """
    if not config.random_labels:
        return labels
    return np.asarray(labels)[np.random.default_rng(RANDOM_LABELS_SEED).permutation(len(labels))]


def eval_batches(config: TrainConfig, batch_size: int, *, ten_crop: bool = False, limit: int = 0,
                 split: str = "val") -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The validation (or training) batches of ``config``'s data, preprocessed as the network was trained.

    Args:
        config: the recipe the network was trained with (dataset, subset, preprocessing).
        batch_size: images per batch.
        ten_crop: yield ``[B, 10, 3, S, S]`` views (the paper's corners + centre and their flips:
            of the 256² centre square at 224 px, of the 4-px reflect-padded image at 64 px) instead of
            the single centre view ``[B, 3, S, S]``.
        limit: the first ``limit`` images only (``0``: all).
        split: ``"val"`` (default) or ``"train"``: the training images, unaugmented, with the labels the
            run trained on (:func:`training_labels`), to measure training accuracy in eval mode.
    """
    _check_dataset(config)
    if limit < 0:
        raise ValueError(f"limit={limit!r}: must be 0 (all images) or a positive count")
    if split not in ("val", "train"):
        raise ValueError(f"split={split!r} is not valid; valid splits: ('val', 'train')")
    if config.dataset in FILE_DATASETS:
        transform = ten_crop_transform(config.input_size) if ten_crop else eval_transform(config.input_size)
        files = _file_split(config, split, transform)
        if limit:
            files = Subset(files, range(min(limit, len(files))))
        return FileBatches(files, batch_size, train=False, workers=config.workers)
    data = cached_split(split, classes=config.classes_limit,
                        per_class=config.val_per_class if split == "val" else config.train_per_class)
    labels = data.labels if split == "val" else training_labels(config, data.labels)
    count = min(limit, len(data)) if limit else len(data)
    batches = TensorBatches(data.images[:count], labels[:count], batch_size, train=False, channels_last=True,
                            mean_image=mean_image_for(config))
    if not ten_crop:
        return batches
    return ((ten_crops(images, CACHED_PAD), labels) for images, labels in batches)


def ten_crops(images: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, 3, S, S]`` -> ``[B, 10, 3, S, S]``: corners + centre of the reflect-padded image, and flipped."""
    size = images.shape[-1]
    padded = F.pad(images, (pad,) * 4, mode="reflect")
    far = 2 * pad
    crops = [padded[..., r : r + size, c : c + size] for r, c in ((0, 0), (0, far), (far, 0), (far, far), (pad, pad))]
    views = torch.stack(crops, dim=1)
    return torch.cat([views, views.flip(-1)], dim=1)


# -- file-based data (224 px) --------------------------------------------------------------------


def _file_split(config: TrainConfig, split: str, transform) -> Dataset:
    """``split`` of ``config``'s file dataset with ``transform``, limited to the profile's subset."""
    dataset = imagenette(split, transform=transform) if config.dataset == "imagenette" else \
        imagenet(None, split, transform=transform)
    return _limit(dataset, config.classes_limit, config.train_per_class if split == "train" else config.val_per_class)


def _file_training_data(config: TrainConfig, per_process_batch: int, *, num_replicas: int, rank: int,
                        device: torch.device) -> TrainingData:
    """Training: :func:`train_transform`, sharded and shuffled (``config.seed``); validation: the centre crop.

    On CUDA the same crops are made on the GPU from the same file lists (:class:`DeviceBatches`).
    """
    mean_image_for(config)  # refuses the paper's pixel mean, which needs a cache
    size = config.input_size
    train = _file_split(config, "train", train_transform(size))
    val = _file_split(config, "val", eval_transform(size))
    full = train.dataset if isinstance(train, Subset) else train
    if config.dataset == "imagenette":
        classes, class_names = list(full.wnids), [names[0] for names in full.classes]
    else:
        classes, class_names = list(full.classes), imagenet_class_names(full.classes)
    if config.classes_limit:
        classes, class_names = classes[: config.classes_limit], class_names[: config.classes_limit]
    _check_classes(config, classes)
    if device.type == "cuda":
        resize = paper_resize(size)
        train_batches: Batches = DeviceBatches(
            _file_list(train), per_process_batch, train=True, size=size, resize=resize, seed=config.seed,
            workers=config.workers, device=device, num_replicas=num_replicas, rank=rank)
        val_batches: Batches = DeviceBatches(_file_list(val), per_process_batch, train=False, size=size,
                                             resize=resize, workers=config.workers, device=device)
    else:
        train_batches = FileBatches(train, per_process_batch, train=True, seed=config.seed, workers=config.workers,
                                    num_replicas=num_replicas, rank=rank)
        val_batches = FileBatches(val, per_process_batch, train=False, workers=config.workers)
    return TrainingData(
        train=train_batches,
        val=val_batches,
        classes=classes,
        class_names=class_names,
        sha256=file_sha256([train, val]),
        train_images=len(train),
    )


def _file_list(dataset: Dataset) -> list[tuple[str, int]]:
    """``(path, label)`` of an ImageFolder or Imagenette (whose list is private), or of a Subset of one."""
    if isinstance(dataset, Subset):
        files = _file_list(dataset.dataset)
        return [files[index] for index in dataset.indices]
    return dataset.samples if hasattr(dataset, "samples") else dataset._samples


def _limit(dataset: Dataset, classes: int, per_class: int) -> Dataset:
    """The first ``per_class`` files of each of the first ``classes`` classes (``0``: all); labels unchanged."""
    if not classes and not per_class:
        return dataset
    taken: dict[int, int] = {}
    indices = []
    for index, (_, label) in enumerate(_file_list(dataset)):
        if (not classes or label < classes) and (not per_class or taken.get(label, 0) < per_class):
            taken[label] = taken.get(label, 0) + 1
            indices.append(index)
    return Subset(dataset, indices)


def file_sha256(datasets: Sequence[Dataset]) -> str:
    """A checksum of file-based data: SHA-256 over the sorted ``<split>/<class>/<file>\\t<size in bytes>`` lines.

    Reading every byte of ImageNet would take minutes, so the file names, their class folders and sizes
    stand in for the contents (one ``stat`` per file).
    """
    lines = []
    for dataset in datasets:
        for path, _ in tqdm(_file_list(dataset), desc="checksum file list", unit="file", mininterval=2):
            lines.append(f"{'/'.join(Path(path).parts[-3:])}\t{os.stat(path).st_size}\n")
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode())
    return digest.hexdigest()


# -- checks --------------------------------------------------------------------------------------


def _check_dataset(config: TrainConfig) -> None:
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not valid; valid datasets: {DATASETS}")


def _check_classes(config: TrainConfig, classes: Sequence[str]) -> None:
    if len(classes) != config.num_classes:
        raise ValueError(f"num_classes={config.num_classes} but the data has {len(classes)} classes")


def _checksum(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        for start in range(0, len(array), 8192):
            digest.update(np.ascontiguousarray(array[start : start + 8192]).tobytes())
    return digest.hexdigest()
