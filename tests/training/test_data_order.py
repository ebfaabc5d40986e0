"""PTST stages over one RL dataset continue through it: stage 2 trains on the prompts after stage 1's, not on
stage 1's again in the same order (every stage used to get the same seed, hence TRL's same permutation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionr1.recipe import load_recipe
from visionr1.training.data_order import stream_slice
from visionr1.training.runner import main

from .conftest import TINY, write_varied_grpo

pytestmark = pytest.mark.slow
VARIED = Path(__file__).with_name("varied_reward.py")


def test_second_stage_continues_the_prompt_stream(tmp_path, monkeypatch, tiny_model_dir):
    data = write_varied_grpo(tmp_path / "data", n=24)
    ids_file = tmp_path / "ids.jsonl"
    monkeypatch.setenv("VISIONR1_TEST_IDS", str(ids_file))
    reward = f"[{{name: '{VARIED}:letters_recording_ids'}}]"
    common = {"per_device_train_batch_size": 8, "num_generations": 2, "max_completion_length": 4, "save_steps": 50}
    overrides = ["stages.sft.enabled=false", f"model.path={tiny_model_dir}"]
    for stage, steps in (("ptst-1", 3), ("ptst-2", 2)):
        overrides += [f"stages.{stage}.dataset={{format: jsonl, path: {data}}}",
                      f"stages.{stage}.rewards={reward}", f"stages.{stage}.grpo.max_steps={steps}"]
        overrides += [f"stages.{stage}.grpo.{k}={v}" for k, v in common.items()]
    summary = main(load_recipe(TINY / "ptst.yaml", overrides), output_dir=tmp_path / "run")
    assert summary["stages"] == {"ptst-1": "done", "ptst-2": "done"}

    calls = [json.loads(line) for line in ids_file.read_text().splitlines()]
    assert len(calls) == 5 and all(len(c) == 8 for c in calls)  # 3 + 2 steps of 4 prompts x 2 generations
    first = [i for c in calls[:3] for i in c[::2]]
    second = [i for c in calls[3:] for i in c[::2]]
    assert len(set(first)) == 12 and len(set(second)) == 8
    assert not set(first) & set(second)  # 20 of the 24 prompts, none twice

    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    orders = [s["data_order"] for s in manifest["stages"]]
    assert [(o["offset"], o["count"]) for o in orders] == [(0, 12), (12, 8)]
    assert orders[0]["dataset"] == orders[1]["dataset"]


def test_stream_slices_are_reproducible_and_cover_each_epoch():
    n, seed = 10, 3
    whole = stream_slice(n, seed, 0, 30)
    assert [sorted(whole[k:k + n]) for k in (0, 10, 20)] == [list(range(n))] * 3  # each epoch a permutation
    assert whole[10:20] != whole[:10]  # ... a new one each epoch
    assert stream_slice(n, seed, 7, 9) == whole[7:16]  # any slice on its own (a resumed stage)
    assert stream_slice(n, seed + 1, 0, n) != whole[:n]
