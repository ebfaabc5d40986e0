"""One ``visionr1 train`` per run directory.

Why: two trains on one run directory each logged every step (``metrics.jsonl`` twice over), raced on the
checkpoints, and the loser marked the run ``failed`` though ``final/`` existed. :func:`run_lock` makes the
second one refuse at once, naming the process that holds the directory.

How: ``RUN_DIR/.lock`` holds the holder's host, PID, process start time and command, and the holder keeps an
exclusive ``flock`` on it. On one machine the kernel drops the flock when the holder dies, however it dies
(SIGKILL, OOM), so a stale lock is detected for certain and taken over with a message; the PID/host record is
what the message shows and what is checked when flock cannot decide -- e.g. on a network filesystem whose
locks are not shared between machines: a lock from another host is refused unless its holder is known dead.
A PID reused by an unrelated process is told apart by its start time (``/proc/PID/stat``).
The lock outlives its holder while any process of its run lives: every stage process carries the holder's
``PID:START`` in ``VISIONR1_RUN_HOLDER``, and a stale lock is taken over only once no process carrying it is left
(they get SIGTERM when their parent dies; we wait for them a grace period, then refuse, naming them).
Only the main process (``RANK`` 0) of a multi-process launch takes the lock; the others share its run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another live ``visionr1 train`` holds the run directory (no heavy imports here: cheap to take)."""


GRACE_ENV = "VISIONR1_STOP_GRACE_S"
DEFAULT_GRACE_S = 20.0


def grace_seconds() -> float:
    """How long a stopped stage may take to exit before it is SIGKILLed (``VISIONR1_STOP_GRACE_S``)."""
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


def holder_id(pid: int | None = None) -> str:
    """``PID:START``: the run's main process, as the lock records it (start time tells a reused PID apart)."""
    pid = pid or os.getpid()
    return f"{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _start_time(pid)
    return start is None or now is None or now == start


def run_processes(holder: str) -> list[int]:
    """The live processes started for the run whose lock holder is ``holder`` (``PID:START``), found by the
    ``VISIONR1_RUN_HOLDER`` they inherit (only this user's processes are readable: the run's are)."""
    needle = f"VISIONR1_RUN_HOLDER={holder}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _wait_for_run_processes(holder: str) -> list[int]:
    """Wait (the stop grace period) for the processes of a dead holder's run to exit; those still alive."""
    deadline = time.monotonic() + grace_seconds() + 5
    while (left := run_processes(holder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _describe(info: dict[str, Any]) -> str:
    cmd = " ".join(info.get("command") or [])[:200]
    return f"PID {info.get('pid')} on {info.get('host')} since {info.get('started')}" + (f" ({cmd})" if cmd else "")


def _read(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        info = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, enabled: bool = True,
             notify: Callable[[str], None] | None = None) -> Iterator[Path | None]:
    """Hold ``RUN_DIR/.lock`` for the ``with`` block; raise :class:`RunLockedError` if a live run holds it.

    ``enabled=False`` (non-main ranks) does nothing. ``notify`` receives the message about a stale lock
    taken over (default: printed to stderr).
    """
    if not enabled:
        yield None
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _held(run_dir / LOCK_FILE, notify, "visionr1 train", run_dir) as path:
        yield path


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, what: str, *, directory: bool,
                notify: Callable[[str], None] | None = None) -> Iterator[Path]:
    """One ``what`` (``visionr1 score-rewards``, ``visionr1 eval run``) per output file or directory, held for
    the ``with`` block: two on one output used to interleave their lines (119,488 lines for 60,000 inputs;
    12 predictions for 6 items) and one lost its ``.tmp``. The lock file sits beside a file output
    (``.NAME.lock``) and inside a directory output (``.lock``)."""
    output = Path(output).absolute()
    path = output / LOCK_FILE if directory else output.parent / f".{output.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _held(path, notify, what, output) as held:
        yield held


_HELD: set[Path] = set()  # pipeline locks this process holds (``visionr1 demo`` runs ``visionr1 run`` inside its own)


def pipeline_lock_path(run_dir: str | os.PathLike) -> Path:
    """A pipeline run's lock, BESIDE its directory (``runs/.demo.lock`` for ``runs/demo``): a fresh
    ``visionr1 demo`` clears its whole directory, and a lock inside it would be deleted with it while held."""
    run_dir = Path(run_dir).absolute()
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def pipeline_lock(run_dir: str | os.PathLike, notify: Callable[[str], None] | None = None) -> Iterator[Path]:
    """One ``visionr1 run`` / ``visionr1 demo`` per pipeline run directory, held from before the directory is
    prepared (a second demo on a running one's directory used to clear it under the first). Re-entrant within
    one process."""
    path = pipeline_lock_path(run_dir)
    if path in _HELD:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _held(path, notify, "visionr1 run / demo", Path(run_dir)):
        _HELD.add(path)
        try:
            yield path
        finally:
            _HELD.discard(path)


@contextlib.contextmanager
def _held(path: Path, notify: Callable[[str], None] | None, what: str, subject: Path | None = None) -> Iterator[Path]:
    notify = notify or (lambda msg: print(f"visionr1: {msg}", file=sys.stderr, flush=True))
    fd = _acquire(path, notify, what, subject)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if _read(fd).get("pid") == os.getpid():
                path.unlink(missing_ok=True)  # unlinked while still flocked: no one can slip in between
        os.close(fd)


def _acquire(path: Path, notify: Callable[[str], None], what: str = "visionr1 train", subject: Path | None = None) -> int:
    subject = subject or path.parent  # the run directory the messages name
    fix = f"wait for it to finish, stop it, or use another --output-dir; if it is not running, delete {path}"
    for _ in range(10):  # retried only when the file was replaced between open and flock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            info = _read(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLockedError(f"{subject}: another `{what}` is running on this run directory "
                                     f"({_describe(info) if info else 'holder unknown'}). Fix: {fix}") from None
            raise
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:  # the holder removed it as we opened it: retry
                os.close(fd)
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        info = _read(fd)
        if info.get("pid") and info.get("pid") != os.getpid():
            same_host = info.get("host") == socket.gethostname()
            if not same_host or _alive(int(info["pid"]), info.get("start_time")):
                os.close(fd)
                where = "another machine: its lock is not visible from here" if not same_host else "this machine"
                raise RunLockedError(f"{subject}: locked by {_describe(info)}, on {where}. Fix: {fix}")
            if left := _wait_for_run_processes(f"{info['pid']}:{info.get('start_time')}"):
                os.close(fd)
                raise RunLockedError(f"{subject}: the run of {_describe(info)} was stopped, but its process(es) "
                                     f"{', '.join(map(str, left))} still run. Fix: wait for them to exit, or stop "
                                     f"them (kill {' '.join(map(str, left))})")
            notify(f"{subject}: taking over a stale lock: {_describe(info)} is no longer running "
                   "(killed?); resuming its run")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": _start_time(os.getpid()),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": [Path(sys.argv[0]).name, *sys.argv[1:]]}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
        return fd
    raise RunLockedError(f"{path}: the lock file keeps changing under us. Fix: {fix}")
