"""Find a dataset: already extracted -> an archive in the mirror -> the official URL -> one clear error.

Two environment variables steer it:

* ``ZFBOOK_DATA_ROOT`` — where datasets are extracted and caches are written
  (default: ``datasets/`` in the repository, git-ignored). It must be a folder that can be written
  (or not exist yet, under one that can): :func:`data_root` raises :class:`DataRootError` otherwise.
* ``ZFBOOK_MIRROR`` — a directory holding the official archives (for machines without internet;
  CI points it at the shared mirror). Unset: no mirror.

An archive that is found but cannot be used — corrupt (bad CRC), truncated, not an archive at all, or
without the expected folder — raises :class:`CorruptArchiveError`, naming the archive and how to
replace it. Extraction happens in a staging folder that is removed whatever happens, so the data root
is left as it was and the next run with a good archive succeeds.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from zfcore.paths import REPOSITORY_ROOT, default_data_root
from zfcore.store import download as download_file, sha256

__all__ = ["Archive", "CorruptArchiveError", "DataRootError", "DatasetNotFoundError", "data_root", "find_or_fetch",
           "mirror_dir", "sha256"]

REPO_ROOT = REPOSITORY_ROOT
"""The repository's root (:data:`zfcore.paths.REPOSITORY_ROOT`; the default data root is its ``datasets/``)."""
# what reading a damaged zip, tar, .tar.gz or .tar.xz raises (a bad gzip CRC is an OSError: BadGzipFile)
_DAMAGED_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is nowhere to be found; the message names every place looked in and how to provide it."""


class CorruptArchiveError(DatasetNotFoundError):
    """A dataset archive was found but cannot be used (corrupt, truncated, not an archive, not the expected one).

    The message names the archive, what is wrong and how to replace it; nothing was extracted.
    """


class DataRootError(DatasetNotFoundError):
    """The data root is a file, or a folder that cannot be written: no dataset can be extracted or cached there."""


@dataclass(frozen=True)
class Archive:
    """How one dataset is distributed.

    Attributes:
        name: human name, e.g. ``"Tiny ImageNet"``.
        extracted: the folder the archive unpacks to, relative to the data root.
        filename: the archive's file name, relative to the mirror (``caltech101/...tar.gz``); in the
            folder it is extracted into, a download is kept under its last part (``...tar.gz``).
        url: the official download address (``None``: no public download).
        sha256: the official archive's checksum (``None``: not checked).
        marker: a file inside ``extracted`` whose presence means the extraction is complete.
    """

    name: str
    extracted: str
    filename: str
    url: str | None
    sha256: str | None
    marker: str


def data_root() -> Path:
    """The folder datasets are extracted to and caches written to (``ZFBOOK_DATA_ROOT``; unset or empty:
    ``datasets/`` in the repository, or ``~/.cache/zfbook/datasets`` for an installed package:
    :func:`zfcore.paths.default_data_root`).

    Checked on every call, without writing anything: a command that calls it first fails before any
    work when the data root is unusable.

    Raises:
        DataRootError: the path is a file, or it (or, if it does not exist yet, the nearest folder
            above it) cannot be written.
    """
    return _writable_folder(Path(os.environ.get("ZFBOOK_DATA_ROOT") or default_data_root()).expanduser())


def _writable_folder(path: Path) -> Path:
    """``path``, if it is a folder that can be written or can be created (nothing is created here).

    Raises:
        DataRootError: naming ``path``, what is wrong and how to fix it.
    """
    fix = "point ZFBOOK_DATA_ROOT (--data-root) at a folder that can be written (it is created if missing)"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        blocker = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise DataRootError(f"The data root {path} {blocker}, not a folder: {fix}, or move the file away.")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (it does not exist yet, and {existing} above it is read-only)"
        raise DataRootError(f"The data root {path} cannot be written{where}: {fix}, or make it writable.")
    return path


def mirror_dir() -> Path | None:
    """The folder of mirrored archives (``ZFBOOK_MIRROR``), or ``None`` if unset."""
    value = os.environ.get("ZFBOOK_MIRROR")
    return Path(value).expanduser() if value else None


def find_or_fetch(archive: Archive, *, root: Path | None = None, download: bool = True,
                  fetch: Callable[[Path], None] | None = None) -> Path:
    """Return the extracted folder of ``archive``, extracting or downloading it if needed.

    Order: ``root/extracted`` (complete if ``marker`` exists) -> ``$ZFBOOK_MIRROR/filename`` ->
    ``root/<filename's last part>`` (a download left there) -> the official URL (checksum verified) ->
    raise :class:`DatasetNotFoundError` naming every place looked in and how to provide the data.

    ``fetch``: a custom download, for a source that does not publish the mirror's archive as such: it is
    given ``root/<filename's last part>`` and must write the mirror's archive there from ``archive.url``,
    raising ``OSError`` if it cannot (default: download ``archive.url`` to that path, checksum verified).

    Raises:
        DataRootError: ``root`` (default: :func:`data_root`) is a file or cannot be written.
        CorruptArchiveError: the first archive found cannot be extracted, or lacks ``extracted/marker``
            (the data root is left as it was; a download that turns out corrupt is deleted).
        DatasetNotFoundError: no archive anywhere.
    """
    root = data_root() if root is None else Path(root)
    target = root / archive.extracted
    if (target / archive.marker).exists():
        return target
    _writable_folder(root)
    looked = [f"extracted: {target / archive.marker} (missing)"]
    good_copy = f"a good copy of {archive.filename}"
    candidates = []
    mirror = mirror_dir()
    if mirror is None:
        looked.append("mirror: ZFBOOK_MIRROR is not set")
    elif not mirror.is_dir():
        looked.append(f"mirror: ZFBOOK_MIRROR={mirror} is not a folder")
    else:
        unset = f" (or unset it to download from {archive.url})" if archive.url else ""
        candidates.append((mirror / archive.filename, f"Replace it with {good_copy}, or point ZFBOOK_MIRROR "
                           f"(--mirror) at a folder holding one{unset}."))
    again = f" so that the next run downloads it again from {archive.url}" if archive.url else ""
    # root/<last part>, not root/filename: Caltech's root is <data root>/caltech101 and its filename
    # caltech101/101_ObjectCategories.tar.gz (root/filename would name caltech101/caltech101/...)
    local = root / Path(archive.filename).name
    candidates.append((local, f"Delete it{again}, or replace it with {good_copy} "
                       "(or put one in a folder and set ZFBOOK_MIRROR to it)."))
    for candidate, fix in candidates:
        if candidate.is_file():
            _extract(candidate, root, archive, fix)
            return target
        looked.append(f"archive: {candidate} (missing)")
    if download and archive.url:
        try:
            if fetch is None:
                _download(archive, local)
            else:
                fetch(local)
        except OSError as error:
            looked.append(f"download: {archive.url} failed ({error})")
        else:
            try:
                _extract(local, root, archive, f"It was downloaded from {archive.url} and has been deleted: "
                         "run again to download it anew, or put a good copy in ZFBOOK_MIRROR.")
            except CorruptArchiveError:
                local.unlink(missing_ok=True)
                raise
            return target
    elif archive.url:
        looked.append(f"download: {archive.url} (not tried: download=False)")
    else:
        looked.append("download: no public URL")
    raise DatasetNotFoundError(
        f"{archive.name} was not found. Looked in:\n  - " + "\n  - ".join(looked) + "\n"
        f"Provide it by one of: extract it so that {target / archive.marker} exists "
        f"(or set ZFBOOK_DATA_ROOT to the folder holding {archive.extracted}/); put {archive.filename} "
        f"in a folder and set ZFBOOK_MIRROR to it"
        + (f"; or go online so it can be downloaded from {archive.url}." if archive.url else ".")
    )


def _download(archive: Archive, destination: Path) -> Path:
    """Download ``archive`` to ``destination``, checked against its SHA-256 (:func:`zfcore.store.download`).

    Raises:
        OSError: the download failed or its checksum does not match (nothing is kept).
    """
    return download_file(archive.url, destination, sha256=archive.sha256 or None,
                         description=f"download {archive.name}")


def _extract(path: Path, root: Path, archive: Archive, fix: str) -> None:
    """Extract ``path`` into a staging folder, check it, then move it into ``root``.

    An interrupted or failed extraction leaves ``root`` as it was: the staging folder is removed
    whatever happens, and nothing is moved unless ``extracted/marker`` is in the archive.

    Args:
        path: the archive (a zip, or a tar, possibly compressed).
        root: the data root to extract into.
        archive: what the archive should hold.
        fix: how to replace the archive, for the error message.

    Raises:
        CorruptArchiveError: ``path`` is corrupt, truncated or not an archive, or lacks ``extracted/marker``.
    """
    staging = root / f".extracting-{archive.extracted.replace('/', '_')}"
    shutil.rmtree(staging, ignore_errors=True)
    created_root = not root.exists()
    staging.mkdir(parents=True)
    try:
        try:
            if path.suffix == ".zip" or zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as bundle:
                    members = bundle.infolist()
                    for member in tqdm(members, desc=f"extract {archive.name}", unit="file", mininterval=2):
                        bundle.extract(member, staging)
            else:
                with tarfile.open(path) as bundle:
                    bundle.extractall(staging, filter="data")
                    while bundle.fileobj.read(1 << 20):  # a .tar.gz's checksum is checked only at the end
                        pass
        except _DAMAGED_ARCHIVE_ERRORS as error:
            raise CorruptArchiveError(
                f"The {archive.name} archive {path} is corrupt, truncated or not an archive "
                f"({type(error).__name__}: {' '.join(str(error).split())}); nothing was extracted. {fix}"
            ) from error
        if not (staging / archive.extracted / archive.marker).exists():
            held = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in staging.iterdir())
            raise CorruptArchiveError(
                f"The {archive.name} archive {path} holds {held[:5] or 'nothing'}"
                f"{' ...' if len(held) > 5 else ''}, not {archive.extracted}/{archive.marker}: it is not the "
                f"expected archive; nothing was extracted. {fix}"
            )
        top = archive.extracted.split("/")[0]
        destination = root / top
        if destination.exists():
            # a partial extraction from an earlier version of the data: merge what is new
            shutil.copytree(staging / top, destination, dirs_exist_ok=True)
        else:
            (staging / top).rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_root and not any(root.iterdir()):  # a failed extraction leaves no empty folder either
            root.rmdir()
