"""Feature generalisation (Zeiler & Fergus 2014, §5.2, Tables 4 and 5, Fig. 9).

The paper keeps layers 1-7 of its ImageNet network fixed and trains a new softmax on top, with 15 or 30
training images per Caltech-101 class (up to 50 test images per class, 5 random splits, mean per-class
accuracy; :func:`zfcore.data.caltech.caltech_splits`), and compares it with the same network trained
on Caltech alone ("non-pretrained"). Here the network is the book's ZF-64 (trained on Tiny ImageNet).

* **Images** (:func:`dataset_pixels`): each file's shorter side to the network's input size (64 px),
  then its centre square (:func:`zfcore.data.images.decode_to_cache`, cached). The reference network
  was trained on whole 64-px Tiny ImageNet images, so the whole centre square, not the paper's centre
  224-of-256 crop, is what it saw in training.
* **Frozen features** (:func:`pooled_features`): the ReLU outputs of fc6/fc7 as they are; a conv
  layer's maps max-pooled to a ``grid`` x ``grid`` layout (2 x 2 by default: the layout pool5 hands
  to fc6), then flattened. Cached per weights digest, pixels digest and parameters, like top-9 mining.
* **A new softmax on frozen layers** (:func:`zfcore.analysis.probes.frozen_transfer` on the fc7
  features): the paper's "pretrained" row; weight decay chosen on each split's training images only.
* **Networks** (:func:`network_transfer`): ``"finetune"`` starts from the reference, swaps fc8 for a
  new layer and trains everything (the new layer at ``lr``, the pretrained ones at ``lr *
  pretrained_lr_scale``); ``"scratch"`` trains the reference architecture from a fresh initialisation.
  Both follow :class:`NetworkRecipe` (SGD with momentum, warm-up + cosine, the book's augmentation:
  random crops of the 4-px reflect-padded image and flips). This is a short loop of its own, not
  :func:`zfcore.train.train`, which runs resumable, checkpointed runs of a :class:`TrainConfig`'s
  dataset from a fresh initialisation.
* **Fig. 9** (:func:`learning_curve`): any of these against the number of training images per class.
* **C9** (:func:`c9_verdict`): the frozen-fc7 softmax (and the layer chosen by cross-validation) against the
  network trained from scratch, paired over the splits, with the baseline's convergence checked.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import asdict, dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from zfcore.analysis.journal import Journal, journal_key
from zfcore.analysis.probes import (SplitScores, frozen_transfer, in_points, paired_split_difference,
                                    split_train_per_class)
from zfcore.analysis.top9 import content_digest, weights_digest
from zfcore.checkpoints import build_model, read_torch_file
from zfcore.checks import check_layers, check_pixels, check_positive
from zfcore.data.caltech import Split, caltech_splits, mean_per_class_accuracy
from zfcore.data.images import decoded_cache
from zfcore.data.loader import TensorBatches, pixel_batches
from zfcore.data.locate import data_root
from zfcore.devices import model_device
from zfcore.models import LAYER_NAMES, ZFNet
from zfcore.profiles import HOW_RUN_FIELDS, TrainConfig
from zfcore.provenance import code_version
from zfcore.stats import t_interval
from zfcore.store import cached
from zfcore.training_step import TrainingStep, sgd_optimizer, warmup_cosine
from zfcore.verdicts import Verdict, pending

__all__ = ["C9_CONVERGED", "C9_WIDE_MARGIN", "FEATURE_LAYERS", "MODES", "PAPER", "NetworkRecipe", "c9_verdict",
           "dataset_pixels", "learning_curve", "measure_transfer", "network_transfer", "pooled_features"]

FEATURE_LAYERS = LAYER_NAMES[:-1]
"""conv1 ... fc7: the layers whose features a new classifier can sit on (fc8 is the old classifier)."""
MODES = ("finetune", "scratch")
PAPER = {
    "source": "Zeiler & Fergus 2014, section 5.2, Tables 4 and 5, Fig. 9",
    "table4_caltech101": {
        "Non-pretrained convnet": {"15": [22.8, 1.5], "30": [46.5, 1.7]},
        "ImageNet-pretrained convnet": {"15": [83.8, 0.5], "30": [86.5, 0.5]},
        "(Bo et al., 2013)": {"30": [81.4, 0.33]},
        "(Jianchao et al., 2009)": {"15": [73.2, None], "30": [84.3, None]},
    },
    "table5_caltech256": {
        "Non-pretr.": {"15": [9.0, 1.4], "30": [22.5, 0.7], "45": [31.2, 0.5], "60": [38.8, 1.4]},
        "ImageNet-pretr.": {"15": [65.7, 0.2], "30": [70.6, 0.2], "45": [72.7, 0.4], "60": [74.2, 0.3]},
    },
    "fig9": ("Caltech-256, pretrained only, plotted without printed values: 'With our pre-trained model, just 6 "
             "Caltech-256 training images are needed to beat the leading method using 10 times as many images.'"),
    "protocol": ("'we keep layers 1-7 of our ImageNet-trained model fixed and train a new softmax classifier on "
                 "top'; Caltech-101: '15 or 30 images per class for training and test on up to 50 images per "
                 "class reporting the average of the per-class accuracies ... using 5 train/test folds'"),
    "table6_pascal2012": ("not reproduced: PASCAL VOC 2012 is a multi-label scene dataset scored by per-class "
                          "average precision on its test server, which is not public; the paper itself calls its "
                          "single-label softmax 'not ideal' there"),
}
"""The paper's numbers (accuracy %, mean and std over 5 splits), as printed."""
C9_WIDE_MARGIN = 0.10
"""C9: the pretrained features beat training from scratch "widely" when the paired interval of their margin lies
above 10 points of mean per-class accuracy (the paper's margins on Caltech-101: 61.0 points at 15 and 40.0 at 30
training images per class)."""
C9_CONVERGED = 0.02
"""C9: the from-scratch baseline has converged when doubling its SGD steps changed its accuracy on the first split by
less than 2 points, at every size compared."""


