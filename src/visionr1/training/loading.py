"""Load the model and processor a stage starts from, with LoRA and freezing applied.

One place so SFT and GRPO stages treat the model identically: resolve ``tiny:`` paths, cap the processor's
pixel budget (``model.min_pixels`` / ``model.max_pixels``: the number of image tokens, hence memory, follows
from it, and on CPU it must be small), wrap LoRA adapters *before* freezing (so adapters inside a frozen part
are frozen too — passing ``peft_config`` to TRL instead would re-enable them), then freeze.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionr1.config.loader import TINY_PREFIX
from visionr1.models.families import router_logits_off
from visionr1.recipe import LoraSpec, ModelSpec
from visionr1.training.checkpoints import raise_on_missing
from visionr1.training.freeze import apply_freeze

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(path: str) -> str:
    """``tiny:FAMILY/SIZE`` → the directory of a locally built tiny model (built once, then cached)."""
    if not path.startswith(TINY_PREFIX):
        return path
    spec = path[len(TINY_PREFIX):]
    family, _, size = spec.partition("/")
    from visionr1.models.tiny import get_tiny_model

    return str(get_tiny_model(family=family, size=size or "test"))


def looks_local(path: str) -> bool:
    """A path the user meant as a directory on disk (not a hub id like ``Qwen/Qwen2.5-VL-7B-Instruct``)."""
    return path.startswith((".", "/", "~")) or Path(path).exists() or path.count("/") != 1


def load_processor(path: str, spec: ModelSpec):
    """AutoProcessor with the recipe's pixel budget (Qwen-VL: ``min_pixels`` / ``max_pixels`` per image).

    transformers 5 keeps the budget in the image processor's ``size`` (``shortest_edge`` / ``longest_edge``,
    in pixels); passing ``max_pixels`` to ``from_pretrained`` would instead replay it on every call, with a
    deprecation warning. So the processor is loaded as saved and its ``size`` set here.
    """
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    if spec.min_pixels is None and spec.max_pixels is None:
        return processor
    for attr in ("image_processor", "video_processor"):
        sub = getattr(processor, attr, None)
        size = getattr(sub, "size", None)
        if sub is None or size is None:
            continue
        current = {k: getattr(size, k, None) if not isinstance(size, dict) else size.get(k) for k in ("shortest_edge", "longest_edge")}
        if current["longest_edge"] is None:  # not a pixel-budget processor (fixed height/width)
            continue
        shortest = spec.min_pixels if spec.min_pixels is not None else current["shortest_edge"]
        longest = spec.max_pixels if spec.max_pixels is not None else current["longest_edge"]
        if shortest is not None and shortest > longest:
            shortest = longest
        sub.size = {"shortest_edge": shortest, "longest_edge": longest}
    return processor


def load_model(path: str, spec: ModelSpec, freeze: list[str], lora: LoraSpec | None):
    """The model to train: weights from ``path``, LoRA adapters if asked, the requested parts frozen."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {}
    if spec.dtype != "auto":
        kwargs["dtype"] = _DTYPES[spec.dtype]
    else:
        kwargs["dtype"] = "auto"
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    model, info = AutoModelForImageTextToText.from_pretrained(path, output_loading_info=True, **kwargs)
    raise_on_missing(info, path)
    router_logits_off(model)  # an SFT checkpoint of an MoE model saves it on: generation would crash
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        from visionr1.models.families import family_of

        targets = family_of(model).lora_target_regex if lora.target_modules == "family" else lora.target_modules
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    apply_freeze(model, freeze)
    return model


def merge_lora_into(base_path: str, adapter_dir: Path, out_dir: Path, spec: ModelSpec) -> None:
    """Fold a stage's LoRA adapters into its starting weights, so the next stage starts from plain weights."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(base_path, dtype="auto" if spec.dtype == "auto" else _DTYPES[spec.dtype])
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
