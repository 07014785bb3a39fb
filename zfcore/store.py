"""Files written whole, results cached by what made them, downloads checked, digests: one home for each.

* **Atomic writes** (:func:`atomic_write`, :func:`write_text_atomic`, :func:`write_json_atomic`,
  :func:`torch_save_atomic`): a file is written under a temporary name in its own folder, then renamed
  over the old one, so a reader finds the old file or the new one, never part of one. A write that
  fails removes the temporary file and leaves the old file whole; a full disk is one line naming the
  file (:class:`DiskFullError`).
* **Content-keyed caches** (:func:`cached`): a result is stored with the digest of the parameters that
  made it (:func:`json_digest`) and the digest of its own content. A file that cannot be read, was made
  from other inputs or was changed since is computed again and replaced, with one :class:`CacheWarning`
  naming the file. Reading never runs code: the default loader is ``torch.load(weights_only=True)``,
  and a caller passes its own safe loader (e.g. :func:`zfcore.checkpoints.read_torch_file` allowing
  its dataclasses).
* **Downloads** (:func:`download`): fetched to a temporary name, checked against a SHA-256, then renamed
  into place; a failed or mismatched download leaves nothing behind.
* **Digests**: :func:`sha256` of a file, :func:`json_digest` of JSON-ready parameters.
* **Folders written whole** (:func:`write_folder_atomic`): a set of files is written into a staging folder
  beside its destination, then swapped in by two renames; a failure leaves the old set whole.
* **The command line** (:func:`command_line`): this process's, as one would type it again, for the records of
  results and locks (:mod:`zfcore.locks`).
* **Checks before the work**: :func:`probe_output` (a folder or file that will be written: a file where a
  folder is needed, a read-only folder ... is one line before anything is computed) and
  :func:`ensure_free_space` (one line naming the file and the space it needs).

This module imports nothing from zfcore, so every module may use it.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import pickle
import shlex
import shutil
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["CACHE_FORMAT", "T", "UNREADABLE", "CacheWarning", "ChecksumError", "DiskFullError", "OutputError",
           "atomic_write", "cached", "command_line", "copy_file_atomic", "download", "ensure_free_space", "json_digest",
           "pack_flags", "probe_output", "sha256", "torch_save_atomic", "unpack_flags", "write_folder_atomic",
           "write_json_atomic", "write_text_atomic"]

T = TypeVar("T")

CACHE_FORMAT = "zfbook-cache"
"""The ``format`` entry of a file written by :func:`cached`."""
UNREADABLE = (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError,
              TypeError, IndexError, AttributeError, ImportError)
"""What a loader may raise for a file it cannot read (:func:`cached` then computes the result again)."""


class DiskFullError(OSError):
    """A file could not be written because its disk is full; the message (one line) names the file and the space.

    ``errno`` is ``ENOSPC``, so code that handles ``OSError`` keeps handling it.

    Args:
        path: the file (or folder) that could not be written.
        needed: the bytes it needs, when known (:func:`ensure_free_space`).
        written: the bytes written when the disk filled (:func:`atomic_write`).
        free: the bytes free on its disk, when known.
        state: what is on disk now (the end of the message).
    """

    def __init__(self, path: str | Path, *, needed: int | None = None, written: int | None = None,
                 free: int | None = None, state: str = "the file is as it was before the write") -> None:
        space = []
        if needed is not None:
            space.append(f"it needs {_size(needed)}")
        if written is not None:
            space.append(f"{_size(written)} were written when the disk filled")
        if free is not None:
            space.append(f"{_size(free)} free")
        detail = f" ({', '.join(space)})" if space else ""
        super().__init__(f"no space left on the device to write {path}{detail}: free some space and run again "
                         f"({state})")
        self.errno = errno.ENOSPC
        self.path, self.needed, self.free = Path(path), needed, free


class OutputError(ValueError):
    """An output path that cannot be written (:func:`probe_output`); the message is one line naming it."""


class ChecksumError(OSError):
    """A download's SHA-256 is not the expected one (nothing was kept).

    Attributes:
        url: what was downloaded.
        expected, found: the expected and the downloaded file's SHA-256 (hex).
    """

    def __init__(self, url: str, expected: str, found: str) -> None:
        super().__init__(f"{url} has SHA-256 {found}, expected {expected}")
        self.url, self.expected, self.found = url, expected, found


class CacheWarning(UserWarning):
    """A cache file was unreadable, made from other inputs or changed, and is being computed again."""


# -- atomic writes ---------------------------------------------------------------------------------


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` whole or not at all: ``write`` fills a temporary file in the same folder, then a rename.

    The folder is created if needed. The temporary file is ``.<name>.<process id>.partial`` beside ``path``
    (two processes writing the same file never share one: one might memory-map what the other truncates); it
    is renamed over ``path`` (``os.replace``, atomic on one file system) only once ``write`` has returned, and
    removed if anything fails, so ``path`` is then as it was.

    Args:
        path: the file to write.
        write: writes the temporary file whose path it is given; it must write exactly that path (give
            ``np.save`` an open file, since it appends ``.npy`` to other names).

    Returns:
        ``path`` (as a :class:`~pathlib.Path`).

    Raises:
        DiskFullError: the disk is full (one line naming ``path``); ``path`` is as it was.
        Exception: whatever ``write`` raises, after the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException as error:
        written = partial.stat().st_size if partial.is_file() else None
        partial.unlink(missing_ok=True)
        if isinstance(error, Exception) and _disk_full(error):
            raise DiskFullError(path, written=written, free=_free_bytes(path.parent)) from error
        raise
    return path


def copy_file_atomic(source: str | Path, path: str | Path) -> Path:
    """Copy the file ``source`` to ``path`` atomically (:func:`atomic_write`; same Raises)."""
    return atomic_write(path, lambda partial: shutil.copyfile(source, partial))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`; same Raises)."""
    return atomic_write(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, value: Any, *, indent: int | None = 1) -> Path:
    """Write ``value`` as JSON (``indent``, then a newline) to ``path`` atomically (:func:`atomic_write`).

    Raises:
        TypeError: ``value`` is not JSON-ready (nothing is written).
        DiskFullError: as :func:`atomic_write`.
    """
    return write_text_atomic(path, json.dumps(value, indent=indent) + "\n")