# -- images and features ---------------------------------------------------------------------------


def dataset_pixels(dataset: Any, size: int = 64, *, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All images of a Caltech dataset as uint8 ``[N, size, size, 3]`` (shorter side to ``size``, centre square).

    Args:
        dataset: :class:`~zfcore.data.caltech.Caltech101` or ``Caltech256`` (anything with ``samples``:
            ``(path, label)`` pairs).
        size: the network's input size.
        cache_dir: where the decoded pixels are cached (default ``<data root>/cache``), keyed by the
            file list, the file sizes and ``size``.

    Returns:
        ``(pixels, labels)``: a read-only memory map and int64 labels (unreadable files skipped, warned).

    Raises:
        ValueError: ``size`` is not a positive integer, or the dataset has no images.
    """
    check_positive("size", size)
    if not len(dataset.samples):
        raise ValueError("the dataset has no images")
    listing = hashlib.sha256()
    for path, label in dataset.samples:
        listing.update(f"{Path(path).parent.name}/{Path(path).name}:{Path(path).stat().st_size}:{label}\n".encode())
    cache_file = Path(cache_dir or data_root() / "cache") / f"transfer-{listing.hexdigest()[:16]}-{size}.npy"
    paths, labels = zip(*dataset.samples)
    return decoded_cache(list(paths), list(labels), cache_file, size, description="decode Caltech")


@torch.no_grad()
def pooled_features(model: ZFNet, pixels: np.ndarray | torch.Tensor, layers: Sequence[str] = FEATURE_LAYERS, *,
                    grid: int = 2, mean_image: torch.Tensor | None = None, batch_size: int = 250,
                    cache_dir: str | Path | None | bool = None) -> dict[str, torch.Tensor]:
    """Frozen features of every image: fc6/fc7 as they are, conv maps max-pooled to ``grid`` x ``grid``.

    Args:
        model: the network (eval mode for the pass, restored after; fp32 on its own device).
        pixels: uint8 ``[N, S, S, 3]``.
        layers: any of :data:`FEATURE_LAYERS` (or one layer name).
        grid: the pooled layout of a conv layer (``C * grid**2`` features).
        mean_image: the network's mean image for ``"pixel-mean"`` preprocessing, else ``None``.
        batch_size: images per forward pass.
        cache_dir: cache folder (default ``<data root>/cache/transfer``; ``False``: no cache). A cache file
            that cannot be read, was made from other inputs or was changed is computed again and
            replaced, with one warning (:func:`zfcore.store.cached`).

    Returns:
        layer -> float32 ``[N, D]`` on the CPU.

    Raises:
        ValueError: bad pixels (:func:`~zfcore.checks.check_pixels`), an unknown layer, or a
            non-positive ``grid``/``batch_size``.
    """
    check_pixels("pixels", pixels)
    check_positive("grid", grid)
    check_positive("batch_size", batch_size)
    layers = check_layers("layers", layers, [name for name in FEATURE_LAYERS if name in model.layer_names])
    cache_file, key = None, None
    if cache_dir is not False:
        weights, data = weights_digest(model), content_digest(pixels)
        mean_key = "none" if mean_image is None else content_digest(mean_image.float().contiguous())
        name = f"{weights}-{data}-{mean_key}-{'_'.join(layers)}-g{grid}"
        cache_file = Path(cache_dir or data_root() / "cache" / "transfer") / f"{name}.pt"
        key = {"weights": weights, "pixels": data, "mean_image": mean_key, "layers": list(layers), "grid": grid}

    def compute() -> dict[str, torch.Tensor]:
        parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
        was_training = model.training
        model.eval()
        try:
            for batch in pixel_batches(pixels, batch_size, mean_image=mean_image):
                activations = model.trace(model.prepare_images(batch), layers=layers).activations
                for layer in layers:
                    value = activations[layer].float()
                    if value.dim() == 4:
                        value = F.adaptive_max_pool2d(value, grid).flatten(1)
                    parts[layer].append(value.cpu())
        finally:
            model.train(was_training)
        return {layer: torch.cat(chunks) for layer, chunks in parts.items()}

    return cached(key, compute, path=cache_file, load=_read_feature_cache, what="feature cache")


def _read_feature_cache(path: Path) -> object:
    """A feature cache file, read without running code (:func:`~zfcore.checkpoints.read_torch_file`)."""
    return read_torch_file(path, what="feature cache")


# -- fine-tuning and training from scratch ---------------------------------------------------------


@dataclass(frozen=True)
class NetworkRecipe:
    """A short SGD recipe for fine-tuning or training from scratch on a few thousand images.

    Attributes:
        steps: optimiser steps (a fixed budget whatever the training set's size).
        batch_size: images per step (at most the training set's size).
        lr: peak learning rate of new layers (all layers when training from scratch).
        pretrained_lr_scale: fine-tuning: the pretrained layers learn at ``lr * pretrained_lr_scale``.
        momentum, weight_decay: SGD (weight decay on weights, not biases).
        warmup_fraction: linear warm-up over this fraction of the steps, then cosine decay to 0.
        label_smoothing: of the cross-entropy.
        renorm_rms: conv filter renormalisation after each step (the paper's 0.1; 0: off).
        seed: initialisation of new layers, batch order and augmentation.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 0.02
    pretrained_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    renorm_rms: float = 0.1
    seed: int = 0


def network_transfer(source: ZFNet | TrainConfig, pixels: np.ndarray, labels: np.ndarray, splits: Sequence[Split], *,
                     mode: str, recipe: NetworkRecipe = NetworkRecipe(), mean_image: torch.Tensor | None = None,
                     device: torch.device | str = "cpu", precision: str = "auto", progress: bool = True,
                     journal: Journal | None = None) -> SplitScores:
    """Fine-tune a pretrained network (``"finetune"``) or train its architecture from scratch (``"scratch"``), per split.

    Args:
        source: ``"finetune"``: the pretrained :class:`ZFNet` (copied, never changed); ``"scratch"``: the
            :class:`TrainConfig` whose architecture (widths, fc, dropout, init, ...) is built afresh.
        pixels: uint8 ``[N, S, S, 3]`` of every image; labels: ``[N]``.
        splits: only ``split.train`` images are trained on; ``split.test`` ones are only scored.
        mode: one of :data:`MODES`.
        recipe: the :class:`NetworkRecipe` (its seed is offset by the split's seed).
        mean_image: the preprocessing's mean image (``"pixel-mean"``), else ``None``.
        device, precision: where to train and the autocast choice (:func:`zfcore.devices.autocast_dtype`).
        progress: show a progress bar over each split's SGD steps.
        journal: where each finished split is recorded at once; a split recorded there (same recipe,
            network or architecture, images and split) is read instead of trained (:mod:`zfcore.analysis.journal`).

    Raises:
        ValueError: an unknown mode, a source of the wrong kind, bad pixels, or no splits.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; valid values: {MODES}")
    if not isinstance(source, ZFNet if mode == "finetune" else TrainConfig):
        raise ValueError(f"mode={mode!r} needs a {'ZFNet' if mode == 'finetune' else 'TrainConfig'} as source, "
                         f"got {type(source).__name__}")
    check_pixels("pixels", pixels)
    labels = np.asarray(labels)
    if not splits or len(pixels) != len(labels):
        raise ValueError(f"{len(splits)} splits, {len(pixels)} images and {len(labels)} labels: "
                         "give at least one split and one label per image")
    for name in ("steps", "batch_size"):
        check_positive(name, getattr(recipe, name))
    started = time.perf_counter()
    num_classes = int(labels.max()) + 1
    device = torch.device(device)
    result = SplitScores(mode, split_train_per_class(labels, splits), [], [], [], 0.0)
    if journal is not None:  # what determines a split's result, besides the split itself
        inputs = {"mode": mode, "recipe": asdict(recipe), "precision": precision, "pixels": content_digest(pixels),
                  "labels": content_digest(labels),
                  "source": weights_digest(source) if mode == "finetune" else
                  {name: value for name, value in asdict(source).items() if name not in HOW_RUN_FIELDS}}
    recorded_seconds = 0.0
    for split in splits:
        if journal is not None:
            key = journal_key(**inputs, seed=split.seed, train=content_digest(np.asarray(split.train)),
                              test=content_digest(np.asarray(split.test)))
            entry = journal.get(key)
            if entry is not None:
                result.seeds.append(split.seed)
                result.weight_decays.append(None)
                result.accuracies.append(entry["accuracy"])
                recorded_seconds += entry["seconds"]
                continue
            split_started = time.perf_counter()
        torch.manual_seed(recipe.seed + 1000 * split.seed)
        if mode == "finetune":
            model = copy.deepcopy(source)
            old = model.classifier.fc8
            model.classifier.fc8 = nn.Linear(old.in_features, num_classes)
            nn.init.normal_(model.classifier.fc8.weight, std=0.01)
            nn.init.zeros_(model.classifier.fc8.bias)
            model.num_classes = num_classes
            new = set(model.classifier.fc8.parameters())
        else:
            model = build_model(source.replace(num_classes=num_classes))
            new = set(model.parameters())
        model = model.to(device, memory_format=torch.channels_last)
        with tqdm(total=recipe.steps, desc=f"{mode}, {result.train_per_class}/class, split {split.seed}", unit="step",
                  leave=False, mininterval=5, disable=not progress) as bar:
            _train(model, new, pixels[split.train], labels[split.train], recipe, split.seed, mean_image, precision,
                   bar.update)
        result.seeds.append(split.seed)
        result.weight_decays.append(None)
        result.accuracies.append(_network_accuracy(model, pixels[split.test], labels[split.test], mean_image))
        if journal is not None:
            journal.add(key, mode=mode, train_per_class=result.train_per_class, seed=split.seed,
                        accuracy=result.accuracies[-1], seconds=round(time.perf_counter() - split_started, 1),
                        code_version=code_version())
    result.seconds = time.perf_counter() - started + recorded_seconds  # the splits read back: their own time
    return result


def _train(model: ZFNet, new: set[nn.Parameter], pixels: np.ndarray, labels: np.ndarray, recipe: NetworkRecipe,
           split_seed: int, mean_image: torch.Tensor | None, precision: str, on_step: Callable[[int], Any]) -> None:
    """``recipe.steps`` SGD steps on ``pixels`` (augmented batches), new parameters at ``lr``, the others scaled;
    ``on_step(1)`` after each."""
    optimizer = sgd_optimizer(model, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                              new=new, pretrained_lr_scale=recipe.pretrained_lr_scale)
    step_once = TrainingStep(model, optimizer, precision=precision, label_smoothing=recipe.label_smoothing,
                             renorm_rms=recipe.renorm_rms,
                             scheduler=warmup_cosine(optimizer, total_steps=recipe.steps,
                                                     warmup_steps=recipe.warmup_fraction * recipe.steps))
    batches = TensorBatches(pixels, labels, min(recipe.batch_size, len(labels)), train=True,
                            seed=recipe.seed + 1000 * split_seed, channels_last=True, mean_image=mean_image)
    device = model_device(model)
    model.train()
    step, epoch = 0, 0
    while step < recipe.steps:
        batches.set_epoch(epoch)
        for images, targets in batches:
            loss, _ = step_once(images.to(device), targets.to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {step} of {recipe.steps}")
            step += 1
            on_step(1)
            if step == recipe.steps:
                break
        epoch += 1
    model.eval()


@torch.no_grad()
def _network_accuracy(model: ZFNet, pixels: np.ndarray, labels: np.ndarray, mean_image: torch.Tensor | None) -> float:
    """Mean per-class accuracy of the network's own prediction on the centre view (fp32, eval mode)."""
    model.eval()
    logits = [model(model.prepare_images(batch)).float().cpu() for batch in pixel_batches(pixels, 250, mean_image=mean_image)]
    return mean_per_class_accuracy(torch.cat(logits), labels)


def learning_curve(labels: np.ndarray, sizes: Sequence[int], score: Callable[[list[Split]], SplitScores], *,
                   seeds: Sequence[int] = range(5), test_per_class: int = 50) -> list[SplitScores]:
    """Fig. 9: ``score(splits)`` for each number of training images per class in ``sizes``.

    Raises:
        ValueError: ``sizes`` empty, or not positive integers in increasing order.
    """
    if not sizes or any(isinstance(n, bool) or not isinstance(n, Integral) or n < 1 for n in sizes) \
            or list(sizes) != sorted(set(sizes)):
        raise ValueError(f"sizes={tuple(sizes)!r}: give positive integers in increasing order, e.g. (1, 5, 15, 30)")
    return [score(caltech_splits(labels, int(n), test_per_class, seeds)) for n in sizes]



def measure_transfer(model: ZFNet, config: TrainConfig, pixels: np.ndarray, labels: np.ndarray, *,
                     mean_image: torch.Tensor | None = None, frozen_sizes: Sequence[int] = (1, 2, 5, 10, 15, 30),
                     frozen_seeds: Sequence[int] = range(5), network_sizes: Sequence[int] = (15, 30),
                     network_seeds: Sequence[int] = range(1), scratch_sizes: Sequence[int] = (1, 5, 15, 30),
                     finetune_recipe: NetworkRecipe = NetworkRecipe(lr=0.02, pretrained_lr_scale=0.1),
                     scratch_recipe: NetworkRecipe = NetworkRecipe(lr=0.02, pretrained_lr_scale=1.0),
                     device: torch.device | str = "cpu", journal: Journal | None = None) -> dict[str, Any]:
    """Table 4 and Fig. 9 in one run: the frozen-fc7 softmax, fine-tuning and training from scratch.

    Args:
        model: the pretrained network; config: its recipe (the architecture built for ``"scratch"``).
        pixels, labels: every image of the dataset (:func:`dataset_pixels`).
        mean_image: the preprocessing's mean image, else ``None``.
        frozen_sizes, frozen_seeds: training images per class and splits of the frozen softmax (cheap).
        network_sizes: sizes of the fine-tuning and from-scratch rows; network_seeds: their splits (costly).
        scratch_sizes: sizes of Fig. 9's from-scratch curve (with ``network_seeds``).
        finetune_recipe, scratch_recipe: the :class:`NetworkRecipe` of each.
        device: where the networks train.
        journal: where each network's finished split is recorded, and read back from when the run is
            repeated (:func:`network_transfer`).

    Returns:
        A JSON-ready dict: ``config``, ``frozen``/``finetune``/``scratch`` (lists of
        :meth:`SplitScores.as_dict`), ``paper``, ``seconds``.
    """
    started = time.perf_counter()
    fc7 = pooled_features(model, pixels, mean_image=mean_image)["fc7"]  # all layers: the cache the probes share
    finetune = learning_curve(labels, network_sizes, lambda splits: network_transfer(
        model, pixels, labels, splits, mode="finetune", recipe=finetune_recipe, mean_image=mean_image,
        device=device, journal=journal), seeds=network_seeds)
    scratch = learning_curve(labels, sorted(set(network_sizes) | set(scratch_sizes)), lambda splits: network_transfer(
        config, pixels, labels, splits, mode="scratch", recipe=scratch_recipe, mean_image=mean_image,
        device=device, journal=journal), seeds=network_seeds)
    # the frozen softmax last: a run stopped among the networks goes on with them at once (journal)
    frozen = learning_curve(labels, frozen_sizes, lambda splits: frozen_transfer(
        fc7, labels, splits, method="frozen layers 1-7 + new softmax"), seeds=frozen_seeds)
    return {
        "config": {"images": len(labels), "classes": int(labels.max()) + 1, "input_size": int(pixels.shape[1]),
                   "test_per_class": 50, "frozen_sizes": list(frozen_sizes), "frozen_seeds": list(frozen_seeds),
                   "network_sizes": list(network_sizes), "scratch_sizes": sorted(set(network_sizes) | set(scratch_sizes)),
                   "network_seeds": list(network_seeds), "finetune_recipe": asdict(finetune_recipe),
                   "scratch_recipe": asdict(scratch_recipe), "features": "fc7 (ReLU output), standardised",
                   "images_to_input": "shorter side to the input size, centre square (bilinear)"},
        "frozen": [scores.as_dict() for scores in frozen],
        "finetune": [scores.as_dict() for scores in finetune],
        "scratch": [scores.as_dict() for scores in scratch],
        "paper": PAPER,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _row_at(rows: Sequence[Mapping[str, Any]], size: int) -> Mapping[str, Any] | None:
    """The row with ``size`` training images per class, or ``None``."""
    return next((row for row in rows if row["train_per_class"] == size), None)


def c9_verdict(transfer: Mapping[str, Any], *, shorter_scratch: Mapping[int, Mapping[str, Any]] | None = None,
               cv_layer: Sequence[Mapping[str, Any]] | None = None, confidence: float = 0.95) -> Verdict:
    """C9 (§5.2, Table 4: with layers 1-7 fixed and a new softmax on top the ImageNet features beat the best
    reported results, while the same network trained on Caltech alone "does terribly") from the transfer results.

    Measure: the frozen-fc7 softmax (the paper's protocol) minus the same architecture trained from scratch on
    Caltech-101, paired over the splits (the same seeds draw the same images), at every size both were run at;
    beside it the same margin for the layer chosen by cross-validation on the training images (``cv_layer``) and
    for the fine-tuned network (details only). The absolute comparison with the paper's earlier methods is not
    testable at 64 px and is not scored.

    Rule (:data:`C9_WIDE_MARGIN`, :data:`C9_CONVERGED`), the intervals paired t intervals over the splits:

    * ``agree``: fc7's margin lies above the wide margin at every size, and the baseline has converged;
    * ``partly``: fc7's margin lies above 0 at every size but not above the wide margin, or fc7 does not beat the
      baseline while the CV-chosen layer's margin lies above the wide margin at every size; the baseline converged;
    * ``differ``: at some size fc7's interval lies below the wide margin and reaches 0 or below (it does not beat
      the baseline), and the CV-chosen layer's interval lies below the wide margin at some size (a baseline trained
      longer only narrows a margin, so convergence is not needed here);
    * ``inconclusive``: the rest: intervals across a threshold, the CV-chosen layer not measured, or an ``agree``
      or ``partly`` margin measured against a baseline that was still improving;
    * ``pending``: no from-scratch rows on the frozen rows' splits.

    Args:
        transfer: a transfer result (:func:`measure_transfer`, as read from ``transfer.json``).
        shorter_scratch: shorter from-scratch recipes, steps -> their transfer result (first split), or ``None``.
        cv_layer: rows of the frozen softmax on the layer chosen by CV (``transfer-cv-layer.json``'s ``rows``).
        confidence: the intervals' level.

    Raises:
        ValueError: as :func:`~zfcore.analysis.probes.paired_split_difference`.
    """
    pretrained = PAPER["table4_caltech101"]["ImageNet-pretrained convnet"]
    scratch_paper = PAPER["table4_caltech101"]["Non-pretrained convnet"]
    sizes = [row["train_per_class"] for row in transfer["frozen"]
             if (other := _row_at(transfer["scratch"], row["train_per_class"])) is not None
             and len(set(row["seeds"]) & set(other["seeds"])) >= 2]
    wide, converged_limit = 100 * C9_WIDE_MARGIN, 100 * C9_CONVERGED
    measure = ("new softmax on frozen fc7 (layers 1-7 fixed, the paper's protocol) minus the same architecture "
               "trained from scratch on Caltech-101, points of mean per-class accuracy, paired over the splits")
    control = "the same network trained from scratch on Caltech-101 alone (pretraining removed)"
    rule = (f"paired {100 * confidence:.0f} % t intervals of the margin over from scratch. agree: fc7's interval above "
            f"C9_WIDE_MARGIN = {wide:g} points at every size and the baseline converged (doubling its steps changed its "
            f"first split by < C9_CONVERGED = {converged_limit:g} points). partly: fc7 above 0 but not above "
            f"{wide:g} at every size, or fc7 not beating the baseline while the layer chosen by CV on training images "
            f"is above {wide:g} at every size, with a converged baseline. differ: fc7 does not beat the baseline "
            f"(interval below {wide:g} and reaching 0) at some size, and the CV-chosen layer is below {wide:g} at some "
            "size. Otherwise inconclusive")
    if not sizes:
        return pending("C9", measure=measure, control=control, rule=rule,
                       waiting_for="from-scratch rows on the frozen rows' splits")
    margins = {n: paired_split_difference(_row_at(transfer["frozen"], n), _row_at(transfer["scratch"], n),
                                          confidence=confidence) for n in sizes}
    cv_rows = {row["train_per_class"]: row for row in cv_layer or ()}
    cv_margins = {n: paired_split_difference(cv_rows[n], _row_at(transfer["scratch"], n), confidence=confidence)
                  for n in sizes if n in cv_rows}
    finetune_margins = {n: paired_split_difference(row, _row_at(transfer["scratch"], n), confidence=confidence)
                        for n in sizes if (row := _row_at(transfer.get("finetune", ()), n)) is not None}
    long_steps = transfer["config"]["scratch_recipe"]["steps"]
    shorter = [steps for steps in (shorter_scratch or {}) if steps < long_steps]
    changes = {}
    if shorter:
        short_steps = max(shorter)
        for n in sizes:
            long_row, short_row = _row_at(transfer["scratch"], n), _row_at(shorter_scratch[short_steps]["scratch"], n)
            if short_row is not None:
                seed = short_row["seeds"][0]
                changes[n] = (long_row["accuracy_percent"][long_row["seeds"].index(seed)]
                              - short_row["accuracy_percent"][0])
    converged = bool(changes) and set(changes) == set(sizes) and all(abs(c) < converged_limit for c in changes.values())

    fc7_wide = all(m.low > C9_WIDE_MARGIN for m in margins.values())
    fc7_beats = all(m.low > 0 for m in margins.values())
    fc7_fails = [n for n, m in margins.items() if m.high < C9_WIDE_MARGIN and m.low <= 0]
    cv_complete = set(cv_margins) == set(sizes)
    cv_wide = cv_complete and all(m.low > C9_WIDE_MARGIN for m in cv_margins.values())
    cv_narrow = [n for n, m in cv_margins.items() if m.high < C9_WIDE_MARGIN]
    baseline = (f"doubling the from-scratch steps still changed the first split by "
                f"{', '.join(f'{c:+.1f}' for c in changes.values())} points" if changes and not converged
                else "no shorter from-scratch recipe shows whether the baseline converged" if not converged else "")
    longer = (f"the from-scratch baseline trained until doubling its steps changes its first split by less than "
              f"{converged_limit:g} points (e.g. {2 * long_steps:,} and {4 * long_steps:,} steps)")
    settle = ""
    if fc7_wide or (fc7_beats and not fc7_fails):
        outcome = ("agree" if fc7_wide else "partly") if converged else "inconclusive"
        reason = (f"Frozen fc7 beats training from scratch {'widely' if fc7_wide else 'but not widely'} at every size"
                  + ("." if converged else f"; but {baseline}, so the margin may shrink."))
        settle = "" if converged else longer
    elif fc7_fails and cv_wide:
        outcome = "partly" if converged else "inconclusive"
        reason = (f"Frozen fc7 does not beat training from scratch at {', '.join(map(str, fc7_fails))} per class, "
                  f"but the layer chosen by CV ({', '.join(sorted(set(layer for n in sizes for layer in cv_rows[n].get('layers', ()))))}) "
                  f"beats it by more than {wide:g} points at every size"
                  + ("." if converged else f"; {baseline}, so that margin may shrink."))
        settle = "" if converged else (longer + f": if the CV-chosen layer still wins by more than {wide:g} points, "
                                       "partly; if not, differ")
    elif fc7_fails and cv_narrow:
        outcome = "differ"
        reason = (f"Neither frozen fc7 nor the layer chosen by CV beats training from scratch by {wide:g} points "
                  f"(fc7 does not beat it at {', '.join(map(str, fc7_fails))} per class); a longer-trained baseline "
                  "would only narrow the margins.")
    else:
        outcome = "inconclusive"
        reason = ("Frozen fc7 does not beat training from scratch, and the layer chosen by CV is not measured at every "
                  "size." if fc7_fails and not cv_complete else "An interval spans a threshold of the rule.")
        settle = ("frozen transfer from the layer chosen by CV on training images, at every size"
                  if fc7_fails and not cv_complete else "more splits, to narrow the paired intervals")
    headline = max(sizes)
    paper = {str(n): {"pretrained": pretrained[str(n)][0], "non_pretrained": scratch_paper[str(n)][0],
                      "margin": round(pretrained[str(n)][0] - scratch_paper[str(n)][0], 1)}
             for n in sizes if str(n) in pretrained and str(n) in scratch_paper}
    details = {"sizes": sizes, "headline_size": headline,
               "fc7_minus_scratch": {str(n): in_points(m) for n, m in margins.items()},
               "cv_layer_minus_scratch": {str(n): in_points(m) | {"layers": cv_rows[n].get("layers")}
                                          for n, m in cv_margins.items()},
               "finetune_minus_scratch": {str(n): in_points(m) for n, m in finetune_margins.items()},
               "scratch_steps": long_steps, "scratch_change_on_doubling": {str(n): round(c, 2) for n, c in changes.items()},
               "converged": converged, "paper": paper}
    scratch_row = _row_at(transfer["scratch"], headline)
    return Verdict("C9", measure + f" (estimate at {headline} per class; every size in the details)",
                   margins[headline], control,
                   t_interval([a / 100 for a in scratch_row["accuracy_percent"]], confidence=confidence),
                   rule, outcome, reason, settle=settle, details=details, scale=100, digits=1)
