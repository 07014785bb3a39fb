"""zfcore.data.gpu_batches on a CPU: the device pipeline's code, decoding with libjpeg-turbo instead of nvjpeg.

The batches must be the PIL path's (``zfcore.data.transforms``) up to resampling: torchvision's
antialiased bilinear resize of uint8 tensors rounds differently from PIL's. Measured on 12
smooth-noise JPEGs from 200x150 to 1024x768 (five of them 500x375 or 375x500) at 224/256 (CPU):
0.24 % of the values differ by one grey level of 255 (0.1-0.9 % per image), one value in 1.8
million by two (a 257x400 image, resized by 0.4 %), none by more. On CUDA the resize runs in
float32 and is rounded once; ``bench/gpu_check.py`` measures that path against this one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zfcore.data.gpu_batches import DeviceBatches, device_decodable
from zfcore.data.images import CorruptImageWarning, load_rgb
from zfcore.data.loader import IMAGENET_STD
from zfcore.data.transforms import eval_transform

GREY_LEVEL = torch.tensor(1 / 255) / torch.tensor(IMAGENET_STD)[:, None, None]  # one uint8 step, normalised


def _picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour noise with fine grain: like a photo to a JPEG coder, and different in every place."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((height // 16 + 2, width // 16 + 2, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC)).astype(float)
    return Image.fromarray((smooth + rng.normal(0, 20, smooth.shape)).clip(0, 255).astype(np.uint8))


def _write(folder: Path, name: str, image: Image.Image, **save: object) -> str:
    path = folder / name
    image.save(path, **({"format": "JPEG", "quality": 90} | save))
    return str(path)


def _files(folder: Path, sizes: list[tuple[int, int]]) -> list[tuple[str, int]]:
    return [(_write(folder, f"{index}.JPEG", _picture(w, h, index)), index % 3) for index, (w, h) in enumerate(sizes)]


def _pil_batch(files: list[tuple[str, int]], size: int, resize: int) -> torch.Tensor:
    transform = eval_transform(size, resize)
    return torch.stack([transform(load_rgb(path)) for path, _ in files])


def _assert_within_resampling(got: torch.Tensor, want: torch.Tensor, one_level: float = 0.01) -> None:
    """At most two grey levels apart; under ``one_level`` of the values by one, under 1e-4 by two.

    The tests' tiny images (tens of pixels, resized by 1.2-1.4x) differ by one level on up to 8 % of
    their values (``one_level=0.1``); the 224-px crops of photo-sized images on under 1 %.
    """
    levels = (got - want).abs() / GREY_LEVEL
    assert levels.max() <= 2.0 + 1e-3, f"{levels.max():.3f} grey levels apart"
    assert (levels > 0.5).float().mean() < one_level and (levels > 1.5).float().mean() < 1e-4


def _passes(batches: DeviceBatches, epochs: list[int]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    result = []
    for epoch in epochs:
        batches.set_epoch(epoch)
        result.append(list(batches))
    return result


def test_centre_crops_equal_the_pil_path_up_to_resampling(tmp_path):
    files = _files(tmp_path, [(500, 375), (375, 500), (500, 333), (640, 480), (257, 400), (256, 256), (300, 300)])
    batches = DeviceBatches(files, 3, train=False, size=224, resize=256)
    pairs = list(batches)
    assert len(batches) == len(pairs) == 3 and [len(labels) for _, labels in pairs] == [3, 3, 1]
    images = torch.cat([images for images, _ in pairs])
    assert images.dtype == torch.float32 and images.shape == (7, 3, 224, 224)
    assert all(batch.is_contiguous(memory_format=torch.channels_last) for batch, _ in pairs)
    assert torch.equal(torch.cat([labels for _, labels in pairs]), torch.tensor([label for _, label in files]))
    _assert_within_resampling(images, _pil_batch(files, 224, 256))
    assert batches.skipped == [] and batches.cpu_decoded == []


def test_training_crops_are_crops_and_flips_of_the_pil_square(tmp_path):
    files = _files(tmp_path, [(120, 90), (90, 120)])
    size, resize = 48, 64
    batches = DeviceBatches(files, 2, train=True, size=size, resize=resize, seed=5)
    images, labels = next(iter(batches))
    squares = _pil_batch([files[index] for index in batches.sampler], resize, resize)  # the centre resize² square
    assert images.is_contiguous(memory_format=torch.channels_last)
    found = []
    for image, square in zip(images, squares):
        match = [(top, left, flip) for flip in (False, True) for top in range(resize - size + 1)
                 for left in range(resize - size + 1)
                 if ((square[:, top : top + size, left : left + size].flip(-1) if flip else
                      square[:, top : top + size, left : left + size]) - image).abs().le(1.001 * GREY_LEVEL).all()]
        assert match, "a training image is no crop of its square"
        found.append(match[0])
    assert torch.equal(labels, torch.tensor([files[index][1] for index in batches.sampler]))
    assert found[0] != found[1]


def test_same_seed_and_epoch_give_the_same_batches_and_other_epochs_other_ones(tmp_path):
    files = _files(tmp_path, [(80, 60)] * 8)
    make = lambda seed: DeviceBatches(files, 4, train=True, size=32, resize=48, seed=seed)  # noqa: E731
    first, again, other_seed = _passes(make(1), [0, 1]), _passes(make(1), [0, 1]), _passes(make(2), [0])
    for one, two in zip(first, again):
        for (images_a, labels_a), (images_b, labels_b) in zip(one, two):
            assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    differs = lambda a, b: any(not torch.equal(x, y) for (x, _), (y, _) in zip(a, b))  # noqa: E731
    assert differs(first[0], first[1]) and differs(first[0], other_seed[0])


def test_persistent_workers_give_the_batches_of_the_main_process(tmp_path):
    files = _files(tmp_path, [(80, 60), (60, 80)] * 4)
    in_process = _passes(DeviceBatches(files, 3, train=True, size=32, resize=48, seed=7), [0, 1])
    with_workers = DeviceBatches(files, 3, train=True, size=32, resize=48, seed=7, workers=2)
    assert with_workers.loader.persistent_workers
    workers = _passes(with_workers, [0])
    first_iterator = with_workers.loader._iterator
    workers += _passes(with_workers, [1])
    assert with_workers.loader._iterator is first_iterator  # the same worker processes in epoch 1
    for one, two in zip(in_process, workers):
        assert len(one) == len(two) == 2
        for (images_a, labels_a), (images_b, labels_b) in zip(one, two):
            assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)


def test_unreadable_files_are_skipped_and_named_once_per_pass(tmp_path):
    files = _files(tmp_path, [(80, 60)] * 4)
    good = Path(files[0][0]).read_bytes()
    (tmp_path / "garbage.JPEG").write_bytes(b"not an image" * 50)
    (tmp_path / "truncated.JPEG").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.JPEG").write_bytes(b"")
    bad = [str(tmp_path / name) for name in ("garbage.JPEG", "truncated.JPEG", "empty.JPEG")]
    mixed = [files[0], (bad[0], 1), files[1], (bad[1], 2), (bad[2], 0), files[2], files[3]]
    batches = DeviceBatches(mixed, 4, train=False, size=32, resize=48)
    with pytest.warns(CorruptImageWarning) as caught:
        pairs = list(batches)
    assert len([w for w in caught if issubclass(w.category, CorruptImageWarning)]) == 1
    message = str(caught[0].message)
    assert message.startswith("3 unreadable image file(s) skipped in epoch 0") and all(path in message for path in bad)
    assert sorted(batches.skipped) == sorted(bad)
    assert torch.equal(torch.cat([labels for _, labels in pairs]), torch.tensor([label for _, label in files]))
    _assert_within_resampling(torch.cat([images for images, _ in pairs]), _pil_batch(files, 32, 48), one_level=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptImageWarning)
        good_only = DeviceBatches(files, 4, train=False, size=32, resize=48)
        list(good_only)
    assert good_only.skipped == []


def _passes_and_warnings(batches: DeviceBatches, epochs: list[int]) -> tuple[list, list[list[str]]]:
    """The passes' batches and, per pass, the files named by its CorruptImageWarnings (sorted)."""
    passes, named = [], []
    for epoch in epochs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CorruptImageWarning)
            passes += _passes(batches, [epoch])
        assert len(caught) <= 1 and sorted(batches.skipped) == sorted(set(batches.skipped))
        named.append(sorted(batches.skipped) if caught else [])
        assert all(path in str(caught[0].message) for path in batches.skipped)
    return passes, named


