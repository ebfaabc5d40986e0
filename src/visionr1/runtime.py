"""CPU thread policy shared by ``visionr1 train``, ``eval run``, ``coldstart`` (local backend) and the demo.

Why a policy at all: torch starts one OpenMP thread per core and lets idle threads spin (``OMP_WAIT_POLICY``
ACTIVE by default). A tiny-model run is a sequence of small kernels, and the process has other work between
them (Python, data collation, tokenisation, reward workers); when a core is not free for every OpenMP thread
(other processes, other ranks on the host, or that other work), each kernel waits for its slowest thread.
Measured on this project's 2-core machine (``benchmarks/threads.py``, 3 interleaved rounds, figures in the
README and ``benchmarks/results/``): a ``visionr1 train`` GRPO run with 2 torch threads took 1.58x the wall time
and 1.69x the CPU time of 1 thread at load average 5-11, and 2.4x the wall time in the one round measured at
load 0.4-0.7; ``OMP_WAIT_POLICY=PASSIVE`` removed the wasted CPU time (0.95x) but not the wall-time loss
(1.22x). ``eval run`` was indifferent (1.02x).

So ``auto`` gives torch the cores that are free for this process, less one for the process's own non-torch
work:

    threads = max(1, min(cores // local_processes, cores - round(load_average_1min)) - 1)

where ``cores`` is the CPU affinity of this process, ``local_processes`` is ``LOCAL_WORLD_SIZE`` (ranks of an
``accelerate``/``torchrun`` launch share the host's cores) and the 1-minute load average counts the runnable
processes already there. An explicit ``OMP_NUM_THREADS`` in the environment wins over ``auto`` (it is the
standard knob, and ``torchrun`` sets it to 1 per rank); an explicit ``N`` (recipe ``cpu_threads: N`` or the
``--cpu-threads N`` flag) wins over both. ``OMP_WAIT_POLICY`` is left as the environment has it. Departure from
torch: torch's default is every physical core, regardless of load or of other ranks; on a big idle host the
difference is one core.

What was decided is recorded (``describe()``) in the training manifest, so a slow run can be explained later.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field

CpuThreads = Annotated[int, Field(ge=1)] | Literal["auto"]
"""Recipe / CLI type: a thread count >= 1, or ``auto``."""

CPU_THREADS_HELP = (
    "torch CPU threads: auto (the cores other processes and ranks on this host leave free, less one for the "
    "process's own Python, data and reward work; OMP_NUM_THREADS if set) or a number"
)

_applied: dict[str, Any] | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def auto_threads(cores: int, load: float, local_processes: int = 1, omp_num_threads: str | None = None) -> tuple[int, str]:
    """The ``auto`` thread count and why, as a pure function of what it depends on.

    >>> auto_threads(cores=2, load=0.1)        # one core for torch, one for the rest of the process
    (1, '2 cores, load 0.1, 1 process(es) on this host, 1 core left for non-torch work')
    >>> auto_threads(cores=64, load=3.7)[0]     # a big host with a few other jobs
    59
    >>> auto_threads(cores=32, load=0.0, local_processes=8)[0]   # 8 ranks share 32 cores
    3
    >>> auto_threads(cores=16, load=0.0, omp_num_threads="3")
    (3, 'OMP_NUM_THREADS=3')
    """
    if omp_num_threads and omp_num_threads.strip().isdigit() and int(omp_num_threads) >= 1:
        return int(omp_num_threads), f"OMP_NUM_THREADS={int(omp_num_threads)}"
    share = max(1, cores // max(1, local_processes))
    free = max(1, cores - round(load))
    return max(1, min(share, free) - 1), (
        f"{cores} cores, load {load:.1f}, {local_processes} process(es) on this host, 1 core left for non-torch work"
    )


def resolve_cpu_threads(setting: int | str | None) -> tuple[int | None, str]:
    """Threads for ``setting`` (``auto``, a number, or ``None`` = leave torch's default) and the reason."""
    if setting is None:
        return None, "torch default"
    if setting == "auto":
        local = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
        return auto_threads(available_cores(), load_average(), local, os.environ.get("OMP_NUM_THREADS"))
    try:
        n = int(setting)
    except (TypeError, ValueError):
        raise ValueError(f"cpu_threads must be 'auto' or a whole number >= 1, got {setting!r}") from None
    if n < 1:
        raise ValueError(f"cpu_threads must be 'auto' or a whole number >= 1, got {setting!r}")
    return n, f"cpu_threads={n}"


def apply_cpu_threads(setting: int | str | None) -> dict[str, Any]:
    """Resolve ``setting``, set torch's intra-op threads to it, and return (and remember) the record.

    Only the intra-op pool is set: torch allows the inter-op pool to be sized once, before first use, which a
    library cannot guarantee. Imports torch.
    """
    global _applied
    import torch

    threads, reason = resolve_cpu_threads(setting)
    if threads is not None:
        torch.set_num_threads(threads)
    _applied = {"setting": setting, "reason": reason}
    return describe()


def describe() -> dict[str, Any]:
    """What the CPU thread policy decided for this process (for manifests and logs)."""
    import torch

    return {
        "setting": (_applied or {}).get("setting"),
        "reason": (_applied or {}).get("reason", "not set by visionr1"),
        "torch_threads": torch.get_num_threads(),
        "cores": available_cores(),
        "load_average_1min": round(load_average(), 2),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }


def summary_line(record: dict[str, Any]) -> str:
    """``1 torch thread (auto: 2 cores, load 1.8, ...)`` for a console."""
    n = record["torch_threads"]
    how = "auto: " if record["setting"] == "auto" else ""
    return f"{n} torch thread{'s' if n != 1 else ''} ({how}{record['reason']})"
