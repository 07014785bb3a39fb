"""ImageNet, Imagenette and the 1000 ImageNet sample images, at the paper's 224 px.

* :func:`imagenet`: ILSVRC-2012 from a folder you provide (``<root>/train/<wnid>/*.JPEG``,
  ``<root>/val/<wnid>/*.JPEG``; default root ``<data root>/imagenet``). ImageNet has no public
  download: get it from https://image-net.org after accepting its terms of access and sort the
  validation images into class folders.
* :func:`imagenette`: the 10-class ImageNet subset through :class:`torchvision.datasets.Imagenette`,
  found with :func:`~zfcore.data.locate.find_or_fetch` (data root -> mirror -> fast.ai download).
* :func:`imagenet_samples`: one image of each ImageNet class, the probe set for the paper's
  occlusion and correspondence experiments (Fig. 7: Pomeranian, car wheel, Afghan hound).
* The paper's preprocessing (§3): :func:`train_transform`, :func:`eval_transform`,
  :func:`ten_crop_transform`.
* :func:`file_training_data`: DataLoader-based :class:`~zfcore.data.sources.TrainingData` for the
  224-px profiles. Unreadable image files never stop an epoch: they are skipped, counted and listed
  in one :class:`~zfcore.data.images.CorruptImageWarning` at the end of the epoch.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from torch.utils.data.distributed import DistributedSampler
from torchvision.transforms import v2
from tqdm.auto import tqdm

from zfcore.data.images import CorruptImageWarning, load_rgb
from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD
from zfcore.data.locate import Archive, DatasetNotFoundError, data_root, find_or_fetch
from zfcore.data.sources import TrainingData
from zfcore.profiles import TrainConfig

__all__ = [
    "IMAGENETTE",
    "IMAGENET_SAMPLES",
    "FileBatches",
    "ImageNetSamples",
    "Sample",
    "SkipUnreadable",
    "UnreadableImageError",
    "collate_skipping",
    "eval_transform",
    "file_sha256",
    "file_training_data",
    "find_sample",
    "imagenet",
    "imagenet_class_names",
    "imagenet_samples",
    "imagenette",
    "load_rgb_checked",
    "ten_crop_transform",
    "train_transform",
]

SPLITS = ("train", "val")
FILE_DATASETS = ("imagenette", "imagenet")
IMAGENETTE = {  # size -> archive; fast.ai publishes MD5s only (torchvision's), so no checksum here
    size: Archive(
        name=f"Imagenette ({size})",
        extracted=stem,
        filename=f"{stem}.tgz",
        url=f"https://s3.amazonaws.com/fast-ai-imageclas/{stem}.tgz",
        sha256=None,
        marker="val/n03888257",  # the last class folder (parachute)
    )
    for size, stem in (("full", "imagenette2"), ("320px", "imagenette2-320"), ("160px", "imagenette2-160"))
}
IMAGENET_SAMPLES = Archive(
    name="ImageNet samples",
    extracted="imagenet-samples",
    filename="imagenet-samples.zip",
    url=None,  # a public one-per-class sample; no official archive
    sha256=None,
    marker="n02112018_Pomeranian.JPEG",
)


# -- reading files -------------------------------------------------------------------------------


class UnreadableImageError(OSError):
    """An image file could not be decoded; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: BaseException) -> None:
        super().__init__(f"{path}: {type(reason).__name__}: {reason}")
        self.path = str(path)


def load_rgb_checked(path: str | os.PathLike) -> Image.Image:
    """:func:`~zfcore.data.images.load_rgb`, raising :class:`UnreadableImageError` (with the path) on a bad file.

    The loader for every file-based dataset here: :class:`SkipUnreadable` skips exactly these errors,
    so a bug in a transform still fails loudly instead of being skipped.
    """
    try:
        return load_rgb(path)
    except (OSError, ValueError, SyntaxError) as error:  # what PIL raises for truncated or garbled files
        raise UnreadableImageError(path, error) from error


class _Unreadable(NamedTuple):
    """Stands in for a sample whose file could not be read."""

    path: str


class SkipUnreadable(Dataset):
    """Wraps a dataset whose loader is :func:`load_rgb_checked`: an unreadable file gives a stand-in, not an error.

    Args:
        dataset: a map-style dataset.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except UnreadableImageError as error:
            return _Unreadable(error.path)


def collate_skipping(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Collate the readable samples of ``batch``; also return the paths of the unreadable ones.

    Returns:
        ``(images, labels, skipped paths)``; ``images`` ``[B, 3, H, W]`` come in channels-last memory
        (converted in the worker, so that pinning keeps it); ``images`` and ``labels`` are empty if
        nothing was readable.
    """
    skipped = [item.path for item in batch if isinstance(item, _Unreadable)]
    readable = [item for item in batch if not isinstance(item, _Unreadable)]
    if not readable:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    images, labels = default_collate(readable)
    if images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels, skipped


