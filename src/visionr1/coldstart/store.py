"""Append-only JSONL logs: what makes a cold-start run resumable and lossless.

Each result is one line, written and flushed as soon as it exists, so a SIGKILL loses at most the requests in
flight. A kill in the middle of a write leaves a torn last line: reading skips it (and counts it), and the
next append first ends that line, so it can never glue onto a good one. The latest line of a key wins.
(``flush`` hands the line to the OS, which keeps it across a killed process; surviving power loss would need
an fsync per line, which we do not pay for.)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from visionr1.utils.io import atomic_write_text, dumps_json, output_error
from visionr1.utils.secrets import redact_text


class JsonlLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.torn_lines = 0
        self._f = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _, obj in self.entries():
            yield obj

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(byte offset, entry)`` for every readable line; torn lines are counted in ``torn_lines``."""
        self.torn_lines = 0
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            pos = 0
            for raw in f:
                start, pos = pos, pos + len(raw)
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.torn_lines += 1
                    continue
                if isinstance(obj, dict):
                    yield start, obj

    def latest(self, key: str = "id") -> dict[str, dict[str, Any]]:
        """The last entry of each key value (holds every entry in memory: for small logs and tests)."""
        return {obj[key]: obj for obj in self if key in obj}

    def index(self, keep=lambda obj: True, fields: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """For each id, the byte offset of its last entry that ``keep`` accepts, and that entry's ``fields``.

        Logs of a 200K-record run hold gigabytes of reasoning text; the index holds a few small values per
        record, and :meth:`read_at` fetches a whole entry when it is needed.
        """
        out: dict[str, dict[str, Any]] = {}
        for offset, obj in self.entries():
            if "id" in obj and keep(obj):
                out[obj["id"]] = {"offset": offset, **{f: obj.get(f) for f in fields}}
        return out

    def read_at(self, offset: int) -> dict[str, Any]:
        with self.path.open("rb") as f:
            f.seek(offset)
            return json.loads(f.readline())

    def append(self, obj: dict[str, Any]) -> None:
        try:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
                self._f = self.path.open("a", encoding="utf-8")
                if needs_newline:
                    self._f.write("\n")  # fence off a torn line left by a killed run
            self._f.write(dumps_json(obj) + "\n")  # secrets redacted, always valid JSON
            self._f.flush()
        except OSError as exc:  # a full disk: one line naming the log; what was flushed before is kept
            raise output_error(exc, self.path, "a cold-start result") from None

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):  # only a line whose write already failed (and was reported) is lost
                f.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file so that readers see the old or the new version, never half of one."""
    atomic_write_text(path, redact_text(text), f"the cold-start {path.name}")
