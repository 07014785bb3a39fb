"""The repository's folders, defined once: its root, the tracked reference files and the experiments' results.

In a clone or an editable install these are the checkout's folders; from an installed package the
``data`` folders are absent (:func:`zfcore.weights.reference_file` then fetches the reference files).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXPERIMENTS_DIR", "REFERENCE_DIR", "REPOSITORY_ROOT"]

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``zfcore/`` (the checkout's root in a clone or an editable install)."""
REFERENCE_DIR = REPOSITORY_ROOT / "data" / "reference"
"""The tracked reference networks and Fig. 4 data."""
EXPERIMENTS_DIR = REPOSITORY_ROOT / "data" / "experiments"
"""The tracked results of the named experiments (``NAME.json``) and their kept weights."""
