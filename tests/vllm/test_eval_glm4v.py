"""`visionr1 eval run --backend vllm` on GLM-4.1V (family glm4v): greedy float32 decoding through vLLM gives the
transformers backend's responses (docs/families.md, the vLLM column). Measured for the other families of issue 26:
Qwen3-VL-MoE's tiny checkpoint does not load in vLLM 0.32 (its fused-expert weight loader), and vLLM's CPU
gated-delta-net attention (Qwen3.5) needs bfloat16."""

from __future__ import annotations

import json

import pytest

from .conftest import PYTHON, run

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _eval(model, data, out, *args):
    run([PYTHON, "-m", "visionr1", "eval", "run", "-b", "synthetic", "--data", str(data), "--model", str(model),
         "--max-new-tokens", "6", "--limit", "3", "--dtype", "float32", "--temperature", "0", "--output", str(out),
         *args], timeout=400)
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


def test_glm4v_eval_run_greedy_through_vllm_matches_transformers(vllm_ok, demo_model, tmp_path):
    from visionr1.tasks.synthetic import make_synthetic

    data = make_synthetic("counting", 8, 0, tmp_path / "syn", test_fraction=0.5)
    model = demo_model("glm4v")
    rows = _eval(model, data, tmp_path / "vllm", "--backend", "vllm")
    reference = _eval(model, data, tmp_path / "hf", "--backend", "transformers")
    assert json.loads((tmp_path / "vllm" / "run_config.json").read_text())["backend"] == "vllm"
    assert len(rows) == 3 and [(r["pid"], r["response"], r["num_tokens"]) for r in rows] == [
        (r["pid"], r["response"], r["num_tokens"]) for r in reference]
