"""`visionr1 train` with `use_vllm: true, vllm_mode: colocate`, as a user runs it: PTST's two stages (each
stage its own process and engine) on Qwen3-VL, and one stage on 2 gloo processes (an engine per process).

Qwen3-VL is the family whose engine failed at start-up ("Found 1 <|video_pad|> tokens in the text but no videos
were passed": TRL gives vLLM no modality limits, visionr1.patches.vllm does). TRL logs the largest gap between
vLLM's sampling log-probs and the trainer's recomputed ones per step (`sampling/sampling_logp_difference/max`,
gathered over processes); float32 on both sides, so it must stay within tests/vllm/test_colocate.py's tolerance.
"""

from __future__ import annotations

import json

import pytest

from .conftest import PYTHON, REPO, TINY, VARIED_REWARD, run

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

LOGP_TOLERANCE = 1e-4  # see tests/vllm/test_colocate.py
BAN_GAP = 0.1  # the engine samples with the vision tokens banned: see tests/vllm/test_colocate.py


def _engine_agrees(row: dict) -> None:
    """TRL's sampling metrics of a step: the engine's log-probs are the trainer's plus the banned mass only, so no
    sequence is likelier under the trainer than under the engine (the importance ratio is at most 1)."""
    assert row["sampling/sampling_logp_difference/max"] < BAN_GAP, row
    assert row["sampling/importance_sampling_ratio/max"] < 1 + LOGP_TOLERANCE, row
VISIONR1 = [PYTHON, "-m", "visionr1"]


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _vllm(stage: str) -> list[str]:
    return [f"stages.{stage}.grpo.use_vllm=true", f"stages.{stage}.grpo.vllm_mode=colocate",
            f"stages.{stage}.rewards=[{{name: '{VARIED_REWARD}:letters'}}]"]


def test_ptst_two_stages_on_qwen3_vl(vllm_ok, demo_model, mixed_data, tmp_path):
    out = tmp_path / "run"
    run([*VISIONR1, "train", str(TINY / "ptst.yaml"), "stages.sft.enabled=false",
         f"model.path={demo_model('qwen3_vl')}",
         f"stages.ptst-1.dataset.path={mixed_data}", f"stages.ptst-2.dataset.path={mixed_data}",
         *_vllm("ptst-1"), *_vllm("ptst-2"), "stages.ptst-1.grpo.max_steps=1", "stages.ptst-2.grpo.max_steps=1",
         "--output-dir", str(out)], timeout=600)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done"]
    rows = {r["stage"]: r for r in _rows(out) if r["kind"] == "train"}
    # PTST: the second stage's longer limit reaches the engine (the random model never stops by itself)
    assert rows["ptst-1"]["max_completion_length"] == 16 and rows["ptst-1"]["completions/max_length"] <= 16
    assert rows["ptst-2"]["max_completion_length"] == 32 and 16 < rows["ptst-2"]["completions/max_length"] <= 32
    for r in rows.values():
        _engine_agrees(r)


def test_grpo_on_two_processes(vllm_ok, demo_model, mixed_data, tmp_path):
    """2 gloo processes through configs/accelerate/cpu-ddp.yaml, each with its own colocated engine.

    Image, multi-image and text-only prompts (mixed_data): before rollouts banned the vision special tokens
    (training.generation) this test had to use text only, as a sampled `<|image_pad|>` stopped the loss forward
    of an image prompt ("Image features and image tokens do not match, tokens: 33, features: 32")."""
    out = tmp_path / "run"
    run([*VISIONR1, "train", str(TINY / "grpo.yaml"), f"model.path={demo_model('qwen2_5_vl')}",
         f"stages.ptst-1.dataset.path={mixed_data}", *_vllm("ptst-1"),
         "stages.ptst-1.grpo.per_device_train_batch_size=2",  # 2 per process x 2 processes = 1 prompt x 4
         "launch.num_processes=2", f"launch.config_file={REPO / 'configs' / 'accelerate' / 'cpu-ddp.yaml'}",
         "--output-dir", str(out)], timeout=600)
    stage = json.loads((out / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["global_step"] == 2
    assert (stage["distributed_type"], stage["num_processes"]) == ("MULTI_CPU", 2)
    rows = [r for r in _rows(out) if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        _engine_agrees(r)
        assert r["completions/max_length"] <= 16