def torch_save_atomic(path: str | Path, value: Any) -> Path:
    """``torch.save(value)`` to ``path`` atomically (:func:`atomic_write`; same Raises)."""

    def save(partial: Path) -> None:
        with open(partial, "wb") as handle:  # through a Python file, so that a full disk is an OSError
            torch.save(value, handle)

    return atomic_write(path, save)


def write_folder_atomic(path: str | Path, fill: Callable[[Path], None], *, keep_others: bool = False) -> Path:
    """Write the folder ``path`` whole or not at all: ``fill`` writes a staging folder beside it, then two renames.

    ``fill`` is given an empty staging folder (``.<name>.staging-<pid>`` in the same parent, so the renames
    stay on one file system). Once it returns, the old folder (if any) is renamed to a backup, the staging
    folder to ``path``, and the backup is deleted. A failure in ``fill`` deletes the staging folder and leaves
    ``path`` as it was; a failure between the two renames puts the old folder back.

    Args:
        path: the folder to write (its parent is created).
        fill: writes the new set of files into the folder it is given.
        keep_others: also keep the old folder's entries that ``fill`` did not write (e.g. the other
            reference network beside the one being replaced); default: the new folder holds ``fill``'s only.

    Returns:
        ``path``.

    Raises:
        DiskFullError: the disk filled (one line naming the folder); ``path`` is as it was.
        Exception: whatever ``fill`` raises, after the staging folder is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
    backup = path.with_name(f".{path.name}.backup-{os.getpid()}")
    for leftover in (staging, backup):
        if leftover.exists():
            shutil.rmtree(leftover)
    staging.mkdir()
    try:
        fill(staging)
        if keep_others and path.is_dir():
            for entry in path.iterdir():
                if not (staging / entry.name).exists():
                    copy = shutil.copytree if entry.is_dir() else shutil.copy2
                    copy(entry, staging / entry.name)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and _disk_full(error):
            raise DiskFullError(path, free=_free_bytes(path.parent),
                                state="the folder is as it was before the write") from error
        raise
    had_old = path.exists()
    if had_old:
        os.rename(path, backup)
    try:
        os.rename(staging, path)
    except BaseException:
        if had_old:
            os.rename(backup, path)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)
    return path


def _disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an exception it was raised from, is ``ENOSPC``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


# -- digests ----------------------------------------------------------------------------------------


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_digest(value: Any) -> str:
    """The SHA-256 hex digest of JSON-ready ``value`` (mapping key order does not matter).

    Raises:
        TypeError: ``value`` is not JSON-ready.
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def pack_flags(flags: Any) -> str:
    """A sequence of booleans (e.g. which validation images a network gets right) as a short JSON-ready string:
    the bits packed 8 to a byte, in hex (10,000 flags: 2,500 characters). :func:`unpack_flags` reverses it."""
    return np.packbits(np.asarray(flags, dtype=bool)).tobytes().hex()


