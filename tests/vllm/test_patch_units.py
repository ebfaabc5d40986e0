"""visionr1.patches.vllm's pure parts (no engine, no vLLM needed) and the patch table's references."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from visionr1.patches import PATCHES
from visionr1.patches.vllm import (
    _as_token_entry,
    engine_kwargs,
    feed_unexpanded_prompts,
    images_per_prompt,
    modality_limits,
    pixel_budget,
    unexpand_image_runs,
)

REPO = Path(__file__).resolve().parents[2]
PAD = 7


@pytest.mark.parametrize("ids, expected", [
    ([1, PAD, PAD, PAD, 2, PAD, PAD, 3], [1, PAD, 2, PAD, 3]),  # two images, each run back to one placeholder
    ([1, PAD, 2], [1, PAD, 2]),  # already unexpanded
    ([1, 2, 3], [1, 2, 3]),  # text only
    ([PAD] * 5, [PAD]),
])
def test_unexpand_image_runs(ids, expected):
    assert unexpand_image_runs(ids, PAD) == expected


def _generation(mode="colocate"):
    calls = []

    def generate(prompts, images, num_generations, profiler=None):
        calls.append((prompts, images))
        return "out"

    return types.SimpleNamespace(mode=mode, generate=generate), calls


def test_colocate_prompts_reach_vllm_unexpanded_and_text_only_prompts_unchanged():
    gen, calls = _generation()
    assert feed_unexpanded_prompts(gen, PAD)
    prompts = [[1, PAD, PAD, 2], [3, 4], [5, PAD, PAD, 6, PAD, PAD, PAD, 8]]
    assert gen.generate(prompts=prompts, images=[["a"], None, ["b", "c"]], num_generations=2) == "out"
    assert calls == [([[1, PAD, 2], [3, 4], [5, PAD, 6, PAD, 8]], [["a"], None, ["b", "c"]])]
    gen.generate(prompts=[[1, 2]], images=None, num_generations=2)  # a text-only batch passes as it is
    assert calls[-1] == ([[1, 2]], None)


def test_a_prompt_whose_runs_do_not_match_its_images_is_refused():
    gen, _ = _generation()
    feed_unexpanded_prompts(gen, PAD)
    with pytest.raises(RuntimeError, match="1 image placeholder runs for 2 images"):
        gen.generate(prompts=[[1, PAD, PAD, PAD, 2]], images=[["a", "b"]], num_generations=1)


def test_server_mode_is_left_alone():
    gen, _ = _generation(mode="server")
    original = gen.generate
    assert not feed_unexpanded_prompts(gen, PAD) and gen.generate is original


def test_modality_limits_and_images_per_prompt():
    from datasets import Dataset

    ds = Dataset.from_dict({"images": [["a.png"], [], ["b.png", "c.png", "d.png"], None], "x": [0, 1, 2, 3]})
    assert images_per_prompt(ds, None) == [1, 0, 3, 0]
    assert images_per_prompt(ds.select([3, 1])) == [0, 0]  # a selection counts its own rows
    assert modality_limits(images_per_prompt(ds)) == {"image": 3, "video": 0}
    assert modality_limits([]) == {"image": 0, "video": 0}  # text-only data: no image, never a video


def test_pixel_budget_and_engine_kwargs():
    def processor(size):
        return types.SimpleNamespace(image_processor=types.SimpleNamespace(size=size))

    budget = processor({"shortest_edge": 3136, "longest_edge": 12544})
    assert pixel_budget(budget) == {"size": {"shortest_edge": 3136, "longest_edge": 12544}}
    assert pixel_budget(processor(types.SimpleNamespace(shortest_edge=None, longest_edge=500))) == {
        "size": {"longest_edge": 500}}
    assert pixel_budget(processor({"height": 224, "width": 224})) == {}  # fixed-size processors: nothing to pass
    assert pixel_budget(types.SimpleNamespace()) == {}
    import torch

    assert engine_kwargs(budget, [None], torch.float32) == {
        "limit_mm_per_prompt": {"image": 0, "video": 0},
        "mm_processor_kwargs": {"size": {"shortest_edge": 3136, "longest_edge": 12544}}, "dtype": "float32"}
    assert "dtype" not in engine_kwargs(budget, [])  # mixed precision: vLLM's own choice


def test_token_id_logprob_entries_read_as_trl_expects():
    entry = {"token_id": 941, "logprob": -4.9, "top_logprobs": [{"token_id": 941, "logprob": -4.9}]}
    assert _as_token_entry(entry)["token"] == "token_id:941"
    assert _as_token_entry(entry)["top_logprobs"][0]["token"] == "token_id:941"
    named = {"token": "token_id:3", "logprob": -1.0, "top_logprobs": []}
    assert _as_token_entry(named) is named


def test_every_vllm_patch_names_an_existing_test_and_an_upstream_answer():
    rows = [p for p in PATCHES if "vllm" in p.hook or "LLM" in p.hook]
    assert len(rows) >= 6
    for p in rows:
        assert p.upstream and p.why and p.where
        for ref in re.split(r",\s*", p.test):
            path, name = ref.split("::")
            assert f"def {name}(" in (REPO / path).read_text(), ref
