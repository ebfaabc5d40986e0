"""Kill a real `visionr1 train` process (SIGKILL, no chance to clean up) in the middle of a GRPO stage and run
the same command again: the run must end with the weights an uninterrupted run ends with (the checkpoint's
weights + the remaining steps, not the stage's start weights + the remaining steps), trained on the same
prompts in the same order, with every step logged once."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from visionr1.patches.transformers import StrictResumeMixin
from visionr1.training.checkpoints import CheckpointError, load_checkpoint_weights

from .conftest import REPO, TINY, load_state, read_jsonl, subprocess_env, visionr1_cmd

pytestmark = pytest.mark.slow
VARIED = Path(__file__).with_name("varied_reward.py")


def _cmd(run, tiny_model_dir, tiny_data, varied_grpo):
    return visionr1_cmd(
        "train", str(TINY / "ptst.yaml"),
        f"model.path={tiny_model_dir}",
        f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=1",
        f"stages.ptst-1.dataset.path={varied_grpo}", "model.max_pixels=40000",
        "stages.ptst-1.grpo.max_steps=4", "stages.ptst-1.grpo.learning_rate=1e-3",
        "stages.ptst-1.grpo.per_device_train_batch_size=8", "stages.ptst-1.grpo.num_generations=2",  # 4 prompts/step
        f"stages.ptst-1.rewards=[{{name: '{VARIED}:letters'}}]",  # rewards that differ within a group: weights move
        "stages.ptst-2.enabled=false",
        "--output-dir", str(run),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, tiny_data, varied_grpo):
    """The reference: the same command, never interrupted (shared by the ways of stopping it)."""
    ref = tmp_path_factory.mktemp("uninterrupted") / "ref"
    done = subprocess.run(_cmd(ref, tiny_model_dir, tiny_data, varied_grpo), cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ref


def _run_processes_gone(record: dict, timeout: float = 60) -> bool:
    """Wait until no process of the run whose lock record is ``record`` lives."""
    from visionr1.training.lock import run_processes

    deadline = time.time() + timeout
    while run_processes(f"{record['pid']}:{record['start_time']}") and time.time() < deadline:
        time.sleep(0.1)
    return not run_processes(f"{record['pid']}:{record['start_time']}")


# how the run is stopped: SIGKILL of its process group (nothing can clean up), or SIGTERM to the main process
# only (a scheduler's preemption: `kill -TERM PID`)
STOPS = {"sigkill-group": (True, signal.SIGKILL), "sigterm-parent": (False, signal.SIGTERM)}


@pytest.mark.parametrize("stop", list(STOPS))
def test_resume_after_kill_ends_with_the_uninterrupted_weights(tmp_path, tiny_model_dir, tiny_data, varied_grpo,
                                                               uninterrupted, stop):
    env = subprocess_env()
    ref = uninterrupted

    # --- stopped after its second checkpoint, then run again -----------------------------------------------------
    run = tmp_path / "run"
    cmd = _cmd(run, tiny_model_dir, tiny_data, varied_grpo)
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    target = run / "ptst-1" / "checkpoint-2" / "visionr1-checkpoint.json"  # complete
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert target.exists(), (tmp_path / "first.log").read_text()[-3000:]
    group, sig = STOPS[stop]
    record = json.loads((run / ".lock").read_text())
    os.killpg(proc.pid, sig) if group else os.kill(proc.pid, sig)
    proc.wait(timeout=120)
    first = (tmp_path / "first.log").read_text()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # the parent stopped its stage, waited for it, and says so
        assert proc.returncode == 128 + sig, first[-3000:]
        assert f"stopped by {sig.name}" in first and "Traceback" not in first, first[-3000:]
    assert _run_processes_gone(record), "a process of the stopped run is still running"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "interrupted"]
    assert not (run / "ptst-1" / "final").exists()

    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["trained"] == ["ptst-1"]  # the SFT stage was finished: not rerun
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done"]
    resumed_step = int(manifest["stages"][1]["resumed_from"].rsplit("-", 1)[1])
    assert 2 <= resumed_step < 4 and manifest["stages"][1]["global_step"] == 4

    # --- weights: where the uninterrupted run ended, not where the stage started ------------------------------
    start, expected, got = (load_state(d) for d in (ref / "sft" / "final", ref / "ptst-1" / "final", run / "ptst-1" / "final"))
    moved = max((expected[k] - start[k]).abs().max().item() for k in start)
    off = max((got[k] - expected[k]).abs().max().item() for k in start)
    assert moved > 1e-3, moved  # training changed the weights measurably ...
    assert off < 1e-5, (off, moved)  # ... and the resumed run ended where the uninterrupted one did

    # --- logs: every step once, the same prompts at the same steps -------------------------------------------
    for name in ("metrics.jsonl", "completions.jsonl"):
        rows = [(r["step"], r.get("prompt")) for r in read_jsonl(run / name) if r["stage"] == "ptst-1" and r.get("kind", "train") == "train"]
        ref_rows = [(r["step"], r.get("prompt")) for r in read_jsonl(ref / name) if r["stage"] == "ptst-1" and r.get("kind", "train") == "train"]
        assert rows == ref_rows, name
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["stage"] == "ptst-1" and r["kind"] == "train"] == [1, 2, 3, 4]
    assert "missing keys" not in second.stdout + second.stderr


def test_checkpoint_weights_are_loaded_under_the_in_memory_names(tmp_path, tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    saved = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.5)
    saved.save_pretrained(tmp_path / "ckpt")  # legacy names on disk (visual.*, model.layers.*)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    load_checkpoint_weights(model, tmp_path / "ckpt")
    for (k, a), b in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_checkpoint_missing_weights_is_an_error(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "ckpt")
    weights = load_file(tmp_path / "ckpt" / "model.safetensors")
    dropped = sorted(k for k in weights if "layers.0." in k)[:3]
    save_file({k: v for k, v in weights.items() if k not in dropped}, tmp_path / "ckpt" / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="does not hold every weight"):
        load_checkpoint_weights(model, tmp_path / "ckpt")


def test_transformers_own_resume_still_loses_qwen_vl_weights(tmp_path, tiny_model_dir):
    """Why patches.transformers.StrictResumeMixin exists: transformers' Trainer._load_from_checkpoint, given a
    save_pretrained checkpoint of a Qwen-VL model, leaves most weights as they were. The day transformers loads them
    this test fails, and the patch can go (patches.transformers.UPSTREAM is the report)."""
    from transformers import AutoModelForImageTextToText, Trainer, TrainingArguments

    saved = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.5)
    saved.save_pretrained(tmp_path / "ckpt")
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path / "out"), report_to=[], use_cpu=True))
    Trainer._load_from_checkpoint(trainer, str(tmp_path / "ckpt"))  # transformers' own method, not ours
    loaded = [torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values(), strict=True)]
    assert sum(loaded) < len(loaded) / 2, f"{sum(loaded)} of {len(loaded)} tensors loaded: is the patch still needed?"


def test_the_overridden_transformers_hooks_still_exist():
    """Contract: StrictResumeMixin overrides protected Trainer methods; a transformers change must fail here."""
    from transformers import Trainer

    for name in ("_load_from_checkpoint", "_issue_warnings_after_load", "_save_checkpoint"):
        theirs = inspect.signature(getattr(Trainer, name)).parameters
        ours = inspect.signature(getattr(StrictResumeMixin, name)).parameters
        assert list(theirs) == list(ours), name
    from trl import GRPOTrainer

    from visionr1.training.grpo import VisionR1GRPOTrainer

    assert list(inspect.signature(GRPOTrainer._generate).parameters) == ["self", "prompts"]
    assert "extra_fields, images, tool_images" in inspect.getsource(GRPOTrainer._generate)  # images: 7th value
    assert VisionR1GRPOTrainer._generate is not GRPOTrainer._generate