def unpack_flags(text: str, count: int) -> np.ndarray:
    """The ``count`` booleans that :func:`pack_flags` packed into ``text``.

    Raises:
        ValueError: ``text`` is not hex, or holds fewer or more than ``count`` flags (rounded up to a byte).
    """
    try:
        packed = np.frombuffer(bytes.fromhex(text), dtype=np.uint8)
    except (ValueError, TypeError) as error:
        raise ValueError(f"packed flags must be a hex string ({error})") from None
    if len(packed) != (count + 7) // 8:
        raise ValueError(f"the packed flags hold {8 * len(packed)} bits; {count} flags need {(count + 7) // 8} bytes")
    return np.unpackbits(packed)[:count].astype(bool)


def _content_digest(value: Any) -> str:
    """The SHA-256 hex digest of what :func:`cached` stores: tensors, arrays, dataclasses, containers, scalars.

    Raises:
        TypeError: a value of another kind.
    """
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor{tuple(value.shape)}{value.dtype}".encode())
        digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, np.ndarray):
        digest.update(f"array{value.shape}{value.dtype.str}".encode())
        digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"dataclass {type(value).__qualname__}".encode())
        for field in dataclasses.fields(value):
            digest.update(field.name.encode())
            _feed(digest, getattr(value, field.name))
    elif isinstance(value, Mapping):
        digest.update(f"mapping{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.dtype, torch.Size)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise TypeError(f"a cached result holds a {type(value).__qualname__}, which cannot be digested; "
                        f"store tensors, arrays, dataclasses, containers and plain values")


# -- content-keyed caches ---------------------------------------------------------------------------


def _load_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors, containers and plain values only; nothing in the file is run.

    Raises:
        ValueError: the file's pickle names anything else (it was refused unread).
        Exception: as ``torch.load`` for a missing or damaged file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError("its pickle names something other than tensors, containers and plain values, which "
                         "could run code; it was refused unread") from None


def cached(key: Any, compute: Callable[[], T], *, path: str | Path | None,
           load: Callable[[Path], Any] = _load_weights_only, what: str = "cache",
           again: str = "computing it again and replacing it", stacklevel: int = 2) -> T:
    """``compute()``'s result, read from ``path`` when it holds the result for ``key``, else computed and stored.

    The file holds ``{"format", "key", "sha256", "value"}``: the :func:`json_digest` of ``key``, the
    digest of ``value``'s content, and the value; it is written with :func:`torch_save_atomic`. A file
    that ``load`` cannot read, that records another key, or whose value no longer matches its digest is
    computed again and replaced, with one :class:`CacheWarning` naming the file.

    Args:
        key: JSON-ready parameters that determine the result (digests of the inputs, settings).
        compute: makes the result: tensors, arrays, dataclasses, containers of them and plain values.
        path: the cache file; ``None``: no cache (``compute()`` is returned).
        load: reads a file without running code (default ``torch.load(weights_only=True)``); pass
            e.g. ``zfcore.checkpoints.read_torch_file`` allowing the result's dataclasses.
        what: what the file is, for the warning ("top-9 cache").
        again: what is done about a bad file, for the warning.
        stacklevel: as in :func:`warnings.warn`, counted from the function that calls this one.

    Returns:
        The stored or the computed result.

    Raises:
        TypeError: ``key`` is not JSON-ready, or the result holds values that cannot be digested.
        DiskFullError: as :func:`atomic_write`.
        Exception: whatever ``compute`` raises (nothing is written).
    """
    key_digest = json_digest(key)
    if path is None:
        return compute()
    path = Path(path)
    if path.exists():
        problem = None
        try:
            stored = load(path)
        except UNREADABLE as error:
            message = _first_line(error)
            problem = message if str(path) in message else f"{what} {path} cannot be read ({message})"
        else:
            if not isinstance(stored, dict) or stored.get("format") != CACHE_FORMAT:
                problem = f"{what} {path} was not written by zfcore.store.cached (it records no key)"
            elif stored.get("key") != key_digest:
                problem = f"{what} {path} was made from other inputs (its key is not that of these parameters)"
            elif _content_digest(stored.get("value")) != stored.get("sha256"):
                problem = f"{what} {path} does not match its recorded SHA-256 (it was changed or damaged)"
            else:
                return stored["value"]
        warnings.warn(f"{problem}; {again}", CacheWarning, stacklevel=stacklevel + 1)
    value = compute()
    torch_save_atomic(path, {"format": CACHE_FORMAT, "key": key_digest, "sha256": _content_digest(value),
                             "value": value})
    return value


