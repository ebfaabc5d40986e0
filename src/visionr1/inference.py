"""Batched generation from canonical prompts, shared by evaluation and the cold-start local backend.

``generate`` takes the canonical prompt messages (docs/CONTRACTS.md) and their PIL images, applies the
model's chat template, pads on the left (so every row's new tokens start at the same column) and decodes only
the new tokens. Each :class:`Generation` says how many tokens were generated and whether the model stopped
by itself: ``truncated`` means no end-of-sequence token before ``max_new_tokens`` -- the completions PTST
suppresses, and the ones an evaluation should count separately.

vLLM is used only when asked for (``load_vllm`` / ``generate_vllm``, ``--backend vllm``) and installed: its
sampling differs in detail from transformers' and a silent switch would change numbers between machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Generation:
    text: str  # the new text, special tokens removed
    num_tokens: int  # new tokens, the end-of-sequence token included when there is one
    truncated: bool  # True when no end-of-sequence token came before max_new_tokens


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_processor(path: str | Path, dtype: str = "auto", device: str | None = None) -> tuple[Any, Any]:
    """A vision-language model (any ``AutoModelForImageTextToText``) in eval mode, and its processor set up
    for left padding. ``dtype``: "auto" (the checkpoint's), "bfloat16", "float16" or "float32"."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model directory (no config.json); pass a saved checkpoint")
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    device = device or default_device()
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(device).eval()
    return model, processor


def _eos_ids(model: Any, processor: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if processor.tokenizer.eos_token_id is not None:
        ids.add(processor.tokenizer.eos_token_id)
    return ids


def _pad_id(model: Any, processor: Any) -> int | None:
    pad = processor.tokenizer.pad_token_id
    if pad is None:
        pad = getattr(model.generation_config, "pad_token_id", None)
    if pad is None:
        eos = getattr(model.generation_config, "eos_token_id", None)
        pad = eos[0] if isinstance(eos, (list, tuple)) else eos
    return pad


def prompt_texts(processor: Any, prompts: Sequence[list[dict[str, Any]]]) -> list[str]:
    """The chat-templated prompt strings, ready for generation (assistant turn opened)."""
    return [processor.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]


def generate(
    model: Any,
    processor: Any,
    prompts: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Any]],
    max_new_tokens: int = 16384,
    temperature: float = 0.6,
    top_p: float = 0.95,
    do_sample: bool | None = None,
    batch_size: int = 8,
) -> list[Generation]:
    """One :class:`Generation` per prompt, in order. ``do_sample=None`` samples when ``temperature > 0``."""
    import torch

    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists")
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be >= 1")
    do_sample = temperature > 0 if do_sample is None else do_sample
    processor.tokenizer.padding_side = "left"
    eos, pad = _eos_ids(model, processor), _pad_id(model, processor)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out: list[Generation] = []
    for start in range(0, len(prompts), batch_size):
        batch_prompts = prompts[start : start + batch_size]
        flat = [img for imgs in images[start : start + batch_size] for img in imgs]
        inputs = processor(
            text=prompt_texts(processor, batch_prompts), images=flat or None, padding=True, return_tensors="pt"
        ).to(model.device)
        with torch.inference_mode():
            sequences = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=pad, **sampling)
        new = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        for row in new:
            stop = next((i for i, t in enumerate(row) if t in eos), None)
            kept = row if stop is None else row[: stop + 1]
            text = processor.tokenizer.decode(kept, skip_special_tokens=True)
            out.append(Generation(text=text, num_tokens=len(kept), truncated=stop is None))
    return out


# ----------------------------------------------------------------------------------------------------------
# vLLM (optional)
# ----------------------------------------------------------------------------------------------------------


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def load_vllm(path: str | Path, dtype: str = "auto", max_images_per_prompt: int = 4, **engine_kwargs: Any) -> tuple[Any, Any]:
    """A vLLM engine for ``path`` and the transformers processor (for the chat template)."""
    if not vllm_available():
        raise ImportError("vLLM is not installed: pip install 'visionr1[vllm]', or use --backend transformers")
    from transformers import AutoProcessor
    from vllm import LLM

    llm = LLM(model=str(path), dtype=dtype, limit_mm_per_prompt={"image": max_images_per_prompt}, **engine_kwargs)
    return llm, AutoProcessor.from_pretrained(path)


def generate_vllm(
    llm: Any,
    processor: Any,
    prompts: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Any]],
    max_new_tokens: int = 16384,
    temperature: float = 0.6,
    top_p: float = 0.95,
    do_sample: bool | None = None,
) -> list[Generation]:
    """Like :func:`generate`, through vLLM (which batches by itself)."""
    from vllm import SamplingParams

    do_sample = temperature > 0 if do_sample is None else do_sample
    params = SamplingParams(
        max_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0, top_p=top_p if do_sample else 1.0
    )
    requests = []
    for text, imgs in zip(prompt_texts(processor, prompts), images, strict=True):
        req: dict[str, Any] = {"prompt": text}
        if imgs:
            req["multi_modal_data"] = {"image": list(imgs)}
        requests.append(req)
    outputs = llm.generate(requests, params, use_tqdm=False)
    return [
        Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length")
        for o in outputs
    ]
