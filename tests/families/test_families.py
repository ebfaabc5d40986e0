"""GLM-4.1V, Qwen3.5, Qwen3.5-MoE and Qwen3-VL-MoE on every path, one parametrized file (the checks are shared:
tests/families/checks.py; Gemma 3 and InternVL: test_gemma3_internvl.py; the Qwen-VL families: the rest of the
suite). Fast checks on each `test`-size tiny model; the slow one trains it (SFT -> GRPO with PTST and video ->
eval, and DPO).

What differs per family is in ``CASES``: the real classes the Auto classes must give, the recipe's image tokens
(None: no recipe of its own), whether the template closes an assistant turn itself, the LoRA targets expected and
never hit, MoE (the router-logits check) and a template that opens ``<think>`` in the generation prompt."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from tests.families import checks

from visionr1.models.tiny import get_tiny_model


@dataclass(frozen=True)
class Case:
    classes: tuple[str, ...]
    recipe_tokens: int | None
    closes_turn: bool
    lora_expect: tuple[str, ...]
    lora_never: tuple[str, ...]
    moe: bool = False
    opens_think: bool = False


CASES = {
    # GLM's tokens and template, its 2-frame image budget, the fused MLP; its template leaves the assistant turn
    # open and (the real one) printed list content raw: SFT trained on "[{'type': 'text', ...}]" with no stop token.
    "glm4v": Case(("Glm4vForConditionalGeneration", "Glm4vProcessor", "Glm4vImageProcessor", "TokenizersBackend"),
                  752, False, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"), ("visual",)),
    # hybrid linear attention (the torch fallback on CPU), the thinking template
    "qwen3_5": Case(("Qwen3_5ForConditionalGeneration", "Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3_5Tokenizer"),
                    576, True, ("q_proj", "o_proj", "in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj",
                                "gate_proj", "down_proj"), ("conv1d",), opens_think=True),
    # Qwen3.5's hybrid attention with fused experts and a shared expert
    "qwen3_5_moe": Case(("Qwen3_5MoeForConditionalGeneration", "Qwen3VLProcessor", "Qwen2VLImageProcessor",
                         "Qwen3_5Tokenizer"), None, True,
                        ("q_proj", "in_proj_qkv", "out_proj", "gate_proj", "up_proj", "down_proj"), ("mlp.experts", "conv1d"),
                        moe=True, opens_think=True),
    # Qwen3-VL with fused experts (attention-only LoRA)
    "qwen3_vl_moe": Case(("Qwen3VLMoeForConditionalGeneration", "Qwen3VLProcessor", "Qwen2VLImageProcessor",
                          "Qwen2Tokenizer"), 576, True, ("q_proj", "k_proj", "v_proj", "o_proj"), ("mlp.experts", "mlp.gate"),
                         moe=True),
}
FAMILIES = list(CASES)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def model_dir(family, tmp_path_factory):
    return get_tiny_model(family, "test", cache_root=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return checks.load(model_dir)


def test_lookup_and_real_classes(family, loaded):
    model, processor = loaded
    checks.check_lookup(family, model)
    checks.check_real_classes(family, model, processor, CASES[family].classes)


def test_template_and_image_tokens_equal_the_processors(family, loaded):
    checks.check_image_tokens(family, loaded[1])


def test_generation_prompt_opens_think_and_rewards_read_it_so(family, loaded):
    """Qwen3.5's template ends the prompt with <think>: completions carry no <think>, so the rewards get
    think_prefilled (from the template, not the model name); the other templates do not open it."""
    from visionr1.data.prompts import generation_prompt_opens_think
    from visionr1.rewards.registry import build_reward_funcs

    assert generation_prompt_opens_think(loaded[1]) == CASES[family].opens_think
    funcs = build_reward_funcs(["hard_format_result", "format"], think_prefilled=True).funcs
    text = "I count 3.\n</think>\n\n<answer> 3 </answer>"
    assert [f([text], solution=["3"], task=["count"]) for f in funcs] == [[1.0], [1.0]]
    assert build_reward_funcs(["format"]).funcs[0]([text]) == [0.0]


def test_data_inspect_counts_image_tokens_the_familys_way(family, loaded, tmp_path):
    checks.check_data_inspect(family, loaded[1], tmp_path)


def test_recipe_plans_for_8_processes(family, tmp_path):
    if CASES[family].recipe_tokens is None:
        pytest.skip(f"{family} has no recipe of its own (recipes/families/)")
    checks.check_recipe(family, tmp_path, max_tokens=CASES[family].recipe_tokens)


def test_sft_completion_is_the_answer_and_ends_the_turn(family, loaded):
    """The completion SFT trains on is the answer's text and ends the turn: a template that closes the turn
    itself (<|im_end|>) gets nothing appended, GLM's (open) gets the eos appended."""
    checks.check_sft_completion(family, loaded[1], closes_itself=CASES[family].closes_turn)


def test_freeze_names(family, loaded):
    checks.check_freeze(family, loaded[0])


def test_lora_targets(family, loaded):
    checks.check_lora(family, *loaded, expect=CASES[family].lora_expect, never=CASES[family].lora_never)


def test_checkpoint_weights_resume_under_the_in_memory_names(model_dir, tmp_path):
    checks.check_checkpoint_names(model_dir, tmp_path)


def test_video(family, loaded):
    checks.check_video(family, *loaded)


def test_moe_checkpoint_after_sft_generates(family, model_dir, tmp_path):
    """Failed before the loaders turned output_router_logits off (transformers' load_balancing_loss_func in
    cached generation: "The size of tensor a (4) must match the size of tensor b (...)")."""
    if not CASES[family].moe:
        pytest.skip(f"{family} is not a mixture of experts")
    checks.check_moe_checkpoint_after_sft_generates(model_dir, tmp_path)


@pytest.mark.slow
def test_sft_grpo_eval_and_dpo(family, model_dir, tmp_path):
    data = checks.write_data(tmp_path / "data")
    checks.run_pipeline(family, model_dir, data, tmp_path)
    checks.run_dpo(family, model_dir, data, tmp_path)
