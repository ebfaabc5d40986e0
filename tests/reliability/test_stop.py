"""Stopping a run the way a scheduler does: SIGTERM to `visionr1 train` (SLURM / Kubernetes preemption), SIGKILL
of the parent, SIGKILL of the launcher's process group. Every process the run started must be gone afterwards,
including torchrun's workers, which live in sessions of their own.

The stage processes here are real: a real torchrun (the launcher `accelerate launch` runs in-process) starting
real workers; each worker only does what a stage process does first (`visionr1` sets itself up as a stage
process, then trains: here it sleeps). The parent is the real `stage_launcher`, its command swapped for this one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import os, signal, sys, time
from pathlib import Path
if os.environ.get("VISIONR1_STAGE_CHILD") == "1":
    try:
        from visionr1.training.launch import as_stage_process  # what `visionr1 train --stage` does first
        as_stage_process()
    except ImportError:
        pass
if os.environ.get("IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker stuck in a collective: only SIGKILL ends it
Path(sys.argv[1], f"worker-{os.environ.get('RANK', 0)}.pid").write_text(str(os.getpid()))
time.sleep(300)
"""

PARENT = """
import sys
from pathlib import Path
import visionr1.training.launch as L
from visionr1.recipe import LaunchSpec
cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", sys.argv[1], sys.argv[2]]
L.stage_command = lambda *a, **k: cmd
sys.exit(L.stage_launcher(LaunchSpec(), "recipe.yaml", [], Path(sys.argv[2]))("stage"))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1]) == pid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def _start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, int, list[int]]:
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "parent.py").write_text(textwrap.dedent(PARENT))
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "VISIONR1_STOP_GRACE_S": "3",
                **env}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "VISIONR1_STAGE_CHILD"):
        full_env.pop(var, None)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(tmp_path / "worker.py"), str(tmp_path)],
                              env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    pids = [tmp_path / "worker-0.pid", tmp_path / "worker-1.pid"]
    while not all(p.exists() and p.read_text() for p in pids) and parent.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert all(p.exists() for p in pids), parent.communicate(timeout=30)[0].decode()[-3000:] if parent.poll() is not None else "workers did not start"
    time.sleep(1.0)  # the workers are past their set-up
    launcher = _children(parent.pid)
    assert len(launcher) == 1, launcher
    return parent, launcher[0], [int(p.read_text()) for p in pids]


# (what is killed, with which signal, whether the workers ignore SIGTERM)
CASES = [
    ("parent", signal.SIGTERM, False),   # a scheduler's preemption, sent to the main process only
    ("parent", signal.SIGINT, False),    # kill -INT to the main process only
    ("parent", signal.SIGTERM, True),    # workers that do not stop: SIGKILLed after the grace period
    ("parent", signal.SIGKILL, False),   # no handler runs in the parent: its children must still go
    ("launcher-group", signal.SIGKILL, False),  # issue 28: the launcher's group, workers in sessions of their own
]


@pytest.mark.parametrize(("target", "sig", "stuck"), CASES,
                         ids=[f"{t}-{s.name}{'-stuck' if k else ''}" for t, s, k in CASES])
def test_stopping_the_run_leaves_no_process_of_it(tmp_path, target, sig, stuck):
    parent, launcher, workers = _start(tmp_path, IGNORE_TERM="1" if stuck else "0")
    try:
        os.kill(parent.pid, sig) if target == "parent" else os.killpg(launcher, sig)
        deadline = time.time() + 30
        while any(_alive(p) for p in [launcher, *workers]) and time.time() < deadline:
            time.sleep(0.1)
        left = [p for p in [launcher, *workers] if _alive(p)]
        assert not left, f"still running after {target} got {sig.name}: {left}"
        if target == "parent" and sig != signal.SIGKILL:
            out = parent.communicate(timeout=30)[0].decode()
            assert parent.returncode != 0, out[-2000:]
            assert not any(_alive(p) for p in workers)  # the parent exits only after every process of the run
    finally:
        for pid in [parent.pid, launcher, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=30)


def test_the_parent_returns_only_once_every_process_is_gone(tmp_path):
    """The run's lock is held by the parent until it returns: it must not return while a worker lives."""
    parent, launcher, workers = _start(tmp_path, IGNORE_TERM="1")
    try:
        t0 = time.time()
        os.kill(parent.pid, signal.SIGTERM)
        parent.wait(timeout=60)
        gone = time.time() - t0
        assert not any(_alive(p) for p in [launcher, *workers])
        assert gone >= 2.5, gone  # the grace period (3 s) was given before the SIGKILL
    finally:
        for pid in [launcher, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
