"""Shared test set-up: the data check that runs before any test, and the offline data-root fixture.

The notebooks (nbval) and several tests train and mine on Tiny ImageNet. Without it, a session would
end in many failing cells; instead it stops here, before any test, with one message that says how to
provide the data (online download, an extracted copy under ZFBOOK_DATA_ROOT, or ZFBOOK_MIRROR).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from zfcore.data.locate import DatasetNotFoundError, find_or_fetch
from zfcore.data.tiny_imagenet import TINY_IMAGENET


def pytest_configure(config: pytest.Config) -> None:
    try:
        find_or_fetch(TINY_IMAGENET)
    except DatasetNotFoundError as error:
        raise pytest.UsageError(f"the tests need Tiny ImageNet, which could not be found or downloaded.\n{error}")


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
