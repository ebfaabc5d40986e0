"""Rollouts never contain vision placeholders: the tokens that stand for image or video features are banned
from sampling, with the key each generation backend understands.

Why: a policy can sample a placeholder such as Qwen-VL's ``<|image_pad|>`` (a random tiny model does about once
in 600 tokens; a real one after a bad update). The completion then goes back through the model in the loss
forward, where one more placeholder than there are image features stops training ("Image features and image
tokens do not match"), and a sampled ``<|vision_start|>`` or ``<|video_pad|>`` can shift mRoPE positions. TRL
1.16 suppresses only ``config.image_token_id``, and only with transformers generation; vLLM samples all of them.

transformers takes ``suppress_tokens`` (ids); vLLM's ``SamplingParams`` takes ``bad_words`` (strings, each
encoded by its tokenizer: a special token is one id, banned exactly). TRL passes ``GRPOConfig.generation_kwargs``
to whichever backend the stage uses, so the stage writes the key of its backend there.
"""

from __future__ import annotations

from typing import Any

_KEYWORDS = ("image", "vision", "video", "img")


def vision_tokens(processor: Any) -> list[str]:
    """The tokenizer's special tokens that stand for or frame image and video features (every family's
    placeholder, start and end markers: ``<|image_pad|>``, ``<|vision_start|>``, ``<start_of_image>``,
    ``<IMG_CONTEXT>``...), plus the processor's own ``image_token`` / ``video_token``."""
    tok = getattr(processor, "tokenizer", processor)
    found = [t for t in tok.all_special_tokens if any(k in t.lower() for k in _KEYWORDS)]
    for attr in ("image_token", "video_token", "boi_token", "eoi_token"):
        value = getattr(processor, attr, None) or getattr(tok, attr, None)
        if isinstance(value, str) and value:
            found.append(value)
    return [t for t in dict.fromkeys(found) if tok.convert_tokens_to_ids(t) not in (None, tok.unk_token_id)]


def ban_vision_tokens(generation_kwargs: dict | None, processor: Any, use_vllm: bool) -> dict:
    """``generation_kwargs`` plus the ban of :func:`vision_tokens` for the stage's backend, merged with any ban
    the user set."""
    kwargs = dict(generation_kwargs or {})
    tokens = vision_tokens(processor)
    if not tokens:
        return kwargs
    if use_vllm:
        kwargs["bad_words"] = list(dict.fromkeys([*(kwargs.get("bad_words") or []), *tokens]))
    else:
        tok = getattr(processor, "tokenizer", processor)
        ids = tok.convert_tokens_to_ids(tokens)
        kwargs["suppress_tokens"] = list(dict.fromkeys([*(kwargs.get("suppress_tokens") or []), *ids]))
    return kwargs
