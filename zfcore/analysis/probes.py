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
  (:func:`frozen_transfer`). :func:`layer_by_cross_validation` chooses the layer read out the same way.
* **C10** (:func:`c10_verdict`): the top layer against the best lower layer, paired over the splits
  (:func:`paired_split_difference`, :func:`layer_ranking`), on the reference network and, as the control, on
  the network trained without label smoothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from zfcore.checks import check_positive
from zfcore.data.caltech import Split, caltech_splits, mean_per_class_accuracy
from zfcore.stats import Estimate, t_interval
from zfcore.verdicts import Verdict

__all__ = ["C10_TOLERANCE", "DEFAULT_WEIGHT_DECAY", "LOSSES", "PAPER_TABLE7", "WEIGHT_DECAYS", "WIDE_WEIGHT_DECAYS",
           "LinearClassifier", "SplitScores", "c10_verdict", "deeper_is_better", "fit_linear", "frozen_transfer", "layer_by_cross_validation",
           "in_points", "layer_ranking", "layer_probes", "measure_probes", "paired_split_difference", "select_weight_decay",
           "split_train_per_class"]

LOSSES = ("softmax", "svm")
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
WIDE_WEIGHT_DECAYS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
"""A grid wide enough that the choice does not sit at its edges (:data:`WEIGHT_DECAYS` is hit at its lower edge by
conv4, and 1e-6 ... 1 at its upper edge by the SVM on conv3-conv5)."""
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
C10_TOLERANCE = 0.01
"""C10: the top layer still counts as the best when it is at most this far (1 point of mean per-class accuracy)
below a lower layer. The paper's own Caltech-101 SVM puts layer 7 0.7 points below layer 5 (85.5 vs 86.2 %) and
calls the whole column "a steady improvement"."""


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
        layers: the layer read out on each split, where it was chosen per split
            (:func:`layer_by_cross_validation`; empty otherwise).
    """

    method: str
    train_per_class: int
    seeds: list[int]
    accuracies: list[float]
    weight_decays: list[float | None]
    seconds: float
    classifiers: list[LinearClassifier] = field(default_factory=list, repr=False)
    layers: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float | None:
        """The sample standard deviation over splits (``None`` for a single split)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: accuracies in percent (and ``layers`` where they were chosen per split)."""
        return {"method": self.method, "train_per_class": self.train_per_class, "splits": len(self.seeds),
                "seeds": self.seeds, "accuracy_percent": [round(100 * a, 2) for a in self.accuracies],
                "mean_percent": round(100 * self.mean, 2),
                "std_percent": None if self.std is None else round(100 * self.std, 2),
                "weight_decays": self.weight_decays, "seconds": round(self.seconds, 1)} \
            | ({"layers": self.layers} if self.layers else {})


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


def layer_by_cross_validation(features: Mapping[str, torch.Tensor], labels: np.ndarray, splits: Sequence[Split], *,
                              loss: str = "softmax", grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3,
                              max_iter: int = 100, cv_max_iter: int = 30, method: str | None = None,
                              progress: bool = True) -> SplitScores:
    """A new linear classifier on frozen features of the layer *and* weight decay chosen by CV on each split's
    training images only; the split's test images score the final classifier once.

    Per split, every layer's weight decay is chosen as in :func:`frozen_transfer` (:func:`select_weight_decay`,
    the same seeded folds); the layer whose chosen decay has the best mean CV accuracy is read out (ties: the
    later layer), and its classifier is fitted on all the split's training images. On a layer that is chosen, the
    test accuracy is therefore the one :func:`frozen_transfer` gives that layer.

    Args:
        features: layer -> ``[N, D]`` features of every image, in layer order.
        labels, splits, loss, grid, folds, max_iter, cv_max_iter, progress: as for :func:`frozen_transfer`.
        method: the name stored in the result.

    Returns:
        :class:`SplitScores` with ``layers`` (the layer chosen on each split) and the chosen weight decays.

    Raises:
        ValueError: no features, no splits, or features and labels of different lengths.
    """
    labels = np.asarray(labels)
    if not features:
        raise ValueError("features={}: give at least one layer's features")
    if not splits or any(len(values) != len(labels) for values in features.values()):
        raise ValueError(f"{len(splits)} splits, feature rows {[len(v) for v in features.values()]} and {len(labels)} "
                         "labels: give at least one split and one label per feature row")
    started = time.perf_counter()
    num_classes = int(labels.max()) + 1
    result = SplitScores(method or f"frozen {loss}, layer chosen by CV", split_train_per_class(labels, splits), [], [],
                         [], 0.0)
    for split in tqdm(splits, desc=result.method, unit="split", leave=False, disable=not progress):
        train_labels = labels[split.train]
        chosen: dict[str, tuple[float, float]] = {}  # layer -> (weight decay, its mean CV accuracy)
        for layer, values in features.items():
            decay, scores = select_weight_decay(values[split.train], train_labels, num_classes, grid=grid, folds=folds,
                                                loss=loss, seed=split.seed, max_iter=cv_max_iter)
            chosen[layer] = (decay, scores.get(decay, 0.0))
        layer = max(reversed(list(chosen)), key=lambda name: chosen[name][1])
        classifier = fit_linear(features[layer][split.train], train_labels, num_classes, weight_decay=chosen[layer][0],
                                loss=loss, max_iter=max_iter)
        result.seeds.append(split.seed)
        result.layers.append(layer)
        result.weight_decays.append(chosen[layer][0])
        result.classifiers.append(classifier)
        result.accuracies.append(mean_per_class_accuracy(classifier.scores(features[layer][split.test]),
                                                         labels[split.test]))
    result.seconds = time.perf_counter() - started
    return result


def layer_probes(features: Mapping[str, torch.Tensor | Mapping[str, torch.Tensor]], labels: np.ndarray,
                 splits: Sequence[Split], *, losses: Sequence[str] = ("softmax",), grid: Sequence[float] = WEIGHT_DECAYS,
                 folds: int = 3, max_iter: int = 100, cv_max_iter: int = 30,
                 progress: bool = True) -> dict[str, dict[str, SplitScores]]:
    """Table 7: a linear classifier of each ``loss`` on the features of each layer, on every split.

    A layer given in several versions (e.g. its maps max-pooled to 1 x 1 and to 2 x 2) is read out in the version
    chosen, with its weight decay, by CV on each split's training images (:func:`layer_by_cross_validation`; the
    chosen versions are the result's ``layers``).

    Args:
        features: layer -> ``[N, D]`` (e.g. :func:`zfcore.analysis.transfer.pooled_features`), or layer -> version
            name -> ``[N, D]``, in layer order.
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
    def probe(layer: str, values: torch.Tensor | Mapping[str, torch.Tensor], loss: str) -> SplitScores:
        options = dict(loss=loss, grid=grid, folds=folds, max_iter=max_iter, cv_max_iter=cv_max_iter, progress=progress)
        if isinstance(values, Mapping):
            return layer_by_cross_validation(values, labels, splits, method=f"{loss} ({layer}, version chosen by CV)",
                                             **options)
        return frozen_transfer(values, labels, splits, method=f"{loss} ({layer})", **options)

    return {loss: {layer: probe(layer, values, loss) for layer, values in features.items()} for loss in losses}


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


