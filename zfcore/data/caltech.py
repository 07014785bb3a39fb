"""Caltech-101 and Caltech-256, and the paper's transfer protocol on them (§5.2, Tables 4 and 5).

The paper trains only a new softmax on top of the ImageNet-trained features, with ``train_per_class``
random training images per class (Caltech-101: 15 or 30; Caltech-256: 15, 30, 45 or 60), tests on up
to 50 of the remaining images per class, and reports the mean of the per-class accuracies over 5
random splits (:func:`caltech_splits`, :func:`mean_per_class_accuracy`).

Which variant the book uses:

* **Caltech-101 without** ``BACKGROUND_Google``: 101 classes, 8,677 images, as in most follow-up work
  and in torchvision (the background folder holds Google image-search results, not an object class).
  ``Caltech101(background=True)`` adds it as a 102nd class (9,144 images).
* **Caltech-256 without** ``257.clutter``: 256 classes. The paper does not say whether clutter was a
  class; it is background, not an object category, like ``BACKGROUND_Google``.
  ``Caltech256(clutter=True)`` adds it as a 257th class (as some follow-up work does).

Both classes are :mod:`torchvision.datasets` subclasses: torchvision's constructor checks the folder
and applies the transforms, but the index is rebuilt from the image files actually present (torchvision
always drops the background class, and numbers images by counting directory entries, which would count
the file ``BACKGROUND_Google/tmp`` as an image) and images are read with :func:`zfcore.data.images.load_rgb_checked` (always RGB:
some Caltech images are greyscale, which torchvision returns as is; torchvision's
``Caltech101.__getitem__`` also imports scipy, which this project does not install, for its outlines).

Where the data comes from (:func:`zfcore.data.locate.find_or_fetch`):

* Caltech-101: ``<data root>/caltech101/101_ObjectCategories`` -> the mirror's
  ``caltech101/101_ObjectCategories.tar.gz`` -> CaltechDATA's ``caltech-101.zip`` (the official
  download, which wraps that tarball and ``Annotations.tar``: the tarball is taken out of
  the zip, the zip deleted) -> :class:`~zfcore.data.locate.DatasetNotFoundError`.
* Caltech-256 (not in the offline mirror): ``<data root>/caltech256/256_ObjectCategories`` -> the
  mirror's ``caltech256/256_ObjectCategories.tar`` -> CaltechDATA's ``256_ObjectCategories.tar``
  (1.2 GB) -> :class:`~zfcore.data.locate.DatasetNotFoundError`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import download_url

from zfcore.data.images import load_rgb_checked
from zfcore.data.locate import (Archive, CorruptArchiveError, DataRootError, DatasetNotFoundError, data_root,
                                find_or_fetch)

__all__ = [
    "CALTECH101",
    "CALTECH256",
    "Caltech101",
    "Caltech256",
    "Split",
    "caltech_splits",
    "mean_per_class_accuracy",
]

# ``extracted`` is relative to <data root>/caltech101 (resp. caltech256): the official archives unpack
# to 101_ObjectCategories/ (resp. 256_ObjectCategories/), and torchvision expects them one level down.
CALTECH101 = Archive(
    name="Caltech-101",
    extracted="101_ObjectCategories",
    filename="caltech101/101_ObjectCategories.tar.gz",
    url="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",  # a zip wrapping the tarball
    sha256=None,  # CaltechDATA publishes an MD5 of the zip: CALTECH101_ZIP_MD5, checked on download
    marker="yin_yang/image_0001.jpg",
)
CALTECH101_ZIP_MD5 = "3138e1922a9193bfa496528edbbc45d0"
CALTECH101_ZIP_MEMBER = "caltech-101/101_ObjectCategories.tar.gz"
CALTECH256 = Archive(
    name="Caltech-256",
    extracted="256_ObjectCategories",
    filename="caltech256/256_ObjectCategories.tar",
    url="https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar",
    sha256=None,  # CaltechDATA publishes an MD5 only
    marker="001.ak47/001_0001.jpg",
)
BACKGROUND = "BACKGROUND_Google"
CLUTTER = "257.clutter"


class _FileIndex:
    """Index built from the image files present; items read as RGB through ``load_rgb_checked``."""

    root: str
    transform: Callable[[Any], Any] | None
    target_transform: Callable[[int], Any] | None

    def _build_index(self, folder: Path, categories: list[str], pattern: str) -> None:
        self.categories = categories
        self.samples = [
            (str(path), label)
            for label, name in enumerate(categories)
            for path in sorted((folder / name).glob(pattern))
        ]
        self.targets = [label for _, label in self.samples]
        # torchvision's own attributes, kept consistent: class per image and the image's number
        self.y = self.targets
        self.index = [int(Path(path).stem.rsplit("_", 1)[1]) for path, _ in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        image = load_rgb_checked(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, target if self.target_transform is None else self.target_transform(target)

    def __len__(self) -> int:
        return len(self.samples)


class Caltech101(_FileIndex, torchvision.datasets.Caltech101):
    """Caltech-101, class labels only (the object outlines of ``Annotations.tar`` are not supported).

    Args:
        root: the folder holding ``caltech101/101_ObjectCategories`` (torchvision's layout); default:
            the data root (``$ZFBOOK_DATA_ROOT``). Missing there, it is extracted from the mirror or
            downloaded (see the module docstring).
        background: include ``BACKGROUND_Google`` as a class (102 classes); default ``False`` (101).
        transform: applied to the RGB PIL image.
        target_transform: applied to the class index.
        download: allow the download from CaltechDATA (default ``True``).

    Attributes:
        categories: the folder names, sorted (label = position); ``class_names``: the same, readable.
        samples: ``(path, label)`` per image, by class then file name; ``targets``: the labels.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        background: bool = False,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = True,
    ) -> None:
        root = data_root() if root is None else Path(root)
        folder = _locate(CALTECH101, root, download=download, fetch=_fetch_caltech101 if download else None)
        super().__init__(root, target_type="category", transform=transform, target_transform=target_transform)
        folders = sorted(path.name for path in folder.iterdir() if path.is_dir())
        categories = [name for name in folders if background or name != BACKGROUND]
        self._build_index(folder, categories, "image_*.jpg")

    @property
    def class_names(self) -> list[str]:
        """Readable class names: ``"car_side"`` -> ``"car side"``."""
        return [name.replace("_", " ") for name in self.categories]


