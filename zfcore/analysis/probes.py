"""Linear classifiers on frozen features and the layer-wise probes (Zeiler & Fergus 2014, §5.3, Table 7).

Table 7 puts a linear SVM or a softmax on the features of one layer of the ImageNet-pretrained network
(Caltech-101 at 30 images per class, 5 splits) and finds "a steady improvement ... as we ascend the model,
with best results being obtained by using all layers". :func:`layer_probes` does the same on the layers
of the book's ZF-64 and :func:`deeper_is_better` checks that claim split by split.

* **Features**: :func:`zfcore.analysis.transfer.pooled_features` (fc6/fc7 as they are, conv maps
  max-pooled to 2 x 2), standardised with the training images' mean and standard deviation.
* **Classifiers** (:func:`fit_linear`): a softmax (cross-entropy) or a one-vs-rest L2-SVM (squared
  hinge), fitted full-batch by L-BFGS with weight decay ``wd * ||W||^2``. No SVM library is installed;
  the squared hinge is LIBLINEAR's default linear SVM loss, and it is smooth, so the same L-BFGS fits it.
* **Weight decay** (:func:`select_weight_decay`): chosen per split by stratified cross-validation *on
  that split's training images only*; test images are used once, to score the final classifier
  (:func:`frozen_transfer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from zfcore.checkpoints import code_version
from zfcore.checks import check_positive
from zfcore.data.caltech import Split, caltech_splits, mean_per_class_accuracy

__all__ = ["DEFAULT_WEIGHT_DECAY", "LOSSES", "PAPER_TABLE7", "WEIGHT_DECAYS", "LinearClassifier", "SplitScores",
           "deeper_is_better", "fit_linear", "frozen_transfer", "layer_probes", "measure_probes", "select_weight_decay",
           "split_train_per_class"]

LOSSES = ("softmax", "svm")
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
"""The weight-decay grid searched on the training images (for standardised features)."""
DEFAULT_WEIGHT_DECAY = 1e-2
"""Used when a class has a single training image, so no cross-validation fold can be held out."""
PAPER_TABLE7 = {
    "source": "Zeiler & Fergus 2014, section 5.3, Table 7 (Caltech-101, 30 images per class; accuracy %, mean and "
              "std over 5 splits; '(n)': the features of layer n)",
    "caltech101_30": {
        "svm": {"conv1": [44.8, 0.7], "conv2": [66.2, 0.5], "conv3": [72.3, 0.4], "conv4": [76.6, 0.4],
                "conv5": [86.2, 0.8], "fc7": [85.5, 0.4]},
        "softmax": {"conv5": [82.9, 0.4], "fc7": [85.4, 0.4]},
    },
    "caltech256_60": {
        "svm": {"conv1": [24.6, 0.4], "conv2": [39.6, 0.3], "conv3": [46.0, 0.3], "conv4": [51.3, 0.1],
                "conv5": [65.6, 0.3], "fc7": [71.7, 0.2]},
        "softmax": {"conv5": [65.7, 0.5], "fc7": [72.6, 0.1]},
    },
    "claim": "For both datasets, a steady improvement can be seen as we ascend the model, with best results being "
             "obtained by using all layers.",
}
"""The paper's Table 7, as printed (no fc6 row; no combined-layer rows)."""


@dataclass
class LinearClassifier:
    """A linear classifier on standardised features: ``scores = ((x - mean) / scale) @ weight.T + bias``."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    loss: str
    weight_decay: float

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Class scores ``[N, C]`` of features ``[N, D]``."""
        return ((features.float() - self.mean) / self.scale) @ self.weight.T + self.bias


