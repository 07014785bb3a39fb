"""One training step for every trainer: the paper's SGD, its schedule, and the step itself (Zeiler & Fergus 2014, §3).

The paper trains with "stochastic gradient descent with a mini-batch size of 128 ... learning rate of
10^-2, in conjunction with a momentum term of 0.9", and renormalises "each filter in the convolutional
layers whose RMS value exceeds a fixed radius of 10^-1 ... to this fixed radius". This module holds that
step once:

* :func:`sgd_optimizer`: SGD with momentum, weight decay on weights only, and (for fine-tuning) a smaller
  learning rate for the pretrained parameters;
* :func:`warmup_cosine`: linear warm-up, then cosine decay to 0 (the book's schedule);
* :class:`TrainingStep`: autocast forward -> fp32 loss -> backward -> optimiser step -> filter
  renormalisation -> schedule step.

:func:`zfcore.train.train`, the fine-tuned and from-scratch networks of :mod:`zfcore.analysis.transfer`, and
the benchmarks in ``bench/`` all take this step, so a benchmark times the step the trainer takes.
"""

from __future__ import annotations

import math
from typing import Any, Collection

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.devices import autocast, autocast_dtype, model_device
from zfcore.models import renormalize_filters

__all__ = ["TrainingStep", "sgd_optimizer", "warmup_cosine"]


def sgd_optimizer(model: nn.Module, *, lr: float, momentum: float, weight_decay: float,
                  new: Collection[nn.Parameter] | None = None, pretrained_lr_scale: float = 1.0) -> torch.optim.SGD:
    """SGD with momentum; weight decay on the weights (parameters named ``*weight``), not on the biases.

    Args:
        model: the network.
        lr: the learning rate (of the new parameters, when ``new`` is given).
        momentum, weight_decay: SGD's.
        new: the parameters trained from scratch (fine-tuning: the new classifier); the others are
            pretrained and get ``lr * pretrained_lr_scale``. Default ``None``: every parameter is new.
        pretrained_lr_scale: the pretrained parameters' share of ``lr``.

    Returns:
        The optimiser. Its groups, in order and only where not empty: new weights, new biases, pretrained
        weights, pretrained biases (a checkpoint's optimiser state follows this order).
    """
    groups = []
    for is_new in (True, False):
        group_lr = lr * (1.0 if is_new else pretrained_lr_scale)
        for decayed in (True, False):
            params = [p for name, p in model.named_parameters()
                      if (new is None or p in new) == is_new and name.endswith("weight") == decayed]
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": weight_decay if decayed else 0.0})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int,
                  warmup_steps: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rises linearly over ``warmup_steps`` steps, then falls along a half cosine to 0 at
    ``total_steps`` (and stays there). Step the schedule once per optimiser step."""
    total = max(1, total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / max(1.0, total - warmup_steps))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TrainingStep:
    """One SGD step of the recipe, called with a batch: ``loss, logits = step(images, labels)``.

    Forward under autocast (bf16 where the hardware has it, see :func:`zfcore.devices.autocast_dtype`), the
    cross-entropy in fp32, backward (through a gradient scaler under fp16), the optimiser step, the filter
    renormalisation and, if given, one step of a per-step schedule.

    Args:
        model: the network whose filters are renormalised.
        optimizer: its optimiser (:func:`sgd_optimizer`).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (:func:`zfcore.devices.autocast_dtype`).
        label_smoothing: of the cross-entropy (default 0).
        renorm_rms: the filters' RMS cap after each step (the paper's 0.1; 0: off; default 0.1).
        scheduler: stepped after every step (``None``: a schedule stepped elsewhere, or none).
        network: what runs the forward pass, e.g. the DDP-wrapped or compiled ``model`` (default ``model``).

    Returns (of a call):
        The loss (fp32, detached) and the logits (detached).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, precision: str = "auto",
                 label_smoothing: float = 0.0, renorm_rms: float = 0.1, scheduler: Any = None,
                 network: nn.Module | None = None) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.network = model if network is None else network
        self.device = model_device(model)
        self.dtype = autocast_dtype(self.device, precision)
        self.label_smoothing, self.renorm_rms = label_smoothing, renorm_rms
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.dtype):
            logits = self.network(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.renorm_rms > 0:
            renormalize_filters(self.model, self.renorm_rms)
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach(), logits.detach()
