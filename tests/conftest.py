"""Shared test set-up: the data check that runs before any test.

The notebooks (nbval) and several tests train and mine on Tiny ImageNet. Without it, a session would
end in many failing cells; instead it stops here, before any test, with one message that says how to
provide the data (online download, an extracted copy under ZFBOOK_DATA_ROOT, or ZFBOOK_MIRROR).
"""

from __future__ import annotations

import pytest

from zfcore.data.locate import DatasetNotFoundError, find_or_fetch
from zfcore.data.tiny_imagenet import TINY_IMAGENET


def pytest_configure(config: pytest.Config) -> None:
    try:
        find_or_fetch(TINY_IMAGENET)
    except DatasetNotFoundError as error:
        raise pytest.UsageError(f"the tests need Tiny ImageNet, which could not be found or downloaded.\n{error}")
