"""The reference networks published with zfbook, modelled on torchvision's ``WeightsEnum``.

Each :class:`ReferenceWeights` member names a tracked file of the repository's ``data/reference``
folder, its SHA-256, typed metadata (:class:`WeightsMeta`: data, recipe, measured accuracy) and the
preprocessing the network was trained with (:meth:`Weights.transforms`)::

    from zfcore.weights import ReferenceWeights
    weights = ReferenceWeights.DEFAULT
    print(weights.meta.top1)                  # 0.4093
    reference = weights.load()                # model in eval mode + the run's full metadata
    inputs = weights.transforms()(pixels)     # uint8 [B, 64, 64, 3] -> the network's input

A member forwards attribute access to its :class:`Weights` (``ReferenceWeights.DEFAULT.load()`` is
``ReferenceWeights.DEFAULT.value.load()``).

Where the files come from (:func:`reference_file`): in a clone or an editable install, the tracked
file itself; from an installed package (``pip install git+...``), a copy fetched once from the
repository into ``~/.cache/zfbook/reference`` (``$ZFBOOK_CACHE/reference``) and checked against its SHA-256.
Offline, outside a clone: put the file in that folder, or load a downloaded copy with :func:`load_reference`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zfcore.checkpoints import (CheckpointError, build_model, config_from_dict, load_checkpoint, load_weights,
                                save_checkpoint)
from zfcore.data.loader import normalize
from zfcore.models import ZFNet
from zfcore.paths import CACHE_ENV, EXPERIMENTS_DIR, REFERENCE_DIR, cache_root, raw_url
from zfcore.profiles import TrainConfig
from zfcore.store import ChecksumError, download, sha256

__all__ = [
    "EXPERIMENT_WEIGHTS_SHA256",
    "REFERENCE_DIR",
    "REFERENCE_URL",
    "Reference",
    "ReferenceWeights",
    "Weights",
    "WeightsMeta",
    "experiment_weights",
    "export_reference",
    "load_reference",
    "reference_file",
    "verified",
    "weights_file_name",
]

REFERENCE_URL = raw_url("data/reference")
"""Where an installed package fetches the tracked files from: ``data/reference`` of
:data:`zfcore.paths.REPOSITORY_URL` on its branch."""
REFERENCE_SHA256 = {
    "zf64-tiny-imagenet.pt": "926a30192bd7db7f673fda6ec58731c6f9d0bb057d6e56b72d5c2d12e9f485b7",
    "fig4.pt": "f4a5bb79f96f864820a036e907fc2a91788864db353bb47edcd4d29c9a495c5c",
    "alexnet64-tiny-imagenet.pt": "560ac948ad7a834010760f5fcc02247c44e47ab67a10063f649c7966f2c9c4da",
}
"""SHA-256 of every tracked reference file (a test checks them against ``data/reference``)."""


def _cache_dir() -> Path:
    return cache_root() / "reference"


def reference_file(name: str) -> Path:
    """The local path of the tracked reference file ``name``, fetched and verified if not in a checkout.

    The tracked file is checked against its SHA-256 on every call (about 30 ms for 12 MB): a damaged or
    edited file is never loaded as the reference.

    Raises:
        ValueError: ``name`` is not a reference file.
        CheckpointError: the tracked file's checksum does not match (the message says how to restore it), or
            the download failed or its checksum does not match (nothing is kept).
    """
    if name not in REFERENCE_SHA256:
        raise ValueError(f"name={name!r} is not a reference file; valid names: {tuple(REFERENCE_SHA256)}")
    tracked = REFERENCE_DIR / name
    if tracked.is_file():
        return verified(tracked, REFERENCE_SHA256[name], restore=f"restore it with 'git checkout -- "
                        f"data/reference/{name}', or delete it to download it from {REFERENCE_URL}/{name}")
    cached = _cache_dir() / name
    if cached.is_file() and sha256(cached) == REFERENCE_SHA256[name]:
        return cached
    url = f"{REFERENCE_URL}/{name}"
    try:
        return download(url, cached, sha256=REFERENCE_SHA256[name])
    except ChecksumError as error:
        raise CheckpointError(f"{error}: the repository's reference files changed; upgrade zfcore (pip install -U) "
                              f"and try again") from None
    except OSError as error:
        stale = ", replacing the file there (its SHA-256 differs)" if cached.is_file() else ""
        networks = {member.value.file for member in ReferenceWeights}
        loaded = "; or load the downloaded file with zfcore.load_reference(path)" if name in networks else ""
        raise CheckpointError(
            f"could not fetch the reference file {name} from {url} ({error}). Without internet: use a clone of the "
            f"repository (its data/reference holds the file); or download {url} on a machine with internet and put "
            f"it in the cache folder as {cached}{stale} (${CACHE_ENV}/reference/{name}, by default "
            f"~/.cache/zfbook/reference/{name}){loaded}"
        ) from error


def verified(path: Path, expected: str, *, restore: str) -> Path:
    """``path``, after checking that its SHA-256 is ``expected``.

    Raises:
        CheckpointError: another SHA-256: the file is damaged or was changed; the message names the file, both
            digests and ``restore`` (how to get the right file back).
    """
    found = sha256(path)
    if found != expected:
        raise CheckpointError(f"{path} has SHA-256 {found}, expected {expected}: the file is damaged or was changed; "
                              f"{restore}")
    return path


EXPERIMENT_WEIGHTS_SHA256 = {
    "verdict-runs/book-seed1": "8ee7ef81160d90cbb56cb19c3eaca5788d8e60a2593adf795fd7191a70c4eeaf",
    "verdict-runs/no-label-smoothing": "4946f103f3b8763cec0eabbace2155855a91e854b5b8d9fd037e2d88263f0b0d",
    "verdict-runs/alexnet-seed1": "0e0484837214bb335024b3305758d5684b93072d04565e4429b411b2a04e1ad3",
    "verdict-runs/no-renorm": "c6133499b0b75cd43efe31551aab60574e442dbe1d95faca5add118d00d0fe43",
    "verdict-runs/paper-inputs-renorm": "0e7edda110bc1c497153e83f056ad261252a9f6bc6f05c0f0997cf647d12a604",
    "verdict-runs/paper-inputs-no-renorm": "f44ef35d9366d39892e11c6d20aa821b62b6a95c5a5651c51485e2e012a3df05",
    "verdict-runs/random-labels": "ce31750e679e56572fd02fa3b0c034fda1ec1c4f18a22573991ded40905c2336",
}
"""SHA-256 of every network an experiment keeps in the repository (``data/experiments/NAME/RUN.pt``, bf16 weights
with their metadata, as the reference's), by ``"NAME/RUN"``; listed as each is committed (a test checks them)."""


def experiment_weights(experiment: str, run: str) -> "Reference":
    """The network that run ``run`` of ``experiment`` trained (kept in ``data/experiments/NAME/RUN.pt``), checked
    against its SHA-256, in eval mode with its metadata (recipe, metrics, history; see :func:`load_reference`).

    Raises:
        ValueError: no network of that run is kept (naming the ones that are).
        CheckpointError: the file is missing or damaged (its SHA-256 differs).
    """
    key = f"{experiment}/{run}"
    if key not in EXPERIMENT_WEIGHTS_SHA256:
        raise ValueError(f"experiment={experiment!r}, run={run!r}: no kept network; valid: "
                         f"{tuple(EXPERIMENT_WEIGHTS_SHA256)}")
    path = EXPERIMENTS_DIR / f"{key}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: the network of {key} is kept in a clone of the repository")
    return load_reference(verified(path, EXPERIMENT_WEIGHTS_SHA256[key],
                                   restore=f"restore it with 'git checkout -- data/experiments/{key}.pt'"))


