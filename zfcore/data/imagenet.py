"""ImageNet, Imagenette and the 1000 ImageNet sample images, read from files.

* :func:`imagenet`: ILSVRC-2012 from a folder you provide (``<root>/train/<wnid>/*.JPEG``,
  ``<root>/val/<wnid>/*.JPEG``; default root ``<data root>/imagenet``). ImageNet has no public
  download: get it from https://image-net.org after accepting its terms of access and sort the
  validation images into class folders.
* :func:`imagenette`: the 10-class ImageNet subset through :class:`torchvision.datasets.Imagenette`,
  found with :func:`~zfcore.data.locate.find_or_fetch` (data root -> mirror -> fast.ai download).
* :func:`imagenet_samples`: one image of each ImageNet class, the probe set for the paper's
  occlusion and correspondence experiments (Fig. 7: Pomeranian, car wheel, Afghan hound).

Files are read with :func:`~zfcore.data.images.load_rgb_checked`, so unreadable ones can be skipped
(:class:`~zfcore.data.loader.FileBatches`); the paper's crops are in :mod:`zfcore.data.transforms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torchvision
from PIL import Image

from zfcore.data.images import load_rgb_checked
from zfcore.data.locate import (Archive, CorruptArchiveError, DataRootError, DatasetNotFoundError, data_root,
                                find_or_fetch)

__all__ = [
    "IMAGENETTE",
    "IMAGENET_SAMPLES",
    "ImageNetSamples",
    "Sample",
    "find_sample",
    "imagenet",
    "imagenet_class_names",
    "imagenet_samples",
    "imagenette",
]

SPLITS = ("train", "val")
IMAGENETTE = {  # size -> archive; fast.ai publishes MD5s only (torchvision's), so no checksum here
    size: Archive(
        name=f"Imagenette ({size})",
        extracted=stem,
        filename=f"{stem}.tgz",
        url=f"https://s3.amazonaws.com/fast-ai-imageclas/{stem}.tgz",
        sha256=None,
        marker="val/n03888257",  # the last class folder (parachute)
    )
    for size, stem in (("full", "imagenette2"), ("320px", "imagenette2-320"), ("160px", "imagenette2-160"))
}
IMAGENET_SAMPLES = Archive(
    name="ImageNet samples",
    extracted="imagenet-samples",
    filename="imagenet-samples.zip",
    url=None,  # a public one-per-class sample; no official archive
    sha256=None,
    marker="n02112018_Pomeranian.JPEG",
)


def imagenet(
    root: str | Path | None = None, split: str = "train", *, transform: Callable[[Any], Any] | None = None
) -> torchvision.datasets.ImageFolder:
    """ILSVRC-2012 ``split`` as an :class:`~torchvision.datasets.ImageFolder` (labels: sorted wnids).

    Args:
        root: the folder holding ``train/`` and ``val/``, each with one folder per wnid
            (default: ``<data root>/imagenet``).
        split: ``"train"`` (default) or ``"val"``.
        transform: applied to the RGB PIL image (e.g. :func:`train_transform`).

    Raises:
        ValueError: an unknown ``split``.
        DatasetNotFoundError: the folder is missing or holds no class folders.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
    root = data_root() / "imagenet" if root is None else Path(root)
    try:
        return torchvision.datasets.ImageFolder(root / split, transform=transform, loader=load_rgb_checked)
    except FileNotFoundError as error:
        raise DatasetNotFoundError(
            f"ImageNet {split} was not found. Looked in:\n  - {root / split} ({error})\n"
            f"ImageNet has no public download: get ILSVRC-2012 from https://image-net.org (after accepting its "
            f"terms of access), arrange it as {root}/{{train,val}}/<wnid>/*.JPEG (validation images sorted "
            f"into class folders), or pass its path as root (or set ZFBOOK_DATA_ROOT to the folder holding "
            f"imagenet/)."
        ) from error