def measure_probes(features: Mapping[str, torch.Tensor | Mapping[str, torch.Tensor]], labels: np.ndarray, *,
                   train_per_class: int = 30, seeds: Sequence[int] = range(5), losses: Sequence[str] = ("softmax",),
                   grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 3, max_iter: int = 100, cv_max_iter: int = 30,
                   pooling: str = "conv: max over each cell of a 2 x 2 grid; fc: as is") -> dict[str, Any]:
    """Table 7 in one run: :func:`layer_probes` on the paper's splits and the verdict of :func:`deeper_is_better`.

    ``features`` as for :func:`layer_probes`; ``pooling`` says in words how they were pooled (stored in ``config``).

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
                   "cv_max_iter": cv_max_iter, "pooling": pooling,
                   "dimensions": {layer: {name: int(version.shape[1]) for name, version in values.items()}
                                  if isinstance(values, Mapping) else int(values.shape[1])
                                  for layer, values in features.items()}},
        "probes": {loss: {layer: scores.as_dict() for layer, scores in by_layer.items()} for loss, by_layer in probes.items()},
        "verdict": {loss: deeper_is_better(by_layer) for loss, by_layer in probes.items()},
        "paper": PAPER_TABLE7,
        "seconds": round(time.perf_counter() - started, 1),
    }


def paired_split_difference(first: Mapping[str, Any], second: Mapping[str, Any], *,
                            confidence: float = 0.95) -> Estimate:
    """The mean over shared splits of ``first - second`` (accuracy in ``[0, 1]``) with Student's t interval.

    The two rows are paired by split seed: the same seed draws the same training and test images
    (:func:`~zfcore.data.caltech.caltech_splits`), so the splits' shared difficulty cancels. With 2-10 splits a
    t interval, not a bootstrap (:func:`zfcore.stats.t_interval`).

    Args:
        first, second: rows as :meth:`SplitScores.as_dict` writes them (``seeds``, ``accuracy_percent``,
            ``train_per_class``), of the same number of training images per class.
        confidence: the interval's level.

    Raises:
        ValueError: rows of different sizes, or fewer than 2 shared splits.
    """
    if first["train_per_class"] != second["train_per_class"]:
        raise ValueError(f"train_per_class={first['train_per_class']} and {second['train_per_class']}: paired rows "
                         "need the same splits, so the same number of training images per class")
    accuracy = [dict(zip(row["seeds"], row["accuracy_percent"])) for row in (first, second)]
    shared = [seed for seed in first["seeds"] if seed in accuracy[1]]
    if len(shared) < 2:
        raise ValueError(f"seeds={first['seeds']} and {second['seeds']} share {len(shared)} split(s); a paired "
                         "interval needs at least 2")
    return t_interval([(accuracy[0][seed] - accuracy[1][seed]) / 100 for seed in shared], confidence=confidence)


def in_points(estimate: Estimate) -> dict[str, float]:
    """A difference of accuracies (an :class:`~zfcore.stats.Estimate` in ``[0, 1]`` units) in percentage points, JSON-ready
    for a verdict's details: ``{"points", "low", "high", "splits"}``."""
    return {"points": round(100 * estimate.value, 2), "low": round(100 * estimate.low, 2),
            "high": round(100 * estimate.high, 2), "splits": estimate.n}


