"""Tiny ImageNet (Le & Yang 2015): 200 ImageNet classes at 64x64, in the official zip layout.

``tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG,
val/val_annotations.txt}``. Both splits are decoded once into a uint8 cache (:func:`cached_split`).

The book's Tiny ImageNet trains on the first :data:`TRAIN_PER_CLASS` (400) of the 500 training images
of each class, by file name, whether the data came from the official archive or from the offline mirror
(which holds exactly those 400); validation is all 10,000 images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfcore.data.images import decoded_cache
from zfcore.data.locate import Archive, data_root, find_or_fetch

__all__ = ["TINY_IMAGENET", "TRAIN_PER_CLASS", "CachedSplit", "TinyImageNet", "cached_split"]

TINY_IMAGENET = Archive(
    name="Tiny ImageNet",
    extracted="tiny-imagenet-200",
    filename="tiny-imagenet-200.zip",
    url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    sha256=None,  # Stanford publishes no checksum
    marker="val/val_annotations.txt",
)
SPLITS = ("train", "val")
TRAIN_PER_CLASS = 400
"""The book's Tiny ImageNet: the training split is the first 400 images of each class, sorted by file name
(``<wnid>_<n>.JPEG``, sorted as strings). The official archive has 500 per class; the offline mirror holds
exactly these 400, so online and offline runs train on the same 80,000 images. A dataset-level choice,
not a :class:`~zfcore.profiles.TrainConfig` field: every profile's "all images" means these."""


@dataclass
class CachedSplit:
    """One split as arrays: ``images [N, H, W, 3]`` uint8 (memory-mapped), ``labels [N]`` int64."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


class TinyImageNet:
    """File lists and class names of an extracted Tiny ImageNet.

    Args:
        root: the ``tiny-imagenet-200`` folder; default: found with
            :func:`zfcore.data.locate.find_or_fetch` (data root -> mirror -> download -> error).
    """

    def __init__(self, root: str | Path | None = None, *, download: bool = True) -> None:
        self.root = Path(root) if root is not None else find_or_fetch(TINY_IMAGENET, download=download)
        self.wnids = (self.root / "wnids.txt").read_text().split()
        words = dict(
            line.split("\t", 1) for line in (self.root / "words.txt").read_text().splitlines() if "\t" in line
        )
        self.class_names = [words.get(wnid, wnid).split(",")[0].strip() for wnid in self.wnids]
        self.class_index = {wnid: index for index, wnid in enumerate(self.wnids)}

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        """The image paths and labels of ``split`` (``"train"`` or ``"val"``), in a fixed order.

        Train: by class folder, then file name, at most :data:`TRAIN_PER_CLASS` per class (the first by
        file name). Val: every image, by file name.
        """
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
        if split == "train":
            paths, labels, taken = [], [], {}
            for path in sorted((self.root / "train").glob("*/images/*.JPEG")):
                label = self.class_index[path.parent.parent.name]
                if taken.get(label, 0) < TRAIN_PER_CLASS:
                    taken[label] = taken.get(label, 0) + 1
                    paths.append(path)
                    labels.append(label)
            return paths, labels
        annotations = (self.root / "val" / "val_annotations.txt").read_text().splitlines()
        rows = sorted(line.split("\t")[:2] for line in annotations if line.strip())
        return [self.root / "val" / "images" / name for name, _ in rows], [self.class_index[w] for _, w in rows]

    def val_boxes(self, *, classes: int = 0, per_class: int = 0) -> np.ndarray:
        """The object's bounding box of every validation image, ``[N, 4]`` int64 ``(x0, y0, x1, y1)``.

        Pixel coordinates of the 64-px image, both corners inclusive (``0 .. 63``), from
        ``val/val_annotations.txt``, in the order of :meth:`files` (and of the cached split); with
        ``classes`` / ``per_class`` the rows of that subset, as :func:`cached_split` chooses it.
        """
        annotations = (self.root / "val" / "val_annotations.txt").read_text().splitlines()
        rows = sorted(line.split("\t") for line in annotations if line.strip())
        boxes = np.array([[int(value) for value in row[2:6]] for row in rows], dtype=np.int64)
        chosen = _subset_indices(np.array([self.class_index[row[1]] for row in rows]), classes, per_class)
        return boxes if chosen is None else boxes[chosen]


def cached_split(split: str, *, classes: int = 0, per_class: int = 0, root: str | Path | None = None,
                 cache_dir: Path | None = None) -> CachedSplit:
    """Tiny ImageNet ``split`` (or a subset of it) as a :class:`CachedSplit`, decoding it on first use.

    Args:
        split: ``"train"`` or ``"val"``.
        classes: keep the first ``classes`` classes, relabelled ``0..classes-1`` (``0``: all 200).
        per_class: keep the first ``per_class`` images of each kept class (``0``: all).
        root: the ``tiny-imagenet-200`` folder (default: found with ``find_or_fetch``).
        cache_dir: where caches live (default: ``<data root>/cache``).

    A subset is taken from the whole split's cache if that exists; otherwise only the subset's files
    are decoded, into a cache of their own (the ``ci`` profile's 320 images: a few MB instead of the
    938 MB of the whole train split). Both ways give the same pixels, in class order, then file order.
    The whole train split takes about 20 s to decode. A cache is checked against the record of what it was
    decoded from and of its contents (:func:`~zfcore.data.images.decoded_cache`): one that was damaged or
    made from other files (e.g. before the split kept :data:`TRAIN_PER_CLASS` images per class, from the
    official 500-per-class archive) is decoded again, with one warning.
    """
    dataset = TinyImageNet(root)
    cache = cache_dir or data_root() / "cache"
    full_cache = cache / f"tiny-imagenet-200-{split}-64.npy"
    paths, labels = dataset.files(split)
    chosen = _subset_indices(np.asarray(labels), classes, per_class)
    kept = classes or len(dataset.wnids)
    names = dict(classes=dataset.wnids[:kept], class_names=dataset.class_names[:kept])
    if chosen is None or full_cache.exists():
        images, cached_labels = decoded_cache(paths, labels, full_cache, 64, description=f"Tiny ImageNet {split}")
        if chosen is None:
            return CachedSplit(images=images, labels=cached_labels, **names)
        chosen = _subset_indices(cached_labels, classes, per_class)  # the cache skips unreadable files
        return CachedSplit(images=np.ascontiguousarray(images[chosen]), labels=cached_labels[chosen], **names)
    subset_cache = cache / f"tiny-imagenet-200-{split}-64-classes{classes}-per{per_class}.npy"
    images, subset_labels = decoded_cache([paths[i] for i in chosen], [labels[i] for i in chosen], subset_cache, 64,
                                          description=f"Tiny ImageNet {split} subset")
    return CachedSplit(images=images, labels=subset_labels, **names)


def _subset_indices(labels: np.ndarray, classes: int, per_class: int) -> np.ndarray | None:
    """Indices of the first ``per_class`` items of each of the first ``classes`` labels, by label (``None``: all)."""
    if not classes and not per_class:
        return None
    keep = classes or int(labels.max()) + 1
    chosen = [np.flatnonzero(labels == label) for label in range(keep)]
    return np.concatenate([indices[:per_class] if per_class else indices for indices in chosen])
