"""benchmarks/overhead.py (visionr1 vs bare TRL / transformers) with its --smoke settings: every path runs (recipes,
the bare sides' config and rows, both sides of GRPO, SFT and eval, the checks, the report), and the two sides
really do the same work: the same TRL config, the same final weights, the same responses. It measures nothing;
the real run is by hand (README, Speed)."""

from __future__ import annotations

import sys

import pytest


def test_peak_rss_is_the_one_child_not_the_largest_so_far(bench_script):
    """timed_run reads each child's own peak (wait4), so a big run does not leak into the next one's figure."""
    interleave = bench_script("interleave")
    # each child holds its memory a moment (the benchmark's children run for seconds; /proc is polled every 50 ms)
    grab = "import sys, time; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"
    big = interleave.timed_run([sys.executable, "-c", grab, "300"], env={})
    small = interleave.timed_run([sys.executable, "-c", grab, "20"], env={})
    assert big["rc"] == small["rc"] == 0
    # margins: a machine short of memory may page some of the 300 MiB out before the peak
    assert big["peak_rss_mib"] >= 200 > 100 > small["peak_rss_mib"] >= 20, (big, small)
    failed = interleave.timed_run([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], env={})
    assert failed["rc"] == 3 and "boom" in failed["output_tail"]


def test_ratios_are_bare_over_visionr1_within_a_round(bench_script):
    mod = bench_script("overhead")
    run = lambda g: {"rc": 0, "load_before": 1.0, "seconds": 10.0, "cpu_seconds": 5.0, "peak_rss_mib": 100.0,  # noqa: E731
                     "generation_seconds": g}
    raw = {"visionr1": [run(2.0), run(1.0), run(4.0)], "bare": [run(1.0), run(1.0), run(3.0)]}
    s = mod.summarise("eval", raw)
    assert s["pairs"] == 3 and s["speed_ratio"] == {"median": 0.75, "min": 0.5, "max": 1.0}
    raw["bare"][1] = {**raw["bare"][1], "rc": 1}  # a failed run drops its pair, not the round's order
    assert mod.summarise("eval", raw)["speed_ratio"]["median"] == 0.625


@pytest.mark.slow
def test_overhead_smoke_both_sides_do_the_same_work(tmp_path, bench_script):
    mod = bench_script("overhead")
    report = mod.main(["--smoke", "--out", str(tmp_path / "out"), "--keep", str(tmp_path / "work")])
    for kind in ("grpo", "sft"):
        w = report["workloads"][kind]
        assert w["summary"]["pairs"] == 1 and w["summary"]["failed_runs"] == 0
        assert w["checks"]["config_differences"] == {}, w["checks"]
        assert w["checks"]["weights"]["identical"], w["checks"]["weights"]
        for side in ("visionr1", "bare"):
            run = w["runs"][side][0]
            assert run["steps"] == 3 and len(run["step_seconds"]) == 3
            assert run["steady_seconds_per_step"] > 0 and run["startup_seconds"] > 0 and run["peak_rss_mib"] > 100
    ev = report["workloads"]["eval"]
    assert ev["checks"]["responses"] >= 2 and ev["checks"]["identical_responses"] == ev["checks"]["responses"]
    assert all(ev["runs"][s][0]["generation_seconds"] > 0 for s in ("visionr1", "bare"))
    md = (tmp_path / "out" / "overhead.md").read_text()
    assert "seconds per step (steps 2..)" in md and "generation s" in md and (tmp_path / "out" / "overhead.json").is_file()