def test_cached_squares_give_the_same_batches_without_reading_files_again(tmp_path):
    for train in (True, False):
        folder = tmp_path / str(train)
        folder.mkdir()
        files = _files(folder, [(80, 60), (60, 80), (70, 70)] * 3)
        (folder / "garbage.JPEG").write_bytes(b"not an image" * 50)
        mixed = files[:4] + [(str(folder / "garbage.JPEG"), 1)] + files[4:]
        plain = DeviceBatches(mixed, 4, train=train, size=32, resize=48, seed=3, cache=False)
        cached = DeviceBatches(mixed, 4, train=train, size=32, resize=48, seed=3, cache=True)
        want, want_named = _passes_and_warnings(plain, [0, 1, 2, 3])
        got, got_named = _passes_and_warnings(cached, [0, 1])
        assert plain.cached == 0 and cached.cached == len(mixed)  # training drops 2 of 10 a pass: two passes fill it
        for path, _ in mixed:  # from now on every batch comes from the cache: no file is read
            Path(path).unlink()
        more, more_named = _passes_and_warnings(cached, [2, 3])
        assert cached.cpu_decoded == [] and got_named + more_named == want_named
        assert [str(folder / "garbage.JPEG")] in want_named
        for one, two in zip(want, got + more, strict=True):
            assert len(one) == len(two)
            for (images_a, labels_a), (images_b, labels_b) in zip(one, two):
                assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)


