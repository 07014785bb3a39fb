"""The pre-test data check (tests/conftest.py): without the data, one message names every missing dataset."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_data_stops_the_session_with_one_message_naming_all_three(tmp_path: Path) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    mirror.mkdir()
    with socket.socket() as closed:  # bound, never listening: every download is refused at once, offline
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
        env.update(ZFBOOK_DATA_ROOT=str(data), ZFBOOK_MIRROR=str(mirror), http_proxy=proxy, https_proxy=proxy)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_data.py::test_paper_transforms"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # a usage error: no test ran
    assert " passed" not in output and "no tests ran" in output and output.count("\nERROR: the tests need") == 1
    assert output.count("the tests need 3 dataset(s) that could not be found or downloaded: Tiny ImageNet, "
                        "Caltech-101, the ImageNet sample images.") == 1
    for how in (  # each one's places and how to provide it
        "[Tiny ImageNet] Tiny ImageNet was not found",
        "put tiny-imagenet-200.zip in a folder and set ZFBOOK_MIRROR to it",
        "http://cs231n.stanford.edu/tiny-imagenet-200.zip failed",
        "[Caltech-101] Caltech-101 was not found",
        "put caltech101/101_ObjectCategories.tar.gz in a folder and set ZFBOOK_MIRROR to it",
        "caltech-101.zip failed",
        "[the ImageNet sample images] ImageNet samples was not found",
        "put imagenet-samples.zip in a folder and set ZFBOOK_MIRROR to it",
        "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip failed",
    ):
        assert how in output, how
    assert not [path for path in data.rglob("*") if path.is_file()]  # no half-made file (an empty folder may stay)
