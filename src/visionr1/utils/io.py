"""The one atomic writer, the one JSONL reader and appender, and errors about writes that a user can act on.

Why one helper: the manifest, the cold-start report and run info, ``recipe.json`` and ``score-rewards`` each
had their own "write a temp file, then rename", and none cleaned up after a failure: a full disk left
``manifest.json.tmp.PID`` files behind, a traceback instead of a message, and a manifest still saying
``running``. Here a failed write removes its temp file and raises :class:`OutputError`, one line naming the
path, what was being written and the free space; the old file is untouched (readers see the old or the new
version, never half of one). JSON goes through :func:`dumps_json`: secrets redacted, NaN/inf as ``null``,
lone surrogates escaped -- always valid JSON, always encodable as UTF-8.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from visionr1.utils.secrets import redact

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class OutputError(RuntimeError):
    """A file visionr1 could not write; the message names the path, what it was and the fix."""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def free_space(path: str | os.PathLike) -> str:
    """Free space on the filesystem holding ``path`` (or its nearest existing parent), e.g. ``'12.3 GB'``."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return _human(shutil.disk_usage(p).free)
    except OSError:
        return "unknown"


def output_error(exc: OSError, path: str | os.PathLike, what: str) -> OutputError:
    """The one-line error for a failed write of ``what`` to ``path``.

    >>> str(output_error(OSError(errno.EROFS, "Read-only file system"), "/ro/out.jsonl", "scored lines"))[:73]
    'cannot write scored lines to /ro/out.jsonl: Read-only file system (errno '
    """
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        fix = "free some space, or write somewhere else"
    elif exc.errno in _NOT_WRITABLE:
        fix = "the directory is not writable: choose another output location or fix its permissions"
    else:
        fix = "check the path"
    return OutputError(
        f"cannot write {what} to {path}: {reason} (errno {exc.errno}; {free_space(path)} free there). Fix: {fix}"
    )


def is_write_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk, a quota, or a read-only / unwritable location (not a bug)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL | _NOT_WRITABLE


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any, *, indent: int | None = None, redact_secrets: bool = True) -> str:
    """JSON text that is always valid and UTF-8-encodable: NaN/inf become ``null`` (bare ``NaN`` is not JSON),
    lone surrogates (``"\\ud800"``, which UTF-8 cannot hold) are written as escapes, secrets are redacted.

    >>> dumps_json({"x": float("nan"), "s": "\\ud800é", "api_key": "abc"})
    '{"x": null, "s": "\\\\ud800\\\\u00e9", "api_key": "<redacted>"}'
    """
    obj = _json_safe(redact(obj) if redact_secrets else obj)
    text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, indent=indent, allow_nan=False, default=str)
    return text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stray_temps(path: Path) -> None:
    """Temp files of this path left by killed writers (``NAME.tmp.PID`` whose PID is gone)."""
    with contextlib.suppress(OSError):
        for p in path.parent.glob(path.name + ".tmp.*"):
            pid = p.name.rsplit(".", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                p.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "a file", *, fsync: bool = False,
                      in_place_fallback: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (temp file ``NAME.tmp.PID`` in the same directory, then rename).

    On failure the temp file is removed and :class:`OutputError` raised; the old file stays as it was.
    ``in_place_fallback`` (the manifest): when the disk is full, overwrite the existing file in place if the
    new text fits in the blocks it already holds -- not atomic, but it lets a run record ``failed`` on a full
    disk instead of staying ``running`` forever.
    """
    path = Path(path)
    data = text.encode("utf-8")
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if in_place_fallback and exc.errno in _DISK_FULL and _rewrite_in_place(path, data):
            return
        raise output_error(exc, path, what) from None
    _remove_stray_temps(path)


def _rewrite_in_place(path: Path, data: bytes) -> bool:
    try:
        st = path.stat()
        if len(data) > max(st.st_size, st.st_blocks * 512):
            return False
        with path.open("r+b") as f:
            f.write(data)
            f.truncate(len(data))
        return True
    except OSError:
        return False


def atomic_write_json(path: str | os.PathLike, obj: Any, what: str = "a JSON file", *, indent: int = 2,
                      in_place_fallback: bool = False) -> None:
    """:func:`atomic_write_text` of :func:`dumps_json` (secrets redacted, always valid JSON)."""
    atomic_write_text(path, dumps_json(obj, indent=indent) + "\n", what, in_place_fallback=in_place_fallback)


def check_writable(directory: str | os.PathLike, what: str) -> None:
    """Create ``directory`` if needed and prove a file can be written there, before any work is done."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".visionr1-write-check-", delete=True) as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise output_error(exc, d, what) from None


# ----------------------------------------------------------------------------------------------------------
# JSONL: the one reader and the one appender
# ----------------------------------------------------------------------------------------------------------


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line number, object | None, problem | None)`` for each non-blank line of a JSONL file.

    Each line is decoded on its own, so one line of invalid UTF-8 (a truncated multi-byte character, a
    Latin-1 export) is one bad line with its line number, not a ``UnicodeDecodeError`` that sinks the file.
    Lines end at line feeds only: a JSON string written with ``ensure_ascii=False`` may hold U+2028 or U+0085,
    which ``str.splitlines`` would cut the record at. The problem texts name the line; callers add the file
    and decide whether a bad line is an error (data, predictions) or a line torn by a kill (logs).
    """
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, (
                    f"line {lineno} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "re-encode the file as UTF-8 or fix that line"
                )
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"line {lineno} is not valid JSON: {exc}"
                continue
            if not isinstance(value, dict):
                yield lineno, None, f"line {lineno} is a JSON {type(value).__name__}, expected an object"
                continue
            yield lineno, value, None


def append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as a line (values JSON cannot hold become strings); a kill tears at most this line,
    which :func:`iter_jsonl` then reports with its number."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
