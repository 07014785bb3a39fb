"""Datasets, find-or-fetch, uint8 caches and tensor augmentation."""

from zfcore.data.caltech import Caltech101, Caltech256, Split, caltech_splits, mean_per_class_accuracy
from zfcore.data.images import CorruptImageWarning, load_rgb
from zfcore.data.imagenet import (
    FileBatches,
    ImageNetSamples,
    Sample,
    SkipUnreadable,
    UnreadableImageError,
    collate_skipping,
    eval_transform,
    file_training_data,
    find_sample,
    imagenet,
    imagenet_class_names,
    imagenet_samples,
    imagenette,
    load_rgb_checked,
    ten_crop_transform,
    train_transform,
)
from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD, TensorBatches, normalize
from zfcore.data.locate import DatasetNotFoundError, data_root, find_or_fetch, mirror_dir
from zfcore.data.tiny_imagenet import TinyImageNet, cached_split

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Caltech101",
    "Caltech256",
    "CorruptImageWarning",
    "DatasetNotFoundError",
    "FileBatches",
    "ImageNetSamples",
    "Sample",
    "SkipUnreadable",
    "Split",
    "TensorBatches",
    "TinyImageNet",
    "UnreadableImageError",
    "cached_split",
    "caltech_splits",
    "collate_skipping",
    "data_root",
    "eval_transform",
    "file_training_data",
    "find_or_fetch",
    "find_sample",
    "imagenet",
    "imagenet_class_names",
    "imagenet_samples",
    "imagenette",
    "load_rgb",
    "load_rgb_checked",
    "mean_per_class_accuracy",
    "mirror_dir",
    "normalize",
    "ten_crop_transform",
    "train_transform",
]
