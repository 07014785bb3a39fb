"""Bad data inputs (issue 12, groups 3-5): unusable data roots, corrupt dataset archives, oversized images.

Every case asserts the exact error type, that the message names the bad path (and the fix), and that
nothing on disk changed: archives and images are hashed before and after, and a data root keeps
exactly the entries it had (no staging folder, nothing half-extracted). Tiny synthetic files only.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from archives import tgz_folder, zip_folder
from zfcore.data import FileBatches, ImageNetSamples, imagenet, imagenet_class_names, imagenette
from zfcore.data.caltech import Caltech101
from zfcore.data.gpu_batches import DeviceBatches, device_decodable
from zfcore.data.imagenet import IMAGENET_SAMPLES
from zfcore.data.images import (
    CorruptImageWarning,
    UnreadableImageError,
    decode_to_cache,
    load_rgb,
    load_rgb_checked,
)
from zfcore.data.locate import (
    REPO_ROOT,
    CorruptArchiveError,
    DataRootError,
    DatasetNotFoundError,
    data_root,
    find_or_fetch,
)
from zfcore.data.tiny_imagenet import TINY_IMAGENET, TinyImageNet
from zfcore.data.transforms import eval_transform

PAYLOAD = b"A" * 4000  # a stored (uncompressed) member, so that flipping one of its bytes breaks its CRC
LIMIT = 1000  # PIL.Image.MAX_IMAGE_PIXELS in the image tests: 1,000-2,000 px warns in PIL, over 2,000 raises
URL = TINY_IMAGENET.url


# -- helpers -------------------------------------------------------------------------------------


def _snapshot(*places: Path) -> dict[str, str]:
    """Every file and folder under ``places`` (recursively) -> SHA-256 (``"dir"`` for folders)."""
    found = {}
    for place in places:
        if place.is_file():
            found[str(place)] = hashlib.sha256(place.read_bytes()).hexdigest()
        elif place.is_dir():
            for path in sorted(place.rglob("*")):
                found[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _tiny_folder(build: Path, *, marker: bool = True, top: str = "tiny-imagenet-200") -> Path:
    """A minimal Tiny ImageNet layout (the marker file, class lists and one stored payload)."""
    folder = build / top
    (folder / "val").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("n01443537\n")
    (folder / "words.txt").write_text("n01443537\tgoldfish\n")
    (folder / "payload.bin").write_bytes(PAYLOAD)
    if marker:
        (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01443537\t0\t0\t63\t63\n")
    return folder


def _good_zip(tmp_path: Path, archive: Path) -> Path:
    return zip_folder(_tiny_folder(tmp_path / "good-build"), archive)


def _bad_crc_zip(tmp_path: Path, archive: Path) -> Path:
    data = bytearray(_good_zip(tmp_path, archive).read_bytes())
    data[data.index(PAYLOAD) + 100] ^= 0xFF
    archive.write_bytes(bytes(data))
    return archive


def _assert_corrupt(error: pytest.ExceptionInfo, archive: Path, *reasons: str) -> str:
    """The error is exactly a CorruptArchiveError on one line naming ``archive``, each reason and a fix."""
    assert type(error.value) is CorruptArchiveError and isinstance(error.value, DatasetNotFoundError)
    message = str(error.value)
    assert "\n" not in message and str(archive) in message, message
    assert "nothing was extracted" in message
    for reason in reasons:
        assert reason in message, message
    return message


# -- corrupt archives (group 5) ------------------------------------------------------------------


def _break_in_mirror(tmp_path: Path, mirror: Path, kind: str) -> tuple[Path, str]:
    """Write a broken Tiny ImageNet archive of ``kind`` into the mirror; return it and the reason expected."""
    archive = mirror / TINY_IMAGENET.filename
    if kind == "bad CRC":
        return _bad_crc_zip(tmp_path, archive), "BadZipFile: Bad CRC-32 for file 'tiny-imagenet-200/payload.bin'"
    if kind == "truncated":
        data = _good_zip(tmp_path, archive).read_bytes()
        archive.write_bytes(data[: len(data) // 2])
        return archive, "BadZipFile: File is not a zip file"
    if kind == "empty":
        archive.write_bytes(b"")
        return archive, "BadZipFile: File is not a zip file"
    if kind == "html page":  # what a captive portal or an error page saves under the archive's name
        archive.write_bytes(b"<html><body>404 Not Found</body></html>\n")
        return archive, "BadZipFile: File is not a zip file"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad CRC", "truncated", "empty", "html page"])
def test_corrupt_zip_in_mirror_is_named_and_the_next_run_recovers(
    tmp_path: Path, places: tuple[Path, Path], kind: str
) -> None:
    data, mirror = places
    archive, reason = _break_in_mirror(tmp_path, mirror, kind)
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        TinyImageNet()
    message = _assert_corrupt(error, archive, reason, "corrupt, truncated or not an archive",
                              "Replace it with a good copy of tiny-imagenet-200.zip",
                              "point ZFBOOK_MIRROR (--mirror) at a folder holding one",
                              f"unset it to download from {URL}")
    assert _snapshot(data, mirror) == before, message  # no staging folder, nothing half-extracted, archive kept
    _good_zip(tmp_path, archive)  # the fix: a good copy in the mirror
    assert TinyImageNet().root == data / "tiny-imagenet-200"
    assert sorted(path.name for path in data.iterdir()) == ["tiny-imagenet-200"]  # the staging folder is gone


def _tgz_broken(tmp_path: Path, archive: Path, kind: str) -> tuple[Path, str]:
    if kind == "not a tar":
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(b"this is not a tar file\n" * 40)
        return archive, "ReadError: file could not be opened successfully: - method gz: ReadError('not a gzip file')"
    data = tgz_folder(_tiny_folder(tmp_path / "build"), archive).read_bytes()
    if kind == "truncated":
        archive.write_bytes(data[: len(data) // 2])
        return archive, "EOFError: Compressed file ended before the end-of-stream marker was reached"
    if kind == "flipped byte":  # tar reads it without complaint; only gzip's CRC, at the very end, tells
        flipped = bytearray(data)
        flipped[len(data) - 8] ^= 0xFF
        archive.write_bytes(bytes(flipped))
        return archive, "BadGzipFile: CRC check failed"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["not a tar", "truncated", "flipped byte"])
def test_corrupt_tar_gz_is_named(tmp_path: Path, places: tuple[Path, Path], kind: str) -> None:
    data, mirror = places
    archive, reason = _tgz_broken(tmp_path, mirror / "imagenette2-160.tgz", kind)
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        imagenette("val", size="160px")
    _assert_corrupt(error, archive, reason, "Imagenette (160px) archive",
                    "Replace it with a good copy of imagenette2-160.tgz")
    assert _snapshot(data, mirror) == before


def test_archive_without_the_expected_folder(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    archive = zip_folder(_tiny_folder(tmp_path / "build", top="something-else"), mirror / TINY_IMAGENET.filename)
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        find_or_fetch(TINY_IMAGENET)
    _assert_corrupt(error, archive, "holds ['something-else/']", "not tiny-imagenet-200/val/val_annotations.txt",
                    "it is not the expected archive")
    assert _snapshot(data, mirror) == before


def test_archive_with_the_folder_but_not_the_marker_leaves_the_data_root_alone(
    tmp_path: Path, places: tuple[Path, Path]
) -> None:
    data, mirror = places
    archive = zip_folder(_tiny_folder(tmp_path / "build", marker=False), mirror / TINY_IMAGENET.filename)
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        find_or_fetch(TINY_IMAGENET)
    _assert_corrupt(error, archive, "holds ['tiny-imagenet-200/']", "not tiny-imagenet-200/val/val_annotations.txt")
    assert _snapshot(data, mirror) == before  # before, the incomplete folder was moved into the data root


def test_corrupt_download_left_in_the_data_root(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, _ = places
    archive = _bad_crc_zip(tmp_path, data / TINY_IMAGENET.filename)
    before = _snapshot(data)
    with pytest.raises(CorruptArchiveError) as error:
        find_or_fetch(TINY_IMAGENET)
    _assert_corrupt(error, archive, "Bad CRC-32", f"Delete it so that the next run downloads it again from {URL}")
    assert _snapshot(data) == before  # the user's file is not deleted for them
    archive.unlink()  # the fix the message gives, with a good copy in the mirror
    _good_zip(tmp_path, places[1] / TINY_IMAGENET.filename)
    assert (find_or_fetch(TINY_IMAGENET) / "val" / "val_annotations.txt").is_file()


def test_corrupt_download_is_deleted(
    tmp_path: Path, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = places
    monkeypatch.delenv("ZFBOOK_MIRROR")
    body = _bad_crc_zip(tmp_path, tmp_path / "served.zip").read_bytes()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(body))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(body))
    with pytest.raises(CorruptArchiveError) as error:
        find_or_fetch(TINY_IMAGENET)
    _assert_corrupt(error, data / TINY_IMAGENET.filename, "Bad CRC-32",
                    f"It was downloaded from {URL} and has been deleted")
    assert _snapshot(data) == {}  # neither the download, its .part nor a staging folder is left


def test_tar_member_escaping_the_data_root(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    archive = mirror / "imagenette2-160.tgz"
    with tarfile.open(archive, "w:gz") as bundle:
        entry = tarfile.TarInfo("../escaped.txt")
        entry.size = 5
        bundle.addfile(entry, io.BytesIO(b"oops!"))
    before = _snapshot(tmp_path)
    with pytest.raises(CorruptArchiveError) as error:
        imagenette("train", size="160px")
    _assert_corrupt(error, archive, "OutsideDestinationError", "escaped.txt")
    assert _snapshot(tmp_path) == before and not (data.parent / "escaped.txt").exists()


def test_corrupt_caltech_tarball_is_not_answered_by_a_download(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    archive = mirror / "caltech101" / "101_ObjectCategories.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"\x1f\x8b\x08" + b"garbage" * 30)  # gzip magic, then nonsense
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        Caltech101()  # download=True: before, it went on to download (here: fail offline) and hid the cause
    message = _assert_corrupt(error, archive, "Caltech-101 archive", "ZFBOOK_MIRROR")
    assert "offline in tests" not in message
    assert _snapshot(data, mirror) == before


def test_corrupt_sample_archive_is_not_silently_replaced_by_wnids(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, mirror = places
    archive = mirror / "imagenet-samples.zip"
    archive.write_bytes(b"PK\x03\x04 but nothing else")
    before = _snapshot(data, mirror)
    with pytest.raises(CorruptArchiveError) as error:
        imagenet_class_names(["n01443537"])
    _assert_corrupt(error, archive, "File is not a zip file", "Replace it with a good copy of imagenet-samples.zip")
    assert f"(or unset it to download from {IMAGENET_SAMPLES.url})" in str(error.value)  # GitHub's copy
    assert _snapshot(data, mirror) == before
    archive.unlink()
    assert imagenet_class_names(["n01443537"]) == ["n01443537"]  # absent (not broken): the wnids, as before


# -- the data root and the mirror (groups 3 and 4) -----------------------------------------------


def test_data_root_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_folder = tmp_path / "datasets.txt"
    not_a_folder.write_text("notes")
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(not_a_folder))
    before = _snapshot(tmp_path)
    for call in (data_root, TinyImageNet, lambda: find_or_fetch(TINY_IMAGENET)):
        with pytest.raises(DataRootError) as error:
            call()
        assert str(error.value) == (
            f"The data root {not_a_folder} is a file, not a folder: point ZFBOOK_DATA_ROOT (--data-root) at a "
            "folder that can be written (it is created if missing), or move the file away."
        )
    assert isinstance(error.value, DatasetNotFoundError)  # what the CLI turns into one line
    assert _snapshot(tmp_path) == before


def test_data_root_below_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(blocker / "datasets"))
    with pytest.raises(DataRootError) as error:
        data_root()
    assert str(error.value).startswith(f"The data root {blocker / 'datasets'} cannot be created: {blocker} is a file")
    assert _snapshot(tmp_path) == {str(blocker): hashlib.sha256(b"x").hexdigest()}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(locked))
        with pytest.raises(DataRootError) as error:
            find_or_fetch(TINY_IMAGENET)
        assert str(error.value).startswith(f"The data root {locked} cannot be written: point ZFBOOK_DATA_ROOT")
        monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(locked / "new"))
        with pytest.raises(DataRootError) as error:
            data_root()
        assert f"it does not exist yet, and {locked} above it is read-only" in str(error.value)
    finally:
        locked.chmod(0o755)


def test_unwritable_data_root_as_the_os_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check where the tests run as root (which may write anywhere): the OS's answer is faked."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(locked / "new" / "deeper"))
    with pytest.raises(DataRootError) as error:
        TinyImageNet()
    assert str(error.value) == (
        f"The data root {locked / 'new' / 'deeper'} cannot be written (it does not exist yet, and {locked} above it "
        "is read-only): point ZFBOOK_DATA_ROOT (--data-root) at a folder that can be written (it is created if "
        "missing), or make it writable."
    )
    assert list(locked.iterdir()) == []


def test_explicit_root_that_is_a_file(tmp_path: Path, places: tuple[Path, Path]) -> None:
    data, _ = places
    (data / "caltech101").write_text("not a folder")
    before = _snapshot(data)
    with pytest.raises(DataRootError) as error:
        Caltech101()  # before: [Errno 17] File exists, or a download into nowhere
    assert str(error.value).startswith(f"The data root {data / 'caltech101'} is a file")
    assert _snapshot(data) == before


def test_data_root_defaults_and_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", "")  # empty means unset, not the working directory
    assert data_root() == REPO_ROOT / "datasets"
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(tmp_path / "not" / "yet"))
    assert data_root() == tmp_path / "not" / "yet" and list(tmp_path.iterdir()) == []


def test_mirror_that_is_not_a_folder(
    tmp_path: Path, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror_file = tmp_path / "mirror.txt"
    mirror_file.write_text("x")
    monkeypatch.setenv("ZFBOOK_MIRROR", str(mirror_file))
    with pytest.raises(DatasetNotFoundError) as error:
        find_or_fetch(TINY_IMAGENET)
    assert type(error.value) is DatasetNotFoundError
    assert f"mirror: ZFBOOK_MIRROR={mirror_file} is not a folder" in str(error.value)


# -- oversized images (group 6) ------------------------------------------------------------------


def _png(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _jpeg(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """PIL's pixel limit lowered to ``LIMIT`` for this test only (instead of writing 200-megapixel files)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)
    return LIMIT


