"""Feature generalisation and feature analysis as one reproducible run (Zeiler & Fergus 2014, §5.2-5.3).

``python -m zfcore transfer`` calls :func:`run_transfer` and :func:`write_results`: it decodes
Caltech-101 to the network's input size (:func:`caltech101_pixels`), measures Table 4 and Fig. 9
(:func:`zfcore.analysis.generalisation.measure_transfer`: a new softmax on frozen fc7, fine-tuning,
training from scratch, each network's steps fixed or chosen on held-out training images) and Table 7 (:func:`zfcore.analysis.probes.measure_probes`: a linear classifier on each
layer), adds what produced the numbers (dataset, network, wall and CPU time, torch threads) and writes
``transfer.json`` and ``probes.json``. :class:`TransferPlan`'s defaults are the settings of the committed
results in ``data/experiments``; the chapter's ``ci`` miniature is a smaller plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from zfcore.analysis.duplicates import NEAR_DUPLICATE_BITS, duplicate_report
from zfcore.analysis.journal import Journal
from zfcore.analysis.probes import (LOSSES, WEIGHT_DECAYS, frozen_transfer, layer_by_cross_validation,
                                    measure_probes)
from zfcore.analysis.top9 import content_digest
from zfcore.analysis.generalisation import measure_transfer
from zfcore.analysis.step_choice import check_step_grid
from zfcore.analysis.transfer import FEATURE_LAYERS, NetworkRecipe, dataset_pixels, pooled_features
from zfcore.data.caltech import Caltech101, caltech_splits, mean_per_class_accuracy
from zfcore.data.tiny_imagenet import TinyImageNet, cached_split
from zfcore.devices import describe_device, model_device
from zfcore.provenance import DIRTY, inside_repository, provenance, refuse_dirty
from zfcore.store import write_json_atomic
from zfcore.weights import Reference

__all__ = ["CONFIRMED_SAME_PHOTOGRAPH", "RESULT_FILES", "WHAT", "TransferPlan", "caltech101_files", "caltech101_pixels",
           "run_cv_layer", "run_duplicates", "run_transfer", "tiny_imagenet_references", "write_results"]

RESULT_FILES = {"transfer": "transfer.json", "probes": "probes.json", "cv_layer": "transfer-cv-layer.json",
                "duplicates": "caltech-duplicates.json"}
"""What each part of a run is written to."""
WHAT = ("transfer", "probes", "all")
FEATURES = "zfcore.analysis.transfer.pooled_features(grid=2): conv maps max-pooled to 2 x 2, fc6/fc7 ReLU outputs"
CONFIRMED_SAME_PHOTOGRAPH = (("lobster/image_0003.jpg", "n01983481/n01983481_230.JPEG"),
                             ("cougar_body/image_0046.jpg", "n02125311/n02125311_372.JPEG"))
"""(Caltech-101 file, Tiny ImageNet file) pairs judged the same photograph by eye: of the 56 candidate pairs within
:data:`~zfcore.analysis.duplicates.NEAR_DUPLICATE_BITS` bits (threshold fixed before the first look), each drawn side
by side at 64 px, these two; the others were different photographs (most of them one Caltech drawing against many
textureless images)."""


@dataclass(frozen=True)
class TransferPlan:
    """What one run measures. The defaults are those of the committed ``transfer.json`` and ``probes.json``.

    Attributes:
        frozen_sizes: training images per class of the frozen-fc7 softmax (Fig. 9's curve, Table 4's row).
        splits: random train/test splits of the frozen softmax and of the probes (the paper: 5).
        network_sizes: sizes of the fine-tuning and from-scratch rows of Table 4.
        scratch_sizes: further sizes of the from-scratch curve.
        network_seeds: splits of the fine-tuned and from-scratch networks (each one a training run).
        finetune_steps, scratch_steps: SGD steps of each network (:class:`NetworkRecipe`): one count, or an increasing
            grid to choose from at each size on held-out training images of the first split
            (:func:`zfcore.analysis.step_choice.choose_steps`).
        probe_layers: the layers of Table 7 (two or more, in order).
        probe_losses: the probes' classifiers, of :data:`zfcore.analysis.probes.LOSSES`.
        probe_per_class: training images per class of the probes (the paper: 30).
        probe_weight_decays: the grid each probe's weight decay is chosen from, by CV on the training images.
        probe_poolings: the grids conv maps are max-pooled to (``g`` x ``g`` cells each); with more than one, each
            conv probe reads out the pooling chosen by CV on the training images (fc layers are not pooled).
    """

    frozen_sizes: tuple[int, ...] = (1, 2, 5, 10, 15, 30)
    splits: int = 5
    network_sizes: tuple[int, ...] = (15, 30)
    scratch_sizes: tuple[int, ...] = (15, 30)
    network_seeds: int = 5
    finetune_steps: tuple[int, ...] = (75, 150, 300, 600, 1200)
    scratch_steps: tuple[int, ...] = (1500, 3000, 6000, 12000, 24000)
    probe_layers: tuple[str, ...] = FEATURE_LAYERS
    probe_losses: tuple[str, ...] = ("softmax",)
    probe_per_class: int = 30
    probe_weight_decays: tuple[float, ...] = WEIGHT_DECAYS
    probe_poolings: tuple[int, ...] = (2,)

    def __post_init__(self) -> None:
        for name in ("finetune_steps", "scratch_steps"):
            check_step_grid(name, getattr(self, name))
        for name in ("splits", "network_seeds", "probe_per_class"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name}={value!r} is not valid; give a whole number of at least 1")
        for name in ("frozen_sizes", "network_sizes", "scratch_sizes"):
            sizes = tuple(getattr(self, name))
            if not sizes or any(isinstance(n, bool) or not isinstance(n, Integral) or n < 1 for n in sizes) \
                    or list(sizes) != sorted(set(sizes)):
                raise ValueError(f"{name}={sizes!r} is not valid; give positive whole numbers in increasing order")
        unknown = [layer for layer in self.probe_layers if layer not in FEATURE_LAYERS]
        if unknown or len(self.probe_layers) < 2 or len(set(self.probe_layers)) != len(self.probe_layers):
            raise ValueError(f"probe_layers={tuple(self.probe_layers)!r} is not valid; give two or more different "
                             f"layers of {FEATURE_LAYERS}")
        decays = tuple(self.probe_weight_decays)
        if not decays or any(isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < float("inf")
                             for d in decays) or list(decays) != sorted(set(decays)):
            raise ValueError(f"probe_weight_decays={decays!r} is not valid; give positive numbers in increasing order")
        poolings = tuple(self.probe_poolings)
        if not poolings or any(isinstance(g, bool) or not isinstance(g, Integral) or g < 1 for g in poolings) \
                or list(poolings) != sorted(set(poolings)):
            raise ValueError(f"probe_poolings={poolings!r} is not valid; give positive whole numbers in increasing order")
        unknown = [loss for loss in self.probe_losses if loss not in LOSSES]
        if unknown or not self.probe_losses:
            raise ValueError(f"probe_losses={tuple(self.probe_losses)!r} is not valid; valid losses: {LOSSES}")


def caltech101_pixels(size: int = 64) -> tuple[np.ndarray, np.ndarray, str]:
    """Every Caltech-101 image (without ``BACKGROUND_Google``) at ``size`` px, from the data root or the mirror.

    Returns:
        ``(pixels, labels, description)``: uint8 ``[N, size, size, 3]`` (shorter side to ``size``, centre
        square; cached), int64 labels, and a one-line description of the data for the results.

    Raises:
        DatasetNotFoundError: Caltech-101 is neither extracted, nor in the mirror, nor downloadable.
    """
    dataset = Caltech101()
    pixels, labels = dataset_pixels(dataset, size)
    description = (f"Caltech-101 ({len(dataset.categories)} classes, {len(labels)} images, "
                   f"BACKGROUND_Google excluded; each image's shorter side to {size} px, centre square)")
    return pixels, labels, description


def caltech101_files() -> list[str]:
    """``class/file`` of every Caltech-101 image (without ``BACKGROUND_Google``), in the order of
    :func:`caltech101_pixels`."""
    return [f"{Path(path).parent.name}/{Path(path).name}" for path, _ in Caltech101().samples]


def run_transfer(reference: Reference, pixels: np.ndarray, labels: np.ndarray, *, what: str = "all",
                 dataset: str, plan: TransferPlan = TransferPlan(),
                 journal: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Table 4 / Fig. 9 and Table 7 on one network and one dataset, with provenance.

    Args:
        reference: the pretrained network (its device is where everything runs).
        pixels, labels: every image of the dataset (:func:`caltech101_pixels`).
        what: ``"transfer"``, ``"probes"`` or ``"all"`` (:data:`WHAT`).
        dataset: a description of the data, stored with the results.
        plan: the sizes, splits and recipes (:class:`TransferPlan`).
        journal: a file where each fine-tuned or from-scratch network's split is recorded as it finishes;
            a repeated run reads the splits recorded there instead of training them again
            (:class:`zfcore.analysis.journal.Journal`). ``None``: train every split.

    Returns:
        ``{"transfer": ..., "probes": ...}`` (the parts asked for): the dicts of :func:`measure_transfer`
        and :func:`measure_probes` with ``dataset``, ``network``, the provenance (:func:`zfcore.provenance.provenance`:
        ``code_version``, ``command``, ``data_sha256``, ``device``, ``recorded``), ``wall_seconds``, ``cpu_seconds``
        and ``torch_threads`` added (and ``features`` for the probes).

    Raises:
        ValueError: an unknown ``what``; as the measurements.
    """
    if what not in WHAT:
        raise ValueError(f"what={what!r} is not valid; valid values: {WHAT}")
    model, mean_image = reference.model, reference.preprocess.mean_image
    device = model_device(model)
    described = {"dataset": dataset, "network": repr(reference),
                 **provenance(data_sha256=content_digest(pixels), device=describe_device(device))}
    results = {}
    if what in ("transfer", "all"):
        wall, cpu = time.perf_counter(), time.process_time()
        result = measure_transfer(
            model, reference.config, pixels, labels, mean_image=mean_image, frozen_sizes=plan.frozen_sizes,
            frozen_seeds=range(plan.splits), network_sizes=plan.network_sizes, network_seeds=range(plan.network_seeds),
            scratch_sizes=plan.scratch_sizes,
            finetune_recipe=NetworkRecipe(steps=plan.finetune_steps[0], lr=0.02, pretrained_lr_scale=0.1),
            scratch_recipe=NetworkRecipe(steps=plan.scratch_steps[0], lr=0.02, pretrained_lr_scale=1.0),
            finetune_grid=plan.finetune_steps if len(plan.finetune_steps) > 1 else None,
            scratch_grid=plan.scratch_steps if len(plan.scratch_steps) > 1 else None, device=device,
            journal=None if journal is None else Journal(journal))
        results["transfer"] = {**result, **described, **_timing(wall, cpu)}
    if what in ("probes", "all"):
        wall, cpu = time.perf_counter(), time.process_time()
        pooled = {grid: pooled_features(model, pixels, mean_image=mean_image, grid=grid)  # every layer: cached, shared
                  for grid in plan.probe_poolings}
        features = {layer: pooled[plan.probe_poolings[0]][layer] if layer.startswith("fc") or len(pooled) == 1
                    else {f"{layer}, {grid}x{grid}": pooled[grid][layer] for grid in plan.probe_poolings}
                    for layer in plan.probe_layers}
        grids = " or ".join(f"{grid} x {grid}" for grid in plan.probe_poolings)
        result = measure_probes(features, labels, train_per_class=plan.probe_per_class, seeds=range(plan.splits),
                                losses=plan.probe_losses, grid=plan.probe_weight_decays,
                                pooling=f"conv: max over each cell of a {grids} grid"
                                        + (" (chosen by CV on each split's training images)" if len(pooled) > 1 else "")
                                        + "; fc: as is")
        results["probes"] = {**result, **described, "features": FEATURES, **_timing(wall, cpu)}
    return results


