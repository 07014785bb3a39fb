"""Locks: one process at a time in a folder or on a job.

A lock file records the process id, host, start time and command of the process that holds a folder or a job
(:func:`lock`, :func:`lock_holder`). A second process is refused in one line naming the holder
(:class:`LockedError`); a lock left by a process that is no longer running, that names no process, or whose process
id now belongs to a younger process is taken over with one :class:`StaleLockWarning`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Iterator

from zfcore.store import command_line, write_text_atomic

__all__ = ["LockHolder", "LockedError", "StaleLockWarning", "lock", "lock_holder"]


class LockedError(ValueError):
    """A lock held by a live process (:func:`lock`); the message is one line naming the process and the lock file."""


class StaleLockWarning(UserWarning):
    """A lock left by a process that is no longer running (or by none) was taken over."""


@dataclasses.dataclass(frozen=True)
class LockHolder:
    """Who holds a lock (:func:`lock`): process id, host, start time (seconds since the epoch) and command."""

    pid: int
    host: str
    started: float | None = None
    command: str | None = None

    def __str__(self) -> str:
        since = (f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}"
                 if self.started is not None else "")
        command = f", running '{self.command}'" if self.command else ""
        return f"process {self.pid} on host {self.host}{since}{command}"


def _host() -> str:
    return socket.gethostname()


def _short_command() -> str | None:
    """:func:`command_line`, at most 200 characters, for a lock's record."""
    command = command_line()
    return command if command is None or len(command) <= 200 else command[:197] + "..."


def _read_lock(path: Path) -> tuple[LockHolder | None, str | None]:
    """``(holder, None)`` for a lock naming a process, ``(None, why)`` for one that names none, ``(None, None)``
    when there is no lock file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"it cannot be read ({error.strerror or error})"
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if isinstance(record, int) and not isinstance(record, bool):  # an older lock: the process id alone
        record = {"pid": record}
    if not isinstance(record, dict) or isinstance(record.get("pid"), bool) or not isinstance(record.get("pid"), int):
        shown = text[:40] + ("..." if len(text) > 40 else "")
        return None, f"it names no process (it holds {shown!r})"
    if record["pid"] <= 0:
        return None, f"it names no process (process id {record['pid']})"
    started, command = record.get("started"), record.get("command")
    if isinstance(started, bool) or not isinstance(started, (int, float)):
        try:  # an older lock records no start: the file was written when its process took it
            started = path.stat().st_mtime
        except OSError:
            started = None
    return LockHolder(pid=record["pid"], host=str(record.get("host") or _host()),
                      started=None if started is None else float(started),
                      command=command if isinstance(command, str) else None), None


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from ``/proc``; ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _stale(holder: LockHolder) -> str | None:
    """Why the lock of ``holder`` is stale (its process is gone or is another one), or ``None`` if it is held."""
    if holder.host != _host():
        return None  # another machine's process cannot be looked at from here
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return f"process {holder.pid} is no longer running"
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return None
    if _zombie(holder.pid):
        return f"process {holder.pid} has ended"
    started = _process_start(holder.pid)
    if holder.started is not None and started is not None and started > holder.started + 2:
        return (f"process {holder.pid} started after the lock was taken, so it is another process that got the "
                f"same id")
    return None


def lock_holder(path: str | Path) -> LockHolder | None:
    """The live process holding the lock file ``path`` (:func:`lock`), or ``None`` (no lock, or a stale one)."""
    holder, _ = _read_lock(Path(path))
    return holder if holder is not None and _stale(holder) is None else None


@contextlib.contextmanager
def _folder_guard(folder: Path) -> Iterator[None]:
    """Serialise the lock look-ups of all processes in ``folder`` (an advisory ``flock`` on it, for milliseconds)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the look-up is not serialised
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened for reading: the look-up is not serialised
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: likewise
            pass
        yield
    finally:
        os.close(descriptor)  # releases the flock


@contextlib.contextmanager
def lock(path: str | Path, what: str) -> Iterator[LockHolder]:
    """Hold the lock file ``path`` for the ``with`` block: one process at a time does ``what``.

    The file records this process's id, host, start time and command (JSON). Taking the lock is atomic
    among processes on one machine (the look-up and the write are serialised by a ``flock`` on the folder).
    A lock whose process is gone, that names no process (``0``, ``-1``, garbage) or whose process id now
    belongs to a process started after the lock was written is stale: it is taken over with one
    :class:`StaleLockWarning`. A lock of a live process (or of another host, which cannot be looked at) is
    refused. The file is removed when the block ends, however it ends.

    Args:
        path: the lock file (its folder is created).
        what: what the lock protects, for the message (``"experiment 'ci'"``, ``"out_dir=runs/book"``).

    Yields:
        This process's :class:`LockHolder` record.

    Raises:
        LockedError: a live process holds it; one line naming the process (id, host, start, command), the
            lock file and how to remove it if it is stale. Nothing was changed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    own = LockHolder(pid=os.getpid(), host=_host(), started=time.time(), command=_short_command())
    try:
        with _folder_guard(path.parent):
            holder, nameless = _read_lock(path)
            reason = nameless if holder is None else _stale(holder)
            if holder is not None and reason is None:
                raise LockedError(f"{what} is already being run by {holder} (lock file {path}): wait for it to end "
                                  f"or stop it. If no such process is running, the lock is stale: remove {path} and "
                                  f"run again; nothing was run")
            if reason is not None:
                taken = f" (taken by {holder})" if holder is not None else ""
                warnings.warn(f"taking over the stale lock {path}{taken}: {reason}", StaleLockWarning, stacklevel=3)
            write_text_atomic(path, json.dumps({"pid": own.pid, "host": own.host, "started": own.started,
                                                "command": own.command, "what": what}) + "\n")
        yield own
    finally:  # however the block ends (Ctrl-C included), this process's own lock goes, and no one else's
        with _folder_guard(path.parent):
            holder, _ = _read_lock(path)
            if holder is not None and (holder.pid, holder.host, holder.started) == (own.pid, own.host, own.started):
                path.unlink(missing_ok=True)
