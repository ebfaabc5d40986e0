"""PTST on the tiny model: two GRPO stages, the completion limit growing (16 -> 32 tokens) while the group
shrinks (4 -> 2 generations), the second from the first's weights; multi-image prompts in the first stage,
video frames in the second."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionr1.recipe import load_recipe
from visionr1.training.runner import main

from .conftest import TINY, load_state, read_jsonl

pytestmark = pytest.mark.slow
VARIED = Path(__file__).with_name("varied_reward.py")


def test_two_stage_ptst(tmp_path, tiny_model_dir, tiny_data):
    rewards = f"[{{name: hard_format_result}}, {{name: '{VARIED}:letters', weight: 1.0}}]"
    recipe = load_recipe(
        TINY / "ptst.yaml",
        [
            "stages.sft.enabled=false",
            f"model.path={tiny_model_dir}",
            f"stages.ptst-1.dataset.path={tiny_data['multi']}",
            f"stages.ptst-2.dataset={{format: video, path: {tiny_data['video']}, video: {{num_frames: 3, max_pixels: 3136}}}}",
            f"stages.ptst-1.rewards={rewards}",
            f"stages.ptst-2.rewards={rewards}",
            f"stages.ptst-2.eval_dataset={{format: jsonl, path: {tiny_data['grpo']}, limit: 3}}",
        ],
    )
    assert [s.name for s in recipe.stages] == ["ptst-1", "ptst-2"]
    summary = main(recipe, output_dir=tmp_path / "run")
    run = tmp_path / "run"
    assert summary["stages"] == {"ptst-1": "done", "ptst-2": "done"}

    # --- logged per step: lengths within each stage's limit, the group size of each stage -----------------------
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    by_stage = {s: [r for r in rows if r["stage"] == s] for s in ("ptst-1", "ptst-2")}
    assert [len(v) for v in by_stage.values()] == [2, 2]
    for stage, limit, group in (("ptst-1", 16, 4), ("ptst-2", 32, 2)):
        for r in by_stage[stage]:
            assert r["max_completion_length"] == limit and r["num_generations"] == group
            assert 0 < r["completions/mean_length"] <= r["completions/max_length"] <= limit
            for key in ("reward", "reward_std", "rewards/hard_format_result/mean", "rewards/hard_format_result/std",
                        "rewards/letters/mean", "accuracy", "completions/clipped_ratio", "kl", "entropy", "step_time"):
                assert r[key] is not None, key
    assert [r["run_step"] for r in rows] == [1, 2, 3, 4]
    # the second stage may generate longer than the first stage's limit ever allowed
    assert max(r["completions/max_length"] for r in by_stage["ptst-2"]) > 16

    # --- weights: each stage moved them, and the second started from the first's -------------------------------
    base, first, second = (load_state(d) for d in (tiny_model_dir, run / "ptst-1" / "final", run / "ptst-2" / "final"))
    assert any(not torch.equal(base[k], first[k]) for k in base)
    assert any(not torch.equal(first[k], second[k]) for k in first)

    # --- the evaluator scored the last stage's final weights on its eval_dataset -----------------------------
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert len(evals) == 1 and evals[0]["stage"] == "ptst-2" and evals[0]["eval/n"] == 3
    assert 0 <= evals[0]["eval/accuracy"] <= 1 and 0 < evals[0]["eval/mean_completion_tokens"] <= 32

    # --- the rest of the run directory ---------------------------------------------------------------------------
    samples = read_jsonl(run / "completions.jsonl")
    assert {s["stage"] for s in samples} == {"ptst-1", "ptst-2"}
    assert samples[0]["prompt"].count("<image>") in (2, 3)  # multi-image prompt kept its images
    assert any(s["prompt"].count("<image>") == 3 for s in samples if s["stage"] == "ptst-2")  # 3 video frames
    assert set(samples[0]["rewards"]) == {"hard_format_result", "letters"}
    for stage in ("ptst-1", "ptst-2"):
        assert list((run / "tensorboard" / stage).glob("events.out.tfevents.*"))
        assert list((run / stage).glob("checkpoint-*"))
    assert Path(summary["plot"]).stat().st_size > 10_000
