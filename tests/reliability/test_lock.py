"""One `visionr1 train` per run directory: a live holder (a real other process) refuses the second run; a
holder killed with SIGKILL leaves a stale lock that is taken over with a message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.training.lock import LOCK_FILE, RunLockedError, run_lock

REPO = Path(__file__).resolve().parents[2]
HOLDER = "import sys, time\nfrom visionr1.training.lock import run_lock\nwith run_lock(sys.argv[1]):\n" \
         "    print('held', flush=True)\n    time.sleep(120)\n"


@pytest.fixture
def holder(tmp_path):
    """A real other process holding the lock of ``tmp_path / 'run'``."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    yield run_dir, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_run_refused_while_the_first_lives_then_stale_lock_taken_over(holder):
    run_dir, proc = holder
    with pytest.raises(RunLockedError) as err:
        with run_lock(run_dir):
            pass
    assert f"PID {proc.pid} on {socket.gethostname()}" in str(err.value) and "--output-dir" in str(err.value)
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: the lock file stays, naming a dead process
    proc.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == proc.pid
    messages = []
    with run_lock(run_dir, notify=messages.append):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert len(messages) == 1 and "stale lock" in messages[0] and f"PID {proc.pid}" in messages[0]
    assert not (run_dir / LOCK_FILE).exists()  # released on exit


def test_lock_from_another_host_is_refused(tmp_path):
    """On a filesystem whose locks other machines cannot see, the record decides: not ours to break."""
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 4242, "host": "node-7", "started": "then"}))
    with pytest.raises(RunLockedError, match="PID 4242 on node-7 .*another machine"):
        with run_lock(tmp_path):
            pass


def test_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    """The record names a live PID (ours: the parent) but another start time: that PID was reused."""
    record = {"pid": os.getppid(), "host": socket.gethostname(), "start_time": "1", "started": "long ago"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    messages = []
    with run_lock(tmp_path, notify=messages.append):
        pass
    assert len(messages) == 1 and "stale lock" in messages[0]


def test_same_process_cannot_take_it_twice_and_non_main_ranks_skip(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLockedError):
            with run_lock(tmp_path):
                pass
        with run_lock(tmp_path, enabled=False) as p:  # RANK != 0 shares the main process's run
            assert p is None


def test_train_refuses_a_locked_run_directory_before_touching_it(holder):
    """Before: the second train logged every step again and marked the run failed though final/ existed."""
    run_dir, proc = holder
    before = sorted(p.name for p in run_dir.iterdir())
    res = CliRunner().invoke(app, ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), "-o", str(run_dir)])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "another `visionr1 train` is running" in out and f"PID {proc.pid}" in out and "Traceback" not in out
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no manifest, no logs, nothing written
    assert proc.poll() is None


PIPELINE_HOLDER = "import sys, time\nfrom visionr1.training.lock import pipeline_lock\nwith pipeline_lock(sys.argv[1]):\n" \
                  "    print('held', flush=True)\n    time.sleep(120)\n"


@pytest.mark.parametrize("command", [["demo"], ["run", "recipes/demo.yaml"]])
def test_a_second_demo_or_run_refuses_a_running_pipeline_directory_before_clearing_it(tmp_path, command):
    """Regression: a second `visionr1 demo` on the directory of a running one cleared it (the training lock is
    taken only inside `train/`, after the demo had already removed the previous run): the first run then died
    on its missing files. The pipeline lock lives beside the directory and is taken before anything is touched."""
    from visionr1.training.lock import pipeline_lock_path

    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    (run_dir / "demo_recipe.json").write_text("{}")  # what a running demo's directory holds: the marker ...
    (run_dir / "train").mkdir()
    sentinel = run_dir / "train" / "metrics.jsonl"  # ... and its work so far
    sentinel.write_text('{"step": 1}\n')
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", PIPELINE_HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        args = [*command, "--output-dir", str(run_dir)] if command[0] == "demo" else [*command, "-o", str(run_dir)]
        res = CliRunner().invoke(app, args)
        assert res.exit_code != 0
        assert "another `visionr1 run / demo` is running" in res.output and str(proc.pid) in res.output
        assert sentinel.read_text() == '{"step": 1}\n'  # untouched
        assert pipeline_lock_path(run_dir) == tmp_path / ".demo.lock"
    finally:
        proc.kill()
        proc.wait()