def imagenette(
    split: str = "train",
    *,
    size: str = "full",
    root: str | Path | None = None,
    transform: Callable[[Any], Any] | None = None,
    download: bool = True,
) -> torchvision.datasets.Imagenette:
    """Imagenette ``split`` (10 ImageNet classes, ~9.5k train / ~3.9k val images).

    Args:
        split: ``"train"`` (default) or ``"val"``.
        size: ``"full"`` (default), ``"320px"`` or ``"160px"`` (shorter side).
        root: the folder holding ``imagenette2/`` (default: the data root). Missing there, it is
            extracted from ``$ZFBOOK_MIRROR/imagenette2.tgz`` or downloaded from fast.ai.
        transform: applied to the RGB PIL image.
        download: allow the download (default ``True``).

    Raises:
        ValueError: an unknown ``split`` or ``size``.
        DatasetNotFoundError: nowhere to be found (the message names every place looked in).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
    if size not in IMAGENETTE:
        raise ValueError(f"size={size!r} is not valid; valid sizes: {tuple(IMAGENETTE)}")
    root = data_root() if root is None else Path(root)
    find_or_fetch(IMAGENETTE[size], root=root, download=download)
    return torchvision.datasets.Imagenette(
        root, split=split, size=size, download=False, transform=transform, loader=load_rgb_checked
    )


class Sample(NamedTuple):
    """One probe image: ``image`` (RGB PIL), its class's ``wnid`` and readable ``class_name``."""

    image: Image.Image
    wnid: str
    class_name: str


class ImageNetSamples(Sequence[Sample]):
    """One image of each ImageNet class, read on access.

    Args:
        folder: the extracted ``imagenet-samples`` folder of ``<wnid>_<class_name>.JPEG`` files.

    Attributes:
        paths, wnids, class_names: per image, sorted by wnid (the ImageNet-1k label order).
    """

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(Path(folder).glob("n*_*.JPEG"))
        self.wnids = [path.stem.split("_", 1)[0] for path in self.paths]
        self.class_names = [path.stem.split("_", 1)[1].replace("_", " ") for path in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return Sample(load_rgb_checked(self.paths[index]), self.wnids[index], self.class_names[index])


def imagenet_samples(*, root: str | Path | None = None, download: bool = True) -> ImageNetSamples:
    """The 1000 ImageNet sample images (``imagenet-samples.zip``), extracted from the mirror if needed.

    Args:
        root: the folder holding ``imagenet-samples/`` (default: the data root).
        download: passed to ``find_or_fetch`` (the samples have no public URL: data root or mirror only).
    """
    folder = find_or_fetch(IMAGENET_SAMPLES, root=None if root is None else Path(root), download=download)
    return ImageNetSamples(folder)


def find_sample(samples: ImageNetSamples, name: str) -> Sample:
    """The sample whose class name is ``name`` (case-insensitive), else the only one containing it.

    Args:
        samples: from :func:`imagenet_samples`.
        name: e.g. ``"Pomeranian"``, ``"car wheel"``, ``"Afghan hound"`` (underscores count as spaces).

    Raises:
        ValueError: no class matches, or several contain ``name`` and none equals it (all are named).
    """
    query = name.replace("_", " ").lower()
    lowered = [class_name.lower() for class_name in samples.class_names]
    if query in lowered:
        return samples[lowered.index(query)]
    matches = [index for index, class_name in enumerate(lowered) if query in class_name]
    if len(matches) != 1:
        found = [samples.class_names[index] for index in matches]
        raise ValueError(f"name={name!r} matches {len(matches)} ImageNet classes {found}; expected exactly one")
    return samples[matches[0]]


def imagenet_class_names(wnids: Sequence[str]) -> list[str]:
    """Readable names for ``wnids``, from the sample archive's file names if it is at hand, else the wnids.

    Raises:
        CorruptArchiveError, DataRootError: the sample archive is there but broken, or the data root is unusable.
    """
    try:
        folder = find_or_fetch(IMAGENET_SAMPLES, download=False)
    except (CorruptArchiveError, DataRootError):  # there, but broken: say so rather than fall back silently
        raise
    except DatasetNotFoundError:
        return list(wnids)
    samples = ImageNetSamples(folder)
    names = dict(zip(samples.wnids, samples.class_names))
    return [names.get(wnid, wnid) for wnid in wnids]
