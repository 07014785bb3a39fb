"""The repository's folders, defined once: its root, the tracked reference files, the experiments' results and
the part annotations; and where the repository lives (its URL and branch).

In a clone or an editable install these are the checkout's folders; from an installed package the
``data`` folders are absent (:func:`zfcore.weights.reference_file` then fetches the reference files).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ANNOTATIONS_DIR", "EXPERIMENTS_DIR", "REFERENCE_DIR", "REPOSITORY_BRANCH", "REPOSITORY_ROOT",
           "REPOSITORY_URL", "raw_url"]

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``zfcore/`` (the checkout's root in a clone or an editable install)."""
REFERENCE_DIR = REPOSITORY_ROOT / "data" / "reference"
"""The tracked reference networks and Fig. 4 data."""
EXPERIMENTS_DIR = REPOSITORY_ROOT / "data" / "experiments"
"""The tracked results of the named experiments (``NAME.json``) and their kept weights."""
ANNOTATIONS_DIR = REPOSITORY_ROOT / "data" / "annotations"
"""The tracked part annotations (``dog_parts.json``: Fig. 8 and Table 1)."""

REPOSITORY_URL = "https://github.com/zfbook/zfbook"
"""The repository, named once in code. ``_config.yml``'s ``repository.url`` and the Colab setup cell of every
notebook (which runs before zfcore is installed) spell it out; ``tests/test_colab.py`` keeps them equal."""
REPOSITORY_BRANCH = "main"
"""The branch an installed package fetches tracked files from (``_config.yml``'s ``repository.branch``)."""


def raw_url(path: str) -> str:
    """The URL of the tracked file or folder ``path`` (relative to the root) on :data:`REPOSITORY_BRANCH`, e.g.
    ``raw_url("data/reference")`` -> ``https://raw.githubusercontent.com/zfbook/zfbook/main/data/reference``."""
    owner_and_name = REPOSITORY_URL.removeprefix("https://github.com/").strip("/")
    return f"https://raw.githubusercontent.com/{owner_and_name}/{REPOSITORY_BRANCH}/{path.strip('/')}"
