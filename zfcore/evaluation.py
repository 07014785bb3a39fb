"""Accuracy of a network on validation batches: single centre view and 10-crop, in one home.

:func:`evaluate` computes loss, top-1 and top-5 over any ``(images, labels)`` batches (the trainer
calls it after every epoch); :func:`evaluate_checkpoint` evaluates a saved network on the validation
set of the data it was trained on (:func:`zfcore.data.sources.eval_batches` chooses cache or files).
10-crop follows Krizhevsky et al. and the paper (§3): the four corner crops and the centre crop of
the image and of its mirror image, averaging the ten softmax outputs (:func:`ten_crop_logits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.checkpoints import check_finite
from zfcore.weights import load_reference
from zfcore.data.sources import eval_batches
from zfcore.devices import autocast, autocast_dtype

__all__ = ["evaluate", "evaluate_checkpoint", "ten_crop_logits"]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
             device: torch.device | str = "cpu", precision: str = "auto",
             transform: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
             per_image: bool = False) -> dict[str, Any]:
    """Cross-entropy loss, top-1 and top-5 accuracy of ``model`` over ``batches`` (eval mode, restored after).

    Args:
        model: the network, on ``device``.
        batches: ``(images, labels)`` pairs.
        device: where to compute.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see :func:`zfcore.devices.autocast_dtype`).
        transform: ``transform(model, images)`` replaces the plain forward pass and returns logits
            (10-crop evaluation passes :func:`ten_crop_logits`).
        per_image: also return ``"correct"``: whether each image's top-1 class is right (a bool tensor in batch
            order), so that two networks can be compared image by image (a paired difference).

    Returns:
        ``{"loss", "top1", "top5", "images"}`` (and ``"correct"`` with ``per_image``).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    fast_dtype = autocast_dtype(device, precision)
    loss_sum = correct1 = correct5 = count = 0.0
    correct: list[torch.Tensor] = []
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        with autocast(device, fast_dtype):
            logits = (transform(model, images) if transform else model(images)).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        right = top5[:, 0] == labels
        correct1 += right.sum().item()
        if per_image:
            correct.append(right.cpu())
        correct5 += (top5 == labels[:, None]).any(1).sum().item()
        count += len(labels)
    model.train(was_training)
    if not count:
        raise ValueError("batches held no images: nothing to evaluate")
    result: dict[str, Any] = {"loss": loss_sum / count, "top1": correct1 / count, "top5": correct5 / count,
                              "images": count}
    if per_image:
        result["correct"] = torch.cat(correct)
    return result


def ten_crop_logits(model: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """Log of the mean softmax over the crops of ``views`` ``[B, V, 3, S, S]`` (usable as logits)."""
    batch, count = views.shape[:2]
    logits = model(views.flatten(0, 1).contiguous(memory_format=torch.channels_last)).float()
    return logits.log_softmax(-1).view(batch, count, -1).logsumexp(1) - torch.log(torch.tensor(float(count)))


def evaluate_checkpoint(checkpoint: str | Path | None = None, *, limit: int = 0, ten_crop: bool = False,
                        train_accuracy: bool = False, batch_size: int = 250,
                        device: torch.device | str = "cpu", per_image: bool = False) -> dict[str, Any]:
    """Top-1/top-5 (and loss) of a checkpoint on the validation set of the data it was trained on.

    Args:
        checkpoint: a training ``checkpoint.pt`` or a reference weights file (default: the reference).
        limit: evaluate the first ``limit`` images of each split only (``0``: all).
        ten_crop: also compute the 10-crop accuracy.
        train_accuracy: also measure the training images (centre view, no augmentation) in eval mode, with
            the labels the run trained on: how well it fits its data, without dropout's noise.
        batch_size: images per forward pass (x10 with ``ten_crop``).
        device: where to compute (default the CPU).
        per_image: the validation results (single and 10-crop) also hold ``"correct"``, per image (see
            :func:`evaluate`).

    Returns:
        ``{"single": {...}, "ten_crop": {...}?, "train": {...}?, "images": N}`` with ``loss``, ``top1``,
        ``top5`` each (``images``: the validation images).

    Raises:
        CheckpointError: as :func:`~zfcore.weights.load_reference`, and weights holding a NaN or an infinity
            (one line naming the file and the first such tensor), before any image is read.
    """
    if limit < 0:
        raise ValueError(f"limit={limit!r}: must be 0 (all images) or a positive count")
    reference = load_reference(checkpoint)
    check_finite(reference.model.state_dict(), checkpoint if checkpoint is not None else "(the reference)")
    config, model = reference.config, reference.model.to(device)
    single = evaluate(model, eval_batches(config, batch_size, limit=limit), device=device, per_image=per_image)
    result: dict[str, Any] = {"single": single, "images": int(single["images"])}
    if ten_crop:
        result["ten_crop"] = evaluate(model, eval_batches(config, batch_size, ten_crop=True, limit=limit),
                                      transform=ten_crop_logits, device=device, per_image=per_image)
    if train_accuracy:
        result["train"] = evaluate(model, eval_batches(config, batch_size, limit=limit, split="train"), device=device)
    return result
