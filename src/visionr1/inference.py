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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Generation:
    text: str  # the new text, special tokens removed
    num_tokens: int  # new tokens, the end-of-sequence token included when there is one
    truncated: bool  # True when no end-of-sequence token came before max_new_tokens



def images_per_prompt(images: Sequence[Sequence[Any]]) -> list[list[Any]] | None:
    """A batch's images as one list per prompt (None when no prompt has one), the way TRL passes them.

    Why not one flat list: Gemma 3's processor reads a flat list as all images of the first prompt and refuses
    the batch ("Found [1, 1] <start_of_image> tokens and [2] images per sample"); the Qwen-VL and InternVL
    processors take either."""
    nested = [list(imgs) for imgs in images]
    return nested if any(nested) else None

def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_processor(path: str | Path, dtype: str = "auto", device: str | None = None) -> tuple[Any, Any]:
    """A vision-language model (any ``AutoModelForImageTextToText``) in eval mode, and its processor set up
    for left padding. ``dtype``: "auto" (the checkpoint's), "bfloat16", "float16" or "float32"."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from visionr1.models.families import router_logits_off

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model directory (no config.json); pass a saved checkpoint")
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    device = device or default_device()
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(device).eval()
    return router_logits_off(model), processor


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
        inputs = processor(
            text=prompt_texts(processor, batch_prompts), images=images_per_prompt(images[start : start + batch_size]),
            padding=True, return_tensors="pt",
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
    """A vLLM engine for ``path`` and the transformers processor (for the chat template).

    The modality limits name video too (0: visionr1 sends video as frames, i.e. images): left out, vLLM profiles
    Qwen3-VL with a dummy video and start-up fails ("Found 1 <|video_pad|> tokens ... no videos were passed")."""
    if not vllm_available():
        raise ImportError("vLLM is not installed: pip install 'visionr1[vllm]', or use --backend transformers")
    from transformers import AutoProcessor

    from visionr1.patches.vllm import modality_limits
    from vllm import LLM

    llm = LLM(model=str(path), dtype=dtype, limit_mm_per_prompt=modality_limits([max_images_per_prompt]), **engine_kwargs)
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
    # the text decoded as :func:`generate` decodes it: vLLM's incremental detokenizer holds back a trailing
    # incomplete UTF-8 character of a truncated response, which transformers' decode keeps as U+FFFD
    decode = processor.tokenizer.decode
    return [
        Generation(decode(list(o.outputs[0].token_ids), skip_special_tokens=True), len(o.outputs[0].token_ids),
                   o.outputs[0].finish_reason == "length")
        for o in outputs
    ]


# ----------------------------------------------------------------------------------------------------------
# Candidates: several samples per prompt, their log-probs, continuing from a prefix, stopping at a string
# (the inference-time strategies of visionr1.evaluation.strategies)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    text: str  # the new text (after the prefix), special tokens removed; ends with the stop string if one hit
    num_tokens: int  # new tokens generated (end-of-sequence token included when there is one)
    truncated: bool  # True when neither an end-of-sequence token nor a stop string came before the limit
    sum_logprob: float | None  # sum over the new tokens of log p(token | everything before) under the model
    mean_logprob: float | None  # sum_logprob / num_tokens: the length-fair score best-of-n and beam rank by
    stop: str | None = None  # "eos", the stop string that ended it, or None (truncated)
    token_ids: list[int] = field(default_factory=list, repr=False)  # the new tokens (not written to logs)


class TokenLogprobs:
    """A logits processor that records, step by step, log p(chosen token) under the model's own distribution.

    Why a processor and not ``output_scores``/``output_logits``: those keep a (batch, vocab) tensor per new
    token, 16K x 152K floats per row for Vision-R1's limits; this keeps one step's. It is merged before the
    sampling warpers (transformers appends temperature / top-k / top-p after user processors), so the log-prob
    is the model's at temperature 1, not the truncated sampling distribution's -- what "mean token log-prob
    under the model" means in LlamaV-o1's beam search and in best-of-n. At step t the processor sees the token
    sampled at step t-1 as the last input id; the last token's log-prob is read in :meth:`finish`.
    """

    def __init__(self) -> None:
        self.prev: Any = None
        self.values: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.prev is not None:
            self.values.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: Any) -> Any:
        """(batch, new_len) log-probs of ``new_tokens`` (the generated ids, shape (batch, new_len))."""
        import torch

        if self.prev is not None and len(self.values) < new_tokens.shape[1]:
            self.values.append(self.prev.gather(1, new_tokens[:, -1:].to(self.prev.device)).squeeze(1))
        if not self.values:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(self.values, 1)[:, : new_tokens.shape[1]].cpu()


def _stop_cut(tokenizer: Any, row: list[int], stops: Sequence[str]) -> tuple[int, str] | None:
    """The fewest tokens of ``row`` whose text holds one of ``stops`` (binary search over decoded prefixes),
    and that stop string; None when no stop string is in the row's text."""
    full = tokenizer.decode(row, skip_special_tokens=True)
    if not any(s in full for s in stops):
        return None
    lo, hi = 1, len(row)
    while lo < hi:
        mid = (lo + hi) // 2
        if any(s in tokenizer.decode(row[:mid], skip_special_tokens=True) for s in stops):
            hi = mid
        else:
            lo = mid + 1
    text = tokenizer.decode(row[:lo], skip_special_tokens=True)
    hit = min((s for s in stops if s in text), key=text.find)
    return lo, hit


