"""zfcore.training_step: the one step of the trainer, fine-tuning, training from scratch and the benchmarks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from zfcore.checkpoints import build_model
from zfcore.models import renormalize_filters
from zfcore.profiles import TrainConfig
from zfcore.training_step import TrainingStep, sgd_optimizer, warmup_cosine

CONFIG = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=5, widths=(8, 16, 16, 16, 16), fc=32,
                     init="he", preprocessing="mean-std")


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(CONFIG)


def test_weight_decay_falls_on_weights_and_pretrained_parameters_learn_slower() -> None:
    model = small_model()
    new = set(model.classifier.fc8.parameters())
    optimizer = sgd_optimizer(model, lr=0.02, momentum=0.9, weight_decay=5e-4, new=new, pretrained_lr_scale=0.1)
    groups = [(group["lr"], group["weight_decay"], len(group["params"])) for group in optimizer.param_groups]
    weights = sum(name.endswith("weight") for name, _ in model.named_parameters())
    assert groups == [(0.02, 5e-4, 1), (0.02, 0.0, 1), (pytest.approx(0.002), 5e-4, weights - 1),
                      (pytest.approx(0.002), 0.0, len(list(model.parameters())) - weights - 1)]
    every = sgd_optimizer(model, lr=0.01, momentum=0.9, weight_decay=5e-4)
    assert [(group["lr"], group["weight_decay"]) for group in every.param_groups] == [(0.01, 5e-4), (0.01, 0.0)]
    assert every.param_groups[0]["momentum"] == 0.9


def test_the_schedule_warms_up_then_falls_to_zero_along_a_cosine() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = warmup_cosine(optimizer, total_steps=10, warmup_steps=2)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert rates[10:] == [0.0, 0.0]  # at the end it stays at 0
    assert all(later <= earlier for earlier, later in zip(rates[2:], rates[3:]))


def test_a_step_is_the_recipe_written_out() -> None:
    """Against the sequence written by hand: forward, fp32 loss with smoothing, SGD, renormalisation, schedule."""
    model, images, labels = small_model(), torch.randn(6, 3, 64, 64), torch.tensor([0, 1, 2, 3, 4, 0])
    expected = copy.deepcopy(model)
    hand = sgd_optimizer(expected, lr=0.05, momentum=0.9, weight_decay=5e-4)
    hand_schedule = warmup_cosine(hand, total_steps=4, warmup_steps=1)
    optimizer = sgd_optimizer(model, lr=0.05, momentum=0.9, weight_decay=5e-4)
    step = TrainingStep(model, optimizer, precision="fp32", label_smoothing=0.1, renorm_rms=0.1,
                        scheduler=warmup_cosine(optimizer, total_steps=4, warmup_steps=1))
    for index in range(3):
        torch.manual_seed(index)  # the same dropout masks for both
        loss, logits = step(images, labels)
        torch.manual_seed(index)
        hand_logits = expected(images)
        hand_loss = F.cross_entropy(hand_logits, labels, label_smoothing=0.1)
        hand.zero_grad()
        hand_loss.backward()
        hand.step()
        renormalize_filters(expected, 0.1)
        hand_schedule.step()
        assert torch.equal(loss, hand_loss.detach()) and torch.equal(logits, hand_logits.detach())
        assert not loss.requires_grad and loss.dtype == torch.float32
    for (name, ours), theirs in zip(model.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(ours, theirs), name
    assert optimizer.param_groups[0]["lr"] == hand.param_groups[0]["lr"] < 0.05


def test_filters_are_capped_only_when_asked() -> None:
    model = small_model()
    with torch.no_grad():
        model.features.conv1.weight.mul_(100)
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    TrainingStep(model, sgd_optimizer(model, lr=1e-4, momentum=0.0, weight_decay=0.0), precision="fp32",
                 renorm_rms=0.0)(images, labels)
    rms = model.features.conv1.weight.detach().flatten(1).pow(2).mean(1).sqrt()
    assert rms.max() > 1.0
    TrainingStep(model, sgd_optimizer(model, lr=1e-4, momentum=0.0, weight_decay=0.0), precision="fp32",
                 renorm_rms=0.1)(images, labels)
    rms = model.features.conv1.weight.detach().flatten(1).pow(2).mean(1).sqrt()
    assert rms.max().item() == pytest.approx(0.1, rel=1e-5)