def run_cv_layer(reference: Reference, pixels: np.ndarray, labels: np.ndarray, *, dataset: str,
                 sizes: tuple[int, ...] = (15, 30), splits: int = 5, layers: tuple[str, ...] = FEATURE_LAYERS) -> dict[str, Any]:
    """Frozen transfer from the layer chosen by cross-validation on each split's training images
    (:func:`~zfcore.analysis.probes.layer_by_cross_validation`, softmax, the probes' weight-decay grid), at each size
    of ``sizes`` on the paper's splits (the same splits as the committed frozen, fine-tuned and from-scratch rows).

    Returns:
        ``{"cv_layer": {...}}`` for :func:`write_results`: ``config``, ``rows`` (one
        :meth:`~zfcore.analysis.probes.SplitScores.as_dict` per size, with the layer chosen on each split),
        ``dataset``, ``network``, ``code_version``, timing.

    Raises:
        ValueError: ``splits`` is not a positive whole number; as the measurement.
    """
    if isinstance(splits, bool) or not isinstance(splits, Integral) or splits < 1:
        raise ValueError(f"splits={splits!r} is not valid; give a whole number of at least 1")
    wall, cpu = time.perf_counter(), time.process_time()
    model, mean_image = reference.model, reference.preprocess.mean_image
    features = pooled_features(model, pixels, mean_image=mean_image)
    features = {layer: features[layer] for layer in layers}
    rows = [layer_by_cross_validation(features, labels, caltech_splits(labels, size, 50, range(splits)),
                                      method="frozen layers, layer and weight decay chosen by CV").as_dict()
            for size in sizes]
    return {"cv_layer": {"config": {"sizes": list(sizes), "splits": splits, "test_per_class": 50, "layers": list(layers),
                                    "loss": "softmax", "features": FEATURES,
                                    "choice": "per split: each layer's weight decay by 3-fold CV on the training images "
                                              "(the probes' grid), then the layer with the best CV accuracy"},
                         "rows": rows, "dataset": dataset, "network": repr(reference),
                         **provenance(data_sha256=content_digest(pixels), device=describe_device(model_device(model))),
                         **_timing(wall, cpu)}}


