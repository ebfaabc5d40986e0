"""Padding-free forwards: a batch's sequences packed into one row, with per-sequence positions and no attention
across sequences (the stage field ``padding_free``, GRPO and SFT).

Why: real prompts run from ~20 to ~1,500 image+text tokens and completions from tens to thousands, so a padded
batch (TRL left-pads prompts and right-pads completions to the longest of each) computes mostly padding. Packed,
a batch is one row of exactly its real tokens (verl ``use_remove_padding``, EasyR1/ms-swift ``padding_free``,
LLaMA-Factory's ``neat_packing`` for SFT).

How, on transformers' own packed-sequence support (no attention code of ours):

- the row carries no ``attention_mask`` and ``position_ids`` of shape ``(4, 1, N)``: row 0 the text positions,
  restarting at 0 for each sequence, rows 1-3 the mRoPE (temporal, height, width) positions. That is the layout
  the Qwen-VL text models read for packing (``position_ids.shape[0] == 4``): row 0 builds the mask — transformers'
  ``find_packed_sequence_indices`` starts a new sequence wherever a position does not follow the one before, and
  ``create_causal_mask`` turns that into a block-diagonal causal mask for sdpa/eager/flex — and flash attention reads
  the same row as varlen ``cu_seqlens`` (``_is_packed_sequence``);
- the mRoPE rows are the ones the padded forward computes: the model's own ``get_rope_index`` on the padded batch
  with its attention mask (images, video and text-only rows alike: each row's real tokens get the positions of that
  sequence alone), keeping the real tokens; a batch without images or video gets ``arange`` over the padded width,
  as the model does when it has no grid (RoPE is relative, so the offset changes nothing but rounding);
- the vision inputs are unchanged: images are encoded per image, in the batch's order, packed or not;
- the loss tokens are addressed by index: GRPO's completion tokens are scored through TRL's fused LM head with
  ``shift_labels`` (the next token of each scored position, -100 at sequence ends, so no token is predicted from
  another sequence), SFT's ``labels`` get -100 at each sequence's first token for the same reason.

Exact: per-token log-probs and gradients of the packed forward equal the padded one within 1e-5 for Qwen2-VL,
Qwen2.5-VL and Qwen3-VL (``tests/training/test_packing.py``). Other families are refused (:func:`unsupported`).
On GPU use ``attn_implementation: flash_attention_2`` (varlen, no mask): with sdpa the block mask is a dense
``N x N`` boolean tensor per forward.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch

from visionr1.models import families

# The families whose packed log-probs are tested equal to the padded ones (``Family.padding_free``).
PACKED_FAMILIES = tuple(f.name for f in families.registry().values() if f.padding_free)
# Batch fields of other families' vision inputs: a batch holding one is not one we can pack exactly.
_UNPACKABLE = ("pixel_attention_mask", "spatial_shapes", "num_tiles", "image_sizes", "image_position_ids")


def padding_free(stage: Any, model: Any) -> bool:
    """The stage's ``padding_free``, refused (one line) for a model whose packed forward is not tested exact."""
    if not getattr(stage, "padding_free", False):
        return False
    if (reason := unsupported(model)) is not None:
        raise ValueError(f"stage {stage.name}: {reason}")
    return True


def unsupported(model: Any) -> str | None:
    """Why ``model`` cannot train padding-free (one line), or None when it can."""
    family = getattr(getattr(model, "config", None), "model_type", None)
    if family in PACKED_FAMILIES and rope_module(model) is not None:
        return None
    return _refusal(family)


def family_problem(model_path: str) -> str | None:
    """:func:`unsupported` before any weight is loaded, from the checkpoint's ``config.json`` (preflight)."""
    from transformers import AutoConfig

    family = getattr(AutoConfig.from_pretrained(model_path), "model_type", None)
    return None if family in PACKED_FAMILIES else _refusal(family)


def _refusal(family: str | None) -> str:
    return (f"padding_free supports the Qwen-VL families ({', '.join(PACKED_FAMILIES)}), whose packed log-probs are "
            f"tested equal to the padded ones; this model is {family!r}. Fix: set padding_free: false for the stage")


def rope_module(model: Any) -> Any:
    """The module owning ``get_rope_index`` (``Qwen2VLModel`` and peers), also under DDP, PEFT or accelerate wrappers."""
    for module in model.modules():
        if callable(getattr(module, "get_rope_index", None)) and "visual" in module._modules:
            return module
    return None


def packed_position_ids(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        mm_token_type_ids: torch.Tensor | None = None, image_grid_thw: torch.Tensor | None = None,
                        video_grid_thw: torch.Tensor | None = None, second_per_grid_ts: torch.Tensor | None = None,
                        ) -> torch.Tensor:
    """``(4, 1, N)`` positions of the padded batch's real tokens (``N = attention_mask.sum()``), row-major: text
    positions restarting at 0 per sequence, then the three mRoPE rows the padded forward would use."""
    mask = attention_mask.bool()
    if image_grid_thw is None and video_grid_thw is None:
        width = torch.arange(input_ids.size(1), device=input_ids.device)
        mrope = width.expand_as(input_ids)[mask].expand(3, -1)
    else:
        if mm_token_type_ids is None:
            raise ValueError("padding_free: a batch with images has no mm_token_type_ids (the processor returns them); "
                             "cannot compute its mRoPE positions. Fix: set padding_free: false for the stage")
        rope = rope_module(model)
        extra = {}
        if second_per_grid_ts is not None and "second_per_grid_ts" in inspect.signature(rope.get_rope_index).parameters:
            extra["second_per_grid_ts"] = second_per_grid_ts
        positions, _ = rope.get_rope_index(input_ids, mm_token_type_ids=mm_token_type_ids,
                                           image_grid_thw=image_grid_thw, video_grid_thw=video_grid_thw,
                                           attention_mask=attention_mask, **extra)
        mrope = positions[:, mask]
    text = sequence_positions(mask.sum(1))
    return torch.cat([text.to(mrope.device)[None], mrope]).unsqueeze(1)


