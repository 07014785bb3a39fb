"""Find a dataset: already extracted -> an archive in the mirror -> the official URL -> one clear error.

Two environment variables steer it:

* ``ZFBOOK_DATA_ROOT`` — where datasets are extracted and caches are written
  (default: ``datasets/`` in the repository, git-ignored);
* ``ZFBOOK_MIRROR`` — a directory holding the official archives (for machines without internet;
  CI points it at the shared mirror). Unset: no mirror.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["Archive", "DatasetNotFoundError", "data_root", "find_or_fetch", "mirror_dir", "sha256"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is nowhere to be found; the message names every place looked in and how to provide it."""


@dataclass(frozen=True)
class Archive:
    """How one dataset is distributed.

    Attributes:
        name: human name, e.g. ``"Tiny ImageNet"``.
        extracted: the folder the archive unpacks to, relative to the data root.
        filename: the archive's file name, relative to the mirror (``caltech101/...tar.gz``).
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
    """The folder datasets are extracted to and caches written to (``ZFBOOK_DATA_ROOT``)."""
    return Path(os.environ.get("ZFBOOK_DATA_ROOT", REPO_ROOT / "datasets")).expanduser()


def mirror_dir() -> Path | None:
    """The folder of mirrored archives (``ZFBOOK_MIRROR``), or ``None`` if unset."""
    value = os.environ.get("ZFBOOK_MIRROR")
    return Path(value).expanduser() if value else None


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_or_fetch(archive: Archive, *, root: Path | None = None, download: bool = True) -> Path:
    """Return the extracted folder of ``archive``, extracting or downloading it if needed.

    Order: ``root/extracted`` (complete if ``marker`` exists) -> ``$ZFBOOK_MIRROR/filename`` ->
    ``root/filename`` (a download left there) -> the official URL (checksum verified) -> raise
    :class:`DatasetNotFoundError` naming every place looked in and how to provide the data.
    """
    root = data_root() if root is None else Path(root)
    target = root / archive.extracted
    if (target / archive.marker).exists():
        return target
    looked = [f"extracted: {target / archive.marker} (missing)"]
    candidates = []
    mirror = mirror_dir()
    if mirror is not None:
        candidates.append(mirror / archive.filename)
    else:
        looked.append("mirror: ZFBOOK_MIRROR is not set")
    candidates.append(root / archive.filename)
    for candidate in candidates:
        if candidate.is_file():
            _extract(candidate, root, archive)
            return target
        looked.append(f"archive: {candidate} (missing)")
    if download and archive.url:
        try:
            downloaded = _download(archive, root / archive.filename)
        except OSError as error:
            looked.append(f"download: {archive.url} failed ({error})")
        else:
            _extract(downloaded, root, archive)
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
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with urllib.request.urlopen(archive.url, timeout=60) as response, open(partial, "wb") as handle:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {archive.name}") as bar:
            while block := response.read(1 << 20):
                handle.write(block)
                bar.update(len(block))
    if archive.sha256 and (digest := sha256(partial)) != archive.sha256:
        partial.unlink()
        raise OSError(f"checksum mismatch for {archive.url}: got {digest}, expected {archive.sha256}")
    partial.replace(destination)
    return destination


def _extract(path: Path, root: Path, archive: Archive) -> None:
    """Extract into a temporary folder, then rename: an interrupted extraction leaves nothing half-done."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".extracting-{archive.extracted.replace('/', '_')}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            members = bundle.infolist()
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file", mininterval=2):
                bundle.extract(member, staging)
    else:
        with tarfile.open(path) as bundle:
            bundle.extractall(staging, filter="data")
    top = archive.extracted.split("/")[0]
    source = staging / top
    if not source.exists():
        raise DatasetNotFoundError(f"{path} does not contain the folder {top}/ expected for {archive.name}")
    destination = root / top
    if destination.exists():
        # a partial extraction from an earlier version of the data: merge what is new
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        source.rename(destination)
    shutil.rmtree(staging, ignore_errors=True)
    if not (root / archive.extracted / archive.marker).exists():
        raise DatasetNotFoundError(
            f"{path} was extracted but {root / archive.extracted / archive.marker} is missing: "
            f"is it the right archive for {archive.name}?"
        )
