"""Accuracy of a trained network on its profile's validation set: single centre view and 10-crop.

10-crop follows Krizhevsky et al. and the paper (§3): the four corner crops and the centre crop of
the image and of its mirror image, averaging the ten softmax outputs. At 224 px the crops are 224 of
the 256-px image; at 64 px (ZF-64, trained on random 64-px crops of the 4-px reflect-padded image)
they are 64 of the 72-px padded image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.checkpoints import load_reference
from zfcore.data.loader import TensorBatches
from zfcore.data.sources import subset
from zfcore.data.tiny_imagenet import cached_split
from zfcore.train import evaluate

__all__ = ["evaluate_checkpoint", "ten_crop_logits", "ten_crops"]


def ten_crops(images: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, 3, S, S]`` -> ``[B, 10, 3, S, S]``: corners + centre of the reflect-padded image, and flipped."""
    size = images.shape[-1]
    padded = F.pad(images, (pad,) * 4, mode="reflect")
    far = 2 * pad
    crops = [padded[..., r : r + size, c : c + size] for r, c in ((0, 0), (0, far), (far, 0), (far, far), (pad, pad))]
    views = torch.stack(crops, dim=1)
    return torch.cat([views, views.flip(-1)], dim=1)


def ten_crop_logits(model: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """Log of the mean softmax over the crops of ``views`` ``[B, V, 3, S, S]`` (usable as logits)."""
    batch, count = views.shape[:2]
    logits = model(views.flatten(0, 1).contiguous(memory_format=torch.channels_last)).float()
    return logits.log_softmax(-1).view(batch, count, -1).logsumexp(1) - torch.log(torch.tensor(float(count)))


def evaluate_checkpoint(checkpoint: str | Path | None = None, *, limit: int = 0, ten_crop: bool = False,
                        batch_size: int = 250) -> dict[str, Any]:
    """Top-1/top-5 (and loss) of a checkpoint on the validation set of the data it was trained on.

    Args:
        checkpoint: a training ``checkpoint.pt`` or a reference weights file (default: the reference).
        limit: evaluate the first ``limit`` validation images only (``0``: all).
        ten_crop: also compute the 10-crop accuracy.
        batch_size: images per forward pass (x10 with ``ten_crop``).

    Returns:
        ``{"single": {...}, "ten_crop": {...}?, "images": N}`` with ``loss``, ``top1``, ``top5`` each.
    """
    reference = load_reference(checkpoint)
    config = reference.config
    model = reference.model
    if config.dataset != "tiny-imagenet":
        from zfcore.data.imagenet import file_eval_batches

        single = evaluate(model, file_eval_batches(config, batch_size, ten_crop=False, limit=limit))
        result: dict[str, Any] = {"single": single, "images": single["images"]}
        if ten_crop:
            result["ten_crop"] = evaluate(model, file_eval_batches(config, batch_size, ten_crop=True, limit=limit),
                                          transform=ten_crop_logits)
        return result
    val = subset(cached_split("val"), config.classes_limit, config.val_per_class)
    count = min(limit, len(val)) if limit else len(val)
    batches = TensorBatches(val.images[:count], val.labels[:count], batch_size, train=False, channels_last=True)
    single = evaluate(model, batches)
    result = {"single": single, "images": count}
    if ten_crop:
        result["ten_crop"] = evaluate(model, batches, transform=lambda net, x: ten_crop_logits(net, ten_crops(x, 4)))
    return result
