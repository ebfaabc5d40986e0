"""The whole Vision-R1 path on data shaped like the published data (tests/varied.py): cold-start SFT on
Vision-R1-cold ShareGPT in two flavours (``messages`` + ``images``; LLaVA-CoT's ``conversations`` human/gpt +
``image``), then two PTST GRPO stages on EasyR1/geometry3k parquet with 4 prompts per step -- prompts from 20 to
1,500 characters, images from 28x28 to 2000x8000 and 1:150 strips, option lists, multi-image and a text-only
record in one batch. What used to break here: right padding (get_rope_index), text-only ShareGPT loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.varied import write_geometry3k, write_sharegpt

from visionr1.recipe import load_recipe
from visionr1.training.runner import main

from .conftest import TINY, load_state, read_jsonl

pytestmark = pytest.mark.slow
VARIED = Path(__file__).with_name("varied_reward.py")


def test_sft_two_sharegpt_flavours_then_two_ptst_stages_on_varied_data(tmp_path, tiny_model_dir):
    messages = write_sharegpt(tmp_path / "cold", "messages", n=10)
    llava = write_sharegpt(tmp_path / "cold", "human_gpt", n=10, seed=1)
    rl = write_geometry3k(tmp_path / "rl", n=10)
    reward = f"[{{name: hard_format_result}}, {{name: '{VARIED}:letters'}}]"
    recipe = load_recipe(TINY / "ptst.yaml", [
        f"model.path={tiny_model_dir}", "model.max_pixels=50176",
        f"stages.sft.dataset={{format: sharegpt, path: {messages}}}",
        "stages.sft.sft.max_steps=2", "stages.sft.sft.max_length=4096",
        f"stages.ptst-1.dataset={{format: geometry3k, path: {rl}}}", f"stages.ptst-1.rewards={reward}",
        f"stages.ptst-2.dataset={{format: geometry3k, path: {rl}}}", f"stages.ptst-2.rewards={reward}",
        "stages.ptst-1.grpo.per_device_train_batch_size=16",  # 4 prompts x 4 generations per step
        "stages.ptst-2.grpo.per_device_train_batch_size=8",  # 4 prompts x 2 generations per step
        "stages.ptst-1.grpo.max_steps=2", "stages.ptst-2.grpo.max_steps=2",
    ])
    run = tmp_path / "run"
    summary = main(recipe, output_dir=run)
    assert summary["stages"] == {"sft": "done", "ptst-1": "done", "ptst-2": "done"}

    # the LLaVA-CoT flavour (conversations human/gpt + image) trains too, from the first SFT's weights
    second = load_recipe(TINY / "ptst.yaml", [
        f"model.path={run / 'sft' / 'final'}", "model.max_pixels=50176", "stages.ptst-1.enabled=false",
        "stages.ptst-2.enabled=false", f"stages.sft.dataset={{format: sharegpt, path: {llava}}}",
        "stages.sft.sft.max_steps=2", "stages.sft.sft.max_length=4096",
    ])
    assert main(second, output_dir=tmp_path / "run2")["stages"] == {"sft": "done"}

    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [(r["stage"], r["step"]) for r in rows] == [("sft", 1), ("sft", 2), ("ptst-1", 1), ("ptst-1", 2),
                                                        ("ptst-2", 1), ("ptst-2", 2)]
    # PTST continues through the 10 prompts: 8 in stage 1, the next 8 (2 new, then a fresh epoch) in stage 2
    orders = [s["data_order"] for s in json.loads((run / "manifest.json").read_text())["stages"][1:]]
    assert [(o["offset"], o["count"]) for o in orders] == [(0, 8), (8, 8)]
    for a, b in (("sft", "ptst-1"), ("ptst-1", "ptst-2")):
        sa, sb = load_state(run / a / "final"), load_state(run / b / "final")
        assert any(not torch.equal(sa[k], sb[k]) for k in sa), (a, b)
