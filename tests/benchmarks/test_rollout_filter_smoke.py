"""benchmarks/rollout_filter.py: the smoke path runs every step (shared cold start, both arms, checkpoints'
evaluations, summary, plot) on the tests' tiny model; the summary's arithmetic on hand-made steps."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_rollout_filter_smoke(tiny_model_dir, tmp_path, bench_script):
    mod = bench_script("rollout_filter")
    summary = mod.main(["--smoke", "--out", str(tmp_path), "--start-model", str(tiny_model_dir)])
    run = summary["per_seed"][0]["arms"]
    assert set(run) == {"plain", "filtered"} and set(summary["stats"]) == {"plain", "filtered"}
    steps = mod.SMOKE["steps"]
    for arm in run.values():  # every step's metrics, and an accuracy at ci and at every checkpoint
        assert [s["step"] for s in arm["steps"]] == list(range(1, steps + 1))
        assert all(s["generated_tokens"] > 0 and s["informative_group_share"] is not None for s in arm["steps"])
        assert [p["step"] for p in arm["points"]] == list(range(0, steps + 1, mod.SMOKE["eval_every"]))
    assert run["filtered"]["record"]["rollout_filter"]["groups_generated"] >= steps
    assert run["plain"]["record"]["rollout_filter"] is None  # the options off: no record, TRL's batches
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "summary.json").is_file()


def test_stats_read_cumulative_tokens_and_seconds(bench_script):
    mod = bench_script("rollout_filter")

    def arm(shares, tokens, seconds, accuracies):
        steps = [{"step": i + 1, "informative_group_share": s, "informative_group_share/before": s / 2,
                  "generated_tokens": t, "step_time": w, "dynamic_sampling/refill_rounds": 1.0}
                 for i, (s, t, w) in enumerate(zip(shares, tokens, seconds, strict=True))]
        return {"steps": steps, "points": [{"step": 2 * i, "accuracy": a} for i, a in enumerate(accuracies)]}

    seed = {"arms": {"plain": arm([0.5, 0.25], [100, 300], [1.0, 3.0], [0.2, 0.4]),
                     "filtered": arm([1.0, 1.0], [400, 600], [2.0, 8.0], [0.2, 0.3])}}
    assert mod.cumulative(seed["arms"]["plain"]["steps"], "generated_tokens") == {0: 0.0, 1: 100.0, 2: 400.0}
    stats = mod.arm_stats([seed])
    assert stats["plain"]["informative_share"] == (0.375, 0.0)
    assert stats["plain"]["informative_share_min_step"] == (0.25, 0.0)
    assert stats["filtered"]["generated_tokens"] == (1000.0, 0.0) and stats["filtered"]["step_seconds"] == (10.0, 0.0)
    assert abs(stats["plain"]["gain_per_mtoken"][0] - 0.2 / 400 * 1e6) < 1e-9
    assert abs(stats["filtered"]["gain_per_ks"][0] - 0.1 / 10 * 1e3) < 1e-9