@dataclass(frozen=True)
class WeightsMeta:
    """What a reference network is, as torchvision's ``Weights.meta`` (typed).

    Attributes:
        dataset, num_classes, input_size: the data it was trained on.
        profile: the recipe's profile name (:mod:`zfcore.profiles`).
        preprocessing: ``"mean-std"`` or ``"pixel-mean"`` (see :func:`zfcore.data.loader.normalize`).
        epochs, train_minutes: length of training and its wall time on ``hardware``.
        top1, top5: validation accuracy, single centre view, all ``val_images``.
        top1_10crop, top5_10crop: the same with the paper's 10 crops.
        val_images: how many validation images were evaluated.
        num_params: parameters of the network.
        style: ``"zf"`` (Fig. 3) or ``"alexnet"`` (Fig. 6's baseline, :func:`zfcore.models.alexnet_style`).
        hardware: what it was trained on.
    """

    dataset: str
    num_classes: int
    input_size: int
    profile: str
    preprocessing: str
    epochs: int
    train_minutes: float
    top1: float
    top5: float
    top1_10crop: float
    top5_10crop: float
    val_images: int
    num_params: int
    style: str = "zf"
    hardware: str = "2-core x86 CPU (AVX512-BF16)"


@dataclass(frozen=True)
class Weights:
    """One reference network: its file, checksum and metadata; :meth:`load` gives the model."""

    file: str
    meta: WeightsMeta

    def path(self) -> Path:
        """The local weights file (fetched and verified if needed, see :func:`reference_file`)."""
        return reference_file(self.file)

    def load(self) -> "Reference":
        """The network in eval mode, fp32, with the run's full metadata (history, classes, ...)."""
        return load_reference(self.path())

    def transforms(self) -> "Preprocess":
        """uint8 ``[B, H, W, 3]`` images -> this network's input, as it was trained.

        Mean/std needs nothing from the file; the paper's pixel mean is read from it (the whole file).
        """
        if self.meta.preprocessing == "mean-std":
            return Preprocess("mean-std", None)
        return self.load().preprocess

    def __repr__(self) -> str:
        m = self.meta
        return (f"Weights({self.file}: {NETWORK_NAMES[m.style]}-{m.input_size} on {m.dataset} ({m.num_classes} classes), "
                f"top-1 {100 * m.top1:.1f} %, top-5 {100 * m.top5:.1f} %, {m.epochs} epochs)")


