"""benchmarks/inference_strategies.py --smoke: every strategy point, the derived N-sample points, the plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "inference_strategies.py"


def test_smoke_mode_measures_every_strategy(tmp_path, tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setenv("VISIONR1_CACHE", str(Path(tiny_model_dir).parents[1]))  # the session's tiny model
    spec = importlib.util.spec_from_file_location("inference_strategies", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        result = mod.main(["--smoke", "--out", str(tmp_path), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    names = {(r["strategy"], r["n"]) for r in result["table"]}
    assert names == {("single", 1), ("staged", 1), ("caption-first", 1), ("beam", 2), ("best-of-n", 1),
                     ("best-of-n", 2), ("vote", 1), ("vote", 2), ("oracle (upper bound)", 1),
                     ("oracle (upper bound)", 2)}
    by = {(r["strategy"], r["n"]): r for r in result["table"]}
    # N candidates cost N times one; the oracle is never below the strategies it bounds
    assert by[("best-of-n", 2)]["tokens_per_item_mean"] > by[("best-of-n", 1)]["tokens_per_item_mean"]
    for n in (1, 2):
        assert by[("oracle (upper bound)", n)]["accuracy_mean"] >= max(by[("best-of-n", n)]["accuracy_mean"],
                                                                      by[("vote", n)]["accuracy_mean"])
    assert by[("vote", 1)]["accuracy_mean"] == by[("best-of-n", 1)]["accuracy_mean"]  # one sample, one choice
    assert (tmp_path / "accuracy_vs_tokens.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["smoke"] is True