@pytest.mark.parametrize("size, level", [((64, 64), "over 2x: PIL raises"), ((40, 40), "1x-2x: PIL only warns")])
def test_load_rgb_refuses_images_over_the_limit(
    tmp_path: Path, low_limit: int, size: tuple[int, int], level: str
) -> None:
    path = _png(tmp_path / "huge.png", size)
    before, filters = _snapshot(tmp_path), list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Image.DecompressionBombError) as bomb:
            load_rgb(path)
        with pytest.raises(UnreadableImageError) as error:
            load_rgb_checked(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)], level
    assert str(bomb.value).endswith(f"Raise PIL.Image.MAX_IMAGE_PIXELS (now {LIMIT}) to read it.")
    assert str(error.value).startswith(f"{path}: DecompressionBombError: Image size ({size[0] * size[1]} pixels)")
    assert error.value.path == str(path) and isinstance(error.value.reason, Image.DecompressionBombError)
    assert list(warnings.filters) == filters and Image.MAX_IMAGE_PIXELS == LIMIT  # nothing silenced globally
    assert _snapshot(tmp_path) == before


def test_images_at_the_limit_and_without_a_limit_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 25)
    assert load_rgb(_png(tmp_path / "at.png", (40, 25))).size == (40, 25)  # exactly the limit: read
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the user's own choice to lift it is respected
    assert load_rgb(_png(tmp_path / "big.png", (64, 64))).size == (64, 64)