class FileBatches:
    """``(images, labels)`` batches read from image files by a DataLoader, unreadable files skipped.

    Args:
        dataset: a map-style dataset whose loader is :func:`load_rgb_checked`, returning ``(tensor, label)``.
        batch_size: images per batch (per process under DDP); a batch loses the images it skipped.
        train: shuffle through a :class:`DistributedSampler` (``seed``, re-shuffled by :meth:`set_epoch`)
            and drop the last incomplete batch; else the fixed order, every image (no sharding).
        seed: seeds the shuffle and, with ``workers > 0``, the workers' augmentation: epoch ``e`` on
            rank ``r`` draws from ``(seed, e, r)``. With ``workers=0`` augmentation uses the global RNG.
        workers: DataLoader worker processes.
        num_replicas, rank: DDP sharding (default: one process).

    Iterating yields ``images`` ``[B, 3, S, S]`` float in channels-last memory and ``labels`` ``[B]``;
    at the end of a pass, the files skipped in it are in ``skipped`` and one
    :class:`CorruptImageWarning` lists them. Workers are started anew each pass (not persistent), so
    that every epoch's augmentation follows from its seed.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        workers: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be a positive integer")
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.sampler = (
            DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
            if train
            else None
        )
        self.generator = torch.Generator()
        self.loader = DataLoader(
            SkipUnreadable(dataset), batch_size=batch_size, sampler=self.sampler, num_workers=workers,
            collate_fn=collate_skipping, pin_memory=torch.cuda.is_available(), drop_last=train,
            generator=self.generator,
        )
        self.skipped: list[str] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation seeds the next pass uses."""
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(int(np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(1)[0]))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.skipped = []
        for images, labels, skipped in self.loader:
            self.skipped.extend(skipped)
            if len(labels):
                if images.dim() == 4:  # no copy if pinning kept channels-last; 10-crop batches are 5-d
                    images = images.contiguous(memory_format=torch.channels_last)
                yield images, labels
        if self.skipped:
            warnings.warn(
                f"{len(self.skipped)} unreadable image file(s) skipped in epoch {self.epoch}: "
                + "; ".join(self.skipped),
                CorruptImageWarning,
                stacklevel=2,
            )


# -- datasets ------------------------------------------------------------------------------------


def imagenet(
    root: str | Path | None = None, split: str = "train", *, transform: Callable[[Any], Any] | None = None
) -> torchvision.datasets.ImageFolder:
    """ILSVRC-2012 ``split`` as an :class:`~torchvision.datasets.ImageFolder` (labels: sorted wnids).

    Args:
        root: the folder holding ``train/`` and ``val/``, each with one folder per wnid
            (default: ``<data root>/imagenet``).
        split: ``"train"`` (default) or ``"val"``.
        transform: applied to the RGB PIL image (e.g. :func:`train_transform`).

    Raises:
        ValueError: an unknown ``split``.
        DatasetNotFoundError: the folder is missing or holds no class folders.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
    root = data_root() / "imagenet" if root is None else Path(root)
    try:
        return torchvision.datasets.ImageFolder(root / split, transform=transform, loader=load_rgb_checked)
    except FileNotFoundError as error:
        raise DatasetNotFoundError(
            f"ImageNet {split} was not found. Looked in:\n  - {root / split} ({error})\n"
            f"ImageNet has no public download: get ILSVRC-2012 from https://image-net.org (after accepting its "
            f"terms of access), arrange it as {root}/{{train,val}}/<wnid>/*.JPEG (validation images sorted "
            f"into class folders), or pass its path as root (or set ZFBOOK_DATA_ROOT to the folder holding "
            f"imagenet/)."
        ) from error


def imagenette(
    split: str = "train",
    *,
    size: str = "full",
    root: str | Path | None = None,
    transform: Callable[[Any], Any] | None = None,
    download: bool = True,
) -> torchvision.datasets.Imagenette:
    """Imagenette ``split`` (10 ImageNet classes, ~9.5k train / ~3.9k val images).

    Args:
        split: ``"train"`` (default) or ``"val"``.
        size: ``"full"`` (default), ``"320px"`` or ``"160px"`` (shorter side).
        root: the folder holding ``imagenette2/`` (default: the data root). Missing there, it is
            extracted from ``$ZFBOOK_MIRROR/imagenette2.tgz`` or downloaded from fast.ai.
        transform: applied to the RGB PIL image.
        download: allow the download (default ``True``).

    Raises:
        ValueError: an unknown ``split`` or ``size``.
        DatasetNotFoundError: nowhere to be found (the message names every place looked in).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
    if size not in IMAGENETTE:
        raise ValueError(f"size={size!r} is not valid; valid sizes: {tuple(IMAGENETTE)}")
    root = data_root() if root is None else Path(root)
    find_or_fetch(IMAGENETTE[size], root=root, download=download)
    return torchvision.datasets.Imagenette(
        root, split=split, size=size, download=False, transform=transform, loader=load_rgb_checked
    )