def tiny_imagenet_references() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Tiny ImageNet's ``train`` and ``val`` pixels with their file names (``wnid/file``, ``val/file``)."""
    tiny = TinyImageNet()
    names = {"train": [f"{path.parent.parent.name}/{path.name}" for path in tiny.files("train")[0]],
             "val": [f"val/{path.name}" for path in tiny.files("val")[0]]}
    return {split: (cached_split(split).images, files) for split, files in names.items()}


def run_duplicates(reference: Reference, pixels: np.ndarray, labels: np.ndarray, *, dataset: str,
                   caltech_files: list[str], committed_frozen: list[dict[str, Any]], splits: int = 5,
                   max_distance: int = NEAR_DUPLICATE_BITS,
                   confirmed: tuple[tuple[str, str], ...] = CONFIRMED_SAME_PHOTOGRAPH,
                   references: Mapping[str, tuple[np.ndarray, list[str]]] | None = None) -> dict[str, Any]:
    """Caltech-101 images that are also Tiny ImageNet images, and what they do to the frozen-fc7 rows of Table 4.

    Every Caltech image is compared with every Tiny ImageNet image (train and val) by 64-bit DCT hash
    (:func:`~zfcore.analysis.duplicates.duplicate_report`); the pairs within ``max_distance`` bits are listed with
    their files, and those of ``confirmed`` (judged by eye) are checked to be among them. The frozen-fc7 softmax
    of each committed frozen row is fitted again on each split and scored on the split's test images with and
    without the confirmed Caltech images.

    Args:
        reference: the pretrained network; pixels, labels: every Caltech-101 image (:func:`caltech101_pixels`).
        dataset: the data's description; caltech_files: ``class/file`` of each image, in the order of ``pixels``.
        committed_frozen: the committed ``transfer.json``'s ``frozen`` rows (sizes and accuracies per split).
        splits: splits per size (as the committed rows); max_distance, confirmed: as above.
        references: set name -> (uint8 pixels, file names) of the pretraining images (default
            :func:`tiny_imagenet_references`).

    Returns:
        ``{"duplicates": {...}}`` for :func:`write_results`: the report (``hash``, ``max_distance``, ``queries``,
        ``sets``), ``judged_by_eye``, ``confirmed``, ``frozen_fc7_without_confirmed_test_images`` (per size and
        split: committed, refitted and without-duplicates accuracy in percent),
        ``splits_with_a_confirmed_image_in_training``, provenance and timing.

    Raises:
        ValueError: ``caltech_files`` not one per image, or a confirmed pair that is not a candidate pair.
    """
    if len(caltech_files) != len(pixels):
        raise ValueError(f"{len(caltech_files)} file names for {len(pixels)} images: give one per image, in order")
    wall, cpu = time.perf_counter(), time.process_time()
    references = tiny_imagenet_references() if references is None else references
    report = duplicate_report(pixels, {name: images for name, (images, _) in references.items()},
                              max_distance=max_distance)
    for name, part in report["sets"].items():
        part["pairs"] = [{"caltech": caltech_files[query], "tiny_imagenet": references[name][1][match],
                          "distance": int(distance), "caltech_index": int(query)} for query, match, distance in part["pairs"]]
    same = [pair for part in report["sets"].values() for pair in part["pairs"]
            if (pair["caltech"], pair["tiny_imagenet"]) in set(confirmed)]
    unmatched = set(confirmed) - {(pair["caltech"], pair["tiny_imagenet"]) for pair in same}
    if unmatched:
        raise ValueError(f"confirmed={sorted(unmatched)!r} are not candidate pairs within {max_distance} bits: "
                         f"judge the candidates again")
    dropped = np.array(sorted({pair["caltech_index"] for pair in same}))
    fc7 = pooled_features(reference.model, pixels, mean_image=reference.preprocess.mean_image)["fc7"]
    effect, in_training = [], {}
    for row in committed_frozen:
        size = row["train_per_class"]
        drawn = caltech_splits(labels, size, 50, range(splits))
        fitted = frozen_transfer(fc7, labels, drawn, progress=False)
        in_training[str(size)] = [split.seed for split in drawn if np.isin(dropped, split.train).any()]
        for index, split in enumerate(drawn):
            kept = split.test[~np.isin(split.test, dropped)]
            without = mean_per_class_accuracy(fitted.classifiers[index].scores(fc7[kept]), labels[kept])
            effect.append({"train_per_class": size, "seed": split.seed,
                           "committed_percent": row["accuracy_percent"][index],
                           "refitted_percent": round(100 * fitted.accuracies[index], 2),
                           "without_duplicates_percent": round(100 * without, 2)})
    device = describe_device(model_device(reference.model))
    return {"duplicates": {**report, "judged_by_eye": "every pair within max_distance drawn side by side at 64 px; "
                                                      "'confirmed': the same photograph",
                           "confirmed": same, "frozen_fc7_without_confirmed_test_images": effect,
                           "splits_with_a_confirmed_image_in_training": in_training, "dataset": dataset,
                           "network": repr(reference), **provenance(data_sha256=content_digest(pixels), device=device),
                           **_timing(wall, cpu)}}


