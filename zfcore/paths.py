"""The repository's folders, defined once: its root, the tracked reference files, the experiments' results and
the part annotations; and where the repository lives (its URL and branch).

In a clone or an editable install these are the checkout's folders; from an installed package the
``data`` folders are absent (:func:`zfcore.weights.reference_file` then fetches the reference files).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ANNOTATIONS_DIR", "CACHE_ENV", "EXPERIMENTS_DIR", "REFERENCE_DIR", "REPOSITORY_BRANCH", "REPOSITORY_ROOT",
           "REPOSITORY_URL", "VERDICTS_DIR", "cache_root", "default_data_root", "in_checkout", "raw_url"]

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``zfcore/`` (the checkout's root in a clone or an editable install)."""
REFERENCE_DIR = REPOSITORY_ROOT / "data" / "reference"
"""The tracked reference networks and Fig. 4 data."""
EXPERIMENTS_DIR = REPOSITORY_ROOT / "data" / "experiments"
"""The tracked results of the named experiments (``NAME.json``) and their kept weights."""
VERDICTS_DIR = REPOSITORY_ROOT / "data" / "verdicts"
"""The chapters' verdict records (``<claim>.json``, :mod:`zfcore.verdicts`), written by the ``book`` profile."""
ANNOTATIONS_DIR = REPOSITORY_ROOT / "data" / "annotations"
"""The tracked part annotations (``dog_parts.json``: Fig. 8 and Table 1)."""

CACHE_ENV = "ZFBOOK_CACHE"
"""Names the per-user cache folder (default ``~/.cache/zfbook``)."""


def in_checkout(root: Path = REPOSITORY_ROOT) -> bool:
    """Whether zfcore runs from a checkout of the repository (a clone or an editable install), not from an
    installed copy in ``site-packages``: the root then holds ``pyproject.toml``."""
    return (root / "pyproject.toml").is_file()


def cache_root() -> Path:
    """The per-user cache folder: ``$ZFBOOK_CACHE``, by default ``~/.cache/zfbook``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zfbook").expanduser()


def default_data_root(root: Path = REPOSITORY_ROOT) -> Path:
    """Where datasets go when ``ZFBOOK_DATA_ROOT`` is unset: ``datasets/`` of a checkout, else
    ``<cache>/datasets`` (:func:`cache_root`), never inside ``site-packages``."""
    return root / "datasets" if in_checkout(root) else cache_root() / "datasets"


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
