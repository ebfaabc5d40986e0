"""One process per stage: ``visionr1 train RECIPE`` runs each pending stage as a child process of its own.

Why: with every stage in one Python process, state left by stage k (process groups, DeepSpeed engines, vLLM
colocated engines, CUDA memory held by caches) broke stage k+1, and a rank-0-only evaluation between stages made
the other ranks wait in the next trainer's set-up until the NCCL timeout. Now the parent process plans, checks
every pending stage's data (all problems before any training), then for each stage starts

    python -m visionr1 train RECIPE [overrides] --stage NAME --output-dir RUN_DIR            (1 process)
    accelerate launch --num_processes N [--config_file F] [args] -m visionr1 train ... --stage NAME   (N > 1)

and waits for it. The child trains the stage and writes ``final/`` and the manifest; the parent then evaluates
the stage's final weights (``eval_dataset``) in its own process, after the child's GPUs are free, as a step of
its own that a re-run repeats if it was cut short. The manifest is the plan: a re-run starts at the first stage
without ``final/``. ``--stage NAME`` is also how a user runs one stage by hand.

One exception (``runner.trains_in_parent``): a single pending stage of one plain process with no evaluation after
it trains in the parent, since a child would only repeat the parent's imports, checks and preflight.

Stopping (what a scheduler's preemption does): SIGTERM or SIGINT to the parent is forwarded to the stage's
process group (the stage runs in a session of its own, so a terminal's Ctrl-C reaches it once, through us);
the parent waits ``VISIONR1_STOP_GRACE_S`` seconds (default 20, under SLURM's and Kubernetes' 30 s), then
SIGKILLs the group and every process below it -- torchrun starts each worker in a session of its own, out of
the group's reach. A stage process turns SIGTERM into :class:`Stopped` (a ``KeyboardInterrupt``), so its
manifest entry says ``interrupted``. Every stage process (the launcher and each worker) also dies with its
parent (``PR_SET_PDEATHSIG``), so a SIGKILL of the parent, which no handler sees, still stops the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from visionr1.recipe import LaunchSpec
from visionr1.training.lock import grace_seconds, holder_id
from visionr1.training.plan import PlanError

CHILD_ENV = "VISIONR1_STAGE_CHILD"  # set in a stage's process(es): the parent writes the summary, holds the lock
HOLDER_ENV = "VISIONR1_RUN_HOLDER"  # "PID:START" of the lock's holder, inherited by every process of the run
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class Stopped(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM, or SIGINT forwarded by the parent): the stage is ``interrupted``,
    not ``failed``; running the same command again resumes it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_stop_signals() -> None:
    """SIGTERM raises :class:`Stopped` in the main thread, as SIGINT raises ``KeyboardInterrupt``: the trainer
    unwinds, the manifest says ``interrupted`` and the lock is released (Python's default for SIGTERM is to
    die on the spot, leaving the manifest ``running`` and, in a parent, its stage running on)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)


_PRCTL: list[Callable[..., int] | None] = []


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once (before any fork: the child's pre-exec hook must not load libraries)."""
    if not _PRCTL:
        try:
            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):  # not Linux: no parent-death signal; the parent's shutdown still works
            _PRCTL.append(None)
    return _PRCTL[0]


def _prctl_pdeathsig(sig: int) -> bool:
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(expected_parent: int | None = None) -> None:
    """Ask the kernel to send SIGTERM to this process when its parent dies (Linux), and stop now if it already
    has. Called by every stage process: a torchrun worker lives in a session of its own, so a SIGKILL of
    its launcher's group would otherwise leave it training with no one holding the run."""
    if _prctl_pdeathsig(signal.SIGTERM) and expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signal.SIGTERM)  # the parent died before the request took effect


def as_stage_process() -> None:
    """Set up a stage's process (``--stage`` under a parent, or a rank of its launch): stop on SIGTERM and
    when the parent dies."""
    raise_on_stop_signals()
    if is_stage_child():
        die_with_parent()


def is_stage_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def accelerate_executable() -> str:
    """The ``accelerate`` console script of this environment (next to the running Python), else on PATH."""
    here = Path(sys.executable).with_name("accelerate")
    return str(here) if here.exists() else (shutil.which("accelerate") or "accelerate")


class LaunchError(PlanError):
    """A launch section that cannot start the processes it describes."""


