"""Symbolic equivalence (math-verify) in killable worker processes, with a hard per-item deadline.

Why processes: math-verify bounds its time with ``signal.alarm``, which raises off the main thread (TRL's async
reward loop, data-loader workers, our own thread pools) and cannot interrupt sympy while it is inside one big
C-level operation (``9^{9^{9^9}}``). A subprocess can always be killed. So every symbolic comparison runs in a
small pool of long-lived ``python -m visionr1.rewards.symbolic`` workers that talk JSON lines over pipes.

Budgets are CPU time, not wall-clock: on a loaded machine (GRPO generation sharing the cores) a heavy but
correct item may take several wall seconds while using far less CPU, and must not turn into a 0. Each worker
arms ``ITIMER_PROF`` with the item's budget (``timeout`` seconds of its own CPU time) and answers "timed out"
when it fires; the parent keeps a wall-clock backstop (``WALL_FACTOR`` x budget + ``WALL_SLACK_S``) only for
what a signal cannot interrupt, kills the worker there (the item scores 0) and replaces it. Structural guards
in mathcheck.py keep such items from reaching the workers at all. Plain ``subprocess`` rather than
``multiprocessing``: it needs no ``if __name__ == "__main__"`` guard in the user's script and also works
inside daemonic worker processes, which multiprocessing forbids from having children.

Batches are spread over the workers, so a batch's symbolic items run in parallel. Each worker caches the parse
of gold answers (a GRPO group shares one gold across all its generations).

Safety: only LaTeX parsing is used (``LatexExtractionConfig``); math-verify's ``ExprExtractionConfig`` goes
through sympy's ``parse_expr``, which evaluates Python, and is never enabled. Workers also cap their own
memory (RLIMIT_AS).

Environment: ``VISIONR1_REWARD_WORKERS`` (default min(4, CPUs)), ``VISIONR1_REWARD_WORKER_MEM_MB`` (2048).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0  # CPU seconds per symbolic item
WALL_FACTOR = 3.0
WALL_SLACK_S = 2.0
_STARTUP_TIMEOUT_S = 120.0  # importing sympy on a busy 2-core machine can take a while; not an item's fault


def _default_workers() -> int:
    env = os.environ.get("VISIONR1_REWARD_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


class _Worker:
    """One worker subprocess and the bytes read from it so far."""

    def __init__(self) -> None:
        src_root = str(Path(__file__).resolve().parents[2])  # the directory holding the visionr1 package
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "visionr1.rewards.symbolic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.buf = b""
        self.ready = False

    def send(self, item_id: int, gold: str, pred: str, budget: float) -> None:
        self.proc.stdin.write((json.dumps([item_id, gold, pred, budget]) + "\n").encode())
        self.proc.stdin.flush()

    def read_lines(self) -> list[str]:
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            raise EOFError("worker exited")
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [ln.decode() for ln in lines]

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # already gone
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class SymbolicPool:
    """A lazily started pool of worker processes; thread-safe (one batch at a time) and fork-aware."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or _default_workers()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.timeouts = 0  # items that hit their deadline, for logging/tests

    def close(self) -> None:
        if os.getpid() == self._pid:  # a forked child must not kill its parent's workers
            for w in self._workers:
                w.kill()
        self._workers = []

    def warm_up(self, n: int | None = None) -> None:
        """Start workers now (e.g. before timing) instead of on the first symbolic item."""
        with self._lock:
            self._ensure(n or self.max_workers)
            for w in self._workers:
                self._wait_ready(w)

    def _ensure(self, n: int) -> None:
        if os.getpid() != self._pid:  # forked: the pipes belong to the parent
            self._workers, self._pid = [], os.getpid()
        self._workers = [w for w in self._workers if w.proc.poll() is None]
        while len(self._workers) < min(n, self.max_workers):
            self._workers.append(_Worker())

    def _wait_ready(self, w: _Worker) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        sel = selectors.DefaultSelector()
        sel.register(w.proc.stdout, selectors.EVENT_READ)
        try:
            while not w.ready:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError("symbolic worker did not start")
                lines = w.read_lines()
                if lines and lines[0] == "ready":
                    w.ready = True
        finally:
            sel.close()

    def equal_many(self, pairs: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT_S) -> list[bool]:
        """Verdicts for (gold, pred) pairs; an item that errors or uses more than ``timeout`` CPU seconds is
        False."""
        if not pairs:
            return []
        with self._lock:
            try:
                return self._run(pairs, timeout)
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                log.warning("symbolic workers failed (%s); scoring in-process instead", exc)
                self.close()
                return [_in_process_equal(g, p, timeout) for g, p in pairs]

    def _run(self, pairs: list[tuple[str, str]], timeout: float) -> list[bool]:
        """Dispatch items to workers; a worker is starting (waiting for "ready"), idle, or busy with one item
        until its deadline. Nothing here blocks on one worker, so a restart never eats another item's time."""
        self._ensure(len(pairs))
        results: list[bool] = [False] * len(pairs)
        todo = list(range(len(pairs)))[::-1]
        busy: dict[_Worker, tuple[int, float]] = {}
        starting: dict[_Worker, float] = {}
        idle: list[_Worker] = []
        failed_starts = 0
        sel = selectors.DefaultSelector()
        for w in self._workers:
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            if w.ready:
                idle.append(w)
            else:
                starting[w] = time.monotonic() + _STARTUP_TIMEOUT_S

        def retire(w: _Worker) -> None:
            sel.unregister(w.proc.stdout)
            busy.pop(w, None)
            starting.pop(w, None)
            w.kill()
            self._workers.remove(w)
            if todo and len(self._workers) < min(len(todo) + len(busy), self.max_workers):
                nw = _Worker()
                self._workers.append(nw)
                starting[nw] = time.monotonic() + _STARTUP_TIMEOUT_S
                sel.register(nw.proc.stdout, selectors.EVENT_READ, nw)

        try:
            while todo or busy:
                if failed_starts > 3 or not (busy or starting or idle):
                    raise OSError("symbolic workers keep failing to start")
                while todo and idle:
                    w, i = idle.pop(), todo.pop()
                    w.send(i, *pairs[i], timeout)
                    busy[w] = (i, time.monotonic() + timeout * WALL_FACTOR + WALL_SLACK_S)
                deadlines = [d for _, d in busy.values()] + list(starting.values())
                for key, _ in sel.select(max(0.0, min(deadlines) - time.monotonic())):
                    w = key.data
                    try:
                        lines = w.read_lines()
                    except EOFError:  # died (e.g. hit its memory cap): its item scores 0, it is replaced
                        if w in starting:
                            failed_starts += 1
                        else:
                            self.timeouts += 1
                        retire(w)
                        continue
                    for line in lines:
                        if line == "ready" and w in starting:
                            w.ready = True
                            del starting[w]
                            idle.append(w)
                            continue
                        item_id, verdict, timed_out = json.loads(line)
                        if busy.get(w, (None,))[0] == item_id:
                            results[item_id] = bool(verdict)
                            self.timeouts += bool(timed_out)
                            del busy[w]
                            idle.append(w)
                now = time.monotonic()
                for w, (i, deadline) in list(busy.items()):
                    if now >= deadline:  # kill and replace: the item scores 0
                        self.timeouts += 1
                        log.warning("symbolic comparison killed at its wall-clock backstop (%.1fs): %.80r",
                                    timeout * WALL_FACTOR + WALL_SLACK_S, pairs[i][1])
                        retire(w)
                for w, deadline in list(starting.items()):
                    if now >= deadline:
                        failed_starts += 1
                        retire(w)
            return results
        finally:
            sel.close()


