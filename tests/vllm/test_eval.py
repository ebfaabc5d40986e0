"""`visionr1 eval run --backend vllm` (inference.generate_vllm) and an inference-time strategy through vLLM
(inference.generate_candidates_vllm), on Qwen3-VL (whose engine needs the video limit set to 0). Greedy float32
decoding through vLLM gives the transformers backend's responses."""

from __future__ import annotations

import json

import pytest

from .conftest import PYTHON, run

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from visionr1.tasks.synthetic import make_synthetic

    return make_synthetic("counting", 8, 0, tmp_path_factory.mktemp("eval-syn"), test_fraction=0.5)


def _eval(model, data, out, *args):
    run([PYTHON, "-m", "visionr1", "eval", "run", "-b", "synthetic", "--data", str(data), "--model", str(model),
         "--max-new-tokens", "6", "--limit", "3", "--dtype", "float32", "--output", str(out), *args], timeout=400)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
    return json.loads((out / "summary.json").read_text()), rows


def test_eval_run_greedy_through_vllm_matches_transformers(vllm_ok, demo_model, synthetic, tmp_path):
    model = demo_model("qwen3_vl")
    summary, rows = _eval(model, synthetic, tmp_path / "vllm", "--backend", "vllm", "--temperature", "0")
    _, reference = _eval(model, synthetic, tmp_path / "hf", "--backend", "transformers", "--temperature", "0")
    assert summary["n"] == 3 and json.loads((tmp_path / "vllm" / "run_config.json").read_text())["backend"] == "vllm"
    assert [(r["pid"], r["response"], r["num_tokens"], r["truncated"]) for r in rows] == [
        (r["pid"], r["response"], r["num_tokens"], r["truncated"]) for r in reference]


def test_best_of_n_through_vllm(vllm_ok, demo_model, synthetic, tmp_path):
    summary, rows = _eval(demo_model("qwen3_vl"), synthetic, tmp_path / "bon", "--backend", "vllm",
                          "--temperature", "1.0", "--strategy", "best-of-n:n=3")
    assert summary["n"] == 3 and summary["strategy"]["name"] == "best-of-n"
    for r in rows:
        cands = r["candidates"]
        assert len(cands) == 3 and r["num_tokens"] == sum(c["num_tokens"] for c in cands)
        for c in cands:
            assert 0 < c["num_tokens"] <= 6 and c["sum_logprob"] < 0
            assert c["mean_logprob"] == pytest.approx(c["sum_logprob"] / c["num_tokens"])
        assert r["response"] == cands[r["chosen"]]["text"]
        assert cands[r["chosen"]]["mean_logprob"] == max(c["mean_logprob"] for c in cands)  # select=logprob
