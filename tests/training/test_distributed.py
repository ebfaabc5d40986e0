"""A GRPO stage under `accelerate launch --num_processes 2` on the CPU (gloo): prompts are split over the two
processes, rewards gathered and normalised per group across them, one final model written."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import REPO, TINY, read_jsonl, subprocess_env, visionr1_cmd

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
CPU_DDP = REPO / "configs" / "accelerate" / "cpu-ddp.yaml"


def test_grpo_stage_on_two_cpu_processes(tmp_path, tiny_model_dir, tiny_data):
    run = tmp_path / "run"
    cmd = visionr1_cmd(
        "train", str(TINY / "grpo.yaml"),
        f"model.path={tiny_model_dir}", f"stages.ptst-1.dataset.path={tiny_data['grpo']}",
        "stages.ptst-1.grpo.per_device_train_batch_size=2",  # 2 per process x 2 processes = 1 prompt x 4
        "launch.num_processes=2", f"launch.config_file={CPU_DDP}",
        "--output-dir", str(run),
    )
    env = subprocess_env()  # no ACCELERATE_USE_CPU: the config alone gives 2 gloo processes (patches.accelerate)
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


def test_each_stage_in_its_own_two_process_launch_and_resume_between_stages(tmp_path, tiny_model_dir, tiny_data):
    """`visionr1 train` with `launch.num_processes: 2`: SFT -> GRPO -> GRPO, each stage its own `accelerate
    launch` of 2 gloo processes, the last stage's evaluation in the parent after them; SIGKILL between stages,
    then the same command resumes at the next stage."""
    import os
    import signal
    import time

    run = tmp_path / "run"
    cmd = visionr1_cmd(
        "train", str(TINY / "ptst.yaml"), f"model.path={tiny_model_dir}",
        f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=1",
        f"stages.ptst-1.dataset.path={tiny_data['grpo']}", "stages.ptst-1.grpo.max_steps=1",
        f"stages.ptst-2.dataset.path={tiny_data['grpo']}", "stages.ptst-2.grpo.max_steps=1",
        "stages.ptst-1.grpo.per_device_train_batch_size=2",  # 2 x 2 processes = 1 prompt x 4 generations
        "stages.ptst-2.grpo.per_device_train_batch_size=2",  # 2 prompts x 2 generations
        f"stages.ptst-2.eval_dataset={{format: jsonl, path: {tiny_data['grpo']}, limit: 2}}",
        "launch.num_processes=2", f"launch.config_file={CPU_DDP}",
        "--output-dir", str(run),
    )
    env = subprocess_env()
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not (run / "sft" / "final").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert (run / "sft" / "final").is_dir(), (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and the stage processes it started
    proc.wait(timeout=30)

    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    summary = json.loads(out.stdout[out.stdout.index("{\n"):])  # one summary, from the parent only
    assert summary["trained"] == ["ptst-1", "ptst-2"]
    manifest = json.loads((run / "manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert [s["status"] for s in manifest["stages"]] == ["done", "done", "done"]
    assert all(stages[n]["num_processes"] == 2 and stages[n]["distributed_type"] == "MULTI_CPU" for n in stages)
    assert stages["ptst-2"]["eval"]["n"] == 2
    assert len(manifest["history"]) == 2  # two invocations; the stage processes are part of them
    rows = read_jsonl(run / "metrics.jsonl")
    assert [(r["stage"], r["kind"]) for r in rows if r["kind"] in ("train", "eval")] == [
        ("sft", "train"), ("ptst-1", "train"), ("ptst-2", "train"), ("ptst-2", "eval")]


def test_a_config_that_runs_one_process_where_the_plan_says_two_is_refused(tmp_path, tiny_model_dir, tiny_data):
    """The old configs/accelerate/cpu2.yaml (MULTI_CPU, use_cpu: true): accelerate sends it to its single-process
    launcher, so `launch.num_processes=2` trained in one process while the plan and manifest said 2. The stage now
    refuses, naming both, before any step."""
    config = tmp_path / "one-process.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nmixed_precision: 'no'\n"
                      "num_machines: 1\nnum_processes: 2\nuse_cpu: true\n")
    run = tmp_path / "run"
    out = subprocess.run(visionr1_cmd(
        "train", str(TINY / "grpo.yaml"), f"model.path={tiny_model_dir}", f"stages.ptst-1.dataset.path={tiny_data['grpo']}",
        "launch.num_processes=2", f"launch.config_file={config}", "--output-dir", str(run),
    ), cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert out.returncode != 0
    assert "the plan is 2 process(es), DDP" in out.stderr and "runs in 1 process(es) as NO" in out.stderr, out.stderr[-3000:]
    assert not list(run.glob("ptst-1/checkpoint-*")) and not (run / "ptst-1" / "final").exists()
    assert json.loads((run / "manifest.json").read_text())["stages"][0]["status"] == "failed"
