"""Datasets, find-or-fetch, uint8 caches, batches and the paper's transforms (one module per concept).

``locate`` finds a dataset (extracted -> mirror -> URL -> one clear error); ``images`` decodes and
checks files; ``transforms`` holds the paper's 224-px crops; ``loader`` turns a uint8 cache or image
files into batches; ``tiny_imagenet``, ``imagenet`` and ``caltech`` are the datasets; ``sources``
gives the train/val batches a :class:`~zfcore.profiles.TrainConfig` names.
"""

from zfcore.data.caltech import Caltech101, Caltech256, Split, caltech_splits, mean_per_class_accuracy
from zfcore.data.images import CorruptImageWarning, UnreadableImageError, load_rgb, load_rgb_checked
from zfcore.data.imagenet import (
    ImageNetSamples,
    Sample,
    find_sample,
    imagenet,
    imagenet_class_names,
    imagenet_samples,
    imagenette,
)
from zfcore.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FileBatches,
    SkipUnreadable,
    TensorBatches,
    collate_skipping,
    normalize,
    pixel_batches,
)
from zfcore.data.locate import CorruptArchiveError, DataRootError, DatasetNotFoundError, data_root, find_or_fetch, mirror_dir
from zfcore.data.sources import TrainingData, eval_batches, pixel_mean, training_data
from zfcore.data.tiny_imagenet import TinyImageNet, cached_split
from zfcore.data.transforms import eval_transform, ten_crop_transform, train_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Caltech101",
    "Caltech256",
    "CorruptArchiveError",
    "CorruptImageWarning",
    "DataRootError",
    "DatasetNotFoundError",
    "FileBatches",
    "ImageNetSamples",
    "Sample",
    "SkipUnreadable",
    "Split",
    "TensorBatches",
    "TinyImageNet",
    "TrainingData",
    "UnreadableImageError",
    "cached_split",
    "caltech_splits",
    "collate_skipping",
    "data_root",
    "eval_batches",
    "eval_transform",
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
    "pixel_batches",
    "pixel_mean",
    "ten_crop_transform",
    "train_transform",
    "training_data",
]
