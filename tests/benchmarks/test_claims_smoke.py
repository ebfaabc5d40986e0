"""Smoke runs of the claim benchmarks (benchmarks/sft_vs_rl_ood.py, benchmarks/ptst_ablation.py) with their
--smoke settings: every step (data, cold start, training arms, evaluation, summary, plot) runs on the tests'
tiny model. They measure nothing; the real runs are by hand (README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_ptst_arms_share_the_samples_x_length_budget(bench_script):
    ptst = bench_script("ptst_ablation")
    for cfg in (ptst.FULL, ptst.SMOKE):
        per_step, steps = {}, {}
        for arm, (start, stages) in ptst.arms(cfg, Path("rl.jsonl")).items():
            g = [s["grpo"] for s in stages]
            per_step[arm] = {x["num_generations"] * x["max_completion_length"] *
                             (x["per_device_train_batch_size"] // x["num_generations"]) for x in g}
            steps[arm] = sum(x["max_steps"] for x in g)
            assert start == ("base" if arm == "zero" else "ci")
        assert len(set().union(*per_step.values())) == 1 and len(set(steps.values())) == 1, (per_step, steps)
        lengths = [s["grpo"]["max_completion_length"] for s in ptst.arms(cfg, Path("x"))["ptst"][1]]
        assert lengths[1] == 2 * lengths[0]  # short x many -> long x few


@pytest.mark.slow
def test_sft_vs_rl_ood_smoke(tiny_model_dir, tmp_path, bench_script):
    mod = bench_script("sft_vs_rl_ood")
    summary = mod.main(["--smoke", "--out", str(tmp_path), "--start-model", str(tiny_model_dir)])
    run = summary["per_seed"][0]
    assert set(run["results"]) == {"start", "sft", "grpo"}
    assert all(set(r) == {"id", "ood-colour", "ood-count"} for r in run["results"].values())
    cfg = mod.SMOKE  # the same training items for both arms
    assert run["steps"]["sft"] * cfg["sft_batch"] == cfg["arm_items"] == run["steps"]["grpo"] * cfg["grpo_prompts"]
    assert json.loads((tmp_path / "summary.json").read_text())["claim"].keys() >= {"rl_better_ood", "sft_not_worse_id"}
    assert (tmp_path / "seed-0" / "train-grpo" / "grpo" / "final").is_dir()


@pytest.mark.slow
def test_ptst_ablation_smoke(tiny_model_dir, tmp_path, bench_script):
    mod = bench_script("ptst_ablation")
    summary = mod.main(["--smoke", "--out", str(tmp_path), "--start-model", str(tiny_model_dir)])
    assert list(summary["stats"]) == ["base", "ci", "ptst-1", "ptst-2", "long", "zero"]
    curves = summary["per_seed"][0]["curves"]
    assert set(curves) == {"ptst", "long", "zero"} and all(curves.values())
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "summary.json").is_file()
    cold = (tmp_path / "seed-0" / "coldstart" / "cold_start.jsonl").read_text()
    assert "Wait" in cold  # the reflective cold start


def test_seed_results_are_reused_only_under_the_same_settings(tmp_path, bench_script):
    claims = bench_script("claims")
    calls = []

    def compute(value):
        calls.append(value)
        return {"accuracy": value}

    path = tmp_path / "seed-0" / "result.json"
    assert claims.cached(path, {"S": 20}, lambda: compute(0.5)) == {"accuracy": 0.5}
    assert claims.cached(path, {"S": 20}, lambda: compute(0.9)) == {"accuracy": 0.5}  # reused, not recomputed
    assert claims.cached(path, {"S": 10}, lambda: compute(0.7)) == {"accuracy": 0.7}  # other settings: recomputed
    assert calls == [0.5, 0.7]
    assert json.loads(path.read_text())["settings"] == {"S": 10}


@pytest.mark.slow
def test_ptst_ablation_merges_seeds_run_apart(tiny_model_dir, tmp_path, bench_script):
    """Seeds run in separate processes, then ``--seeds 0 1`` merges them without training anything again."""
    mod = bench_script("ptst_ablation")
    common = ["--smoke", "--out", str(tmp_path), "--start-model", str(tiny_model_dir)]
    one = {s: mod.main(["--seeds", str(s), *common])["per_seed"][0] for s in (0, 1)}
    stamp = (tmp_path / "seed-0" / "train-ptst" / "ptst-2" / "final").stat().st_mtime_ns
    merged = mod.main(["--seeds", "0", "1", *common])
    assert merged["per_seed"] == [one[0], one[1]] and merged["seeds"] == [0, 1]
    assert (tmp_path / "seed-0" / "train-ptst" / "ptst-2" / "final").stat().st_mtime_ns == stamp