def sequence_positions(lengths: torch.Tensor) -> torch.Tensor:
    """0..n-1 for each length n, concatenated.

    >>> sequence_positions(torch.tensor([3, 1, 2])).tolist()
    [0, 1, 2, 0, 0, 1]
    """
    starts = torch.cumsum(lengths, 0) - lengths
    return torch.arange(int(lengths.sum()), device=lengths.device) - torch.repeat_interleave(starts, lengths)


def pack_batch(model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """A padded batch (``input_ids``, ``attention_mask``, optional ``labels``, ``mm_token_type_ids``,
    ``token_type_ids`` and vision fields) as one packed row: no ``attention_mask``, ``position_ids`` from
    :func:`packed_position_ids`, each sequence's first label -100 (it would be predicted from the sequence before)."""
    bad = [k for k in _UNPACKABLE if inputs.get(k) is not None]
    if bad:
        raise ValueError(f"padding_free cannot pack a batch with {', '.join(bad)} (not a Qwen-VL batch). "
                         "Fix: set padding_free: false for the stage")
    mask = inputs["attention_mask"].bool()
    packed = {k: v for k, v in inputs.items() if k not in ("attention_mask", "position_ids")}
    packed["use_cache"] = False  # with a cache transformers ignores the packed positions and attends across sequences
    packed["position_ids"] = packed_position_ids(
        model, inputs["input_ids"], inputs["attention_mask"], inputs.get("mm_token_type_ids"),
        inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), inputs.get("second_per_grid_ts"))
    for key in ("input_ids", "labels", "mm_token_type_ids", "token_type_ids"):
        if isinstance(inputs.get(key), torch.Tensor) and inputs[key].shape == mask.shape:
            packed[key] = inputs[key][mask][None]
    if "labels" in packed:
        starts = packed["position_ids"][0, 0] == 0
        packed["labels"] = packed["labels"].masked_fill(starts[None], -100)
    return packed


def packed_logps_and_entropies(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                               batch_size: int | None = None, compute_entropy: bool = False,
                               compute_aux_loss: bool = False, pixel_values: torch.Tensor | None = None,
                               image_grid_thw: torch.Tensor | None = None, num_images: list[int] | None = None,
                               mm_token_type_ids: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                               autocast: Any = None, **others: Any) -> tuple[torch.Tensor, Any, Any]:
    """TRL's ``GRPOTrainer._get_per_token_logps_and_entropies`` (same arguments, same outputs: ``(B, logits_to_keep)``
    log-probs of the completion tokens, zero at padding) with each chunk of ``batch_size`` rows packed into one row.
    ``autocast``: a factory of the context each chunk's forward runs in (the trainer's ``accelerator.autocast``)."""
    bad = [k for k, v in others.items() if v is not None]
    if bad:
        raise ValueError(f"padding_free cannot pack a batch with {', '.join(bad)} (not a Qwen-VL batch). "
                         "Fix: set padding_free: false for the stage")
    batch_size = batch_size or input_ids.size(0)
    logps, entropies, aux = [], [], []
    for start in range(0, input_ids.size(0), batch_size):
        end = min(start + batch_size, input_ids.size(0))
        mask = attention_mask[start:end]
        chunk: dict[str, Any] = {"input_ids": input_ids[start:end], "attention_mask": mask}
        if mm_token_type_ids is not None:
            chunk["mm_token_type_ids"] = mm_token_type_ids[start:end]
        if token_type_ids is not None:
            chunk["token_type_ids"] = token_type_ids[start:end]
        if image_grid_thw is not None and pixel_values is not None:  # rows of each sample's images, as TRL slices them
            images = torch.tensor([0, *num_images]).cumsum(0)
            grid = image_grid_thw[images[start]:images[end]]
            rows = image_grid_thw[:images[start]].prod(-1).sum().item()
            chunk["image_grid_thw"] = grid
            chunk["pixel_values"] = pixel_values[rows:rows + grid.prod(-1).sum().item()]
        packed = pack_batch(model, chunk)

        # the completion tokens scored (TRL: every real token of the last logits_to_keep columns), by packed index
        real = mask.bool()
        scored = torch.zeros_like(real)
        scored[:, -logits_to_keep:] = real[:, -logits_to_keep:]
        index = (real.flatten().cumsum(0) - 1).view_as(real)[scored]
        shift_labels = torch.full_like(packed["input_ids"], -100)
        shift_labels[0, index - 1] = packed["input_ids"][0, index]  # predicted from the token before, same sequence
        if compute_aux_loss:
            packed["output_router_logits"] = True
        with autocast() if autocast is not None else contextlib.nullcontext():
            outputs = model(**packed, shift_labels=shift_labels, fused_lm_head=True)
        keep = scored[:, -logits_to_keep:]
        logps.append(_unpack(outputs.log_probs[0, index - 1], keep))
        if compute_entropy:
            entropies.append(_unpack(outputs.entropy[0, index - 1], keep))
        if compute_aux_loss:
            aux.append(outputs.aux_loss)
    return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None,
            torch.stack(aux).mean() if compute_aux_loss else None)


def _unpack(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Values of the kept positions back in the padded ``(B, logits_to_keep)`` layout, zero elsewhere (as TRL's)."""
    return values.new_zeros(keep.shape).masked_scatter(keep, values)
