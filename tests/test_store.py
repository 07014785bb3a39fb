"""zfcore.store: files written whole, content-keyed caches rebuilt with one warning, checked downloads, digests."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from zfcore.checkpoints import read_torch_file
from zfcore.store import (CacheWarning, ChecksumError, DiskFullError, atomic_write, cached, download, json_digest,
                          pack_flags, sha256, torch_save_atomic, unpack_flags, write_json_atomic, write_text_atomic)


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# -- atomic writes ---------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json_atomic(path, {"top1": 0.5})

    def half_then_fail(partial: Path) -> None:
        partial.write_text('{"top1": 0.')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"top1": 0.5}
    assert _files(tmp_path) == ["results.json"]


def test_an_atomic_write_creates_the_folder_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "notes.txt"
    assert write_text_atomic(path, "one") == path and path.read_text() == "one"
    write_text_atomic(path, "two")
    assert path.read_text() == "two" and _files(path.parent) == ["notes.txt"]
    torch_save_atomic(tmp_path / "state.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "state.pt", weights_only=True)["w"], torch.arange(3))


def test_two_processes_writing_one_file_never_share_a_temporary_file(tmp_path: Path) -> None:
    """A second process decoding the same cache must not truncate the file the first one has memory-mapped."""
    path = tmp_path / "cache.npy"
    script = ("import sys, time; from pathlib import Path; from zfcore.store import atomic_write\n"
              "def write(partial):\n"
              "    partial.write_bytes(sys.argv[2].encode() * 100000); time.sleep(1.5)\n"
              "    assert partial.read_bytes() == sys.argv[2].encode() * 100000, 'another process wrote here'\n"
              "atomic_write(Path(sys.argv[1]), write)\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), letter], stderr=subprocess.PIPE, text=True)
               for letter in "ab"]
    errors = [writer.communicate()[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], errors
    assert path.read_bytes() in (b"a" * 100000, b"b" * 100000) and _files(tmp_path) == ["cache.npy"]


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_file_stays(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    torch_save_atomic(path, {"epoch": 1})
    real_save = torch.save

    def full_disk(value, handle, *args, **kwargs):  # as torch.save into a file on a full disk
        handle.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError) as caught:
        torch_save_atomic(path, {"epoch": 2})
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "no space left" in message
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert _files(tmp_path) == ["checkpoint.pt"]


def test_a_full_disk_behind_another_error_is_found(tmp_path: Path) -> None:
    def wrapped(partial: Path) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("file write failed") from error

    with pytest.raises(DiskFullError, match="a.csv"):
        atomic_write(tmp_path / "a.csv", wrapped)
    assert _files(tmp_path) == []


# -- digests ----------------------------------------------------------------------------------------


def test_digests(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert sha256(tmp_path / "f", chunk=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert json_digest({"a": 1, "b": [1, 2]}) == json_digest({"b": [1, 2], "a": 1})
    assert json_digest({"a": 1}) != json_digest({"a": 2})
    with pytest.raises(TypeError):
        json_digest({"a": object()})


# -- content-keyed caches ---------------------------------------------------------------------------


@dataclass
class Found:
    values: torch.Tensor
    label: str


def _load_found(path: Path) -> object:
    return read_torch_file(path, what="test cache", allow=(Found,))


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        return {"conv1": (Found(torch.arange(4.0) * self.calls, "x"), torch.ones(2, dtype=torch.bfloat16)), "k": 9}


def test_cached_computes_once_then_reads(tmp_path: Path) -> None:
    path, compute = tmp_path / "c.pt", Counter()
    key = {"weights": "abc", "k": 9}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = cached(key, compute, path=path, load=_load_found)
        again = cached(dict(reversed(key.items())), compute, path=path, load=_load_found)
    assert compute.calls == 1
    assert torch.equal(again["conv1"][0].values, first["conv1"][0].values) and again["k"] == 9
    assert isinstance(again["conv1"][0], Found) and _files(tmp_path) == ["c.pt"]
    assert cached(key, compute, path=None) is not None and compute.calls == 2  # no path: no cache


def test_a_corrupt_cache_is_rebuilt_with_one_warning_naming_it(tmp_path: Path) -> None:
    path, compute = tmp_path / "c.pt", Counter()
    cached("key", compute, path=path, load=_load_found)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CacheWarning) as caught:
        value = cached("key", compute, path=path, load=_load_found, what="test cache", again="doing it again")
    assert len(caught) == 1 and str(path) in str(caught[0].message)
    assert str(caught[0].message).endswith("; doing it again")
    assert compute.calls == 2 and torch.equal(value["conv1"][0].values, torch.arange(4.0) * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cached("key", compute, path=path, load=_load_found)["conv1"][0].values, value["conv1"][0].values)
    assert compute.calls == 2


def test_a_cache_of_other_inputs_is_rebuilt_with_one_warning(tmp_path: Path) -> None:
    path, compute = tmp_path / "c.pt", Counter()
    cached({"k": 9}, compute, path=path, load=_load_found)
    with pytest.warns(CacheWarning, match=rf"{path} was made from other inputs") as caught:
        cached({"k": 10}, compute, path=path, load=_load_found)
    assert len(caught) == 1 and compute.calls == 2


def test_a_changed_cache_is_rebuilt(tmp_path: Path) -> None:
    path, compute = tmp_path / "c.pt", Counter()
    cached("key", compute, path=path, load=_load_found)
    stored = _load_found(path)
    stored["value"]["conv1"][0].values[0] = 100.0  # the key still matches, the content does not
    torch.save(stored, path)
    with pytest.warns(CacheWarning, match="does not match its recorded SHA-256") as caught:
        value = cached("key", compute, path=path, load=_load_found)
    assert len(caught) == 1 and value["conv1"][0].values[0] == 0.0 and compute.calls == 2
    torch.save({"conv1": torch.zeros(1)}, path)  # a file of an older layout: no recorded key
    with pytest.warns(CacheWarning, match="records no key"):
        cached("key", compute, path=path, load=_load_found)


class RunsCode:
    """A pickle payload: unpickling it unsafely runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_cache_is_never_unpickled_beyond_weights(tmp_path: Path) -> None:
    path, marker = tmp_path / "c.pt", tmp_path / "pwned"
    torch.save(RunsCode(marker), path)
    with pytest.warns(CacheWarning, match=rf"cache {path} cannot be read \(its pickle names something other"):
        cached("key", lambda: {"k": torch.ones(2)}, path=path)  # the default loader: weights only
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cached("key", Counter(), path=path)["k"], torch.ones(2))


