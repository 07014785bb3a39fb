"""How long to train a transferred network, chosen on held-out training images (Zeiler & Fergus 2014, §5.2).

Table 4 compares the ImageNet features with "the same network trained on Caltech alone". A from-scratch
baseline stopped too early makes any pretrained margin look wider than it is, and a step count picked on the
test images makes the baseline look better than it is. So the SGD step count of each network arm (fine-tuning,
training from scratch; :func:`zfcore.analysis.transfer.network_transfer`) is chosen here on the training images
alone:

* :func:`held_out_split`: per class, a share of one split's training images is held out; the rest trains.
* :func:`choose_steps`: the network is trained for each step count of an increasing grid (e.g. doubling) on the
  rest and scored on the held-out images (mean per-class accuracy), until a step count changes the held-out
  accuracy by less than ``converged_within`` from the one before it (it has *converged*), or the grid ends. The
  step count with the best held-out accuracy is chosen; the test images are never read.

The choice is made once per size, on the first split's training images, and every split then trains on all its
training images for that many steps (:func:`zfcore.analysis.transfer.measure_transfer`). Every network goes
through :func:`~zfcore.analysis.transfer.network_transfer`, so a journal makes the choice resumable too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral
from typing import Any, Sequence

import numpy as np
import torch

from zfcore.analysis.journal import Journal
from zfcore.analysis.probes import split_train_per_class
from zfcore.analysis.transfer import NetworkRecipe, network_transfer
from zfcore.data.caltech import Split, caltech_splits
from zfcore.models import ZFNet
from zfcore.profiles import TrainConfig

__all__ = ["CONVERGED_WITHIN", "StepChoice", "check_step_grid", "choose_steps", "held_out_split"]

CONVERGED_WITHIN = 0.02
"""A network has converged when the next step count of the grid changes its held-out accuracy (mean per-class) by
less than 2 points."""


def check_step_grid(name: str, steps: Sequence[int]) -> tuple[int, ...]:
    """``steps`` as a tuple, checked: positive whole numbers in increasing order.

    Raises:
        ValueError: naming ``name`` and the value, when the grid is empty, unordered or not positive whole numbers.
    """
    steps = tuple(steps)
    if not steps or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 1 for s in steps) \
            or list(steps) != sorted(set(steps)):
        raise ValueError(f"{name}={steps!r} is not valid; give positive whole numbers in increasing order, "
                         "e.g. (1500, 3000, 6000)")
    return steps


def held_out_split(labels: np.ndarray, split: Split, held_out_per_class: int | None = None) -> Split:
    """``split``'s training images divided: per class ``held_out_per_class`` held out (the new ``test``), the rest
    to train on (the new ``train``); drawn with the split's seed, so the same split always holds out the same images.

    Args:
        labels: the class of every image.
        split: a split whose training images have the same count in every class (:func:`caltech_splits`).
        held_out_per_class: images held out per class (default: a third of the training images, at least 1).

    Raises:
        ValueError: fewer than 2 training images per class, or ``held_out_per_class`` not between 1 and the
            training images per class less one.
    """
    labels = np.asarray(labels)
    per_class = split_train_per_class(labels, [split])
    if per_class < 2:
        raise ValueError(f"the split has {per_class} training image per class: holding some out needs at least 2")
    held = max(1, per_class // 3) if held_out_per_class is None else held_out_per_class
    if isinstance(held, bool) or not isinstance(held, Integral) or not 1 <= held < per_class:
        raise ValueError(f"held_out_per_class={held_out_per_class!r} is not valid with {per_class} training images per "
                         f"class; give a whole number from 1 to {per_class - 1}")
    train = np.asarray(split.train)
    inner = caltech_splits(labels[train], per_class - held, held, [split.seed])[0]
    return Split(seed=split.seed, train=train[inner.train], test=train[inner.test])


@dataclass(frozen=True)
class StepChoice:
    """The step counts tried for one network arm at one size, and the one chosen.

    Attributes:
        mode: ``"finetune"`` or ``"scratch"``.
        train_per_class: training images per class of the split the choice was made on.
        held_out_per_class: how many of them per class were held out to score.
        split_seed: the split whose training images were used.
        steps: the step counts trained, in order (a prefix of the grid).
        held_out_accuracy: mean per-class accuracy on the held-out images after each, in ``[0, 1]``.
        converged_within: the convergence threshold (:data:`CONVERGED_WITHIN`).
    """

    mode: str
    train_per_class: int
    held_out_per_class: int
    split_seed: int
    steps: tuple[int, ...]
    held_out_accuracy: tuple[float, ...]
    converged_within: float = CONVERGED_WITHIN

    @property
    def chosen(self) -> int:
        """The step count with the best held-out accuracy (the fewer steps on a tie)."""
        return self.steps[int(np.argmax(self.held_out_accuracy))]

    @property
    def converged(self) -> bool:
        """Whether the last step count tried changed the held-out accuracy by less than ``converged_within``."""
        return len(self.steps) > 1 and abs(self.held_out_accuracy[-1] - self.held_out_accuracy[-2]) < self.converged_within

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: accuracies in percent, with ``chosen`` and ``converged``."""
        return {"mode": self.mode, "train_per_class": self.train_per_class,
                "held_out_per_class": self.held_out_per_class, "split_seed": self.split_seed, "steps": list(self.steps),
                "held_out_accuracy_percent": [round(100 * a, 2) for a in self.held_out_accuracy],
                "chosen": self.chosen, "converged": self.converged,
                "converged_within_points": round(100 * self.converged_within, 2)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StepChoice:
        """The choice :meth:`as_dict` wrote."""
        return cls(record["mode"], record["train_per_class"], record["held_out_per_class"], record["split_seed"],
                   tuple(record["steps"]), tuple(a / 100 for a in record["held_out_accuracy_percent"]),
                   record["converged_within_points"] / 100)


def choose_steps(source: ZFNet | TrainConfig, pixels: np.ndarray, labels: np.ndarray, split: Split, *, mode: str,
                 recipe: NetworkRecipe, step_grid: Sequence[int], held_out_per_class: int | None = None,
                 converged_within: float = CONVERGED_WITHIN, mean_image: torch.Tensor | None = None,
                 device: torch.device | str = "cpu", precision: str = "auto", progress: bool = True,
                 journal: Journal | None = None) -> StepChoice:
    """Train ``mode``'s network for each step count of ``step_grid`` on part of ``split``'s training images, score it
    on the rest, and stop once it has converged.

    Args:
        source, mode, recipe, mean_image, device, precision, progress, journal: as for
            :func:`~zfcore.analysis.transfer.network_transfer` (``recipe.steps`` is replaced by each step count).
        pixels, labels: every image of the dataset; only ``split.train`` is read.
        split: the split whose training images are divided (:func:`held_out_split`).
        step_grid: the step counts to try, increasing (e.g. doubling: ``(1500, 3000, 6000, 12000)``).
        held_out_per_class: as for :func:`held_out_split`.
        converged_within: stop when a step count changes the held-out accuracy by less than this (in ``[0, 1]``).

    Returns:
        The :class:`StepChoice`: its ``chosen`` steps, and whether the grid reached convergence.

    Raises:
        ValueError: a bad grid or threshold; as :func:`held_out_split` and ``network_transfer``.
    """
    step_grid = check_step_grid("step_grid", step_grid)
    if not 0 < converged_within < 1:
        raise ValueError(f"converged_within={converged_within!r} is not valid; give a share of accuracy in (0, 1), "
                         f"e.g. {CONVERGED_WITHIN}")
    divided = held_out_split(labels, split, held_out_per_class)
    per_class = split_train_per_class(np.asarray(labels), [split])
    tried, accuracies = [], []
    for steps in step_grid:
        scores = network_transfer(source, pixels, labels, [divided], mode=mode, recipe=replace(recipe, steps=steps),
                                  mean_image=mean_image, device=device, precision=precision, progress=progress,
                                  journal=journal)
        tried.append(steps)
        accuracies.append(scores.accuracies[0])
        if len(accuracies) > 1 and abs(accuracies[-1] - accuracies[-2]) < converged_within:
            break
    return StepChoice(mode, per_class, per_class - split_train_per_class(np.asarray(labels), [divided]), split.seed,
                      tuple(tried), tuple(accuracies), converged_within)
