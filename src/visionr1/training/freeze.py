"""Freeze parts of a vision-language model by really setting ``requires_grad=False``.

Why this module exists: VisualThinker-R1-Zero shipped a ``freeze_vision_modules`` flag that was a no-op — the
weights it claimed to freeze kept training. Here freezing is a plain walk over ``named_parameters()`` that
flips ``requires_grad`` and returns how many parameters it touched, so a recipe that freezes nothing by
mistake fails loudly instead of silently training everything. The Trainer's optimizer only receives
parameters with ``requires_grad=True``, so frozen weights cannot move.

Parameter names of the supported families (transformers 5, with or without a peft wrapper in front):

- vision tower: ``model.visual.*`` (Qwen2/2.5/3-VL), ``vision_tower.*`` / ``vision_model.*`` (LLaVA-style)
- projector:    ``model.visual.merger.*`` and ``model.visual.deepstack_merger_list.*`` (Qwen),
  ``multi_modal_projector.*`` (LLaVA-style)
- language model: ``model.language_model.*`` and ``lm_head.*``
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from visionr1.models import families

PARTS = ("vision_tower", "projector", "language_model")



def _union(patterns: set[str]) -> re.Pattern:
    return re.compile(r"(^|\.)(" + "|".join(sorted(patterns, key=len, reverse=True)) + r")\.")


def _layouts() -> tuple[re.Pattern, re.Pattern]:
    """The projector and vision-tower name patterns of every supported family (``visionr1.models.families``),
    plus the LLaVA-style names transformers uses for the families it shares a layout with."""
    fams = families.registry().values()
    projector = {p for f in fams for p in f.projector} | {"multi_modal_projector", "mm_projector"}
    vision = {p for f in fams for p in f.vision} | {"vision_tower", "vision_model"}
    return _union(projector), _union(vision)


_PROJECTOR, _VISION = _layouts()
_LANGUAGE = re.compile(r"(^|\.)(language_model|lm_head)\.")


def part_of(name: str) -> str | None:
    """Which freezable part a parameter belongs to (``None``: none of them, e.g. a LoRA ``ref`` copy's owner).

    >>> part_of("model.visual.blocks.0.attn.qkv.weight")
    'vision_tower'
    >>> part_of("base_model.model.model.visual.merger.mlp.0.weight")
    'projector'
    >>> part_of("model.language_model.layers.1.mlp.up_proj.weight"), part_of("lm_head.weight")
    ('language_model', 'language_model')
    """
    if _PROJECTOR.search(name):
        return "projector"
    if _VISION.search(name):
        return "vision_tower"
    if _LANGUAGE.search(name):
        return "language_model"
    return None


def apply_freeze(model: torch.nn.Module, parts: Iterable[str]) -> dict[str, int]:
    """Set ``requires_grad=False`` on every parameter of ``parts``; return frozen parameter counts per part.

    Raises ``ValueError`` when a requested part matches no parameter (the model's layout is not one we know,
    so the freeze would be a no-op) or when nothing trainable would remain.
    """
    parts = list(dict.fromkeys(parts))
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"freeze: unknown part(s) {unknown}; valid parts: {list(PARTS)}")
    counts = {p: 0 for p in parts}
    if not parts:
        return counts
    for name, param in model.named_parameters():
        part = part_of(name)
        if part in counts:
            param.requires_grad_(False)
            counts[part] += param.numel()
    missing = [p for p, n in counts.items() if n == 0]
    if missing:
        raise ValueError(
            f"freeze: no parameter of {type(model).__name__} belongs to {missing}; the freeze would be a no-op. "
            f"Supported families: {', '.join(families.names())} (visionr1.models.families)."
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"freeze: {parts} leaves no trainable parameter; freeze fewer parts")
    return counts


def trainable_summary(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """Trainable / total parameter counts per part (and ``other``), for the manifest and the stage banner."""
    out: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # tied weights (lm_head = embed_tokens) count once
            continue
        seen.add(id(param))
        row = out.setdefault(part_of(name) or "other", {"trainable": 0, "total": 0})
        row["total"] += param.numel()
        if param.requires_grad:
            row["trainable"] += param.numel()
    return out
