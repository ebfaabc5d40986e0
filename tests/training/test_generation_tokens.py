"""Rollouts never contain vision placeholders or markers (training.generation): TRL 1.16 bans only
``config.image_token_id`` with transformers generation, and nothing with vLLM (tests/vllm/test_colocate.py
tempts the engine the same way). A sampled ``<|vision_start|>`` / ``<|video_pad|>`` shifts mRoPE positions or
stops the loss forward."""

from __future__ import annotations

import pytest
import torch

from visionr1.models import families, get_tiny_model
from visionr1.recipe import load_recipe
from visionr1.training.generation import ban_vision_tokens, vision_tokens

from .conftest import TINY, first_grpo_trainer


@pytest.mark.parametrize("family", families.names())
def test_every_familys_placeholder_and_markers_are_banned(family):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(get_tiny_model(family, "test"))
    tokens = vision_tokens(processor)
    fam = families.family(family)
    assert fam.image_token in tokens and (fam.video_token is None or fam.video_token in tokens)
    tok = processor.tokenizer
    assert set(tokens) <= set(tok.all_special_tokens) | {fam.image_token, fam.video_token}
    assert not {"<think>", "</think>", "<answer>", "</answer>"} & set(tokens)  # the tags rewards parse stay allowed
    ids = tok.convert_tokens_to_ids(tokens)
    assert ban_vision_tokens({"suppress_tokens": [5]}, processor, use_vllm=False)["suppress_tokens"] == [5, *ids]
    assert ban_vision_tokens({"top_k": 3}, processor, use_vllm=True) == {"top_k": 3, "bad_words": tokens}


@pytest.mark.slow
def test_a_tempted_policy_samples_no_vision_token(tmp_path, varied_grpo):
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", "model.path=tiny:qwen2_5_vl/test",
        f"stages.ptst-1.dataset.path={varied_grpo}", "model.max_pixels=40000",
        "stages.ptst-1.grpo.per_device_train_batch_size=4", "stages.ptst-1.grpo.num_generations=2",
        "stages.ptst-1.grpo.max_completion_length=8",
    ])
    trainer, processor = first_grpo_trainer(recipe, tmp_path)
    ids = processor.tokenizer.convert_tokens_to_ids(vision_tokens(processor))
    # Tempt the policy: +30 on every vision token's logit (a head with a bias, which TRL's fused head reads too),
    # so without the ban nearly every sampled token is one.
    head = trainer.model.lm_head
    tempted = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        tempted.weight.copy_(head.weight)
        tempted.bias.zero_()
        tempted.bias[ids] = 30.0
    trainer.model.lm_head = tempted

    rows = [trainer.train_dataset[i] for i in range(2)]
    out = trainer._generate_and_score_completions([r for r in rows for _ in range(2)])
    sampled = out["completion_ids"][out["completion_mask"].bool()].tolist()
    assert sampled and not set(sampled) & set(ids), processor.tokenizer.decode(sampled)
    assert torch.isfinite(trainer.compute_loss(trainer.model, out))