def test_png_with_an_oversized_text_chunk_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 5000, zip=True)
    path = tmp_path / "chatty.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_CHUNK", 100)
    with pytest.raises(UnreadableImageError) as error:
        load_rgb_checked(path)
    assert str(error.value) == f"{path}: ValueError: Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"


def test_decode_to_cache_skips_oversized_and_corrupt(tmp_path: Path, low_limit: int) -> None:
    paths = [
        _png(tmp_path / "ok.png", (30, 30)),
        _png(tmp_path / "bomb.png", (64, 64)),
        _png(tmp_path / "warned.png", (40, 40)),
        tmp_path / "garbage.png",
        _jpeg(tmp_path / "ok.JPEG", (20, 20)),
    ]
    paths[3].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    before = _snapshot(*paths)
    with pytest.warns(CorruptImageWarning) as caught:
        images, labels, skipped = decode_to_cache(paths, [0, 1, 2, 3, 4], tmp_path / "cache" / "c.npy", 8)
    assert len([w for w in caught if issubclass(w.category, CorruptImageWarning)]) == 1
    assert str(caught[0].message) == (
        f"3 unreadable image file(s) skipped: {paths[1]} (DecompressionBombError); "
        f"{paths[2]} (DecompressionBombError); {paths[3]} (UnidentifiedImageError)"
    )
    assert images.shape == (2, 8, 8, 3) and labels.tolist() == [0, 4] and len(skipped) == 3
    assert _snapshot(*paths) == before


