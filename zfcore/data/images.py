"""Reading image files: decode to RGB, name the unreadable ones, and decode once into a uint8 cache.

* :func:`load_rgb` opens any image as RGB; :func:`load_rgb_checked` raises :class:`UnreadableImageError`
  (naming the file) for a file that cannot be decoded, which :class:`~zfcore.data.loader.FileBatches`
  skips and lists in one :class:`CorruptImageWarning` per pass.
* An image with more pixels than PIL's limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 M by default: a
  possible decompression bomb) is unreadable too: skipped and named like a corrupt file by every
  decoding path, never read and never aborting a pass. PIL itself only warns between 1x and 2x the
  limit and refuses above; here both are refused (see :func:`load_rgb`). The limit stays PIL's one
  setting: raise it to read larger images.
* :func:`decode_to_cache` decodes many files once into a memory-mapped ``.npy`` (:func:`open_cache`), with a
  record of what it was decoded from and digests of its contents (``<cache>.digest.json``);
  :func:`decoded_cache` opens such a cache after checking it against that record, and decodes it again (with
  one warning naming the file and why) when it is missing, damaged, or of other inputs.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from zfcore.store import atomic_write, ensure_free_space, json_digest, sha256, write_json_atomic

__all__ = ["CorruptImageWarning", "StaleCacheWarning", "UnreadableImageError", "cache_problem", "centre_crop",
           "decode_to_cache", "decoded_cache", "load_rgb", "load_rgb_checked", "open_cache", "over_pixel_limit"]


class CorruptImageWarning(UserWarning):
    """Some image files could not be read and were skipped."""


def load_rgb(path: str | os.PathLike | BinaryIO) -> Image.Image:
    """Open an image (a path or a binary file) as RGB (greyscale, CMYK, palette and alpha images converted).

    Images over PIL's pixel limit are refused from their header, before any decoding. Between 1x and
    2x ``PIL.Image.MAX_IMAGE_PIXELS``, where PIL only emits a ``DecompressionBombWarning`` and reads
    the image, this raises as well (no warning is emitted): such an image is skipped like any
    unreadable file, so that a pass never spends the memory of an image over the limit.

    Raises:
        OSError, ValueError, SyntaxError: what PIL raises for truncated, garbled or unknown files.
        PIL.Image.DecompressionBombError: the image has more than ``PIL.Image.MAX_IMAGE_PIXELS``
            pixels (unless that limit is ``None``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise Image.DecompressionBombError(
                f"{error} Raise PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS}) to read it."
            ) from None
    with opened as image:
        image = ImageOps.exif_transpose(image) if image.format == "JPEG" else image
        return image.convert("RGB")


def over_pixel_limit(width: int, height: int) -> bool:
    """Whether a ``width`` x ``height`` image has more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``: the
    images :func:`load_rgb` refuses, for decoders that read the size from the header themselves."""
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and max(1, width) * max(1, height) > limit


class UnreadableImageError(OSError):
    """An image file could not be decoded; ``path`` names it and ``reason`` is what the decoder raised."""

    def __init__(self, path: str | os.PathLike, reason: BaseException) -> None:
        super().__init__(f"{path}: {type(reason).__name__}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_rgb_checked(path: str | os.PathLike | BinaryIO) -> Image.Image:
    """:func:`load_rgb`, raising :class:`UnreadableImageError` (with the path) on a bad file.

    The loader for every file-based dataset here: :class:`SkipUnreadable` skips exactly these errors,
    so a bug in a transform still fails loudly instead of being skipped. A bad file is a truncated,
    garbled or unknown one, or one over PIL's pixel limit (see :func:`load_rgb`).
    """
    try:
        return load_rgb(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(path, error) from error


def decode_to_cache(
    paths: Sequence[str | os.PathLike],
    labels: Sequence[int],
    cache_file: Path,
    size: int,
    *,
    description: str = "decode",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``paths`` to ``size x size`` RGB uint8 and store them as one memory-mapped ``.npy``.

    Images not already ``size x size`` are resized (shorter side) and centre-cropped. Unreadable files
    (:func:`load_rgb_checked`: corrupt ones and those over PIL's pixel limit) are skipped with one
    :class:`CorruptImageWarning` that counts and lists them with the reason.

    Returns:
        ``(images [N, size, size, 3] uint8 memmap, labels [N] int64, skipped paths)``. The cache is
        written to a temporary name and renamed, so an interrupted decode never leaves a bad cache.
    """
    ensure_free_space(cache_file, len(paths) * size * size * 3 + 8 * len(labels), f"{description} cache")
    kept: list[int] = []
    skipped: list[str] = []

    def decode(partial: Path) -> None:
        images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        for index, path in enumerate(tqdm(paths, desc=description, unit="img", mininterval=2)):
            try:
                image = load_rgb_checked(path)
            except UnreadableImageError as error:
                skipped.append(f"{path} ({type(error.reason).__name__})")
                continue
            if image.size != (size, size):
                image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
            images[len(kept)] = np.asarray(image)
            kept.append(index)
        images.flush()
        del images
        if len(kept) < len(paths):  # rare: the decoded rows come first; cut the file to them
            _keep_rows(partial, len(kept))
        atomic_write(_labels_file(cache_file), lambda labels_partial: _save_npy(labels_partial,
                                                                               np.asarray(labels, dtype=np.int64)[kept]))

    atomic_write(cache_file, decode)
    _write_record(cache_file, paths, labels, size)
    if skipped:
        warnings.warn(
            f"{len(skipped)} unreadable image file(s) skipped: " + "; ".join(skipped), CorruptImageWarning, stacklevel=2
        )
    images, kept_labels = open_cache(cache_file)
    return images, kept_labels, skipped


def _keep_rows(path: Path, rows: int) -> None:
    """Cut the ``.npy`` array in ``path`` to its first ``rows`` rows, in place (the data is not copied).

    numpy pads an array's header so that its first dimension can change in place
    (``np.lib.format.GROWTH_AXIS_MAX_DIGITS``): the new header is as long as the old one, and the file is
    truncated after the kept rows.

    Raises:
        ValueError: ``path`` is not a C-ordered ``.npy`` file.
    """
    with open(path, "r+b") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            read, write = np.lib.format.read_array_header_1_0, np.lib.format.write_array_header_1_0
        else:
            read, write = np.lib.format.read_array_header_2_0, np.lib.format.write_array_header_2_0
        shape, fortran_order, dtype = read(handle)
        offset = handle.tell()
        header = io.BytesIO()
        write(header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                       "shape": (rows, *shape[1:])})
        if fortran_order or header.tell() != offset:
            raise ValueError(f"{path}: cannot cut a .npy file whose header is not padded for growth, or that is "
                             f"in Fortran order")
        handle.seek(0)
        handle.write(header.getvalue())
        handle.truncate(offset + rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


def open_cache(cache_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Open a cache written by :func:`decode_to_cache` as ``(images memmap, labels)`` (unchecked: see
    :func:`decoded_cache`)."""
    return np.load(cache_file, mmap_mode="r"), np.load(_labels_file(cache_file))


class StaleCacheWarning(UserWarning):
    """A decoded-image cache was missing its record, damaged, or made from other files: it is decoded again."""


def decoded_cache(paths: Sequence[str | os.PathLike], labels: Sequence[int], cache_file: Path, size: int, *,
                  description: str = "decode") -> tuple[np.ndarray, np.ndarray]:
    """The cache of ``paths`` at ``size`` px as ``(images memmap, labels)``: opened when it passes
    :func:`cache_problem`, else decoded (again) with :func:`decode_to_cache` and one :class:`StaleCacheWarning`
    naming the file and what was wrong (none for a cache that does not exist yet)."""
    problem = cache_problem(paths, labels, cache_file, size)
    if problem is not None:
        if cache_file.exists():
            warnings.warn(f"{cache_file}: {problem}; decoding it again", StaleCacheWarning, stacklevel=2)
        decode_to_cache(paths, labels, cache_file, size, description=description)
    return open_cache(cache_file)


def cache_problem(paths: Sequence[str | os.PathLike], labels: Sequence[int], cache_file: Path, size: int) -> str | None:
    """Why the cache in ``cache_file`` is not the decoded ``paths``/``labels`` at ``size`` px (``None``: it is).

    Checked against its record (``<cache>.digest.json``, written by :func:`decode_to_cache`): the inputs' digest
    (file names, labels, size), the row count of images and labels, and the SHA-256 of both files (about 1 s
    for the 938 MB of Tiny ImageNet's training split). A cache decoded before caches had records is adopted (its
    record written now) when its labels are exactly those of the readable inputs.
    """
    labels_file, record_file = _labels_file(cache_file), _record_file(cache_file)
    if not cache_file.exists() or not labels_file.exists():
        return "missing"
    try:
        images, cached_labels = open_cache(cache_file)
    except (OSError, ValueError) as error:
        return f"unreadable ({error})"
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or len(images) != len(cached_labels):
        return f"holds {len(images)} images of shape {images.shape[1:]} and {len(cached_labels)} labels"
    if not record_file.exists():
        if np.array_equal(cached_labels, np.asarray(labels, dtype=np.int64)):
            _write_record(cache_file, paths, labels, size)
            return None
        return "has no record of what it was decoded from, and its labels are not those of the inputs"
    try:
        record = json.loads(record_file.read_text())
        expected = (record["inputs"], record["images_sha256"], record["labels_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its record {record_file.name} is unreadable ({error})"
    if expected[0] != _inputs_digest(paths, labels, size):
        return "was decoded from other files, labels or size"
    if sha256(labels_file) != expected[2]:
        return f"its labels ({labels_file.name}) changed since it was decoded"
    if sha256(cache_file) != expected[1]:
        return "its images changed since it was decoded (damaged or edited)"
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to exactly ``path`` (given a name, ``np.save`` would append ``.npy``)."""
    with open(path, "wb") as handle:
        np.save(handle, array)


def _labels_file(cache_file: Path) -> Path:
    return cache_file.with_name(cache_file.stem + ".labels.npy")


def _record_file(cache_file: Path) -> Path:
    return cache_file.with_name(cache_file.stem + ".digest.json")


def _inputs_digest(paths: Sequence[str | os.PathLike], labels: Sequence[int], size: int) -> str:
    """What a cache is decoded from: each file's folder and name (not where the dataset lies), its label, the size."""
    names = ["/".join(Path(path).parts[-2:]) for path in paths]
    return json_digest({"files": names, "labels": [int(label) for label in labels], "size": int(size)})


def _write_record(cache_file: Path, paths: Sequence[str | os.PathLike], labels: Sequence[int], size: int) -> None:
    """Write the cache's record: its inputs' digest and the SHA-256 of its images and labels files."""
    write_json_atomic(_record_file(cache_file), {
        "inputs": _inputs_digest(paths, labels, size), "images_sha256": sha256(cache_file),
        "labels_sha256": sha256(_labels_file(cache_file))})


def centre_crop(image: Image.Image, size: int = 64) -> np.ndarray:
    """A probe image for a ``size``-px network: uint8 ``[size, size, 3]``, the shorter side resized to ``size``
    (bicubic, antialiased), then the centre ``size``² crop (the ImageNet samples are up to 160 px)."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.convert("RGB").resize((max(size, round(width * scale)), max(size, round(height * scale))),
                                          Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