_POOL: SymbolicPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> SymbolicPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = SymbolicPool()
            atexit.register(_POOL.close)
        return _POOL


def symbolic_equal_many(pairs: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT_S) -> list[bool]:
    """math-verify equivalence of (gold, pred) LaTeX pairs, each bounded by ``timeout`` CPU seconds."""
    return get_pool().equal_many(pairs, timeout)


# ----------------------------------------------------------------------------- the worker side

_GOLD_CACHE: dict[str, list] = {}


def _verify(gold: str, pred: str) -> bool:
    """Gold first, both wrapped in $...$ (math-verify mis-parses bare gold such as ``2\\sqrt{3}``)."""
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig()]
    g = _GOLD_CACHE.get(gold)
    if g is None:
        g = parse(f"${gold}$", extraction_config=cfg, parsing_timeout=None)
        if len(_GOLD_CACHE) > 4096:
            _GOLD_CACHE.clear()
        _GOLD_CACHE[gold] = g
    p = parse(f"${pred}$", extraction_config=cfg, parsing_timeout=None)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def _in_process_equal(gold: str, pred: str, timeout: float) -> bool:
    """Fallback when no worker can be started. Bounded by SIGALRM on the main thread; elsewhere only by the
    input caps applied before any symbolic call (logged, since the bound is then weaker)."""
    import signal

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def _raise(signum, frame):
            raise TimeoutError

        old = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return _verify(gold, pred)
        except Exception:
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    try:
        return _verify(gold, pred)
    except Exception:
        return False


def _worker_main() -> None:
    try:
        import resource

        mem = int(os.environ.get("VISIONR1_REWARD_WORKER_MEM_MB", "2048")) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    except (ImportError, ValueError, OSError):
        pass
    logging.disable(logging.CRITICAL)  # latex2sympy warnings would otherwise go to the parent's stderr
    _verify("x^2+1", r"\frac{1}{2}")  # first parse builds the LaTeX grammar (~1 s): not an item's time

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    import signal

    class OutOfCPU(BaseException):  # not an Exception: math-verify and sympy swallow those
        pass

    def _out_of_cpu(signum, frame):
        raise OutOfCPU

    has_prof = hasattr(signal, "setitimer") and hasattr(signal, "ITIMER_PROF")
    if has_prof:
        signal.signal(signal.SIGPROF, _out_of_cpu)
    for line in sys.stdin:
        try:
            item_id, gold, pred, budget = json.loads(line)
        except ValueError:
            continue
        timed_out = False
        try:
            if has_prof:
                signal.setitimer(signal.ITIMER_PROF, float(budget))
            verdict = _verify(gold, pred)
        except OutOfCPU:
            verdict, timed_out = False, True
        except BaseException:  # noqa: BLE001 - any failure (incl. MemoryError, RecursionError) is a 0
            verdict = False
        finally:
            if has_prof:
                signal.setitimer(signal.ITIMER_PROF, 0)
        out.write(json.dumps([item_id, verdict, timed_out]) + "\n")
        out.flush()


if __name__ == "__main__":
    _worker_main()
