"""Archive writers shared by the data tests: a folder as a zip or a gzipped tar, as the official archives are."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path


def zip_folder(folder: Path, archive: Path, compression: int = zipfile.ZIP_STORED) -> Path:
    """``folder`` (with its name as the top entry) into ``archive``; stored (uncompressed) by default."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression) as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent))
    return archive


def tgz_folder(folder: Path, archive: Path) -> Path:
    """``folder`` (with its name as the top entry) into a gzipped tar ``archive``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(folder, arcname=folder.name)
    return archive
