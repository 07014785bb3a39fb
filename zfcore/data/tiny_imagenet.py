"""Tiny ImageNet (Le & Yang 2015): 200 ImageNet classes at 64x64, in the official zip layout.

``tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG,
val/val_annotations.txt}``. Both splits are decoded once into a uint8 cache (:func:`cached_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfcore.data.images import decode_to_cache, open_cache
from zfcore.data.locate import Archive, data_root, find_or_fetch

__all__ = ["TINY_IMAGENET", "CachedSplit", "TinyImageNet", "cached_split"]

TINY_IMAGENET = Archive(
    name="Tiny ImageNet",
    extracted="tiny-imagenet-200",
    filename="tiny-imagenet-200.zip",
    url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    sha256=None,  # Stanford publishes no checksum
    marker="val/val_annotations.txt",
)
SPLITS = ("train", "val")


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
        """The image paths and labels of ``split`` (``"train"`` or ``"val"``), in a fixed order."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not valid; valid splits: {SPLITS}")
        if split == "train":
            paths = sorted((self.root / "train").glob("*/images/*.JPEG"))
            labels = [self.class_index[path.parent.parent.name] for path in paths]
            return paths, labels
        annotations = (self.root / "val" / "val_annotations.txt").read_text().splitlines()
        rows = sorted(line.split("\t")[:2] for line in annotations if line.strip())
        return [self.root / "val" / "images" / name for name, _ in rows], [self.class_index[w] for _, w in rows]


def cached_split(split: str, *, root: str | Path | None = None, cache_dir: Path | None = None) -> CachedSplit:
    """Tiny ImageNet ``split`` as a :class:`CachedSplit`, decoding it on first use (~30 s for train)."""
    dataset = TinyImageNet(root)
    cache_file = (cache_dir or data_root() / "cache") / f"tiny-imagenet-200-{split}-64.npy"
    if cache_file.exists():
        images, labels = open_cache(cache_file)
    else:
        paths, labels_list = dataset.files(split)
        images, labels, _ = decode_to_cache(paths, labels_list, cache_file, 64, description=f"Tiny ImageNet {split}")
    return CachedSplit(images=images, labels=labels, classes=dataset.wnids, class_names=dataset.class_names)
