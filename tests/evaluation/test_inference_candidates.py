"""generate_candidates: n samples per prompt, their log-probs under the model, prefixes and stop strings."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from visionr1.inference import generate_candidates, load_model_and_processor, prompt_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster than two fighting over a busy machine
    yield load_model_and_processor(tiny_model_dir, device="cpu")
    torch.set_num_threads(threads)


def _prompts():
    short = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    long = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                         {"type": "text", "text": "Compare the two figures. " * 60}]}]
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is 2/4 as a decimal?"}]}]
    images = [[Image.new("RGB", (56, 56), (200, 0, 0))],
              [Image.new("RGB", (28, 600), (0, 200, 0)), Image.new("RGB", (300, 40), (0, 0, 200))], []]
    return [short, long, text_only], images


def _teacher_forced(model, processor, prompt, images, prefix, text_ids):
    """log p(token) of the generated ids, by one forward pass over prompt + prefix + ids."""
    text = prompt_texts(processor, [prompt])[0] + prefix
    inputs = processor(text=[text], images=images or None, return_tensors="pt")
    ids = torch.cat([inputs["input_ids"], torch.tensor([text_ids])], 1)
    kw = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    if "mm_token_type_ids" in kw:  # the new tokens are text
        kw["mm_token_type_ids"] = torch.cat([kw["mm_token_type_ids"], torch.zeros(1, len(text_ids), dtype=torch.long)], 1)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw).logits[0].float()
    start = inputs["input_ids"].shape[1]
    logp = torch.log_softmax(logits[start - 1 : -1], -1)
    return logp.gather(1, torch.tensor(text_ids)[:, None]).squeeze(1)


def test_logprobs_match_a_teacher_forced_forward_pass(loaded):
    """The recorded log-probs are the model's own (temperature 1), not the sampling distribution's: sampled at
    temperature 0.7 / top_p 0.9, they must equal a plain forward pass over the same tokens."""
    model, processor = loaded
    prompts, images = _prompts()
    torch.manual_seed(0)
    prefixes = ["", "<think>", ""]
    groups = generate_candidates(model, processor, prompts, images, prefixes, n=3, max_new_tokens=7,
                                 temperature=0.7, top_p=0.9, batch_size=4)
    assert [len(g) for g in groups] == [3, 3, 3]
    for prompt, imgs, prefix, group in zip(prompts, images, prefixes, groups, strict=True):
        assert len({tuple(c.token_ids) for c in group}) > 1  # sampled, not copies
        for c in group:
            assert len(c.token_ids) == c.num_tokens
            ref = _teacher_forced(model, processor, prompt, imgs, prefix, c.token_ids)
            assert c.sum_logprob == pytest.approx(ref.sum().item(), abs=2e-3)
            assert c.mean_logprob == pytest.approx(ref.mean().item(), abs=2e-4)


def test_greedy_single_candidate_and_errors(loaded):
    model, processor = loaded
    prompts, images = _prompts()
    a = generate_candidates(model, processor, prompts, images, n=1, max_new_tokens=5, temperature=0.0)
    b = generate_candidates(model, processor, prompts[::-1], images[::-1], n=1, max_new_tokens=5, temperature=0.0,
                            batch_size=1)
    assert [g[0].text for g in a] == [g[0].text for g in b[::-1]]  # padding and batching do not change greedy
    assert all(g[0].mean_logprob < 0 and g[0].num_tokens <= 5 for g in a)
    with pytest.raises(ValueError, match="need sampling"):
        generate_candidates(model, processor, prompts, images, n=2, temperature=0.0)
    with pytest.raises(ValueError, match="prefixes"):
        generate_candidates(model, processor, prompts, images, prefixes=["x"], temperature=0.5)


def test_stop_string_ends_the_candidate_and_is_kept(loaded):
    model, processor = loaded
    prompts, images = _prompts()
    torch.manual_seed(1)
    free = generate_candidates(model, processor, prompts, images, n=4, max_new_tokens=12, temperature=1.0)
    # a character the free samples produce somewhere, used as the stop string
    stop = next(ch for g in free for c in g for ch in c.text if ch.isalpha())
    torch.manual_seed(1)
    cut = generate_candidates(model, processor, prompts, images, n=4, max_new_tokens=12, temperature=1.0,
                              stop_strings=[stop])
    stopped = [c for g in cut for c in g if c.stop == stop]
    assert stopped, "no candidate hit the stop string"
    for c in stopped:
        assert c.text.endswith(stop) and stop not in c.text[:-1] and not c.truncated
        assert c.sum_logprob == pytest.approx(c.mean_logprob * c.num_tokens)