def test_a_failed_computation_writes_nothing(tmp_path: Path) -> None:
    def fail() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cached("key", fail, path=tmp_path / "c.pt")
    assert _files(tmp_path) == []


# -- downloads --------------------------------------------------------------------------------------


def test_download_checks_the_sha256(tmp_path: Path) -> None:
    source = tmp_path / "served.bin"
    source.write_bytes(b"payload" * 100)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "out"
    assert download(source.as_uri(), out / "file.bin", sha256=digest) == out / "file.bin"
    assert (out / "file.bin").read_bytes() == source.read_bytes() and _files(out) == ["file.bin"]
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        download(source.as_uri(), out / "other.bin", sha256=wrong)
    assert source.as_uri() in str(caught.value) and wrong in str(caught.value) and digest in str(caught.value)
    assert isinstance(caught.value, OSError) and _files(out) == ["file.bin"]  # the partial file was removed


def test_a_download_that_breaks_off_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.BytesIO):
        headers = {"Content-Length": "1000"}

        def read(self, size: int = -1) -> bytes:
            if self.tell():
                raise ConnectionResetError("connection reset")
            return super().read(10)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken(b"x" * 1000))
    with pytest.raises(ConnectionResetError):
        download("https://example.invalid/file", tmp_path / "file", description="download file")
    assert _files(tmp_path) == []



@pytest.mark.parametrize("count", [1, 7, 8, 9, 10_000])
def test_packed_flags_read_back_equal_and_a_wrong_count_is_refused(count) -> None:
    flags = np.random.default_rng(count).random(count) < 0.4
    text = pack_flags(flags)
    assert len(text) == 2 * ((count + 7) // 8)
    assert np.array_equal(unpack_flags(text, count), flags)
    with pytest.raises(ValueError, match=f"{count + 8} flags need"):
        unpack_flags(text, count + 8)
    with pytest.raises(ValueError, match="must be a hex string"):
        unpack_flags("zz" + text[2:], count)
