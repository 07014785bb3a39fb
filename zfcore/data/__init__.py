"""Datasets, find-or-fetch, uint8 caches and tensor augmentation."""

from zfcore.data.images import CorruptImageWarning, load_rgb
from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD, TensorBatches, normalize
from zfcore.data.locate import DatasetNotFoundError, data_root, find_or_fetch, mirror_dir
from zfcore.data.tiny_imagenet import TinyImageNet, cached_split

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptImageWarning",
    "DatasetNotFoundError",
    "TensorBatches",
    "TinyImageNet",
    "cached_split",
    "data_root",
    "find_or_fetch",
    "load_rgb",
    "mirror_dir",
    "normalize",
]