def test_file_batches_skip_oversized_images(tmp_path: Path, low_limit: int) -> None:
    root = tmp_path / "imagenet"
    for label, wnid in enumerate(("n01", "n02")):
        for index in range(3):
            _jpeg(root / "train" / wnid / f"{wnid}_{index}.JPEG", (30, 25), 10 * label + index)
    bomb = _png(root / "train" / "n01" / "n01_bomb.png", (64, 64))
    warned = _jpeg(root / "train" / "n02" / "n02_warned.JPEG", (40, 40))
    before = _snapshot(root)
    batches = FileBatches(imagenet(root, "train", transform=eval_transform(16, 20)), 3, train=False)
    with pytest.warns(CorruptImageWarning) as caught:
        seen = list(batches)
    assert len([w for w in caught if issubclass(w.category, CorruptImageWarning)]) == 1
    message = str(caught[0].message)
    assert message.startswith("2 unreadable image file(s) skipped in epoch 0") and str(bomb) in message
    assert sorted(batches.skipped) == sorted([str(bomb), str(warned)])
    assert sum(len(labels) for _, labels in seen) == 6 and _snapshot(root) == before


def test_device_batches_skip_oversized_images_on_the_cpu_fallback(tmp_path: Path, low_limit: int) -> None:
    good = [(str(_jpeg(tmp_path / f"{index}.JPEG", (30, 30), index)), index) for index in range(3)]
    jpeg_bomb = _jpeg(tmp_path / "warned.JPEG", (40, 40), 7)  # a plain JPEG that nvjpeg would otherwise decode
    png_bomb = _png(tmp_path / "bomb.png", (64, 64))
    with pytest.MonkeyPatch.context() as unlimited:
        unlimited.setattr(Image, "MAX_IMAGE_PIXELS", None)
        assert device_decodable(jpeg_bomb.read_bytes())
    assert not device_decodable(jpeg_bomb.read_bytes())  # over the limit: to the CPU decoder, which skips it
    files = [good[0], (str(jpeg_bomb), 1), good[1], (str(png_bomb), 2), good[2]]
    before = _snapshot(tmp_path)
    batches = DeviceBatches(files, 5, train=False, size=16, resize=24)
    with pytest.warns(CorruptImageWarning) as caught:
        (images, labels), = list(batches)
    assert len([w for w in caught if issubclass(w.category, CorruptImageWarning)]) == 1
    assert str(caught[0].message) == f"2 unreadable image file(s) skipped in epoch 0: {jpeg_bomb}; {png_bomb}"
    assert labels.tolist() == [0, 1, 2] and images.shape == (3, 3, 16, 16) and torch.isfinite(images).all()
    assert batches.cpu_decoded == [] and _snapshot(tmp_path) == before


