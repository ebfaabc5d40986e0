"""Kill a real `visionr1 train` process (SIGKILL, no chance to clean up) in the middle of a GRPO stage, re-run
the same command: the finished SFT stage is not rerun, the GRPO stage continues from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import REPO, TINY, read_jsonl, subprocess_env, visionr1_cmd

pytestmark = pytest.mark.slow


def test_resume_after_kill(tmp_path, tiny_model_dir, tiny_data):
    run = tmp_path / "run"
    cmd = visionr1_cmd(
        "train", str(TINY / "ptst.yaml"),
        f"model.path={tiny_model_dir}",
        f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=1",
        f"stages.ptst-1.dataset.path={tiny_data['grpo']}", "stages.ptst-1.grpo.max_steps=4",
        "stages.ptst-2.enabled=false",
        "--output-dir", str(run),
    )
    env = subprocess_env()
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    target = run / "ptst-1" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 240
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert target.exists(), (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "running"]
    assert not (run / "ptst-1" / "final").exists()
    steps_before = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["stage"] == "ptst-1" and r["kind"] == "train"]

    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["trained"] == ["ptst-1"]  # the SFT stage was finished: not rerun

    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done"]
    resumed = manifest["stages"][1]["resumed_from"]
    assert resumed is not None and resumed.rsplit("-", 1)[0].endswith("checkpoint")
    resumed_step = int(resumed.rsplit("-", 1)[1])
    assert 2 <= resumed_step < 4
    assert manifest["stages"][1]["global_step"] == 4
    assert len(manifest["history"]) == 2

    rows = read_jsonl(run / "metrics.jsonl")
    assert len([r for r in rows if r["stage"] == "sft" and r["kind"] == "train"]) == 1
    steps_after = [r["step"] for r in rows if r["stage"] == "ptst-1" and r["kind"] == "train"][len(steps_before):]
    assert steps_after == list(range(resumed_step + 1, 5))  # continued after the checkpoint, not from step 1
    assert (run / "ptst-1" / "final" / "model.safetensors").is_file()
