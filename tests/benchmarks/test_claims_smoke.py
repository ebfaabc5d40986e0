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
    assert set(summary["training"]) == {"ptst-1", "ptst-2", "long", "zero"}  # in-training length/clip per stage
    assert summary["training"]["ptst-2"]["length_last"][0] > 0
    cost = summary["cost"]  # what the equal budget cost: wall time from the manifests, tokens from the curves
    assert set(cost) == {"ptst-1", "ptst-2", "long", "zero"}
    assert all(c["wall_s"][0] >= 0 and c["generated_tokens"][0] > 0 for c in cost.values())  # s resolution
    run = summary["per_seed"][0]["results"]
    diff = summary["contrasts"]["ptst-2 - long"]
    assert diff["per_seed"] == [100 * (run["ptst-2"]["accuracy"] - run["long"]["accuracy"])]
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


def test_ptst_summary_pairs_seeds_and_quarters_stages(bench_script):
    """The contrasts pair each seed's two checkpoints; training stats read each stage's own first/last quarter."""
    mod = bench_script("ptst_ablation")

    def res(acc):
        return {"accuracy": acc, "greedy": acc, "format": 1.0, "mean_completion_tokens": 50, "truncated_rate": 0.0}

    def rows(stage, lengths, start=1):
        return [{"stage": stage, "run_step": start + i, "completions/mean_length": n,
                 "completions/clipped_ratio": n / 100} for i, n in enumerate(lengths)]

    per_seed = [{"results": {"ptst-2": res(0.5), "long": res(0.3)},
                 "curves": {"ptst": rows("ptst-1", [90, 80, 70, 60]) + rows("ptst-2", [10, 20, 30, 40], 5)}},
                {"results": {"ptst-2": res(0.2), "long": res(0.4)},
                 "curves": {"ptst": rows("ptst-1", [90, 80, 70, 60]) + rows("ptst-2", [30, 20, 30, 40], 5)}}]
    c = mod.contrasts(per_seed)["ptst-2 - long"]
    assert [round(d, 6) for d in c["per_seed"]] == [20.0, -20.0] and c["seeds_positive"] == 1
    assert abs(c["mean_std"][0]) < 1e-9
    t = mod.training_stats(per_seed)
    assert t["ptst-1"]["length_first"] == (90.0, 0.0) and t["ptst-1"]["length_last"] == (60.0, 0.0)
    assert t["ptst-2"]["length_first"][0] == 20.0 and t["ptst-2"]["clipped_last"][0] == 0.4


def test_a_variant_runs_its_own_settings_into_its_own_directory(tmp_path, bench_script):
    claims = bench_script("claims")
    seen = []

    def one_seed(seed, out, cfg, console, start_model):
        seen.append((seed, out, cfg["L1"]))
        return {"L1": cfg["L1"]}

    default = tmp_path / "ptst"
    args, cfg, seeds, results = claims.run_seeds("doc", default, {"L1": 96}, {"L1": 4}, one_seed, ["--seeds", "0"],
                                                 variants={"medium": {"L1": 128}})
    assert results == [{"L1": 96}] and args.out == default
    args, cfg, seeds, results = claims.run_seeds("doc", default, {"L1": 96}, {"L1": 4}, one_seed,
                                                 ["--seeds", "0", "1", "--variant", "medium"],
                                                 variants={"medium": {"L1": 128}})
    assert results == [{"L1": 128}] * 2 and args.out == tmp_path / "ptst-medium"
    assert seen[1:] == [(0, tmp_path / "ptst-medium" / "seed-0", 128), (1, tmp_path / "ptst-medium" / "seed-1", 128)]
