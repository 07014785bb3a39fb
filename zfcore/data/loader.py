"""Batches straight from a uint8 cache: augmentation on tensors, so the CPU is spent on the model.

:class:`TensorBatches` yields ``(images, labels)`` with images normalised float ``[B, 3, S, S]``
(channels-last if asked). Training batches use random crops of the reflect-padded image and
horizontal flips; every random choice of an epoch comes from a generator seeded by
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted run would, and
:class:`torch.utils.data.distributed.DistributedSampler` shards the epoch between processes.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TensorBatches", "normalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` (channels-last memory) with ImageNet mean/std."""
    if pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels have shape {tuple(pixels.shape)}; expected [B, H, W, 3] uint8")
    scale = 1.0 / (255.0 * torch.tensor(IMAGENET_STD))
    shift = torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    return (pixels.float() * scale - shift).permute(0, 3, 1, 2)


class TensorBatches:
    """Iterate over a cached split in batches.

    Args:
        images: ``[N, H, W, 3]`` uint8 array (a memmap is fine).
        labels: ``[N]`` integer labels.
        batch_size: images per batch (per process under DDP).
        train: shuffle, random-crop (reflect padding ``pad``) and flip; else the fixed order, no change.
        seed: base seed; epoch ``e`` uses ``seed + e`` for its order and augmentation.
        pad: reflect padding before the random crop (4 px at 64 px).
        drop_last: drop the last incomplete batch (default: ``train``).
        channels_last: return images in ``torch.channels_last`` memory format.
        num_replicas, rank: DDP sharding (default: one process).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        pad: int = 4,
        drop_last: bool | None = None,
        channels_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be a positive integer")
        self.images, self.labels = images, torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.batch_size, self.train, self.seed, self.pad = batch_size, train, seed, pad
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
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
            pixels = np.empty((len(batch), *self.images.shape[1:]), dtype=np.uint8)
            pixels[order] = self.images[batch[order]]
            if self.train:
                pixels = self._augment(pixels, offsets[batch], flips[batch])
            images = normalize(torch.from_numpy(pixels))
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
