"""Interleaved A/B timing shared by ``threads.py`` and ``startup.py``.

Why interleaved: the machine these run on is shared (other jobs come and go), so configurations measured one
after the other would compare different loads. Round ``r`` runs every configuration once, in an order rotated
by ``r`` (no configuration always goes first), and ratios are taken within a round, then summarised as a
median with the min-max spread. The 1-minute load average is recorded before every run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def load_average() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


def _vm_hwm_kib(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def _peak_kib(ru_maxrss: int, inherited: int, polled: int) -> int:
    """The child's peak: its ``ru_maxrss`` when above what it inherited from this process, else the polled one.

    >>> _peak_kib(1_500_000, 1_000_000, 1_400_000), _peak_kib(1_000_000, 1_000_000, 30_000), _peak_kib(20_000, 0, 0)
    (1500000, 30000, 20000)
    """
    return ru_maxrss if ru_maxrss > inherited or not polled else max(polled, 0)


class _PeakRss:
    """The largest VmHWM (KiB) of a process and its descendants, polled from /proc in a thread (0 without /proc)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.kib = pid, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, i = [self.pid], 0
        while i < len(pids):
            try:
                for task in os.listdir(f"/proc/{pids[i]}/task"):
                    with open(f"/proc/{pids[i]}/task/{task}/children") as fh:
                        pids += [int(c) for c in fh.read().split()]
            except OSError:
                pass
            i += 1
        return pids

    def _poll(self) -> None:
        while not self._done.is_set():
            for pid in self._tree():
                self.kib = max(self.kib, _vm_hwm_kib(pid))
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def timed_run(cmd: Sequence[str], env: dict[str, str], cwd: str | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run ``cmd``; wall seconds, CPU seconds (user + system of the process tree: spinning or oversubscribed
    threads show up here even when the wall time is set by other jobs' load), peak RSS of the process tree
    (the largest of the process and the children it waited for), the wall-clock time it was started at, load
    average before, return code (and the output tail on failure).

    Peak RSS is the largest ``VmHWM`` (the high-water mark of each process's own memory map) read from
    ``/proc`` every 50 ms over the child and its descendants. Not ``ru_maxrss``: on Linux a child's
    ``ru_maxrss`` starts at its *parent's* RSS at the fork (exec records the old memory map's high-water mark),
    so a 30 MiB child of a benchmark that has imported torch reports ~1 GiB; and the process-wide
    ``RUSAGE_CHILDREN`` maximum would be the largest child so far, whichever run it was. The child is reaped
    with ``os.wait4`` for its own CPU time; its ``ru_maxrss`` is used when it exceeds what the child inherited
    (then it is the child's own peak, exact), the polled figure otherwise (a process that peaks in its last
    50 ms may be missed there)."""
    load = load_average()
    started = time.time()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        inherited = _vm_hwm_kib("self")  # what the child's ru_maxrss starts from
        peak = _PeakRss(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            peak.stop()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        output = out.read()
    result = {"seconds": round(wall, 3), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
              "peak_rss_mib": round(_peak_kib(usage.ru_maxrss, inherited, peak.kib) / 1024, 1), "started": started,
              "load_before": load,
              "rc": proc.returncode}
    if proc.returncode:
        result["output_tail"] = output[-3000:]
    return result


def interleaved(configs: Sequence[str], rounds: int, run: Callable[[str, int], dict[str, Any]],
                log: Callable[[str], None] = print) -> dict[str, list[dict[str, Any]]]:
    """``run(config, round)`` for every config in every round, rotating the order each round."""
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for r in range(rounds):
        order = list(configs[r % len(configs):]) + list(configs[: r % len(configs)])
        for name in order:
            res = run(name, r)
            results[name].append(res)
            log(f"round {r + 1}/{rounds} {name}: {res['seconds']:.2f} s (load before {res['load_before']})"
                + ("" if res.get("rc", 0) == 0 else f"  FAILED rc={res['rc']}"))
    return results


def summarise(results: dict[str, list[dict[str, Any]]], baseline: str, key: str = "seconds") -> dict[str, dict[str, Any]]:
    """Per config: median/min/max of ``key``, and the per-round ratio config/baseline (median, min, max)."""
    out = {}
    for name, runs in results.items():
        vals = [r[key] for r in runs if r.get("rc", 0) == 0]
        if not vals:
            out[name] = {"failed": True}
            continue
        ratios = [
            r[key] / b[key] for r, b in zip(runs, results[baseline], strict=True)
            if r.get("rc", 0) == 0 and b.get("rc", 0) == 0 and b[key] > 0
        ]
        out[name] = {
            "n": len(vals), "median": round(statistics.median(vals), 3), "min": round(min(vals), 3),
            "max": round(max(vals), 3),
            f"ratio_to_{baseline}": {
                "median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                "max": round(max(ratios), 3),
            } if ratios else None,
            "load_before": [r["load_before"] for r in runs],
        }
    return out


def markdown_table(summary: dict[str, dict[str, Any]], baseline: str, unit: str = "s") -> str:
    """The summary as a markdown table (median, spread, ratio to the baseline, loads)."""
    rows = [f"| configuration | median {unit} | min-max {unit} | ratio to {baseline} (median, min-max) | load before runs |",
            "|---|---|---|---|---|"]
    for name, s in summary.items():
        if s.get("failed"):
            rows.append(f"| {name} | failed | | | |")
            continue
        ratio = s[f"ratio_to_{baseline}"]
        rtxt = f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else "-"
        rows.append(f"| {name} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} | {rtxt} | "
                    f"{', '.join(f'{x:.1f}' for x in s['load_before'])} |")
    return "\n".join(rows)
