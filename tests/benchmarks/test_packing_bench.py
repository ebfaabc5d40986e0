"""The arithmetic of benchmarks/packing.py (the padded-token share and the 7B FLOP ratios it reports), on batches
small enough to check by hand, and the completion-length law it is calibrated to. The timing is run by hand."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest


def test_padded_share_counts_trl_widths_and_packing_removes_it(bench_script):
    packing = bench_script("packing")
    # two micro-batches of one generation batch: TRL pads both to its longest prompt (5) and completion (7)
    batches = [packing.MicroBatch([(5, 1), (2, 7)], (5, 7)), packing.MicroBatch([(3, 3)], (5, 7))]
    assert packing.padded_share(batches) == pytest.approx(1 - 21 / 36)
    ratios = packing.compute_ratios(batches)
    assert ratios["flash_attention_varlen"] < 1  # the linear layers skip the padding, attention is varlen both ways
    no_padding = [packing.MicroBatch([(4, 4)], (4, 4))]
    assert packing.padded_share(no_padding) == 0
    assert packing.compute_ratios(no_padding) == {"flash_attention_varlen": 1.0, "sdpa_block_mask": 1.0}


def test_completion_law_hits_its_calibration(bench_script):
    packing = bench_script("packing")
    rng = random.Random(0)
    lengths = packing.draw_completions(4096, 20000, rng)
    assert sum(n == 4096 for n in lengths) / len(lengths) == pytest.approx(packing.TRUNCATED, abs=0.02)
    assert statistics.mean(lengths) / 4096 == pytest.approx(packing.MEAN_FRACTION, abs=0.02)


def test_prompts_follow_the_committed_quantiles(bench_script):
    packing = bench_script("packing")
    summary = json.loads(packing.LENGTHS.read_text())
    assert summary["n"] == 304 and summary["quantiles"][0] == 0 and summary["quantiles"][-1] == 1
    drawn = packing.draw_prompts(summary, 20000, random.Random(0))
    x = summary["prompt_tokens"]
    assert x[0] <= min(drawn) and max(drawn) <= math.ceil(x[-1])
    assert statistics.median(drawn) == pytest.approx(x[10], rel=0.05)