NETWORK_NAMES = {"zf": "ZF", "alexnet": "AlexNet-style"}
"""How reprs name each :attr:`TrainConfig.style`."""


def weights_file_name(config: TrainConfig) -> str:
    """The published weights file of a run of ``config``: ``{style}{input_size}-{dataset}.pt``, e.g.
    ``zf64-tiny-imagenet.pt`` for the book's reference run, ``alexnet64-tiny-imagenet.pt`` for Fig. 6's."""
    return f"{config.style}{config.input_size}-{config.dataset}.pt"


class ReferenceWeights(enum.Enum):
    """The published reference networks. ``DEFAULT`` is the book's (the ``book`` profile's run);
    ``ALEXNET64_TINY_IMAGENET`` is Fig. 6's baseline, the same recipe with Krizhevsky et al.'s conv1 and conv2
    (the ``book-alexnet`` profile)."""

    ZF64_TINY_IMAGENET = Weights(
        file="zf64-tiny-imagenet.pt",
        meta=WeightsMeta(
            dataset="tiny-imagenet", num_classes=200, input_size=64, profile="book", preprocessing="mean-std",
            epochs=28, train_minutes=83.1, top1=0.4093, top5=0.6717, top1_10crop=0.43, top5_10crop=0.6876,
            val_images=10000, num_params=6_030_664,
        ),
    )
    ALEXNET64_TINY_IMAGENET = Weights(
        file="alexnet64-tiny-imagenet.pt",
        meta=WeightsMeta(
            dataset="tiny-imagenet", num_classes=200, input_size=64, profile="book-alexnet", preprocessing="mean-std",
            epochs=28, train_minutes=41.4, top1=0.3755, top5=0.6392, top1_10crop=0.3964, top5_10crop=0.6589,
            val_images=10000, num_params=6_051_400, style="alexnet", hardware="2-core Intel Xeon CPU (AVX512-BF16)",
        ),
    )
    DEFAULT = ZF64_TINY_IMAGENET

    def __getattr__(self, name: str) -> Any:
        """``member.load()``, ``member.meta``, ``member.path()``, ... are those of ``member.value``."""
        if name.startswith("_"):  # the enum's own machinery (and copy/pickle probes) never reach the value
            raise AttributeError(name)
        try:
            return getattr(self.value, name)
        except AttributeError:
            raise AttributeError(f"{self!r} has no attribute {name!r} (nor has its Weights)") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {name for name in dir(self.value) if not name.startswith("_")})

    def __repr__(self) -> str:
        return f"ReferenceWeights.{self.name}"


