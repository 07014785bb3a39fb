"""What produced a results file: the clean commit, the command line, the data digest and the device.

Every file of results that the book shows records these four (:func:`provenance`), so that a reader can
run the same command at the same commit on the same data and compare. A result that goes into the
repository from a tree with uncommitted changes in ``zfcore`` names no commit that could reproduce it:
:func:`refuse_dirty` stops such a write unless it is asked for (``allow_dirty``, recorded as such).
A chapter reads committed results with :func:`read_committed`, whose display names each file and its
SHA-256 and stores the digests in the output's metadata (under :data:`RESULTS_METADATA_KEY`).
``tests/test_provenance.py`` checks every committed results file, and that every stored output of a
chapter was made from the results committed now.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zfcore.paths import EXPERIMENTS_DIR, REPOSITORY_ROOT
from zfcore.store import command_line, sha256

__all__ = ["DIRTY", "RESULTS_METADATA_KEY", "CommittedResults", "DirtyTreeError", "code_version", "inside_repository",
           "provenance", "read_committed", "refuse_dirty"]

RESULTS_METADATA_KEY = "zfbook_results"
"""Where a displayed :class:`CommittedResults` keeps ``{file: sha256}`` in a notebook output's metadata."""

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


def provenance(*, data_sha256: str | None, device: str) -> dict[str, Any]:
    """The record of what produced a result, to be stored beside it.

    Args:
        data_sha256: the digest of the data measured (``None`` where there is none).
        device: the device in words (:func:`zfcore.devices.describe_device`).

    Returns:
        ``code_version``, ``command`` (as one would type it again), ``data_sha256``, ``device``,
        ``recorded`` (UTC, ISO 8601). A writer that stores a dirty result on purpose adds ``allow_dirty: true``.
    """
    return {"code_version": code_version(), "command": command_line(),
            "data_sha256": data_sha256, "device": device,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass(frozen=True)
class CommittedResults:
    """Results files read from ``data/experiments``: their contents by name, and their SHA-256 digests.

    ``results["probes.json"]`` is a file's parsed JSON; :meth:`matching` gives the files a pattern matched.
    Displayed in a notebook, it is one line naming each file, the commit that produced it and its digest, and
    it keeps ``{file: sha256}`` in the output's metadata, so a test can tell when the stored outputs were
    made from other results than the committed ones.
    """

    contents: dict[str, Any]
    digests: dict[str, str]
    patterns: dict[str, tuple[str, ...]]

    def __getitem__(self, name: str) -> Any:
        return self.contents[name]

    def matching(self, pattern: str) -> dict[str, Any]:
        """The files ``pattern`` (as given to :func:`read_committed`) matched: name -> content."""
        return {name: self.contents[name] for name in self.patterns[pattern]}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, str], dict[str, Any]]:
        def produced(content: Any) -> str:
            version = content.get("code_version") if isinstance(content, dict) else None
            return f"code {version[:7]}" if isinstance(version, str) else "several runs"

        parts = [(name, produced(content), self.digests[name][:12]) for name, content in self.contents.items()]
        markdown = "Read from `data/experiments`: " + "; ".join(
            f"`{name}` ({made}, SHA-256 `{digest}…`)" for name, made, digest in parts)
        plain = "\n".join(f"data/experiments/{name}: {made}, sha256 {digest}" for name, made, digest in parts)
        return {"text/markdown": markdown, "text/plain": plain}, {RESULTS_METADATA_KEY: dict(self.digests)}


def read_committed(*patterns: str, folder: str | Path = EXPERIMENTS_DIR) -> CommittedResults:
    """Read committed JSON results, each name or glob pattern relative to ``folder`` (``data/experiments``).

    Raises:
        FileNotFoundError: a pattern that matches no file (named, with the folder). Nothing is returned.
        ValueError: no pattern given.
    """
    if not patterns:
        raise ValueError("no results file named; give names relative to data/experiments, e.g. 'probes.json'")
    folder = Path(folder)
    found: dict[str, tuple[str, ...]] = {}
    for pattern in patterns:
        names = tuple(sorted(path.relative_to(folder).as_posix() for path in folder.glob(pattern) if path.is_file()))
        if not names:
            raise FileNotFoundError(f"no results file {pattern!r} in {folder}: run the command that writes it "
                                    f"(see the chapter), or check the name")
        found[pattern] = names
    every = dict.fromkeys(name for names in found.values() for name in names)
    return CommittedResults({name: json.loads((folder / name).read_text()) for name in every},
                            {name: sha256(folder / name) for name in every}, found)