def layer_ranking(probes: Mapping[str, Any], loss: str = "softmax", *, confidence: float = 0.95,
                  tolerance: float = C10_TOLERANCE) -> dict[str, Any]:
    """Table 7's claim on one network's probes, with paired per-split intervals: does accuracy rise as we ascend,
    and is the top layer the best?

    The top layer is the last one probed; it is compared with the lower layer of the highest mean accuracy (a
    choice on the test images that can only favour the lower layers, so it is conservative for the claim).

    Args:
        probes: a probes result (:func:`measure_probes`, as read from ``probes.json``): ``probes`` (loss -> layer
            -> row) and ``config`` (``weight_decay_grid``).
        loss: the classifier whose probes are judged.
        confidence: the intervals' level.
        tolerance: how far below the best lower layer the top may be and still count as the best.

    Returns:
        ``{"layers", "means_percent", "steps" (from, to, points, low, high), "top", "best_lower", "top_gap" (the
        :class:`~zfcore.stats.Estimate` of top - best lower), "state", "grid_edges"}``. ``state`` is ``"holds"``
        (the top's interval lies above ``-tolerance`` and no step's lies below it), ``"fails"`` (the top's interval
        lies below ``-tolerance``) or ``"unclear"``; ``grid_edges`` lists the layers whose chosen weight decay
        was an end of the grid on some split (that layer's accuracy may be understated).

    Raises:
        ValueError: an unknown loss, fewer than two layers, or layers scored on different splits.
    """
    if loss not in probes.get("probes", {}):
        raise ValueError(f"loss={loss!r} is not valid; the probes have {tuple(probes.get('probes', {}))}")
    rows = probes["probes"][loss]
    layers = list(rows)
    if len(layers) < 2 or len({tuple(row["seeds"]) for row in rows.values()}) != 1:
        raise ValueError(f"layers={tuple(layers)}: give two or more layers scored on the same splits")
    steps = []
    for lower, upper in zip(layers, layers[1:]):
        change = paired_split_difference(rows[upper], rows[lower], confidence=confidence)
        steps.append({"from": lower, "to": upper, **in_points(change)})
    top = layers[-1]
    best_lower = max(layers[:-1], key=lambda layer: rows[layer]["mean_percent"])
    gap = paired_split_difference(rows[top], rows[best_lower], confidence=confidence)
    if gap.high < -tolerance:
        state = "fails"
    elif gap.low > -tolerance and all(step["high"] >= -100 * tolerance for step in steps):
        state = "holds"
    else:
        state = "unclear"
    grid = probes["config"]["weight_decay_grid"]
    edges = [layer for layer, row in rows.items()
             if any(decay is not None and decay in (min(grid), max(grid)) for decay in row["weight_decays"])]
    return {"layers": layers, "means_percent": {layer: rows[layer]["mean_percent"] for layer in layers},
            "steps": steps, "top": top, "best_lower": best_lower, "top_gap": gap, "state": state, "grid_edges": edges}