def _timing(wall: float, cpu: float) -> dict[str, Any]:
    """Wall and CPU seconds since ``wall`` / ``cpu`` and the torch thread count."""
    return {"wall_seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
            "torch_threads": torch.get_num_threads()}


def write_results(results: dict[str, dict[str, Any]], out_dir: str | Path, *, allow_dirty: bool = False) -> list[Path]:
    """Write each part of :func:`run_transfer`'s results to ``out_dir/<part>.json`` (atomically, replacing it).

    Args:
        results: :func:`run_transfer`'s or :func:`run_cv_layer`'s parts.
        out_dir: the folder of the JSON files.
        allow_dirty: write into the repository although the results came from uncommitted code (each part
            records it as ``allow_dirty``). Default ``False``: refused. Outside the repository a dirty result is
            written, its ``code_version`` saying so.

    Returns:
        The files written.

    Raises:
        ValueError: a part other than those of :data:`RESULT_FILES`.
        DirtyTreeError: a part made from uncommitted code, for a folder inside the repository, without
            ``allow_dirty`` (:func:`zfcore.provenance.refuse_dirty`). Nothing was written.
    """
    out_dir = Path(out_dir)
    for part, result in results.items():  # every part checked before any is written
        if part not in RESULT_FILES:
            raise ValueError(f"part={part!r} is not valid; valid parts: {tuple(RESULT_FILES)}")
        refuse_dirty(out_dir / RESULT_FILES[part], allow_dirty=allow_dirty, version=result["code_version"])
    written = []
    for part, result in results.items():
        if result["code_version"].endswith(DIRTY) and inside_repository(out_dir):
            result = {**result, "allow_dirty": True}
        written.append(write_json_atomic(out_dir / RESULT_FILES[part], result))
    return written
