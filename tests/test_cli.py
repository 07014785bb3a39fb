"""The command line: help for every command, one clear line for a bad checkpoint."""

import subprocess
import sys

import pytest


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "zfcore", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_help(command):
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "usage: python -m zfcore " + command in result.stdout


def test_bad_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = cli("evaluate", "--checkpoint", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("error: checkpoint") and "corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_profile_lists_the_valid_ones():
    result = cli("train", "--profile", "huge")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "book" in result.stderr
