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

How long each network trains is chosen on held-out training images (:mod:`zfcore.analysis.step_choice`); Table 4
as one run and the C9 verdict are :mod:`zfcore.analysis.generalisation`.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import asdict, dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from zfcore.analysis.journal import Journal, journal_key
from zfcore.analysis.probes import SplitScores, split_train_per_class
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
from zfcore.store import cached
from zfcore.training_step import TrainingStep, sgd_optimizer, warmup_cosine

__all__ = ["FEATURE_LAYERS", "MODES", "PAPER", "NetworkRecipe", "dataset_pixels", "learning_curve", "network_transfer",
           "pooled_features"]

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