class Preprocess:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` as a network was trained (mean/std or the paper's mean image)."""

    def __init__(self, preprocessing: str, mean_image: torch.Tensor | None) -> None:
        if preprocessing == "pixel-mean" and mean_image is None:
            raise CheckpointError("preprocessing='pixel-mean' but the checkpoint holds no mean image")
        self.preprocessing = preprocessing
        self.mean_image = mean_image if preprocessing == "pixel-mean" else None

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.array(pixels, dtype=np.uint8))
        return normalize(tensor, self.mean_image).contiguous()

    def __repr__(self) -> str:
        return f"Preprocess({self.preprocessing!r})"


@dataclass(repr=False)
class Reference:
    """A trained network and what it is: ``model`` (eval mode, fp32), ``meta`` and ``preprocess``.

    ``meta`` holds ``recipe`` (the :class:`TrainConfig` as a dict), ``metrics`` (final top-1/top-5, single
    and 10-crop, wall time, img/s), ``history`` (per-epoch rows), ``code_version``, ``dataset_sha256``,
    ``classes`` and ``class_names``. ``preprocess`` turns uint8 images into the network's input.
    """

    model: ZFNet
    meta: dict[str, Any]
    preprocess: Preprocess

    @property
    def config(self) -> TrainConfig:
        return config_from_dict(self.meta["recipe"])

    def __repr__(self) -> str:
        config = self.config
        metrics = self.meta.get("metrics") or {}
        history = self.meta.get("history") or [{}]
        top1 = metrics.get("val_top1", history[-1].get("val_top1"))
        accuracy = f", val top-1 {100 * top1:.1f} %" if top1 is not None else ""
        return (f"Reference({NETWORK_NAMES[config.style]}-{config.input_size} on {config.dataset}, {config.num_classes} classes, "
                f"{self.meta.get('epochs_trained', len(history))} epochs{accuracy}, "
                f"code {str(self.meta.get('code_version', 'unknown'))[:12]})")


def export_reference(checkpoint: str | Path, destination: str | Path, *, metrics: dict[str, Any],
                     dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write a small weights file (``dtype`` weights + metadata) from a training checkpoint."""
    state = load_checkpoint(checkpoint)
    meta = {**_meta_of(state), "metrics": metrics, "weights_dtype": str(dtype)}
    weights = {key: value.to(dtype) if value.is_floating_point() else value for key, value in state["model"].items()}
    save_checkpoint({"config": state["config"], "model": weights, "epoch": state["epoch"], "meta": meta,
                     "mean_image": state.get("mean_image")}, destination)
    return Path(destination)


def load_reference(path: str | Path | ReferenceWeights | None = None) -> Reference:
    """A trained network with its metadata, in eval mode: the book's reference by default.

    Args:
        path: a weights file written by :func:`export_reference`, a training ``checkpoint.pt``, or a
            :class:`ReferenceWeights` member (default: ``ReferenceWeights.DEFAULT``).

    Raises:
        CheckpointError: the file is missing, corrupt, unsafe (a pickle that could run code is refused,
            never executed), not a network (e.g. a Fig. 4 snapshot), or its weights do not fit its config.
    """
    if path is None or isinstance(path, ReferenceWeights):
        path = (path or ReferenceWeights.DEFAULT).value.path()
    state = load_checkpoint(path, kind="network")
    config = config_from_dict(state["config"])
    model = build_model(config)
    load_weights(model, state["model"], path)
    return Reference(model=model.eval(), meta=_meta_of(state),
                     preprocess=Preprocess(config.preprocessing, state.get("mean_image")))


def _meta_of(state: dict[str, Any]) -> dict[str, Any]:
    """A weights file's metadata; for a training checkpoint, what it knows of its run."""
    if "meta" in state:
        return state["meta"]
    return {
        "recipe": state["config"],
        "history": state.get("history", []),
        "code_version": state.get("code_version", "unknown"),
        "dataset_sha256": state.get("dataset_sha256"),
        "classes": state.get("classes"),
        "class_names": state.get("class_names"),
        "epochs_trained": state.get("epoch"),
    }
