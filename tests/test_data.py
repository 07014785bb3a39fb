"""zfcore.data on fake on-disk layouts: tiny JPEGs written with PIL, no network, a few seconds in all."""

from __future__ import annotations

import re

import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from archives import tgz_folder, zip_folder
from zfcore.data import (
    Caltech101,
    Caltech256,
    CorruptArchiveError,
    CorruptImageWarning,
    DatasetNotFoundError,
    FileBatches,
    TensorBatches,
    TinyImageNet,
    cached_split,
    caltech_splits,
    eval_transform,
    find_sample,
    imagenet,
    imagenet_class_names,
    imagenet_samples,
    imagenette,
    load_rgb,
    mean_per_class_accuracy,
    normalize,
    ten_crop_transform,
    train_transform,
    training_data,
)
from zfcore.data import tiny_imagenet
from zfcore.data.imagenet import IMAGENET_SAMPLES, SAMPLE_LONGER_SIDE, shrink_sample
from zfcore.data.images import decode_to_cache
from zfcore.profiles import TrainConfig

WNIDS = ("n01443537", "n01629819", "n01641577")
URLOPEN = urllib.request.urlopen  # the real one (the places fixture replaces it with one that fails)


def _jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (20, 16), mode: str = "RGB") -> Path:
    """A small random JPEG (``size`` = width, height) in ``mode`` (``"RGB"``, ``"L"`` or ``"CMYK"``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, "JPEG")
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    return path


# -- Tiny ImageNet -------------------------------------------------------------------------------


def _tiny_imagenet(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> Path:
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (folder / "words.txt").write_text(
        "n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\nn01641577\tbullfrog\n"
    )
    annotations = []
    for label, wnid in enumerate(WNIDS):
        for index in range(train_per_class):
            size = (80, 70) if index == 0 else (64, 64)
            _jpeg(folder / "train" / wnid / "images" / f"{wnid}_{index}.JPEG", 10 * label + index, size)
        for index in range(val_per_class):
            name = f"val_{label * val_per_class + index}.JPEG"
            _jpeg(folder / "val" / "images" / name, 100 + 10 * label + index, (64, 64))
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return folder


def test_tiny_imagenet_fake_layout(tmp_path: Path) -> None:
    root = _tiny_imagenet(tmp_path)
    dataset = TinyImageNet(root)
    assert dataset.wnids == list(WNIDS)
    assert dataset.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    paths, labels = dataset.files("train")
    assert len(paths) == 12 and labels == [0] * 4 + [1] * 4 + [2] * 4
    _, val_labels = dataset.files("val")
    assert sorted(val_labels) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="'test'"):
        dataset.files("test")
    split = cached_split("train", root=root, cache_dir=tmp_path / "cache")
    assert split.images.shape == (12, 64, 64, 3) and split.images.dtype == np.uint8
    assert (tmp_path / "cache" / "tiny-imagenet-200-train-64.npy").exists()
    again = cached_split("train", root=root, cache_dir=tmp_path / "cache")  # from the cache
    np.testing.assert_array_equal(again.images, split.images)
    np.testing.assert_array_equal(again.labels, split.labels)


def test_tiny_imagenet_subset_decodes_only_its_files(tmp_path: Path) -> None:
    root = _tiny_imagenet(tmp_path)
    cache = tmp_path / "cache"
    subset = cached_split("train", classes=2, per_class=3, root=root, cache_dir=cache)
    assert [p.name for p in cache.glob("*.npy") if "labels" not in p.name] == [
        "tiny-imagenet-200-train-64-classes2-per3.npy"]  # the whole split was not decoded
    assert subset.labels.tolist() == [0, 0, 0, 1, 1, 1] and subset.classes == list(WNIDS[:2])
    full = cached_split("train", root=root, cache_dir=cache)
    np.testing.assert_array_equal(subset.images, full.images[[0, 1, 2, 4, 5, 6]])
    from_full = cached_split("train", classes=2, per_class=3, root=root, cache_dir=cache)  # now cut from the full cache
    np.testing.assert_array_equal(from_full.images, subset.images)
    np.testing.assert_array_equal(from_full.labels, subset.labels)


def test_tiny_imagenet_train_split_is_the_first_400_per_class_by_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-imagenet-200"  # the official layout's 500 per class, 2 classes, 8-px images
    folder.mkdir()
    (folder / "wnids.txt").write_text("\n".join(WNIDS[:2]) + "\n")
    (folder / "words.txt").write_text("")
    names = {wnid: [f"{wnid}_{index}.JPEG" for index in range(500)] for wnid in WNIDS[:2]}
    order = np.random.default_rng(0).permutation(1000)  # written in a shuffled order: the listing order is not it
    for position in order:
        wnid = WNIDS[position // 500]
        _jpeg(folder / "train" / wnid / "images" / names[wnid][position % 500], int(position), (8, 8))
    first_400 = [folder / "train" / wnid / "images" / name for wnid in WNIDS[:2] for name in sorted(names[wnid])[:400]]
    assert tiny_imagenet.TRAIN_PER_CLASS == 400
    # by name, not number (as the mirror was cut): _0-_4, _10-_45, _100-_458 in; _5-_9, _46-_99, _459-_499 out
    assert first_400[399].name == "n01443537_458.JPEG"
    assert {f"n01443537_{n}.JPEG" for n in (0, 4, 10, 45, 100, 458)} <= {path.name for path in first_400}
    assert not {f"n01443537_{n}.JPEG" for n in (5, 9, 46, 99, 459, 499)} & {path.name for path in first_400}

    paths, labels = TinyImageNet(folder).files("train")
    assert paths == first_400 and labels == [0] * 400 + [1] * 400
    split = cached_split("train", root=folder, cache_dir=tmp_path / "cache")
    assert split.images.shape == (800, 64, 64, 3) and split.labels.tolist() == labels
    for index in (0, 399, 400, 799):
        expected = ImageOps.fit(load_rgb(first_400[index]), (64, 64), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(split.images[index], np.asarray(expected))

    # a cache decoded before the cut (all 500 per class) is decoded again, not reused
    stale = tmp_path / "stale-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny_imagenet, "TRAIN_PER_CLASS", 500)
        assert len(cached_split("train", root=folder, cache_dir=stale)) == 1000
    with pytest.warns(UserWarning, match=r"tiny-imagenet-200-train-64.npy: was decoded from other files, labels or "
                                         r"size; decoding it again"):
        again = cached_split("train", root=folder, cache_dir=stale)
    np.testing.assert_array_equal(again.images, split.images)
    np.testing.assert_array_equal(again.labels, split.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(cached_split("train", root=folder, cache_dir=stale)) == 800  # now current: no warning
        subset = cached_split("train", classes=1, root=folder, cache_dir=tmp_path / "subset")
    np.testing.assert_array_equal(subset.images, split.images[:400])


def test_tiny_imagenet_extracted_from_mirror(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    zip_folder(_tiny_imagenet(tmp_path / "build"), mirror / "tiny-imagenet-200.zip")
    dataset = TinyImageNet(download=False)
    assert dataset.root == data / "tiny-imagenet-200"
    assert len(dataset.files("val")[0]) == 6


def test_missing_dataset_names_every_place(places: tuple[Path, Path]) -> None:
    data, mirror = places
    with pytest.raises(DatasetNotFoundError) as missing:
        TinyImageNet()
    message = str(missing.value)
    for place in (
        data / "tiny-imagenet-200" / "val" / "val_annotations.txt",
        mirror / "tiny-imagenet-200.zip",
        data / "tiny-imagenet-200.zip",
        "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        "offline in tests",
    ):
        assert str(place) in message

    with pytest.raises(DatasetNotFoundError) as missing:
        Caltech101()
    message = str(missing.value)
    for place in (
        data / "caltech101" / "101_ObjectCategories",
        mirror / "caltech101" / "101_ObjectCategories.tar.gz",
        f"archive: {data / 'caltech101' / '101_ObjectCategories.tar.gz'} (missing)",  # a download left there
        "caltech-101.zip failed",
        "offline in tests",
        "the folder holding caltech101/101_ObjectCategories/",
    ):
        assert str(place) in message
    assert "caltech101/caltech101" not in message
    with pytest.raises(DatasetNotFoundError, match="not tried: download=False"):
        Caltech256(download=False)

    with pytest.raises(DatasetNotFoundError) as missing:
        imagenette("val")
    message = str(missing.value)
    assert str(data / "imagenette2") in message and str(mirror / "imagenette2.tgz") in message
    assert "imagenette2.tgz failed" in message

    with pytest.raises(DatasetNotFoundError) as missing:
        imagenet(split="val")
    assert str(data / "imagenet" / "val") in str(missing.value) and "image-net.org" in str(missing.value)
    with pytest.raises(DatasetNotFoundError) as missing:
        imagenet_samples()
    message = str(missing.value)
    for place in (data / "imagenet-samples" / "n02112018_Pomeranian.JPEG", mirror / "imagenet-samples.zip",
                  data / "imagenet-samples.zip", f"{IMAGENET_SAMPLES.url} failed (offline in tests)"):
        assert str(place) in message
    assert IMAGENET_SAMPLES.url == "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip"


# -- Caltech -------------------------------------------------------------------------------------


def test_caltech101_from_mirror_with_and_without_background(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    folder = tmp_path / "build" / "101_ObjectCategories"
    counts = {"BACKGROUND_Google": 2, "Faces": 3, "airplanes": 4, "car_side": 2, "yin_yang": 3}
    for name, count in counts.items():
        for index in range(1, count + 1):
            _jpeg(folder / name / f"image_{index:04d}.jpg", index, mode="L" if name == "Faces" else "RGB")
    (folder / "BACKGROUND_Google" / "tmp").write_text("not an image")  # as in the real archive
    tgz_folder(folder, mirror / "caltech101" / "101_ObjectCategories.tar.gz")

    dataset = Caltech101(download=False)
    assert (data / "caltech101" / "101_ObjectCategories" / "yin_yang" / "image_0001.jpg").exists()
    assert dataset.categories == ["Faces", "airplanes", "car_side", "yin_yang"]
    assert dataset.class_names[2] == "car side"
    assert len(dataset) == 12 and dataset.targets == [0] * 3 + [1] * 4 + [2] * 2 + [3] * 3
    image, label = dataset[0]
    assert image.mode == "RGB" and label == 0  # a greyscale Faces image, converted
    with_background = Caltech101(background=True, download=False)
    assert with_background.categories[0] == "BACKGROUND_Google" and len(with_background.categories) == 5
    assert len(with_background) == 14  # the "tmp" file is not an image


def test_caltech101_tarball_left_in_its_folder_is_used(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, _ = places
    folder = tmp_path / "build" / "101_ObjectCategories"
    for name in ("BACKGROUND_Google", "Faces", "yin_yang"):
        _jpeg(folder / name / "image_0001.jpg")
    tgz_folder(folder, data / "caltech101" / "101_ObjectCategories.tar.gz")  # where a download is kept
    assert Caltech101(download=False).categories == ["Faces", "yin_yang"]


def test_caltech256_fake_layout(tmp_path: Path) -> None:
    folder = tmp_path / "caltech256" / "256_ObjectCategories"
    for number, name in ((1, "ak47"), (2, "american-flag"), (145, "motorbikes-101"), (257, "clutter")):
        for index in range(1, 4):
            _jpeg(folder / f"{number:03d}.{name}" / f"{number:03d}_{index:04d}.jpg", index)
    (folder / "002.american-flag" / "RENAME2").write_text("stray file")
    dataset = Caltech256(tmp_path, download=False)
    assert dataset.class_names == ["ak47", "american-flag", "motorbikes"]
    assert len(dataset) == 9 and dataset.targets == [0] * 3 + [1] * 3 + [2] * 3
    image, label = dataset[8]
    assert image.mode == "RGB" and label == 2
    with_clutter = Caltech256(tmp_path, clutter=True, download=False)
    assert with_clutter.categories[-1] == "257.clutter" and len(with_clutter) == 12


def test_caltech_splits_protocol() -> None:
    labels = np.repeat([0, 1, 2], [40, 35, 90])
    splits = caltech_splits(labels, 30, seeds=range(3))
    for split in splits:
        assert not set(split.train) & set(split.test)
        assert np.bincount(labels[split.train]).tolist() == [30, 30, 30]
        assert np.bincount(labels[split.test]).tolist() == [10, 5, 50]
    assert not np.array_equal(splits[0].train, splits[1].train)
    again = caltech_splits(labels, 30, seeds=[1])[0]
    np.testing.assert_array_equal(again.train, splits[1].train)
    np.testing.assert_array_equal(again.test, splits[1].test)
    with pytest.raises(ValueError, match="metronome has 35 images, fewer than train_per_class=36"):
        caltech_splits(labels, 36, class_names=["a", "metronome", "c"])
    with pytest.raises(ValueError, match="train_per_class=0"):
        caltech_splits(labels, 0)


def test_mean_per_class_accuracy() -> None:
    labels = [0, 0, 0, 1]
    assert mean_per_class_accuracy([0, 0, 0, 0], labels) == pytest.approx(0.5)  # overall accuracy: 0.75
    scores = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    assert mean_per_class_accuracy(scores, torch.tensor(labels)) == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="same non-empty length"):
        mean_per_class_accuracy([0, 1], [0])


# -- ImageNet, Imagenette, samples ---------------------------------------------------------------


def _image_folders(root: Path, wnids: tuple[str, ...], per_class: int) -> None:
    for split in ("train", "val"):
        for label, wnid in enumerate(wnids):
            for index in range(per_class):
                _jpeg(root / split / wnid / f"{wnid}_{index}.JPEG", 10 * label + index, (40, 32))


def test_imagenet_folder_greyscale_cmyk_and_corrupt(places: tuple[Path, Path]) -> None:
    data, _ = places
    root = data / "imagenet"
    _image_folders(root, WNIDS[:2], 3)
    grey = _jpeg(root / "train" / WNIDS[0] / "grey.JPEG", 1, mode="L")
    cmyk = _jpeg(root / "train" / WNIDS[1] / "cmyk.JPEG", 2, mode="CMYK")
    assert Image.open(grey).mode == "L" and Image.open(cmyk).mode == "CMYK"
    bad = _corrupt(root / "train" / WNIDS[1] / "bad.JPEG")
    dataset = imagenet(split="train")
    assert dataset.classes == list(WNIDS[:2]) and len(dataset) == 9
    paths = [path for path, _ in dataset.samples]
    for path in (grey, cmyk):
        image, _ = dataset[paths.index(str(path))]
        assert image.mode == "RGB" and image.size == (20, 16)
        assert load_rgb(path).mode == "RGB"

    batches = FileBatches(imagenet(split="train", transform=eval_transform(16)), 4, train=False)
    with pytest.warns(CorruptImageWarning, match="1 unreadable.*bad.JPEG"):
        seen = [(images, labels) for images, labels in batches]
    assert sum(len(labels) for _, labels in seen) == 8 and batches.skipped == [str(bad)]
    images, _ = seen[0]
    assert images.shape == (4, 3, 16, 16) and images.is_contiguous(memory_format=torch.channels_last)


def test_decode_to_cache_skips_corrupt_and_converts(tmp_path: Path) -> None:
    paths = [
        _jpeg(tmp_path / "a.JPEG", 0),
        _corrupt(tmp_path / "bad.JPEG"),
        _jpeg(tmp_path / "grey.JPEG", 1, mode="L"),
        _jpeg(tmp_path / "cmyk.JPEG", 2, mode="CMYK"),
    ]
    with pytest.warns(CorruptImageWarning, match="bad.JPEG"):
        images, labels, skipped = decode_to_cache(paths, [0, 1, 2, 3], tmp_path / "cache.npy", 8)
    assert images.shape == (3, 8, 8, 3) and labels.tolist() == [0, 2, 3]
    assert len(skipped) == 1 and "bad.JPEG" in skipped[0]
    np.testing.assert_array_equal(images[1][..., 0], images[1][..., 2])  # greyscale: three equal channels


def test_imagenette_and_file_training_data(places: tuple[Path, Path]) -> None:
    data, _ = places
    _image_folders(data / "imagenette2", ("n01440764", "n03888257"), 5)
    val = imagenette("val", download=False)
    assert len(val) == 10 and val.wnids == ["n01440764", "n03888257"]

    config = TrainConfig(dataset="imagenette", input_size=16, num_classes=2, workers=0, seed=3, batch_size=4,
                         preprocessing="mean-std")
    training = training_data(config)
    assert training.class_names == ["tench", "parachute"] and training.train_images == 10
    assert len(training.train) == 2 and len(training.val) == 3
    images, labels = next(iter(training.train))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32 and labels.dtype == torch.long
    assert images.is_contiguous(memory_format=torch.channels_last)
    order = list(training.train.sampler)
    training.train.set_epoch(1)
    assert list(training.train.sampler) != order and sorted(training.train.sampler) == sorted(order)
    assert len(training.sha256) == 64 and training_data(config).sha256 == training.sha256

    ranks = [training_data(config, num_replicas=2, rank=rank).train.sampler for rank in (0, 1)]
    assert sorted([*ranks[0], *ranks[1]]) == list(range(10))
    subset = training_data(config.replace(classes_limit=1, num_classes=1, train_per_class=3, batch_size=2))
    assert subset.train_images == 3 and subset.classes == ["n01440764"]
    with pytest.raises(ValueError, match="num_classes=5 but the data has 2 classes"):
        training_data(config.replace(num_classes=5))
    with pytest.raises(ValueError, match="preprocessing='pixel-mean' is not available for file-based data"):
        training_data(config.replace(preprocessing="pixel-mean"))
    with pytest.raises(ValueError, match="dataset='mnist' is not valid"):
        training_data(config.replace(dataset="mnist"))


def test_imagenet_samples_probe_set(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    folder = tmp_path / "build" / "imagenet-samples"
    names = ("n02088094_Afghan_hound", "n02112018_Pomeranian", "n02974003_car_wheel", "n03874293_paddlewheel")
    for seed, name in enumerate(names):
        _jpeg(folder / f"{name}.JPEG", seed, mode="L" if seed == 0 else "RGB")
    zip_folder(folder, mirror / "imagenet-samples.zip")
    samples = imagenet_samples()
    assert len(samples) == 4 and samples.wnids[1] == "n02112018"
    assert find_sample(samples, "car wheel").wnid == "n02974003"
    afghan = find_sample(samples, "afghan_HOUND")
    assert afghan.class_name == "Afghan hound" and afghan.image.mode == "RGB"
    assert find_sample(samples, "Pomer").class_name == "Pomeranian"
    with pytest.raises(ValueError, match="matches 2 ImageNet classes"):
        find_sample(samples, "wheel")
    assert imagenet_class_names(["n02112018", "n99999999"]) == ["Pomeranian", "n99999999"]


SAMPLE_NAMES = ("n02088094_Afghan_hound", "n02112018_Pomeranian", "n02974003_car_wheel")


def _github_zip(tmp_path: Path, sizes: tuple[tuple[int, int], ...] = ((400, 300), (300, 450), (100, 80)),
                names: tuple[str, ...] = SAMPLE_NAMES) -> Path:
    """A stand-in for GitHub's zip of the sample repository: ``<repo>-master/`` with the images, a README, a gallery."""
    top = tmp_path / "github" / "imagenet-sample-images-master"
    for seed, (name, size) in enumerate(zip(names, sizes)):
        _jpeg(top / f"{name}.JPEG", seed, size)
    (top / "README.md").write_text("# imagenet-sample-images\n")
    (top / "gallery.md").write_text("| ![tench](n01440764_tench.JPEG) |\n")
    return zip_folder(top, tmp_path / "github" / "master.zip", zipfile.ZIP_DEFLATED)