def fit_linear(features: torch.Tensor, labels: torch.Tensor | np.ndarray, num_classes: int, *,
               weight_decay: float, loss: str = "softmax", max_iter: int = 200) -> LinearClassifier:
    """Fit a softmax or one-vs-rest L2-SVM by full-batch L-BFGS (strong Wolfe line search).

    Args:
        features: ``[N, D]`` training features (standardised here with their own mean and std).
        labels: ``[N]`` classes in ``[0, num_classes)``.
        num_classes: the number of outputs.
        weight_decay: the penalty ``weight_decay * ||W||^2`` added to the mean loss (bias not penalised).
        loss: ``"softmax"`` (cross-entropy) or ``"svm"`` (squared hinge, one vs. rest).
        max_iter: L-BFGS iterations.

    Returns:
        The :class:`LinearClassifier` (with the training features' mean and std).

    Raises:
        ValueError: an unknown loss, a negative weight decay, or labels that do not fit the features.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not valid; valid values: {LOSSES}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay!r}: must be >= 0")
    x = features.float()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if x.dim() != 2 or y.shape != (len(x),) or len(x) == 0 or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"features {tuple(x.shape)} and labels {tuple(y.shape)}: expected [N, D] and [N] classes "
                         f"in [0, {num_classes})")
    mean, scale = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / scale
    weight = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    signs = 2 * F.one_hot(y, num_classes).float() - 1
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        scores = z @ weight.T + bias
        if loss == "softmax":
            value = F.cross_entropy(scores, y)
        else:
            value = F.relu(1 - signs * scores).pow(2).sum(1).mean()
        value = value + weight_decay * weight.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearClassifier(mean, scale, weight.detach(), bias.detach(), loss, float(weight_decay))


def select_weight_decay(features: torch.Tensor, labels: np.ndarray, num_classes: int, *,
                        grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3, loss: str = "softmax",
                        seed: int = 0, max_iter: int = 100) -> tuple[float, dict[float, float]]:
    """The weight decay of ``grid`` with the best mean per-class accuracy in stratified ``folds``-fold CV.

    Only the given (training) images are used. Per class, images are dealt to the folds in a random
    order (seeded); ``folds`` shrinks to the smallest class size, and with one image in some class no fold
    can be held out: :data:`DEFAULT_WEIGHT_DECAY` is returned. Ties go to the larger weight decay.

    Returns:
        ``(best weight decay, {weight decay: mean CV accuracy})`` (an empty dict without CV).

    Raises:
        ValueError: ``folds`` is not a positive integer; as :func:`fit_linear`.
    """
    labels = np.asarray(labels)
    check_positive("folds", folds)
    _, counts = np.unique(labels, return_counts=True)
    folds = min(folds, int(counts.min()))
    if folds < 2:
        return DEFAULT_WEIGHT_DECAY, {}
    generator = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = generator.permutation(np.flatnonzero(labels == label))
        fold_of[members] = np.arange(len(members)) % folds
    scores = {}
    for decay in grid:
        accuracies = []
        for fold in range(folds):
            held = fold_of == fold
            classifier = fit_linear(features[~held], labels[~held], num_classes, weight_decay=decay, loss=loss,
                                    max_iter=max_iter)
            accuracies.append(mean_per_class_accuracy(classifier.scores(features[held]), labels[held]))
        scores[float(decay)] = float(np.mean(accuracies))
    best = max(sorted(scores, reverse=True), key=lambda decay: scores[decay])
    return best, scores


@dataclass
class SplitScores:
    """Mean per-class test accuracy of one method over random splits.

    Attributes:
        method: what was measured (e.g. ``"frozen fc7 softmax"``).
        train_per_class: training images per class.
        seeds, accuracies: one per split (accuracy in ``[0, 1]``).
        weight_decays: the weight decay chosen on each split's training images (``None`` for networks).
        seconds: wall time of the whole measurement.
        classifiers: the fitted linear classifiers (not serialised).
    """

    method: str
    train_per_class: int
    seeds: list[int]
    accuracies: list[float]
    weight_decays: list[float | None]
    seconds: float
    classifiers: list[LinearClassifier] = field(default_factory=list, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float | None:
        """The sample standard deviation over splits (``None`` for a single split)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: accuracies in percent."""
        return {"method": self.method, "train_per_class": self.train_per_class, "splits": len(self.seeds),
                "seeds": self.seeds, "accuracy_percent": [round(100 * a, 2) for a in self.accuracies],
                "mean_percent": round(100 * self.mean, 2),
                "std_percent": None if self.std is None else round(100 * self.std, 2),
                "weight_decays": self.weight_decays, "seconds": round(self.seconds, 1)}


def frozen_transfer(features: torch.Tensor, labels: np.ndarray, splits: Sequence[Split], *, loss: str = "softmax",
                    grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3, max_iter: int = 100,
                    cv_max_iter: int = 30, method: str | None = None, progress: bool = True) -> SplitScores:
    """A new linear classifier on frozen features, per split: weight decay by CV on the split's training images.

    Args:
        features: ``[N, D]`` features of every image (e.g. ``pooled_features(...)["fc7"]``).
        labels: ``[N]`` classes.
        splits: from :func:`~zfcore.data.caltech.caltech_splits` (all with the same ``train_per_class``).
        loss, grid, folds: see :func:`fit_linear` and :func:`select_weight_decay`.
        max_iter, cv_max_iter: L-BFGS iterations of the final fit and of each cross-validation fit.
        method: the name stored in the result.
        progress: show a progress bar over the splits.

    Returns:
        :class:`SplitScores` with the chosen weight decays and the fitted classifiers.

    Raises:
        ValueError: no splits, or features and labels of different lengths.
    """
    labels = np.asarray(labels)
    if not splits or len(features) != len(labels):
        raise ValueError(f"{len(splits)} splits, {len(features)} features and {len(labels)} labels: "
                         "give at least one split and one label per feature row")
    started = time.perf_counter()
    num_classes = int(labels.max()) + 1
    result = SplitScores(method or f"frozen {loss}", split_train_per_class(labels, splits), [], [], [], 0.0)
    for split in tqdm(splits, desc=result.method, unit="split", leave=False, disable=not progress):
        train_features, train_labels = features[split.train], labels[split.train]
        decay, _ = select_weight_decay(train_features, train_labels, num_classes, grid=grid, folds=folds, loss=loss,
                                       seed=split.seed, max_iter=cv_max_iter)
        classifier = fit_linear(train_features, train_labels, num_classes, weight_decay=decay, loss=loss,
                                max_iter=max_iter)
        result.seeds.append(split.seed)
        result.weight_decays.append(decay)
        result.classifiers.append(classifier)
        result.accuracies.append(mean_per_class_accuracy(classifier.scores(features[split.test]), labels[split.test]))
    result.seconds = time.perf_counter() - started
    return result


def layer_probes(features: Mapping[str, torch.Tensor], labels: np.ndarray, splits: Sequence[Split], *,
                 losses: Sequence[str] = ("softmax",), grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3,
                 max_iter: int = 100, cv_max_iter: int = 30, progress: bool = True) -> dict[str, dict[str, SplitScores]]:
    """Table 7: a linear classifier of each ``loss`` on the features of each layer, on every split.

    Args:
        features: layer -> ``[N, D]`` (e.g. :func:`zfcore.analysis.transfer.pooled_features`), in layer order.
        labels, splits, grid, folds, max_iter, cv_max_iter: as for :func:`frozen_transfer`.
        losses: any of :data:`LOSSES`.
        progress: show a progress bar over the splits of each layer.

    Returns:
        loss -> layer -> :class:`SplitScores`.

    Raises:
        ValueError: no features, or an unknown loss.
    """
    if not features:
        raise ValueError("features={}: give at least one layer's features")
    for loss in losses:
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not valid; valid values: {LOSSES}")
    return {loss: {layer: frozen_transfer(values, labels, splits, loss=loss, grid=grid, folds=folds, max_iter=max_iter,
                                          cv_max_iter=cv_max_iter, method=f"{loss} ({layer})", progress=progress)
                   for layer, values in features.items()}
            for loss in losses}


def deeper_is_better(scores: Mapping[str, SplitScores]) -> dict[str, Any]:
    """Check Table 7's claim on one loss's probes (layers in order): does accuracy rise as we ascend?

    A step from one layer to the next is a *drop* when the mean accuracy falls and every split agrees
    (the splits are paired: the same images for every layer), a *rise* when it rises and every split
    agrees, else *unclear*.

    Returns:
        ``{"steps": [{"from", "to", "change_percent", "verdict"}], "best_layer", "no_drop", "best_is_last",
        "holds"}``; ``holds`` means no drop and the last layer is the best.

    Raises:
        ValueError: fewer than two layers, or layers scored on different splits.
    """
    layers = list(scores)
    if len(layers) < 2 or len({tuple(s.seeds) for s in scores.values()}) != 1:
        raise ValueError(f"layers={tuple(layers)}: give two or more layers scored on the same splits")
    steps = []
    for lower, upper in zip(layers, layers[1:]):
        change = np.asarray(scores[upper].accuracies) - np.asarray(scores[lower].accuracies)
        verdict = "rise" if (change > 0).all() else "drop" if (change < 0).all() else "unclear"
        steps.append({"from": lower, "to": upper, "change_percent": round(100 * float(change.mean()), 2),
                      "verdict": verdict})
    best = max(layers, key=lambda layer: scores[layer].mean)
    no_drop = all(step["verdict"] != "drop" for step in steps)
    return {"steps": steps, "best_layer": best, "no_drop": no_drop, "best_is_last": best == layers[-1],
            "holds": no_drop and best == layers[-1]}


def split_train_per_class(labels: np.ndarray, splits: Sequence[Split]) -> int:
    """The number of training images per class of the splits (the same for every class): the largest class count
    of the first split's training images."""
    return int(np.bincount(labels[splits[0].train]).max())