class Sample(NamedTuple):
    """One probe image: ``image`` (RGB PIL), its class's ``wnid`` and readable ``class_name``."""

    image: Image.Image
    wnid: str
    class_name: str


class ImageNetSamples(Sequence[Sample]):
    """One image of each ImageNet class, read on access.

    Args:
        folder: the extracted ``imagenet-samples`` folder of ``<wnid>_<class_name>.JPEG`` files.

    Attributes:
        paths, wnids, class_names: per image, sorted by wnid (the ImageNet-1k label order).
    """

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(Path(folder).glob("n*_*.JPEG"))
        self.wnids = [path.stem.split("_", 1)[0] for path in self.paths]
        self.class_names = [path.stem.split("_", 1)[1].replace("_", " ") for path in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return Sample(load_rgb(self.paths[index]), self.wnids[index], self.class_names[index])


def imagenet_samples(*, root: str | Path | None = None, download: bool = True) -> ImageNetSamples:
    """The 1000 ImageNet sample images (``imagenet-samples.zip``), extracted from the mirror if needed.

    Args:
        root: the folder holding ``imagenet-samples/`` (default: the data root).
        download: passed to ``find_or_fetch`` (the samples have no public URL: data root or mirror only).
    """
    folder = find_or_fetch(IMAGENET_SAMPLES, root=None if root is None else Path(root), download=download)
    return ImageNetSamples(folder)


def find_sample(samples: ImageNetSamples, name: str) -> Sample:
    """The sample whose class name is ``name`` (case-insensitive), else the only one containing it.

    Args:
        samples: from :func:`imagenet_samples`.
        name: e.g. ``"Pomeranian"``, ``"car wheel"``, ``"Afghan hound"`` (underscores count as spaces).

    Raises:
        ValueError: no class matches, or several contain ``name`` and none equals it (all are named).
    """
    query = name.replace("_", " ").lower()
    lowered = [class_name.lower() for class_name in samples.class_names]
    if query in lowered:
        return samples[lowered.index(query)]
    matches = [index for index, class_name in enumerate(lowered) if query in class_name]
    if len(matches) != 1:
        found = [samples.class_names[index] for index in matches]
        raise ValueError(f"name={name!r} matches {len(matches)} ImageNet classes {found}; expected exactly one")
    return samples[matches[0]]


def imagenet_class_names(wnids: Sequence[str]) -> list[str]:
    """Readable names for ``wnids``, from the sample archive's file names if it is at hand, else the wnids."""
    try:
        folder = find_or_fetch(IMAGENET_SAMPLES, download=False)
    except DatasetNotFoundError:
        return list(wnids)
    samples = ImageNetSamples(folder)
    names = dict(zip(samples.wnids, samples.class_names))
    return [names.get(wnid, wnid) for wnid in wnids]


# -- the paper's preprocessing -------------------------------------------------------------------


def _resize_for(size: int, resize: int | None) -> int:
    return round(size * 256 / 224) if resize is None else resize


def _to_normalized_tensor() -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(size: int = 224, resize: int | None = None) -> v2.Compose:
    """The paper's training crops: shorter side to ``resize``, centre ``resize``², random ``size``² crop, flip.

    Args:
        size: the crop (default 224).
        resize: the shorter side and centre square (default ``size * 256 / 224``: 256 at 224).

    Returns:
        PIL image -> normalised float ``[3, size, size]``.
    """
    resize = _resize_for(size, resize)
    return v2.Compose(
        [v2.Resize(resize), v2.CenterCrop(resize), v2.RandomCrop(size), v2.RandomHorizontalFlip(),
         *_to_normalized_tensor()]
    )


def eval_transform(size: int = 224, resize: int | None = None) -> v2.Compose:
    """The centre crop: shorter side to ``resize``, centre ``resize``², centre ``size``².

    Args:
        size, resize: as for :func:`train_transform` (defaults 224 and 256).
    """
    resize = _resize_for(size, resize)
    return v2.Compose([v2.Resize(resize), v2.CenterCrop(resize), v2.CenterCrop(size), *_to_normalized_tensor()])


def _stack_crops(crops: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.stack(crops)


def ten_crop_transform(size: int = 224, resize: int | None = None) -> v2.Compose:
    """The paper's test-time 10 crops: 4 corners + centre of the ``resize``² centre square, and their flips.

    Args:
        size, resize: as for :func:`train_transform` (defaults 224 and 256).

    Returns:
        PIL image -> normalised float ``[10, 3, size, size]`` (average the 10 softmax outputs).
    """
    resize = _resize_for(size, resize)
    return v2.Compose(
        [v2.Resize(resize), v2.CenterCrop(resize), *_to_normalized_tensor(), v2.TenCrop(size), _stack_crops]
    )


# -- training data for the 224-px profiles -------------------------------------------------------


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


def file_training_data(
    config: TrainConfig, per_process_batch: int, *, num_replicas: int = 1, rank: int = 0
) -> TrainingData:
    """Train and validation batches read from image files, for ``config.dataset`` ``"imagenette"`` or ``"imagenet"``.

    Training: :func:`train_transform` at ``config.input_size``, shuffled and sharded by a
    :class:`DistributedSampler` (``config.seed``); validation: :func:`eval_transform`, every image in
    order on every process. ``config.classes_limit``, ``train_per_class`` and ``val_per_class`` take
    subsets as for Tiny ImageNet (first classes, first files).

    Args:
        config: the recipe (dataset, input_size, num_classes, seed, workers and subset fields are used).
        per_process_batch: training batch size of this process (the global batch / ``num_replicas``).
        num_replicas, rank: DDP sharding (default: one process).

    Raises:
        ValueError: another dataset, or ``config.num_classes`` not matching the data.
        DatasetNotFoundError: the data is missing.
    """
    if config.dataset not in FILE_DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not valid here; valid datasets: {FILE_DATASETS}")
    size = config.input_size
    if config.dataset == "imagenette":
        train_set = imagenette("train", transform=train_transform(size))
        val_set = imagenette("val", transform=eval_transform(size))
        classes, class_names = train_set.wnids, [names[0] for names in train_set.classes]
    else:
        train_set = imagenet(None, "train", transform=train_transform(size))
        val_set = imagenet(None, "val", transform=eval_transform(size))
        classes = train_set.classes
        class_names = imagenet_class_names(classes)
    if config.classes_limit:
        classes, class_names = classes[: config.classes_limit], class_names[: config.classes_limit]
    if len(classes) != config.num_classes:
        raise ValueError(f"num_classes={config.num_classes} but the data has {len(classes)} classes")
    train = _limit(train_set, config.classes_limit, config.train_per_class)
    val = _limit(val_set, config.classes_limit, config.val_per_class)
    return TrainingData(
        train=FileBatches(train, per_process_batch, train=True, seed=config.seed, workers=config.workers,
                          num_replicas=num_replicas, rank=rank),
        val=FileBatches(val, per_process_batch, train=False, workers=config.workers),
        classes=list(classes),
        class_names=class_names,
        sha256=file_sha256([train, val]),
        train_images=len(train),
    )


def file_eval_batches(config: TrainConfig, batch_size: int, *, ten_crop: bool = False, limit: int = 0) -> FileBatches:
    """Validation batches of ``config.dataset`` for evaluation: the centre crop, or the 10 crops ``[B, 10, 3, S, S]``.

    ``limit`` keeps the first ``limit`` images (``0``: all), after the profile's class subset.
    """
    if config.dataset not in FILE_DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not valid here; valid datasets: {FILE_DATASETS}")
    transform = ten_crop_transform(config.input_size) if ten_crop else eval_transform(config.input_size)
    val_set = imagenette("val", transform=transform) if config.dataset == "imagenette" else \
        imagenet(None, "val", transform=transform)
    val = _limit(val_set, config.classes_limit, config.val_per_class)
    if limit:
        val = torch.utils.data.Subset(val, range(min(limit, len(val))))
    return FileBatches(val, batch_size, train=False, workers=config.workers)