def accelerate_config(launch: LaunchSpec) -> dict[str, Any]:
    """The accelerate config file the launch names (``{}`` for none)."""
    if not launch.config_file:
        return {}
    try:
        data = yaml.safe_load(Path(launch.config_file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchError(f"launch.config_file {launch.config_file}: cannot read it ({exc}). Fix: name an accelerate "
                          "config, e.g. configs/accelerate/zero3.yaml") from None
    if not isinstance(data, dict):
        raise LaunchError(f"launch.config_file {launch.config_file}: not an accelerate config (a YAML mapping)")
    return data


def planned_engine(launch: LaunchSpec) -> str:
    """The distributed engine a stage's processes must run: ``DEEPSPEED``, ``FSDP``, ``DDP`` (several processes
    without sharding) or ``NO`` (one process). What ``stage.check_engine`` holds each stage to."""
    kind = str(accelerate_config(launch).get("distributed_type", "")).upper()
    if kind in ("DEEPSPEED", "FSDP"):
        return kind
    return "DDP" if launch.num_processes > 1 else "NO"


def free_port() -> int:
    """A TCP port free on this machine now, for one run's rendezvous (accelerate and TRL default to 29500, so two
    runs on one machine collided with ``EADDRINUSE``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sets(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def stage_command(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path, stage: str,
                  port: int | None = None) -> list[str]:
    """The command line of one stage's process(es). ``port``: the rendezvous port for a one-machine launch that
    names none (a port in the launch's ``args`` or its config file wins)."""
    train = ["train", str(recipe_path), *overrides, "--stage", stage, "--output-dir", str(run_dir)]
    if launch.num_processes == 1 and not launch.config_file and not launch.args:
        return [sys.executable, "-m", "visionr1", *train]
    config = accelerate_config(launch)
    cmd = [accelerate_executable(), "launch", "--num_processes", str(launch.num_processes)]
    if launch.config_file:
        cmd += ["--config_file", launch.config_file]
    ds_file = (config.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if ds_file and not Path(ds_file).is_absolute() and not _sets(launch.args, "--deepspeed_config_file"):
        # accelerate reads it relative to the working directory; a config's JSON lives beside the config
        cmd += ["--deepspeed_config_file", str(Path(launch.config_file).resolve().parent / ds_file)]
    one_machine = int(config.get("num_machines", 1)) == 1 and not _sets(launch.args, "--num_machines")
    if (port is not None and one_machine and not _sets(launch.args, "--main_process_port")
            and "main_process_port" not in config):
        cmd += ["--main_process_port", str(port)]
    return [*cmd, *launch.args, "-m", "visionr1", *train]


def stage_launcher(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path) -> Callable[[str], int]:
    """``launcher(stage_name) -> exit code``: runs the stage's process(es), their output going to ours.
    A stop signal to us stops them (:func:`run_stage_process`) and raises :class:`Stopped` here."""

    def run(stage: str) -> int:
        port = int(os.environ.get("MASTER_PORT") or free_port())  # the user's, else one of this run's own
        cmd = stage_command(launch, recipe_path, overrides, run_dir, stage, port=port)
        env = {**os.environ, CHILD_ENV: "1", HOLDER_ENV: holder_id()}
        for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(var, None)  # the child's launcher sets its own
        return run_stage_process(cmd, env)

    return run


def run_stage_process(cmd: list[str], env: dict[str, str], grace: float | None = None) -> int:
    """Run ``cmd`` in a session of its own and return its exit code. SIGTERM/SIGINT to us are forwarded to its
    process group; after ``grace`` seconds the group and every process below it are SIGKILLed, and we return
    only once all of them are gone (the caller holds the run's lock until then), raising :class:`Stopped`."""
    grace = grace_seconds() if grace is None else grace
    parent = os.getpid()
    received: list[int] = []
    procs: list[subprocess.Popen] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(procs[0].pid, signum)

    _prctl()  # looked up before the fork: the hook below runs between fork and exec
    with _handlers(forward):
        proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                preexec_fn=lambda: die_with_parent(parent))  # noqa: PLW1509 (prctl only)
        procs.append(proc)
        if received:  # a signal between the fork and ``procs`` being set
            forward(received[-1], None)
        while proc.poll() is None and not received:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        if received:
            # torchrun's workers live in sessions of their own: note the tree while the launcher still
            # holds it (once it exits they belong to init), and kill what is left after the grace period
            tree: set[tuple[int, str]] = set()
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                tree |= {(p, _start(p)) for p in descendants(proc.pid)}
                time.sleep(0.1)
            if proc.poll() is None:
                tree |= {(p, _start(p)) for p in descendants(proc.pid)}
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kill_all(tree, grace)
            raise Stopped(received[0])
    return proc.returncode


@contextlib.contextmanager
def _handlers(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    old = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _proc_stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: [state, ppid, pgrp, session, ...]; None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start(pid: int) -> str:
    stat = _proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else ""


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (``/proc`` on Linux; none elsewhere), in any session or group."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int, start: str) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and (not start or stat[19] == start)


def kill_all(procs: set[tuple[int, str]], wait: float) -> None:
    """SIGKILL each ``(pid, start time)`` still alive (a reused PID is left alone) and wait until they are gone."""
    for pid, start in procs:
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + max(wait, 5.0)
    while any(_alive(p, s) for p, s in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
