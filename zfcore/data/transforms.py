"""The paper's preprocessing at 224 px (§3), as torchvision ``v2`` transforms of PIL images.

* :func:`train_transform`: shorter side to 256, the centre 256² square, a random 224² crop and a
  horizontal flip. **Deviation:** the paper trains on 10 *fixed* sub-crops of that square (four
  corners and the centre, with and without flips); random crops are the common, denser variant.
* :func:`eval_transform`: the centre 224² crop of the 256² centre square.
* :func:`ten_crop_transform`: the paper's test-time 10 crops (corners + centre, and their flips).

Pixels are normalised with ImageNet mean/std (``"mean-std"``; see :func:`zfcore.data.loader.normalize`).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["eval_transform", "paper_resize", "ten_crop_transform", "train_transform"]


def paper_resize(size: int) -> int:
    """The shorter side and centre square the paper crops ``size``² from: 256 for 224 (scaled alike)."""
    return round(size * 256 / 224)


def _resize_for(size: int, resize: int | None) -> int:
    return paper_resize(size) if resize is None else resize


def _to_normalized_tensor() -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(size: int = 224, resize: int | None = None) -> v2.Compose:
    """Training crops: shorter side to ``resize``, centre ``resize``², a random ``size``² crop, a random flip.

    The paper takes 10 fixed crops of that square (corners + centre, with flips); this draws one at
    random each time, the common denser variant (a deviation stated in the book's recipe table).

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
