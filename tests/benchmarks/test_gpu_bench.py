"""The GPU benchmark cannot rot: its CPU smoke run takes the same code paths (model build from a published-shape
config, scaled tokenizer, data, visionr1 and bare-TRL GRPO steps, figures, report) on a tiny config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_smoke_runs_every_path_and_writes_the_report(bench, tmp_path):
    report = bench.main(["--cpu-smoke", "--results", str(tmp_path)])
    names = [r["name"] for r in report["results"]]
    assert names == ["visionr1+transformers", "trl+transformers"]
    for r in report["results"]:
        s = r.get("summary")
        assert s, r.get("error")
        assert s["seconds_per_step"] > 0 and s["steps_measured"] >= 1
        assert 1 <= s["mean_completion_tokens"] <= 8 and s["tokens_per_s_per_gpu"] > 0
        assert s["mean_prompt_tokens"] > 4 and s["tflops_per_step"] > 0  # 4 image tokens plus the text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["image_tokens"] == 4 and len(saved["results"]) == 2
    md = (tmp_path / "results.md").read_text()
    assert "visionr1+transformers" in md and "trl+transformers" in md and "1.00x" in md
    # the images really are the requested token grid, the prompts span short to long
    rows = [json.loads(x) for x in (tmp_path / "work" / "data" / "train.jsonl").read_text().splitlines()]
    lengths = sorted(len(r["question"]) for r in rows)
    assert lengths[0] <= 25 and lengths[-1] >= 1400


def test_published_shapes(bench):
    """The hard-coded configs give the published parameter counts (3.75B, 8.29B), built on the meta device."""
    import torch
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig

    expected = {"3b": 3_754_622_976, "7b": 8_292_166_656}
    for name, total in expected.items():
        s = bench.MODELS[name]
        cfg = Qwen2_5_VLConfig(text_config=s["text"], vision_config=s["vision"],
                               tie_word_embeddings=s["tie_word_embeddings"])
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(cfg)
        shape = bench.count_shape(model)
        assert shape["total_parameters"] == total
        assert shape["d"] == cfg.text_config.hidden_size and shape["vision_full_blocks"] == 4


def test_flop_formula_by_hand(bench):
    shape = {"n_lm": 10, "n_vis": 3, "layers": 2, "d": 4, "d_v": 5, "vision_full_blocks": 1, "vision_window_blocks": 1}
    p, c, v = 6, 2, 8
    f_lm = lambda s: 2 * 10 * s + 2 * 2 * 4 * s * s  # noqa: E731
    f_vis = 2 * 3 * v + 4 * 5 * v * (64 * 1 + v * 1)
    decode = sum(2 * 10 + 4 * 2 * 4 * (p + t) for t in range(1, c + 1))
    one = (f_lm(p) + f_vis + decode) + (f_lm(p + c) + f_vis) + 3 * (f_lm(p + c) + f_vis)
    assert bench.step_flops(shape, 3, p, c, v, beta=0.01) == pytest.approx(3 * one)
    assert bench.step_flops(shape, 1, p, c, v, beta=0.0) == pytest.approx(one - f_lm(p + c) - f_vis)


def test_scaled_tokenizer_keeps_the_real_pipeline(bench, tmp_path):
    from visionr1.models.tokenizer import train_tokenizer

    tok = bench.scaled_tokenizer(tmp_path, 3000)
    small = train_tokenizer("qwen2_5_vl")
    assert len(tok) == 3000
    text = "<think>count the circles</think><answer> Final Answer:3 </answer>"
    assert tok(text).input_ids == small(text).input_ids  # fillers are unreachable by encoding
    assert tok.decode([2999]) == "~2999" and tok.convert_tokens_to_ids("<|image_pad|>") < len(small)
