"""Batches for training and analysis: from a uint8 cache (:class:`TensorBatches`), from image files
(:class:`FileBatches`), and the one uint8 -> float conversion (:func:`normalize`, :func:`pixel_batches`).

:class:`TensorBatches` yields ``(images, labels)`` with images normalised float ``[B, 3, S, S]``
(channels-last if asked). Training batches use random crops of the reflect-padded image and
horizontal flips; every random choice of an epoch comes from a generator seeded by
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted run would, and
:class:`torch.utils.data.distributed.DistributedSampler` shards the epoch between processes.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torch.utils.data.distributed import DistributedSampler

from zfcore.data.images import CorruptImageWarning, UnreadableImageError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "FileBatches", "SkipUnreadable", "TensorBatches", "collate_skipping",
           "normalize", "pixel_batches"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(pixels: torch.Tensor, mean_image: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` (channels-last memory).

    Without ``mean_image``: ImageNet mean/std on the 0-1 scale (``"mean-std"``, torchvision's
    convention). With ``mean_image`` ``[H, W, 3]``: the pixels on the 0-255 scale minus that per-pixel
    mean of the training set (``"pixel-mean"``, the paper's preprocessing, after Krizhevsky et al.).
    """
    if pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels have shape {tuple(pixels.shape)}; expected [B, H, W, 3] uint8")
    if mean_image is not None:
        return (pixels.float() - mean_image).permute(0, 3, 1, 2)
    std = torch.tensor(IMAGENET_STD, device=pixels.device)
    scale = 1.0 / (255.0 * std)
    shift = torch.tensor(IMAGENET_MEAN, device=pixels.device) / std
    return (pixels.float() * scale - shift).permute(0, 3, 1, 2)


def pixel_batches(pixels: np.ndarray | torch.Tensor, batch_size: int = 500, *,
                  mean_image: torch.Tensor | None = None,
                  device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Normalised float batches ``[B, 3, H, W]`` (contiguous) of uint8 images ``[N, H, W, 3]``, in order.

    The one place where stored pixels become network inputs for the analyses: a read-only memory map
    is copied batch by batch (never wrapped in place), then :func:`normalize` is applied.

    Args:
        pixels: uint8 ``[N, H, W, 3]`` (array, memory map or tensor).
        batch_size: images per batch.
        mean_image: as for :func:`normalize` (``None``: ImageNet mean/std).
        device: where the batches go (default: stay on the CPU).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be a positive integer")
    for start in range(0, len(pixels), batch_size):
        part = pixels[start : start + batch_size]
        part = part.clone() if isinstance(part, torch.Tensor) else torch.from_numpy(np.array(part, dtype=np.uint8))
        yield normalize(part.to(device) if device is not None else part,
                        None if mean_image is None else mean_image.to(part.device if device is None else device)).contiguous()


class TensorBatches:
    """Iterate over a cached split in batches.

    Args:
        pixels: ``[N, H, W, 3]`` uint8 array (a memmap is fine).
        labels: ``[N]`` integer labels.
        batch_size: images per batch (per process under DDP).
        train: shuffle, random-crop (reflect padding ``pad``) and flip; else the fixed order, no change.
        seed: base seed; epoch ``e`` uses ``seed + e`` for its order and augmentation.
        pad: reflect padding before the random crop (4 px at 64 px).
        drop_last: drop the last incomplete batch (default: ``train``).
        channels_last: return images in ``torch.channels_last`` memory format.
        mean_image: ``[H, W, 3]`` per-pixel mean (0-255) for the paper's preprocessing (see :func:`normalize`).
        num_replicas, rank: DDP sharding (default: one process).
    """

    def __init__(
        self,
        pixels: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        pad: int = 4,
        drop_last: bool | None = None,
        channels_last: bool = False,
        mean_image: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be a positive integer")
        self.pixels, self.labels = pixels, torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.batch_size, self.train, self.seed, self.pad = batch_size, train, seed, pad
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.mean_image = mean_image
        self.sampler = DistributedSampler(
            range(len(self.labels)), num_replicas=num_replicas, rank=rank, shuffle=train, seed=seed,
            drop_last=self.drop_last,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration uses."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = torch.tensor(list(self.sampler), dtype=torch.long)
        if self.train:
            # one draw per image of the whole split, indexed by image: identical on every DDP rank
            generator = torch.Generator().manual_seed(self.seed + 7919 * (self.epoch + 1))
            count = len(self.labels)
            offsets = torch.randint(0, 2 * self.pad + 1, (count, 2), generator=generator).numpy()
            flips = (torch.rand(count, generator=generator) < 0.5).numpy()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = indices[start : start + self.batch_size].numpy()
            order = np.argsort(batch, kind="stable")  # sorted reads are faster on a memmap
            pixels = np.empty((len(batch), *self.pixels.shape[1:]), dtype=np.uint8)
            pixels[order] = self.pixels[batch[order]]
            if self.train:
                pixels = self._augment(pixels, offsets[batch], flips[batch])
            images = normalize(torch.from_numpy(pixels), self.mean_image)
            if not self.channels_last:
                images = images.contiguous()
            yield images, self.labels[batch]

    def _augment(self, pixels: np.ndarray, offsets: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """Random crops of the reflect-padded images and horizontal flips, on ``[B, H, W, 3]`` uint8."""
        size, pad = pixels.shape[1], self.pad
        padded = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        for index, ((row, col), flip) in enumerate(zip(offsets, flips)):
            crop = padded[index, row : row + size, col : col + size]
            pixels[index] = crop[:, ::-1] if flip else crop
        return pixels


class _Unreadable(NamedTuple):
    """Stands in for a sample whose file could not be read."""

    path: str


class SkipUnreadable(Dataset):
    """Wraps a dataset whose loader is :func:`~zfcore.data.images.load_rgb_checked`: an unreadable file gives a stand-in, not an error.

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
        dataset: a map-style dataset whose loader is :func:`~zfcore.data.images.load_rgb_checked`, returning ``(tensor, label)``.
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
