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


def test_top_level_help_is_plain_text_and_lists_every_command():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("train", "evaluate", "export"):
        assert f"  {command} " in result.stdout
    assert "``" not in result.stdout and ":func:" not in result.stdout


@pytest.mark.parametrize("args, flag", [
    (("train", "--epochs", "0"), "--epochs"),
    (("train", "--stop-after", "-1"), "--stop-after"),
    (("evaluate", "--limit", "-5"), "--limit"),
])
def test_bad_numbers_are_refused_naming_the_flag(args, flag):
    result = cli(*args)
    assert result.returncode == 2 and flag in result.stderr and "is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_library_messages_are_translated_to_flags():
    from zfcore.__main__ import cli_message

    assert cli_message("out exists: pass resume=runs/a/checkpoint.pt to continue") == \
        "out exists: pass --resume runs/a/checkpoint.pt to continue"
    assert cli_message("epochs=3 but ...; end early with stop_after=N") == "--epochs 3 but ...; end early with --stop-after N"