def test_sample_over_the_limit_names_the_file(tmp_path: Path, low_limit: int) -> None:
    path = _jpeg(tmp_path / "n02112018_Pomeranian.JPEG", (64, 64))
    with pytest.raises(UnreadableImageError) as error:
        ImageNetSamples(tmp_path)[0]
    assert str(error.value).startswith(f"{path}: DecompressionBombError: Image size (4096 pixels)")


# -- odd but valid images still become RGB (group 6's counterpart) -------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "I;16", "I", "F", "RGBA", "CMYK", "YCbCr"])
def test_odd_but_valid_images_become_rgb(tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / ("odd.tiff" if mode in ("CMYK", "YCbCr", "I;16", "I", "F", "PA") else "odd.png")
    image.save(path)
    loaded = load_rgb_checked(path)
    assert loaded.mode == "RGB" and loaded.size == (5, 6)


def test_an_installed_package_keeps_datasets_in_the_user_cache_not_in_site_packages(tmp_path, monkeypatch) -> None:
    from zfcore.paths import default_data_root

    checkout, installed = tmp_path / "clone", tmp_path / "site-packages"
    (checkout / "zfcore").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\n")
    (installed / "zfcore").mkdir(parents=True)
    monkeypatch.setenv("ZFBOOK_CACHE", str(tmp_path / "cache"))
    assert default_data_root(checkout) == checkout / "datasets"
    assert default_data_root(installed) == tmp_path / "cache" / "datasets"