def c10_verdict(probes: Mapping[str, Any], control: Mapping[str, Any] | None = None, *, loss: str = "softmax",
                confidence: float = 0.95) -> Verdict:
    """C10 (§5.3, Table 7: "a steady improvement can be seen as we ascend the model, with best results being
    obtained by using all layers") from the reference network's layer probes and, as the control, the same probes
    on the network trained without label smoothing.

    Measure: the top layer's accuracy minus that of the best lower layer, paired over the splits
    (:func:`layer_ranking`). Control: the same on the label-smoothing-0 network, the deviation from the paper's
    loss that could explain a fall at the top removed (label smoothing is known to make penultimate features
    transfer worse; Kornblith et al. 2021).

    Rule (:data:`C10_TOLERANCE`): the reference *holds* -> ``agree``. It *fails* -> ``differ`` when the control
    fails too, ``partly`` when the control holds (the claim holds for the paper's loss, not for ours), else
    ``inconclusive`` (control unclear or not measured, or the top layer's weight decay at an end of its grid). The
    reference *unclear* -> ``inconclusive``.

    Args:
        probes: the reference network's probes (:func:`measure_probes`' result, e.g. ``probes.json``).
        control: the label-smoothing-0 network's probes, with the same layers and splits, or ``None`` (not run).
        loss: the classifier judged (``"softmax"``; ``"svm"`` once measured).
        confidence: the intervals' level.

    Raises:
        ValueError: as :func:`layer_ranking`; a control probed on other layers or splits.
    """
    ours = layer_ranking(probes, loss, confidence=confidence)
    theirs = None if control is None else layer_ranking(control, loss, confidence=confidence)
    if theirs is not None and (theirs["layers"] != ours["layers"]
                               or control["probes"][loss][theirs["top"]]["seeds"] != probes["probes"][loss][ours["top"]]["seeds"]):
        raise ValueError(f"the control's layers {theirs['layers']} or splits differ from the reference's "
                         f"{ours['layers']}; probe both networks alike")
    tolerance = f"{100 * C10_TOLERANCE:g}"
    top = ours["top"]
    measure = (f"{loss} probes on frozen features of each layer ({', '.join(ours['layers'])}; Caltech-101, "
               f"{probes['probes'][loss][top]['train_per_class']} training images per class): {top} minus the best "
               f"lower layer ({ours['best_lower']}, by mean), points of mean per-class accuracy, paired over the splits")
    control_words = ("the same probes on the network trained without label smoothing (the paper's loss), "
                     f"{top} minus its best lower layer")
    rule = (f"a layer counts as the best when the top layer's paired {100 * confidence:.0f} % t interval against the "
            f"best lower layer lies above -C10_TOLERANCE = -{tolerance} point (the paper's own SVM has layer 7 0.7 "
            f"points below layer 5), and no step up the network has an interval wholly below -{tolerance}: *holds*; "
            f"an interval wholly below -{tolerance}: *fails*. Reference holds: agree. Reference fails: differ if the "
            "label-smoothing-0 network fails too, partly if it holds, else inconclusive (also when the top layer's "
            "chosen weight decay is an end of its grid). Otherwise inconclusive")
    settle = ""
    if ours["state"] == "holds":
        outcome, reason = "agree", f"{top} is the best layer within {tolerance} point, and no step up falls."
    elif ours["state"] == "unclear":
        outcome = "inconclusive"
        reason = f"The interval of {top} minus {ours['best_lower']} spans -{tolerance} point."
        settle = "more splits (or a larger test set per class) to narrow the paired intervals"
    elif top in ours["grid_edges"]:
        outcome = "inconclusive"
        reason = f"{top} falls below {ours['best_lower']}, but its weight decay was chosen at an end of the grid."
        settle = "probes with a weight-decay grid whose ends are never chosen"
    elif theirs is None:
        outcome = "inconclusive"
        reason = (f"{top} falls below {ours['best_lower']}, but whether our label smoothing (0.1) causes it is not "
                  "measured yet.")
        settle = "the same probes on the label-smoothing-0 network (verdict run no-label-smoothing)"
    elif theirs["state"] == "fails":
        outcome = "differ"
        reason = (f"{top} falls below the best lower layer in both networks ({ours['best_lower']}; without label "
                  f"smoothing {theirs['best_lower']}): the most transferable features sit below the top.")
    elif theirs["state"] == "holds":
        outcome = "partly"
        reason = (f"{top} falls below {ours['best_lower']} in our reference but not in the network trained without "
                  "label smoothing: the claim holds with the paper's loss; with our label smoothing it does not (one network "
                  "each).")
    else:
        outcome = "inconclusive"
        reason = (f"{top} falls below {ours['best_lower']} in our reference; in the label-smoothing-0 network the "
                  f"interval spans -{tolerance} point.")
        settle = "more splits of the label-smoothing-0 probes"

    def described(ranking: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in ranking.items() if key != "top_gap"} | {"top_gap": in_points(ranking["top_gap"])}

    return Verdict("C10", measure, ours["top_gap"], control_words, None if theirs is None else theirs["top_gap"], rule,
                   outcome, reason, settle=settle, details={"loss": loss, "reference": described(ours),
                                                            "control": None if theirs is None else described(theirs)},
                   scale=100, digits=1)
