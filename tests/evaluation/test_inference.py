"""inference.generate: new tokens only, end-of-sequence handling and the truncated flag, left padding."""

from __future__ import annotations

import pytest
import torch
from transformers import BatchFeature

from visionr1.inference import generate


class _Tokenizer:
    padding_side = "right"
    eos_token_id = 2
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids if not (skip_special_tokens and i in (0, 2, 9)))


class _Processor:
    tokenizer = _Tokenizer()

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return messages[0]["content"]

    def __call__(self, text, images=None, padding=True, return_tensors="pt"):
        self.seen_images = images
        return BatchFeature({"input_ids": torch.ones(len(text), 3, dtype=torch.long)})


class _Model:
    device = "cpu"

    class generation_config:  # noqa: N801 - mimics the attribute
        eos_token_id = [2, 9]

    def __init__(self, new_rows):
        self.new_rows = new_rows

    def generate(self, input_ids, max_new_tokens, pad_token_id, **sampling):
        self.sampling = sampling
        return torch.cat([input_ids, torch.tensor(self.new_rows[: len(input_ids)])], dim=1)


def test_counts_new_tokens_and_flags_truncation():
    model, proc = _Model([[5, 6, 2, 0], [5, 6, 7, 8], [9, 0, 0, 0]]), _Processor()
    prompts = [[{"role": "user", "content": "q"}]] * 3
    gens = generate(model, proc, prompts, [[], ["img"], []], max_new_tokens=4, batch_size=3, temperature=0)
    assert [(g.text, g.num_tokens, g.truncated) for g in gens] == [("5 6", 3, False), ("5 6 7 8", 4, True), ("", 1, False)]
    # images per prompt, as TRL passes them (Gemma 3's processor refuses a flat list for a batch)
    assert proc.tokenizer.padding_side == "left" and proc.seen_images == [[], ["img"], []]
    assert model.sampling["do_sample"] is False


def test_sampling_settings_and_argument_checks():
    model, proc = _Model([[5, 2]]), _Processor()
    generate(model, proc, [[{"role": "user", "content": "q"}]], [[]], max_new_tokens=2, temperature=0.6, top_p=0.95)
    assert model.sampling == {"do_sample": True, "temperature": 0.6, "top_p": 0.95}
    with pytest.raises(ValueError, match="image lists"):
        generate(model, proc, [[{"role": "user", "content": "q"}]], [], max_new_tokens=2)
