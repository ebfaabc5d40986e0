"""The efficiency options together (issue 23): a GRPO stage with dynamic sampling, difficulty filtering,
padding-free log-probs and token-budget micro-batches, killed after a checkpoint and run again, ends with the
weights, the logged steps and the trained prompts of the uninterrupted run. Each option's exactness against the
plain stage is tested on its own (test_packing.py, test_token_budget.py, test_rollout_filter.py); this pins that
none of them keeps state a resume would lose."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, TINY, kill_after_checkpoint, load_state, read_jsonl, subprocess_env, visionr1_cmd

pytestmark = pytest.mark.slow
VARIED = Path(__file__).with_name("varied_reward.py")


def _cmd(run: Path, data: Path) -> list[str]:
    s = "stages.ptst-1"
    return visionr1_cmd(
        "train", str(TINY / "grpo.yaml"), "model.path=tiny:qwen2_5_vl/test", "model.max_pixels=40000",
        f"{s}.dataset.path={data}", f"{s}.rewards=[{{name: '{VARIED}:letters'}}]",
        f"{s}.grpo.max_steps=3", f"{s}.grpo.learning_rate=1e-3", f"{s}.grpo.save_steps=1",
        f"{s}.grpo.per_device_train_batch_size=4", f"{s}.grpo.num_generations=2", f"{s}.grpo.max_completion_length=8",
        f"{s}.dynamic_sampling.enabled=true", f"{s}.difficulty_filter.enabled=true",
        f"{s}.padding_free=true", f"{s}.max_tokens_per_micro_batch=1400",
        "--output-dir", str(run),
    )


def test_efficiency_options_resume_to_the_uninterrupted_weights(tmp_path, varied_grpo):
    ref, run = tmp_path / "ref", tmp_path / "run"
    done = subprocess.run(_cmd(ref, varied_grpo), cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    kill_after_checkpoint(_cmd(run, varied_grpo), run / "ptst-1" / "checkpoint-1", tmp_path / "first.log")
    again = subprocess.run(_cmd(run, varied_grpo), cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    expected, got = load_state(ref / "ptst-1" / "final"), load_state(run / "ptst-1" / "final")
    off = max((got[k] - expected[k]).abs().max().item() for k in expected)
    assert off < 1e-5, off
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "train"]
    ref_rows = [r for r in read_jsonl(ref / "metrics.jsonl") if r.get("kind") == "train"]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("informative_group_share", "padded_token_share", "generated_tokens"):
        assert [r.get(key) for r in rows] == [r.get(key) for r in ref_rows], key
    assert rows[-1]["padded_token_share"] == 0  # packed: no padding in the loss forward
    prompts = [(r["step"], r["prompt"]) for r in read_jsonl(run / "completions.jsonl")]
    assert prompts == [(r["step"], r["prompt"]) for r in read_jsonl(ref / "completions.jsonl")]