def generate_candidates(
    model: Any,
    processor: Any,
    prompts: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Any]],
    prefixes: Sequence[str] | None = None,
    n: int = 1,
    max_new_tokens: int = 16384,
    temperature: float = 0.6,
    top_p: float = 0.95,
    stop_strings: Sequence[str] | None = None,
    batch_size: int = 8,
) -> list[list[Candidate]]:
    """``n`` candidates per prompt (in order), each continuing the assistant turn after ``prefixes[i]``.

    ``prefixes``: text placed after the chat template's opened assistant turn (a staged answer's earlier
    sections, a prefilled ``<think>``); the candidate's text is what comes after it. ``stop_strings``: a
    candidate ends once its text holds one of them (kept at its end), e.g. a stage's closing tag.
    ``temperature == 0`` decodes greedily and then ``n`` must be 1 (n equal candidates would waste compute).
    ``batch_size`` counts sequences (prompts x n) per ``model.generate`` call.
    """
    import torch
    from transformers import LogitsProcessorList

    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists")
    prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
    if len(prefixes) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
    if n < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n, batch_size and max_new_tokens must be >= 1")
    if temperature <= 0 and n > 1:
        raise ValueError(f"{n} candidates per prompt need sampling: set a temperature > 0 (or n = 1)")
    processor.tokenizer.padding_side = "left"
    tok = processor.tokenizer
    eos, pad = _eos_ids(model, processor), _pad_id(model, processor)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    stops = [s for s in (stop_strings or []) if s]
    extra: dict[str, Any] = {"stop_strings": stops, "tokenizer": tok} if stops else {}
    per_call = max(1, batch_size // n)
    out: list[list[Candidate]] = []
    texts = [t + p for t, p in zip(prompt_texts(processor, prompts), prefixes, strict=True)]
    for start in range(0, len(prompts), per_call):
        inputs = processor(
            text=texts[start : start + per_call], images=images_per_prompt(images[start : start + per_call]),
            padding=True, return_tensors="pt",
        ).to(model.device)
        recorder = TokenLogprobs()
        with torch.inference_mode():
            sequences = model.generate(
                **inputs, max_new_tokens=max_new_tokens, pad_token_id=pad, num_return_sequences=n,
                logits_processor=LogitsProcessorList([recorder]), **sampling, **extra,
            )
            new = sequences[:, inputs["input_ids"].shape[1] :]
            logprobs = recorder.finish(new).tolist()
        rows = new.tolist()
        for i in range(0, len(rows), n):
            group = []
            for row, lp in zip(rows[i : i + n], logprobs[i : i + n], strict=True):
                at_eos = next((j for j, t in enumerate(row) if t in eos), None)
                cut = _stop_cut(tok, row if at_eos is None else row[:at_eos], stops) if stops else None
                if cut is not None:
                    length, stop = cut
                elif at_eos is not None:
                    length, stop = at_eos + 1, "eos"
                else:
                    length, stop = len(row), None
                text = tok.decode(row[:length], skip_special_tokens=True)
                if cut is not None:  # a stop string can end inside a token: keep the text up to it
                    text = text[: text.find(stop) + len(stop)]
                total = float(sum(lp[:length]))
                group.append(Candidate(text, length, stop is None, total, total / length if length else None, stop,
                                       row[:length]))
            out.append(group)
    return out


def generate_candidates_vllm(
    llm: Any,
    processor: Any,
    prompts: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Any]],
    prefixes: Sequence[str] | None = None,
    n: int = 1,
    max_new_tokens: int = 16384,
    temperature: float = 0.6,
    top_p: float = 0.95,
    stop_strings: Sequence[str] | None = None,
) -> list[list[Candidate]]:
    """Like :func:`generate_candidates`, through vLLM (tests/vllm/test_eval.py runs best-of-n on it). vLLM's
    ``cumulative_logprob`` is the sampled tokens' log-prob; recent versions report it from the raw logits
    (``logprobs_mode="raw_logprobs"``), matching :class:`TokenLogprobs`."""
    from vllm import SamplingParams

    if temperature <= 0 and n > 1:
        raise ValueError(f"{n} candidates per prompt need sampling: set a temperature > 0 (or n = 1)")
    params = SamplingParams(
        n=n, max_tokens=max_new_tokens, temperature=max(temperature, 0.0), top_p=top_p if temperature > 0 else 1.0,
        stop=list(stop_strings or []) or None, include_stop_str_in_output=True, logprobs=0,
    )
    prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
    requests = []
    for text, prefix, imgs in zip(prompt_texts(processor, prompts), prefixes, images, strict=True):
        req: dict[str, Any] = {"prompt": text + prefix}
        if imgs:
            req["multi_modal_data"] = {"image": list(imgs)}
        requests.append(req)
    result = []
    for o in llm.generate(requests, params, use_tqdm=False):
        group = []
        for c in o.outputs:
            k = len(c.token_ids)
            total = c.cumulative_logprob
            stop = "eos" if c.finish_reason == "stop" and not isinstance(c.stop_reason, str) else c.stop_reason
            group.append(Candidate(c.text, k, c.finish_reason == "length", total,
                                   total / k if total is not None and k else None,
                                   None if c.finish_reason == "length" else stop, list(c.token_ids)))
        result.append(group)
    return result
