"""Qwen3.5-MoE (family ``qwen3_5_moe``) on every path: Qwen3.5's hybrid attention with fused experts and a shared expert.

Fast checks on the `test`-size tiny model; the slow ones train it (SFT -> GRPO with PTST and video -> eval,
and DPO). Shared checks: tests/families/checks.py."""

from __future__ import annotations

import pytest
from tests.families import checks

from visionr1.models.tiny import get_tiny_model

FAMILY = "qwen3_5_moe"
CLASSES = ('Qwen3_5MoeForConditionalGeneration', 'Qwen3VLProcessor', 'Qwen2VLImageProcessor', 'Qwen3_5Tokenizer')


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return get_tiny_model(FAMILY, "test", cache_root=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return checks.load(model_dir)


def test_lookup_and_real_classes(loaded):
    model, processor = loaded
    checks.check_lookup(FAMILY, model)
    checks.check_real_classes(FAMILY, model, processor, CLASSES)


def test_template_and_image_tokens_equal_the_processors(loaded):
    checks.check_image_tokens(FAMILY, loaded[1])


def test_generation_prompt_opens_think_and_rewards_read_it_so(loaded):
    """Qwen3.5's template ends the prompt with <think>: completions carry no <think>, so the rewards get
    think_prefilled (from the template, not the model name); Qwen-VL templates do not open it."""
    from visionr1.data.prompts import generation_prompt_opens_think
    from visionr1.rewards.registry import build_reward_funcs

    assert generation_prompt_opens_think(loaded[1])
    funcs = build_reward_funcs(["hard_format_result", "format"], think_prefilled=True).funcs
    text = "I count 3.\n</think>\n\n<answer> 3 </answer>"
    assert [f([text], solution=["3"], task=["count"]) for f in funcs] == [[1.0], [1.0]]
    plain = build_reward_funcs(["format"]).funcs[0]
    assert plain([text]) == [0.0]


def test_data_inspect_counts_image_tokens_the_familys_way(loaded, tmp_path):
    checks.check_data_inspect(FAMILY, loaded[1], tmp_path)


def test_sft_completion_is_the_answer_and_ends_the_turn(loaded):
    """The template renders text parts and closes the turn with <|im_end|>: nothing appended."""
    checks.check_sft_completion(FAMILY, loaded[1], closes_itself=True)


def test_freeze_names(loaded):
    checks.check_freeze(FAMILY, loaded[0])


def test_lora_targets(loaded):
    checks.check_lora(FAMILY, *loaded, expect=('q_proj', 'in_proj_qkv', 'out_proj', 'gate_proj', 'up_proj', 'down_proj'), never=('mlp.experts', 'conv1d'))


def test_checkpoint_weights_resume_under_the_in_memory_names(model_dir, tmp_path):
    checks.check_checkpoint_names(model_dir, tmp_path)


def test_video(loaded):
    checks.check_video(FAMILY, *loaded)


def test_moe_checkpoint_after_sft_generates(model_dir, tmp_path):
    """Failed before the loaders turned output_router_logits off (transformers' load_balancing_loss_func in
    cached generation: "The size of tensor a (4) must match the size of tensor b (...)")."""
    checks.check_moe_checkpoint_after_sft_generates(model_dir, tmp_path)


@pytest.mark.slow
def test_sft_grpo_eval_and_dpo(model_dir, tmp_path):
    data = checks.write_data(tmp_path / "data")
    checks.run_pipeline(FAMILY, model_dir, data, tmp_path)
    checks.run_dpo(FAMILY, model_dir, data, tmp_path)
