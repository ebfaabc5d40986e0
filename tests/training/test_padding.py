"""GRPO on prompts of different lengths in one batch: the per-token log-probs TRL computes for each completion
(the numbers the ratio, KL and loss are made of) equal those of that prompt alone, for every model family.

Before the fix the processor kept the checkpoint's right padding: TRL left-pads prompt ids but re-runs the
processor for the multimodal fields, and Qwen's ``get_rope_index`` crashed ("shape mismatch") or computed
wrong mRoPE positions."""

from __future__ import annotations

import pytest
import torch

from visionr1.models import families
from visionr1.recipe import load_recipe

from .conftest import TINY, first_grpo_trainer

pytestmark = pytest.mark.slow


def _logps_alone(model, processor, prompt, images, completion_ids):
    text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    alone = processor(images=images, text=[text], return_tensors="pt")  # one prompt: no padding at all
    ids = torch.cat([alone["input_ids"][0], completion_ids])[None]
    extra = {k: v for k, v in alone.items() if k not in ("input_ids", "attention_mask")}
    if "mm_token_type_ids" in extra:
        mm = extra["mm_token_type_ids"]
        extra["mm_token_type_ids"] = torch.cat([mm, mm.new_zeros(1, len(completion_ids))], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0, -len(completion_ids) - 1:-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, completion_ids[:, None])[:, 0]


@pytest.mark.parametrize("family", families.names())
def test_mixed_length_batch_logprobs_equal_each_prompt_alone(tmp_path, varied_grpo, family):
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path=tiny:{family}/test",
        f"stages.ptst-1.dataset.path={varied_grpo}", "model.max_pixels=40000",
        "stages.ptst-1.grpo.per_device_train_batch_size=8", "stages.ptst-1.grpo.num_generations=2",
        "stages.ptst-1.grpo.max_completion_length=6",
        "stages.ptst-1.grpo.num_iterations=2",  # makes TRL compute old_per_token_logps in the batch
    ])
    trainer, processor = first_grpo_trainer(recipe, tmp_path)
    assert processor.tokenizer.padding_side == "left"

    rows = [trainer.train_dataset[i] for i in range(4)]
    lengths = [len(processor.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)) for r in rows]
    assert max(lengths) > 5 * min(lengths)  # the batch really mixes short and long prompts
    batch = [r for r in rows for _ in range(2)]
    out = trainer._generate_and_score_completions(batch)
    # contract with TRL: the buffers completions.jsonl is written from (patches.trl.completion_buffers), and the
    # public metric hook (log_metric)
    assert {"prompt", "completion", "rewards", "advantages"} <= set(trainer._logs)
    assert any("accuracy" in m for m in trainer._metrics.values())

    model = trainer.model.eval()
    for i, row in enumerate(batch):
        mask = out["completion_mask"][i].bool()
        completion = out["completion_ids"][i][mask]
        expected = _logps_alone(model, processor, row["prompt"], row["images"], completion)
        got = out["old_per_token_logps"][i][mask]
        assert torch.allclose(got, expected, atol=1e-4), (family, i, (got - expected).abs().max())
