"""GLM-4.1V, Qwen3.5, Qwen3.5-MoE and Qwen3-VL-MoE on every path, one parametrized file (the checks are shared:
tests/families/checks.py; Gemma 3 and InternVL: test_gemma3_internvl.py; the Qwen-VL families: the rest of the
suite). Fast checks on each `test`-size tiny model; the slow one trains it (SFT -> GRPO with PTST and video ->
eval, and DPO).

What differs per family is in ``CASES``: the real classes the Auto classes must give, the recipe's image tokens,
whether the template closes an assistant turn itself, the LoRA targets expected and never hit, MoE (the
router-logits check) and a template that opens ``<think>`` in the generation prompt."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from tests.families import checks

from visionr1.models import families
from visionr1.models.tiny import get_tiny_model


@dataclass(frozen=True)
class Case:
    classes: tuple[str, ...]
    recipe_tokens: int
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
                         "Qwen3_5Tokenizer"), 576, True,
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
    checks.check_recipe(family, tmp_path, max_tokens=CASES[family].recipe_tokens)


@pytest.mark.parametrize(("qwen_vl", "tokens"), [("qwen2_vl", 752), ("qwen2_5_vl", 752), ("qwen3_vl", 576)])
def test_the_qwen_vl_families_small_recipes_plan_for_8_processes(qwen_vl, tokens, tmp_path):
    checks.check_recipe(qwen_vl, tmp_path, max_tokens=tokens)


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


# ---------------------------------------------------------------------------------------------------------------
# a template that opens <think> (Qwen3.5) in evaluation; an open assistant turn (GLM) in DPO
# ---------------------------------------------------------------------------------------------------------------


def _syn(root):
    import json

    from visionr1.tasks.synthetic import make_synthetic

    data = make_synthetic("counting", 4, 0, root, test_fraction=0.5)
    return data, [str(json.loads(line)["solution"]) for line in (root / "test.jsonl").read_text().splitlines()]


def _items(out):
    import json

    return [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]


def test_eval_reads_completions_as_the_rewards_do_when_the_template_opens_think(family, model_dir, loaded, tmp_path,
                                                                                 monkeypatch):
    """`eval run` and the in-process evaluation read a completion as the rewards read it with think_prefilled
    when the template opens <think> (from the template, not the name): a thought cut before </think> has no
    answer and a closed one is in format. Other templates: the same texts are a non-thinking model's (read
    whole; no <think>, out of format). Failed before on qwen3_5 / qwen3_5_moe (the cut thought scored "3", right;
    the well-formed completion out of format)."""
    import visionr1.inference as inference
    from visionr1.evaluation.run import DecodingConfig, evaluate_samples, run_benchmark
    from visionr1.inference import Generation

    data, solutions = _syn(tmp_path / "syn")
    texts = [f"I count {solutions[0]}, so", f"I count.\n</think>\n\n<answer> {solutions[1]} </answer>"]
    monkeypatch.setattr(inference, "generate", lambda model, processor, prompts, *a, **k: [
        Generation(texts[i], 9, i == 0) for i in range(len(prompts))])
    opens = CASES[family].opens_think
    run_benchmark("synthetic", model_dir, data, tmp_path / "eval", DecodingConfig(max_new_tokens=9), limit=2)
    items = _items(tmp_path / "eval")
    assert [r["extracted"] for r in items] == [None if opens else solutions[0], solutions[1]], items
    assert [r["correct"] for r in items] == [not opens, True]
    assert [r["info"]["format"] for r in items] == [False, opens]

    rows = [{"id": f"r{i}", "prompt": [{"role": "user", "content": [{"type": "text", "text": "How many?"}]}],
             "images": [], "solution": s, "task": "count", "choices": None} for i, s in enumerate(solutions[:2])]
    got = evaluate_samples(loaded[0], rows, processor=loaded[1])
    assert (got["accuracy"], got["format"]) == ((0.5, 0.5) if opens else (1.0, 0.0)), got


def test_staged_and_caption_first_never_open_think_a_second_time(family, model_dir, tmp_path, monkeypatch):
    """The `staged` strategy (stages=think-answer; `beam` shares it) and `caption-first` prefill the assistant
    turn with `<think>`; on a template whose generation prompt already opened it, they continue that thought.
    What the model is given never holds `<think>` twice in a row, and the scored response opens it once.
    Failed before on qwen3_5 / qwen3_5_moe ("<think>\\n<think>")."""
    import re

    import visionr1.inference as inference
    from visionr1.evaluation.run import DecodingConfig, run_benchmark
    from visionr1.evaluation.strategies import parse_strategy
    from visionr1.inference import Candidate, prompt_texts

    data, solutions = _syn(tmp_path / "syn")
    seen = []

    def fake(model, processor, prompts, images, prefixes, n, max_new_tokens, temperature, top_p, stop=None, **kw):
        seen.extend(t + p for t, p in zip(prompt_texts(processor, prompts), prefixes, strict=True))
        body = {"</think>": "I count.</think>", "</answer>": f"{solutions[0]}</answer>"}.get((stop or [""])[0],
                                                                                          f" 1 shape.</think><answer>{solutions[0]}</answer>")
        return [[Candidate(body, 4, False, -4.0, -1.0, "stop") for _ in range(n)] for _ in prompts]

    monkeypatch.setattr(inference, "generate_candidates", fake)
    for spec in ("staged:stages=think-answer", "caption-first"):
        seen.clear()
        out = tmp_path / spec.split(":")[0]
        run_benchmark("synthetic", model_dir, data, out, DecodingConfig(max_new_tokens=9), limit=1,
                      strategy=parse_strategy(spec))
        assert seen and not any(re.search(r"<think>\s*<think>", t) for t in seen), seen
        [row] = _items(out)
        assert row["correct"] and row["info"]["format"], (spec, row)


def test_dpo_chosen_and_rejected_end_the_turn(family, loaded, tmp_path):
    """What DPOTrainer trains on (rendered as TRL's vision preference collator renders it): chosen and rejected
    each end with a token that stops generation; a template that leaves the turn open (GLM) gets the eos
    appended, as SFT does. Failed before on glm4v (both ended with "</answer>")."""
    import json

    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from visionr1.training.dpo import load_pairs, training_pairs

    checks.image(56, 40).save(tmp_path / "a.png")
    (tmp_path / "pairs.jsonl").write_text(json.dumps({
        "prompt": "How many red shapes?", "images": ["a.png"],
        "chosen": "<think>I count.</think><answer> 1 </answer>", "rejected": "<think>hm</think><answer> 7 </answer>",
    }) + "\n")
    row = training_pairs(load_pairs(tmp_path / "pairs.jsonl"), loaded[1])[0]
    ex = {"prompt": prepare_multimodal_messages(row["prompt"], images=row["images"]),
          "chosen": prepare_multimodal_messages(row["chosen"]), "rejected": prepare_multimodal_messages(row["rejected"])}
    out = apply_chat_template(ex, loaded[1])
    fam = families.family(family)
    stops = {fam.tokens.eos, fam.tokens.pad, *fam.tokens.stop}
    for key, answer in (("chosen", "<answer> 1 </answer>"), ("rejected", "<answer> 7 </answer>")):
        assert answer in out[key] and any(out[key].rstrip().endswith(t) for t in stops), (key, out[key])