def test_the_cache_is_off_on_a_cpu_by_default_and_checks_its_argument(tmp_path):
    files = _files(tmp_path, [(80, 60)] * 2)
    assert DeviceBatches(files, 2, train=False, size=32, resize=48)._squares is None
    with pytest.raises(ValueError, match=r"cache='yes' is not valid; valid values: None \(automatic\), True, False"):
        DeviceBatches(files, 2, train=False, size=32, resize=48, cache="yes")


def test_files_nvjpeg_should_not_get_go_to_the_cpu_decoder(tmp_path):
    picture = _picture(90, 70, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    odd = {
        "grey.JPEG": _write(tmp_path, "grey.JPEG", picture.convert("L")),
        "png.JPEG": _write(tmp_path, "png.JPEG", picture, format="PNG"),
        "cmyk.JPEG": _write(tmp_path, "cmyk.JPEG", picture.convert("CMYK")),
        "rotated.JPEG": _write(tmp_path, "rotated.JPEG", picture, exif=exif),
    }
    plain = _write(tmp_path, "plain.JPEG", picture)
    progressive = _write(tmp_path, "progressive.JPEG", picture, progressive=True)
    for path in odd.values():
        assert not device_decodable(Path(path).read_bytes()), path
    assert device_decodable(Path(plain).read_bytes()) and device_decodable(Path(progressive).read_bytes())
    assert not device_decodable(b"\xff\xd8\xff")  # headers cut short
    files = [(path, 0) for path in (*odd.values(), plain, progressive)]
    batches = DeviceBatches(files, 6, train=False, size=48, resize=64)
    (images, _), = list(batches)
    assert sorted(batches.cpu_decoded) == sorted(odd.values()) and batches.skipped == []
    _assert_within_resampling(images, _pil_batch(files, 48, 64), one_level=0.1)
    assert load_rgb(odd["rotated.JPEG"]).size == (70, 90)  # the rotation was applied on both paths


def test_stopping_early_and_errors_in_the_decoding_thread(tmp_path, monkeypatch):
    files = _files(tmp_path, [(80, 60)] * 6)
    batches = DeviceBatches(files, 2, train=True, size=32, resize=48, workers=1)
    for _ in batches:
        break
    assert len(list(batches)) == 3  # a new pass after an abandoned one

    def broken(*_: object) -> torch.Tensor:
        raise RuntimeError("crop failed")

    monkeypatch.setattr(DeviceBatches, "_crop_and_flip", broken)
    with pytest.raises(RuntimeError, match="crop failed"):
        list(batches)


@pytest.mark.parametrize("arguments, message", [
    (dict(batch_size=0), "batch_size=0"),
    (dict(batch_size=2, size=64, resize=48), "size=64, resize=48"),
])
def test_bad_arguments_raise_value_error_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message):
        DeviceBatches([("a.JPEG", 0)], train=True, **arguments)
