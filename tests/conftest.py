"""Shared test set-up: the data check that runs before any test, and the offline data-root fixture.

Tests marked ``static`` (``pytestmark = pytest.mark.static``: the architecture, argument checks, statistics,
pins) need no dataset: a session that collects only those skips the data check.

The notebooks (nbval) and several tests train and mine on Tiny ImageNet, the transfer chapter uses
Caltech-101 and the occlusion, invariance and correspondence chapters the ImageNet sample images. Without
them, a session would end in many failing cells; instead it stops here, before any test, with one message
that names every missing dataset and says how to provide each (online download, an extracted copy under
ZFBOOK_DATA_ROOT, or its archive in ZFBOOK_MIRROR).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from zfcore.data.caltech import Caltech101
from zfcore.data.imagenet import imagenet_samples
from zfcore.data.locate import DatasetNotFoundError, find_or_fetch
from zfcore.data.tiny_imagenet import TINY_IMAGENET

NEEDED: dict[str, Callable[[], object]] = {
    "Tiny ImageNet": lambda: find_or_fetch(TINY_IMAGENET),
    "Caltech-101": Caltech101,
    "the ImageNet sample images": imagenet_samples,
}
"""The datasets the tests and notebooks need, each with what finds (extracts, downloads) it."""


def missing_datasets() -> list[tuple[str, DatasetNotFoundError]]:
    """Each needed dataset that could not be found, extracted or downloaded, with the error that says why."""
    missing = []
    for name, find in NEEDED.items():
        try:
            find()
        except DatasetNotFoundError as error:  # also a corrupt archive or an unusable data root
            missing.append((name, error))
    return missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "static: needs no dataset (source, parsing, argument checks, statistics)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop before any test when a needed dataset is missing, unless every collected test is ``static``."""
    if items and all(item.get_closest_marker("static") for item in items):
        return
    if missing := missing_datasets():
        names = ", ".join(name for name, _ in missing)
        details = "\n\n".join(f"[{name}] {error}" for name, error in missing)
        raise pytest.UsageError(
            f"the tests need {len(missing)} dataset(s) that could not be found or downloaded: {names}.\n"
            f"(Offline: set ZFBOOK_MIRROR to a folder holding their archives, see README.md, Data.)\n\n{details}"
        )


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty data root and mirror, and no network: every ``urlopen`` fails."""
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    data.mkdir()
    mirror.mkdir()
    monkeypatch.setenv("ZFBOOK_DATA_ROOT", str(data))
    monkeypatch.setenv("ZFBOOK_MIRROR", str(mirror))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("offline in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return data, mirror
