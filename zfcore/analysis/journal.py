"""A journal of finished measurements, so that a long measurement can stop and go on where it stopped.

Training a network on each of five Caltech-101 splits (Zeiler & Fergus 2014, §5.2, Table 4's
fine-tuned and from-scratch rows) takes hours on a CPU. :func:`zfcore.analysis.transfer.network_transfer`
writes each finished split to a :class:`Journal` at once; run again with the same journal, it reads the
splits found there instead of training them again. A journal is a text file with one JSON object per
line, small enough to commit as the run goes. Each entry is found by a key that digests everything
that determines its result (the recipe, the network or architecture, the images, the split): a changed
input never reads an old entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zfcore.store import json_digest

__all__ = ["Journal", "journal_key"]


def journal_key(**parts: Any) -> str:
    """A short SHA-256 of ``parts`` (JSON-ready values; key order does not matter)."""
    return json_digest(parts)[:24]


class Journal:
    """Finished entries, one JSON line each, read from and appended to ``path``.

    Args:
        path: the journal file (created, with its folder, at the first entry).

    Raises:
        ValueError: a line of an existing file that is not a JSON object with a ``"key"`` (the line
            number is named; a last line cut short by an interruption is skipped instead).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # cut short when the run was stopped: dropped, that entry runs again
                    self.path.write_text("".join(line + "\n" for line in lines[:-1]))
                    continue
                raise ValueError(f"{self.path}, line {number}: not JSON; repair or delete the line") from None
            if not isinstance(entry, dict) or "key" not in entry:
                raise ValueError(f"{self.path}, line {number}: not a journal entry (a JSON object with a 'key')")
            self.entries[entry["key"]] = entry

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry recorded under ``key``, else ``None``."""
        return self.entries.get(key)

    def add(self, key: str, **values: Any) -> None:
        """Record ``values`` under ``key``: appended to the file and flushed to disk at once."""
        entry = {"key": key, **values}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.entries[key] = entry
