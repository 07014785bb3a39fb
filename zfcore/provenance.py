"""What produced a results file: the clean commit, the command line, the data digest and the device.

Every file of results that the book shows records these four (:func:`provenance`), so that a reader can
run the same command at the same commit on the same data and compare. A result that goes into the
repository from a tree with uncommitted changes in ``zfcore`` names no commit that could reproduce it:
:func:`refuse_dirty` stops such a write unless it is asked for (``allow_dirty``, recorded as such).
``tests/test_provenance.py`` checks every committed results file.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zfcore.paths import REPOSITORY_ROOT
from zfcore.store import command_line

__all__ = ["DIRTY", "DirtyTreeError", "code_version", "inside_repository", "provenance", "refuse_dirty"]

DIRTY = "+dirty"
"""The suffix of a code version made from a tree with uncommitted changes in ``zfcore``."""


class DirtyTreeError(ValueError):
    """Results would go into the repository from code that no commit holds."""


def code_version() -> str:
    """The git commit of the code (``+dirty`` if ``zfcore`` has uncommitted changes), or ``"unknown"`` outside a
    git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "zfcore"], cwd=REPOSITORY_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (DIRTY if dirty else "")


def inside_repository(path: str | Path) -> bool:
    """Whether ``path`` lies inside this checkout (both resolved): there a result is tracked."""
    return Path(path).resolve().is_relative_to(REPOSITORY_ROOT.resolve())


def refuse_dirty(destination: str | Path, *, allow_dirty: bool, version: str | None = None) -> str:
    """The code version, after refusing to write results to ``destination`` inside the repository from a dirty tree.

    Args:
        destination: the results file or folder about to be written.
        allow_dirty: write anyway (the record's ``code_version`` then ends in ``+dirty``, and it says
            ``allow_dirty: true``).
        version: the code version, if already known (default :func:`code_version`).

    Raises:
        DirtyTreeError: ``zfcore`` has uncommitted changes, ``destination`` is inside the repository and
            ``allow_dirty`` is false. Nothing was written.
    """
    version = code_version() if version is None else version
    if version.endswith(DIRTY) and not allow_dirty and inside_repository(destination):
        raise DirtyTreeError(
            f"zfcore has uncommitted changes, and {destination} is tracked: its results must name the commit that "
            f"produced them. Commit first, or pass --allow-dirty to record them as dirty; nothing was written")
    return version


def provenance(*, data_sha256: str | None, device: str, version: str | None = None) -> dict[str, Any]:
    """The record of what produced a result, to be stored beside it.

    Args:
        data_sha256: the digest of the data measured (``None`` where there is none).
        device: the device in words (:func:`zfcore.devices.describe_device`).
        version: the code version (default :func:`code_version`).

    Returns:
        ``code_version``, ``command`` (as one would type it again), ``data_sha256``, ``device``,
        ``recorded`` (UTC, ISO 8601). A writer that stores a dirty result on purpose adds ``allow_dirty: true``.
    """
    return {"code_version": code_version() if version is None else version, "command": command_line(),
            "data_sha256": data_sha256, "device": device,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
