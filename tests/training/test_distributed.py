"""A GRPO stage under `accelerate launch --num_processes 2` on the CPU (gloo): prompts are split over the two
processes, rewards gathered and normalised per group across them, one final model written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, TINY, VISIONR1, read_jsonl, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def test_grpo_stage_on_two_cpu_processes(tmp_path, tiny_model_dir, tiny_data):
    accelerate = Path(VISIONR1).with_name("accelerate")
    if not accelerate.exists():
        accelerate = Path(shutil.which("accelerate") or "accelerate")
    run = tmp_path / "run"
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        VISIONR1, "train", str(TINY / "grpo.yaml"),
        f"model.path={tiny_model_dir}", f"stages.ptst-1.dataset.path={tiny_data['grpo']}",
        "stages.ptst-1.grpo.per_device_train_batch_size=2",  # 2 per process x 2 processes = 1 prompt x 4
        "--output-dir", str(run),
    ]
    # ACCELERATE_USE_CPU: accelerate's CPU launcher needs MPI for several processes; its torchrun launcher
    # with this variable gives several gloo processes on the CPU instead.
    env = subprocess_env(ACCELERATE_USE_CPU="true")
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert out.stdout.count('"run_dir"') == 1  # only the main process reports

    manifest = json.loads((run / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["status"] == "done" and stage["global_step"] == 2
    assert (stage["distributed_type"], stage["num_processes"]) == ("MULTI_CPU", 2)
    assert manifest["world_size"] == 2
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]  # one row per step: only the main process logs
    assert all(r["completions/max_length"] <= 16 and r["num_generations"] == 4 for r in rows)
    assert (run / "ptst-1" / "final" / "model.safetensors").is_file()