def _first_line(error: BaseException) -> str:
    """An exception's message on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# -- downloads --------------------------------------------------------------------------------------


def download(url: str, destination: str | Path, *, sha256: str | None = None, description: str | None = None,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` atomically, checking its SHA-256.

    Args:
        url: what to fetch (``https://``, ``file://`` ...).
        destination: the file to write (its folder is created).
        sha256: the expected SHA-256 (hex); ``None``: not checked.
        description: label of a progress bar; ``None``: no bar.
        timeout: seconds to wait for the connection.

    Returns:
        ``destination``.

    Raises:
        ChecksumError: the file's SHA-256 is not ``sha256`` (it names the url and both digests).
        OSError: the download failed (``urllib.error.URLError`` is one; :class:`DiskFullError` when the
            disk is full). In every case nothing is left: neither ``destination`` nor a partial file.
    """
    expected = sha256

    def fetch(partial: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=description, disable=description is None) as bar:
                while block := response.read(1 << 20):
                    handle.write(block)
                    bar.update(len(block))
        if expected is not None and (found := _file_sha256(partial)) != expected:
            raise ChecksumError(url, expected, found)

    return atomic_write(destination, fetch)


_file_sha256 = sha256
""":func:`sha256` under a name that :func:`download`'s parameter does not hide."""


# -- checks before the work -------------------------------------------------------------------------


def _size(count: int | None) -> str:
    """A byte count in words: ``"1.5 GB"``, ``"320 kB"``, ``"12 bytes"``."""
    if count is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path: Path) -> int | None:
    """The bytes free on the disk of ``path`` (or of its nearest existing ancestor); ``None`` if unknown."""
    try:
        return shutil.disk_usage(_existing(path)).free
    except OSError:
        return None


def ensure_free_space(path: str | Path, needed: int, what: str = "file") -> None:
    """Check that the disk of ``path`` (a file or folder to be written, which need not exist) has ``needed`` bytes free.

    Call it before long work whose result is big (decoding a dataset into a cache), so that a full disk is
    found before the work, not after it.

    Args:
        path: what will be written.
        needed: the bytes it will take.
        what: what it is, for the message ("Tiny ImageNet train cache").

    Raises:
        DiskFullError: fewer than ``needed`` bytes are free; one line naming ``what``, ``path``, the space needed
            and the space free; nothing was written.
    """
    free = _free_bytes(Path(path))
    if free is not None and free < needed:
        raise DiskFullError(f"{what} {path}", needed=needed, free=free, state="nothing was written")


def probe_output(path: str | Path, *, kind: str = "folder", what: str | None = None) -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` (``"folder"`` or ``"file"``); creates nothing.

    A folder must be a folder (or not exist yet) in which a file can be created; a file must not be a folder,
    and the folder it goes in must be such a folder (files are written beside their destination, then
    renamed). Where the path does not exist yet, its nearest existing ancestor must be a folder that can be
    written. A test file is created and removed at once to prove it (``os.access`` lies for root and on
    read-only file systems).

    Args:
        path: the output.
        kind: ``"folder"`` or ``"file"``.
        what: how to name it in the message (a flag, ``"--out"``, or a parameter, ``"results_dir"``);
            default ``"output folder"`` / ``"output file"``.

    Returns:
        ``path`` (as a :class:`~pathlib.Path`).

    Raises:
        OutputError: one line naming the path, what is wrong and the fix, ending "nothing was run".
    """
    if kind not in ("folder", "file"):
        raise ValueError(f"kind={kind!r} is not valid; valid kinds: ('folder', 'file')")
    path = Path(path)
    name = f"{what}={path}" if what and what.isidentifier() else f"{what or 'output ' + kind} {path}"
    fix = f"choose another {kind}" + (" (it is created if missing)" if kind == "folder" else "")

    def refuse(problem: str) -> OutputError:
        return OutputError(f"{name} cannot be written: {problem}; {fix}; nothing was run")

    if kind == "folder" and path.exists() and not path.is_dir():
        raise refuse(f"{path} is a file, not a folder")
    if kind == "file" and path.is_dir():
        raise refuse(f"{path} is a folder, not a file")
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise refuse(f"{path} is read-only")
    folder = path if kind == "folder" else path.parent
    existing = _existing(folder)
    if not existing.is_dir():
        raise refuse(f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        where = "it" if existing == Path(os.path.abspath(folder)) else f"{existing}"
        raise refuse(f"{where} is read-only or cannot be written to ({error.strerror or error})") from None
    return path


# -- the command line -------------------------------------------------------------------------------


def command_line() -> str | None:
    """This process's command line as one would type it again (``python -m zfcore train --profile ci``), or
    ``None`` when there is none."""
    if not sys.argv or not sys.argv[0]:
        return None
    program = ["-m", "zfcore"] if Path(sys.argv[0]).name == "__main__.py" and Path(sys.argv[0]).parent.name == "zfcore" \
        else [sys.argv[0]]
    return shlex.join(["python", *program, *sys.argv[1:]])