def measure_probes(features: Mapping[str, torch.Tensor], labels: np.ndarray, *, train_per_class: int = 30,
                   seeds: Sequence[int] = range(5), losses: Sequence[str] = ("softmax",),
                   grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3, max_iter: int = 100,
                   cv_max_iter: int = 30) -> dict[str, Any]:
    """Table 7 in one run: :func:`layer_probes` on the paper's splits and the verdict of :func:`deeper_is_better`.

    Returns:
        A JSON-ready dict: ``config``, ``probes`` (loss -> layer -> :meth:`SplitScores.as_dict`),
        ``verdict`` (loss -> :func:`deeper_is_better`), ``paper``, ``seconds``.
    """
    started = time.perf_counter()
    splits = caltech_splits(labels, train_per_class, 50, seeds)
    probes = layer_probes(features, labels, splits, losses=losses, grid=grid, folds=folds, max_iter=max_iter,
                          cv_max_iter=cv_max_iter)
    return {
        "config": {"train_per_class": train_per_class, "test_per_class": 50, "seeds": list(seeds),
                   "losses": list(losses), "weight_decay_grid": list(grid), "cv_folds": folds, "max_iter": max_iter,
                   "cv_max_iter": cv_max_iter, "pooling": "conv: max over each cell of a 2 x 2 grid; fc: as is",
                   "dimensions": {layer: int(values.shape[1]) for layer, values in features.items()}},
        "probes": {loss: {layer: scores.as_dict() for layer, scores in by_layer.items()} for loss, by_layer in probes.items()},
        "verdict": {loss: deeper_is_better(by_layer) for loss, by_layer in probes.items()},
        "paper": PAPER_TABLE7,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - started, 1),
    }