def _serve(monkeypatch: pytest.MonkeyPatch, archive: Path) -> list[str]:
    """``urlopen`` answers the samples' URL with ``archive`` (a file:// read); returns the URLs asked for."""
    asked = []

    def fake(url: str, *args: object, **kwargs: object):
        asked.append(url)
        assert url == IMAGENET_SAMPLES.url
        return URLOPEN(archive.as_uri(), *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return asked


def test_imagenet_samples_downloaded_from_github_and_shrunk_on_load(
    tmp_path: Path, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = places
    github = _github_zip(tmp_path)
    asked = _serve(monkeypatch, github)
    samples = imagenet_samples()
    assert asked == [IMAGENET_SAMPLES.url]
    folder = data / "imagenet-samples"
    assert sorted(path.name for path in folder.iterdir()) == [f"{name}.JPEG" for name in SAMPLE_NAMES]
    with zipfile.ZipFile(github) as source:  # the repository's bytes, unchanged; README and gallery left out
        for name in SAMPLE_NAMES:
            assert (folder / f"{name}.JPEG").read_bytes() == source.read(f"imagenet-sample-images-master/{name}.JPEG")
    assert sorted(path.name for path in data.iterdir()) == ["imagenet-samples", "imagenet-samples.zip"]
    assert samples.wnids == ["n02088094", "n02112018", "n02974003"]
    afghan, pomeranian, wheel = (samples[index].image for index in range(3))
    assert afghan.size == (160, 120) and pomeranian.size == (107, 160) and wheel.size == (100, 80)
    np.testing.assert_array_equal(np.asarray(wheel), np.asarray(load_rgb(folder / f"{SAMPLE_NAMES[2]}.JPEG")))
    assert find_sample(samples, "Pomeranian").image.size == (107, 160)

    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: pytest.fail("downloaded again"))
    assert len(imagenet_samples()) == 3 and imagenet_class_names(["n02974003"]) == ["car wheel"]


def test_imagenet_samples_bad_downloads_leave_nothing(
    tmp_path: Path, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = places
    not_a_zip = tmp_path / "error-page.html"
    not_a_zip.write_text("<html>rate limited</html>")
    _serve(monkeypatch, not_a_zip)
    with pytest.raises(DatasetNotFoundError, match="master.zip failed \\(the downloaded file is not a readable zip"):
        imagenet_samples()
    assert list(data.iterdir()) == []

    _serve(monkeypatch, _github_zip(tmp_path, names=("n02088094_Afghan_hound",)))  # no Pomeranian: not the repository
    with pytest.raises(CorruptArchiveError, match="n02112018_Pomeranian.JPEG.*has been deleted"):
        imagenet_samples()
    assert list(data.iterdir()) == []


def test_shrink_sample_to_the_mirror_size(tmp_path: Path) -> None:
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    shrunk = shrink_sample(wide)
    assert SAMPLE_LONGER_SIDE == 160 and shrunk.size == (160, 120) and wide.size == (400, 300)  # a copy
    reference = wide.copy()
    reference.thumbnail((160, 160), Image.Resampling.BICUBIC)  # how the mirror's samples were made
    np.testing.assert_array_equal(np.asarray(shrunk), np.asarray(reference))
    assert shrink_sample(wide.resize((333, 500))).size == (107, 160)
    for size in ((160, 140), (150, 150), (75, 56)):  # the mirror's: longer side 160, or a smaller original
        small = wide.resize(size)
        assert shrink_sample(small) is small


def test_mirror_samples_pass_through_unchanged() -> None:
    samples = imagenet_samples(download=False)  # the pre-test check made sure they are there
    assert len(samples) == 1000
    for name in ("Pomeranian", "car wheel", "Afghan hound"):
        sample = find_sample(samples, name)
        on_disk = load_rgb(samples.paths[samples.wnids.index(sample.wnid)])
        assert max(sample.image.size) <= SAMPLE_LONGER_SIDE
        if max(on_disk.size) <= SAMPLE_LONGER_SIDE:  # from the mirror (from GitHub they are full size)
            np.testing.assert_array_equal(np.asarray(sample.image), np.asarray(on_disk))


def test_paper_transforms() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    torch.manual_seed(0)
    crop = train_transform()(image)
    assert crop.shape == (3, 224, 224) and crop.dtype == torch.float32
    centre = eval_transform()(image)
    assert centre.shape == (3, 224, 224)
    crops = ten_crop_transform()(image)
    assert crops.shape == (10, 3, 224, 224)
    torch.testing.assert_close(crops[4], centre)  # the 5th crop is the centre
    torch.testing.assert_close(crops[9], centre.flip(-1))  # the last 5: the same crops of the flipped image
    torch.testing.assert_close(crops[5], crops[1].flip(-1))  # top left of the flipped = flipped top right


# -- TensorBatches -------------------------------------------------------------------------------


def _cached(count: int = 40, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    return images, np.arange(count)  # the label of an image is its index


def _epoch(batches: TensorBatches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches.set_epoch(epoch)
    return list(batches)


def test_tensor_batches_reproducible_per_epoch() -> None:
    images, labels = _cached()
    first = _epoch(TensorBatches(images, labels, 8, train=True, seed=1), 2)
    again = _epoch(TensorBatches(images, labels, 8, train=True, seed=1), 2)
    for (a, la), (b, lb) in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert torch.equal(la, lb)
    other = _epoch(TensorBatches(images, labels, 8, train=True, seed=1), 3)
    assert not torch.equal(torch.cat([lab for _, lab in first]), torch.cat([lab for _, lab in other]))
    assert sorted(torch.cat([lab for _, lab in first]).tolist()) == list(range(40))


def test_tensor_batches_ddp_shards_partition_epoch_and_augment_per_image() -> None:
    images, labels = _cached()
    single = {int(lab): img for batch, labs in _epoch(TensorBatches(images, labels, 4, train=True, seed=5), 1)
              for img, lab in zip(batch, labs)}
    shards = [
        {int(lab): img for batch, labs in _epoch(
            TensorBatches(images, labels, 4, train=True, seed=5, num_replicas=2, rank=rank), 1)
         for img, lab in zip(batch, labs)}
        for rank in (0, 1)
    ]
    assert not shards[0].keys() & shards[1].keys()
    assert sorted([*shards[0], *shards[1]]) == list(range(40))
    for shard in shards:  # the crop and flip of an image do not depend on the rank or the batch
        for index, image in shard.items():
            torch.testing.assert_close(image, single[index], rtol=0, atol=0)


def test_tensor_batches_augmentation_shapes_and_flips() -> None:
    images, labels = _cached(size=12)
    batches = TensorBatches(images, labels, 10, train=True, seed=0, pad=0, channels_last=True)
    flipped = 0
    for batch, labs in batches:
        assert batch.shape == (10, 3, 12, 12) and batch.dtype == torch.float32
        assert batch.is_contiguous(memory_format=torch.channels_last)
        originals = normalize(torch.from_numpy(images[labs.numpy()]))
        for image, original in zip(batch, originals):
            if torch.equal(image, original.flip(-1)):
                flipped += 1
            else:
                torch.testing.assert_close(image, original, rtol=0, atol=0)  # pad 0: no crop offset
    assert 0 < flipped < 40
    padded = TensorBatches(images, labels, 10, train=True, seed=0, pad=2)
    assert all(batch.shape == (10, 3, 12, 12) for batch, _ in padded)
    evaluation = list(TensorBatches(images, labels, 16, train=False))
    assert [len(lab) for _, lab in evaluation] == [16, 16, 8]
    torch.testing.assert_close(evaluation[0][0], normalize(torch.from_numpy(images[:16])).contiguous())


# -- a decoded cache is checked against its record before it is used -------------------------------------------


def _small_cache(tmp_path: Path) -> tuple[list[Path], list[int], Path]:
    from zfcore.data.images import decode_to_cache

    paths = []
    for index in range(6):
        paths.append(tmp_path / "files" / f"class{index % 2}" / f"image{index}.JPEG")
        _jpeg(paths[-1], index, (8, 8))
    labels = [index % 2 for index in range(6)]
    cache = tmp_path / "cache" / "small-64.npy"
    decode_to_cache(paths, labels, cache, 16)
    return paths, labels, cache


def _damage(cache: Path) -> None:
    data = bytearray(cache.read_bytes())
    data[-5] ^= 1  # one bit of the last image's pixels
    cache.write_bytes(bytes(data))


def _shorten_labels(cache: Path) -> None:
    labels_file = cache.with_name(cache.stem + ".labels.npy")
    np.save(labels_file, np.load(labels_file)[:4])


def _reverse_labels(cache: Path) -> None:
    labels_file = cache.with_name(cache.stem + ".labels.npy")
    np.save(labels_file, np.load(labels_file)[::-1].copy())


def _drop_record_and_reverse_labels(cache: Path) -> None:
    cache.with_name(cache.stem + ".digest.json").unlink()
    _reverse_labels(cache)


@pytest.mark.parametrize("damage, reason", [
    (_damage, "its images changed since it was decoded"),
    (_shorten_labels, "holds 6 images of shape .* and 4 labels"),
    (_reverse_labels, r"its labels \(small-64.labels.npy\) changed since it was decoded"),
    (_drop_record_and_reverse_labels, "has no record of what it was decoded from, and its labels are not those"),
    (lambda cache: cache.with_name(cache.stem + ".digest.json").write_text("{"), "its record .* is unreadable"),
])
def test_a_damaged_cache_is_decoded_again_with_one_warning_naming_it(tmp_path: Path, damage, reason) -> None:
    from zfcore.data.images import StaleCacheWarning, decoded_cache

    paths, labels, cache = _small_cache(tmp_path)
    good_images, good_labels = (np.array(part) for part in decoded_cache(paths, labels, cache, 16))
    damage(cache)
    with pytest.warns(StaleCacheWarning, match=rf"{re.escape(str(cache))}: {reason}.*; decoding it again") as caught:
        images, again = decoded_cache(paths, labels, cache, 16)
    assert len(caught) == 1
    np.testing.assert_array_equal(images, good_images)
    np.testing.assert_array_equal(again, good_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded_cache(paths, labels, cache, 16)  # whole again: no second warning


def test_a_cache_of_other_inputs_is_decoded_again_and_an_old_cache_with_the_right_labels_adopted(tmp_path: Path) -> None:
    from zfcore.data.images import StaleCacheWarning, decoded_cache

    paths, labels, cache = _small_cache(tmp_path)
    with pytest.warns(StaleCacheWarning, match="was decoded from other files, labels or size"):
        decoded_cache(paths[:4], labels[:4], cache, 16)
    assert len(np.load(cache, mmap_mode="r")) == 4
    with pytest.warns(StaleCacheWarning, match="was decoded from other files"):
        decoded_cache(paths, labels, cache, 16)  # back to six files: decoded anew
    record = cache.with_name(cache.stem + ".digest.json")
    record.unlink()  # a cache written before caches had records, with the right labels: adopted, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded_cache(paths, labels, cache, 16)
    assert record.exists()


def test_decoding_a_cache_checks_the_free_space_first(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from zfcore.data.images import decode_to_cache
    from zfcore.store import DiskFullError

    paths = [tmp_path / "files" / "a" / "image.JPEG"]
    _jpeg(paths[0], 0, (8, 8))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    cache = tmp_path / "cache" / "tiny.npy"
    with pytest.raises(DiskFullError, match=r"decode cache .*tiny.npy \(it needs 49.2 kB, 1.0 kB free\)"):
        decode_to_cache(paths, [0], cache, 128)
    assert not cache.exists() and not list(tmp_path.glob("cache/*"))