class Caltech256(_FileIndex, torchvision.datasets.Caltech256):
    """Caltech-256.

    Args:
        root: the folder holding ``caltech256/256_ObjectCategories``; default: the data root
            (``$ZFBOOK_DATA_ROOT``). Missing there, it is extracted from the mirror or downloaded.
        clutter: include ``257.clutter`` as a class (257 classes); default ``False`` (256).
        transform: applied to the RGB PIL image.
        target_transform: applied to the class index.
        download: allow the download from CaltechDATA (1.2 GB; default ``True``).

    Attributes:
        categories: the folder names (``"001.ak47"``), sorted: label = folder number - 1.
        samples: ``(path, label)`` per ``*.jpg`` image; ``targets``: the labels.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        clutter: bool = False,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = True,
    ) -> None:
        root = data_root() if root is None else Path(root)
        folder = _locate(CALTECH256, root, download=download)
        super().__init__(str(root), transform=transform, target_transform=target_transform)
        folders = sorted(path.name for path in folder.iterdir() if path.is_dir())
        categories = [name for name in folders if clutter or name != CLUTTER]
        # *_*.jpg: the real data has stray files (198.spider/RENAME2) and a subfolder (056.dog/greg)
        self._build_index(folder, categories, "*_*.jpg")

    @property
    def class_names(self) -> list[str]:
        """Names without number and suffix: ``"001.ak47"`` -> ``"ak47"``; ``"145.motorbikes-101"`` -> ``"motorbikes"``.

        (The ``-101`` suffix marks the classes Griffin et al. took over from Caltech-101.)
        """
        return [name.split(".", 1)[1].removesuffix("-101") for name in self.categories]


def _locate(
    archive: Archive, root: Path, *, download: bool, fetch: Callable[[Path], None] | None = None
) -> Path:
    """``find_or_fetch`` inside ``root/<caltech101|caltech256>``, with ``fetch`` as a custom download.

    Args:
        archive: :data:`CALTECH101` or :data:`CALTECH256`.
        root: the data root (the folder holding ``caltech101/``).
        download: allow downloading.
        fetch: puts ``archive.filename`` under the folder it is given (``None``: ``find_or_fetch``
            downloads ``archive.url`` itself).

    Returns:
        The extracted ``101_ObjectCategories`` (resp. ``256_ObjectCategories``) folder.
    """
    folder = root / archive.filename.split("/")[0]
    try:
        return find_or_fetch(archive, root=folder, download=download and fetch is None)
    except (CorruptArchiveError, DataRootError):  # an archive or a data root to fix, not a dataset to fetch
        raise
    except DatasetNotFoundError as missing:
        message = str(missing).replace(
            f"the folder holding {archive.extracted}/", f"the folder holding {folder.name}/{archive.extracted}/"
        )
        if fetch is None:
            raise DatasetNotFoundError(message) from None
        try:
            fetch(folder)
        except (OSError, RuntimeError) as error:  # torchvision reports a bad checksum as RuntimeError
            raise DatasetNotFoundError(
                message.replace("(not tried: download=False)", f"failed ({error})")
            ) from error
    return find_or_fetch(archive, root=folder, download=False)


def _fetch_caltech101(folder: Path) -> None:
    """Download ``caltech-101.zip`` into ``folder`` and take out the tarball ``find_or_fetch`` expects."""
    zip_path = folder / "caltech-101.zip"
    download_url(CALTECH101.url, folder, filename=zip_path.name, md5=CALTECH101_ZIP_MD5)
    tarball = folder / Path(CALTECH101.filename).name  # where find_or_fetch(root=folder) looks for a download
    with zipfile.ZipFile(zip_path) as bundle, bundle.open(CALTECH101_ZIP_MEMBER) as source:
        tarball.write_bytes(source.read())
    zip_path.unlink()


@dataclass(frozen=True)
class Split:
    """One random train/test split of the transfer protocol.

    Attributes:
        seed: the seed that drew it.
        train: indices of the training images (sorted).
        test: indices of the test images (sorted), disjoint from ``train``.
    """

    seed: int
    train: np.ndarray
    test: np.ndarray


def caltech_splits(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    train_per_class: int,
    test_per_class: int = 50,
    seeds: Iterable[int] = range(5),
    *,
    class_names: Sequence[str] | None = None,
) -> list[Split]:
    """The paper's random splits: per class, ``train_per_class`` training images, up to ``test_per_class`` test.

    Args:
        labels: the class of every image (e.g. ``dataset.targets``).
        train_per_class: training images per class (the paper: 15 or 30 for Caltech-101; 15, 30, 45 or
            60 for Caltech-256).
        test_per_class: at most this many of the remaining images of a class are test images (default 50,
            the paper's Caltech-101 protocol; the paper gives no number for Caltech-256).
        seeds: one split per seed (default ``range(5)``: the paper's 5 folds). The same seed always
            draws the same split (NumPy's PCG64 generator).
        class_names: names for the error message (default: the label numbers).

    Returns:
        One :class:`Split` per seed.

    Raises:
        ValueError: a count is not positive, or a class has fewer than ``train_per_class`` images.
    """
    if train_per_class < 1:
        raise ValueError(f"train_per_class={train_per_class!r}: must be a positive integer")
    if test_per_class < 1:
        raise ValueError(f"test_per_class={test_per_class!r}: must be a positive integer")
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    for label, count in zip(classes, counts):
        if count < train_per_class:
            name = class_names[label] if class_names is not None else f"class {label}"
            raise ValueError(
                f"{name!s} has {count} images, fewer than train_per_class={train_per_class}"
            )
    members = [np.flatnonzero(labels == label) for label in classes]
    splits = []
    for seed in seeds:
        generator = np.random.default_rng(seed)
        train, test = [], []
        for indices in members:
            order = generator.permutation(indices)
            train.append(order[:train_per_class])
            test.append(order[train_per_class : train_per_class + test_per_class])
        splits.append(Split(seed=seed, train=np.sort(np.concatenate(train)), test=np.sort(np.concatenate(test))))
    return splits


def mean_per_class_accuracy(
    predictions: Sequence[int] | np.ndarray | torch.Tensor, labels: Sequence[int] | np.ndarray | torch.Tensor
) -> float:
    """The mean over classes of each class's accuracy (the paper's Caltech metric).

    Args:
        predictions: predicted classes ``[N]``, or scores ``[N, C]`` (their argmax is taken).
        labels: true classes ``[N]``; every class present in ``labels`` counts once.

    Returns:
        The mean per-class accuracy in ``[0, 1]``.

    Raises:
        ValueError: empty input, or predictions and labels of different lengths.
    """
    predictions = np.asarray(predictions.detach().cpu() if isinstance(predictions, torch.Tensor) else predictions)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    if len(labels) == 0 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions have shape {predictions.shape} and labels {labels.shape}: "
            "expected the same non-empty length [N] (or scores [N, C])"
        )
    correct = predictions == labels
    return float(np.mean([correct[labels == label].mean() for label in np.unique(labels)]))
