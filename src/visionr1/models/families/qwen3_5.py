"""Qwen3.5 (natively multimodal: every checkpoint takes images and video) and its MoE sibling Qwen3.5-MoE.

What differs from Qwen3-VL:
- the language model is hybrid: three of every four layers are linear attention (a gated delta net:
  ``linear_attn.in_proj_qkv`` / ``in_proj_z`` / ``in_proj_b`` / ``in_proj_a``, a causal depthwise ``conv1d``,
  ``out_proj``), the fourth full attention with an output gate; full attention rotates only a quarter of
  each head (``partial_rotary_factor`` 0.25), so the mRoPE sections split 32, not 64, frequencies.
  Without the flash-linear-attention / causal-conv1d kernels (never on CPU) transformers runs its own torch
  implementation (``torch_chunk_gated_delta_rule``, a ``conv1d`` with ``silu``): that is what the tiny models
  and the CPU tests use. Padding is masked by zeroing the padded positions' inputs (the recurrence then
  carries a zero state through them), so left padding leaves each prompt's log-probs as they are alone
  (tests/training/test_padding.py);
- the tokenizer is ``Qwen3_5Tokenizer`` (digits split one by one) and the chat template opens a ``<think>``
  block in the generation prompt (Qwen3.5-4B and larger ship ``enable_thinking`` on by default);
- the vision tower is Qwen3-VL's without deepstack; the projector is ``visual.merger``.

LoRA adapts the full-attention and linear-attention projections and the MLP (``lora_targets``); the
linear attention's ``conv1d``, ``A_log`` and ``dt_bias`` are not linear layers and train only in full
fine-tuning. Qwen3.5-MoE's experts are fused 3-D parameters (as in Qwen3-VL-MoE): not LoRA targets; its
shared expert is (``shared_expert.gate_proj`` ... match the MLP names).
"""

from __future__ import annotations

from visionr1.models.families import Family, Tokens
from visionr1.models.families.qwen import (
    QWEN3_ADDED,
    QWEN_SPECIAL,
    mrope_section,
    qwen_image_tokens,
    special_token_fields,
    text_config,
)

# The real split of the 32 rotary frequencies of a full-attention head (head_dim 256 x 0.25 / 2).
REAL_MROPE = (11, 11, 10)
PARTIAL_ROTARY = 0.25
TINY_EXPERTS, TINY_TOP_K = 4, 2


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import Qwen3_5Config, Qwen3_5MoeConfig

    head_dim = p.hidden_size // p.num_heads
    text = text_config(p, vocab_size, ids, init_std)
    # Linear attention widths in the real proportions (real: 16 key heads of 128, 32 value heads of 128).
    text.update(
        head_dim=head_dim,
        attention_bias=False,
        max_position_embeddings=262144,
        tie_word_embeddings=False,
        linear_conv_kernel_dim=4,
        linear_key_head_dim=head_dim,
        linear_value_head_dim=head_dim,
        linear_num_key_heads=p.num_heads // 2,
        linear_num_value_heads=p.num_heads,
        # at least one full-attention layer: the real pattern puts it last of every four
        layer_types=["linear_attention" if (i + 1) % min(4, p.num_layers) else "full_attention"
                     for i in range(p.num_layers)],
    )
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 1e7,
        "partial_rotary_factor": PARTIAL_ROTARY,
        "mrope_interleaved": True,
        "mrope_section": mrope_section(int(head_dim * PARTIAL_ROTARY), REAL_MROPE),
    }
    vision = dict(
        depth=p.vision_depth,
        num_heads=p.vision_heads,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        initializer_range=init_std,
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        out_hidden_size=p.hidden_size,
        num_position_embeddings=2304,
    )
    cls = Qwen3_5Config
    if family == "qwen3_5_moe":
        del text["intermediate_size"]
        text.update(num_experts=TINY_EXPERTS, num_experts_per_tok=TINY_TOP_K,
                    moe_intermediate_size=p.intermediate_size // 2,
                    shared_expert_intermediate_size=p.intermediate_size // 2)
        cls = Qwen3_5MoeConfig
    return cls(
        text_config=text,
        vision_config=vision,
        **special_token_fields(ids),
    )


def build_processor(family: str, tokenizer, p, chat_template: str):
    """Qwen3.5 checkpoints ship Qwen3-VL's processor classes (transformers maps ``qwen3_5`` to them)."""
    from visionr1.models.families.qwen import build_processor as qwen_processor

    return qwen_processor("qwen3_vl", tokenizer, p, chat_template)


_LINEAR_ATTENTION = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj")
_COMMON = dict(
    tokens=Tokens(special=QWEN_SPECIAL, added=QWEN3_ADDED, model_max_length=262144,
                  tokenizer_class=("transformers.models.qwen3_5.tokenization_qwen3_5", "Qwen3_5Tokenizer")),
    chat_template="qwen3_5.jinja",
    image_token="<|image_pad|>",
    video_token="<|video_pad|>",
    vision=("visual",),
    projector=(r"visual\.merger",),
    build_config=build_config,
    build_processor=build_processor,
    image_tokens=qwen_image_tokens(32),
    patch_factor=32,
)

FAMILIES = [
    Family(name="qwen3_5", label="Qwen3.5", example="Qwen/Qwen3.5-9B",
           lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", *_LINEAR_ATTENTION, "gate_proj", "up_proj",
                         "down_proj"),
           # exact: tests/training/test_image_sharing.py passes with qwen3_5 in SHARED_FAMILIES (processor output
           # identical; log-probs, loss and gradients equal; the tower runs once per unique image)
           image_sharing_off=None,
           notes="hybrid linear attention (torch fallback on CPU); the template opens <think> itself",
           **_COMMON),
    Family(name="qwen3_5_moe", label="Qwen3.5-MoE", example="Qwen/Qwen3.5-35B-A3B",
           lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", *_LINEAR_ATTENTION, "gate_proj", "up_proj",
                         "down_proj"),
           notes="Qwen3.5 with fused experts (not LoRA targets) and a shared expert; 4 tiny experts, top-2",
           image_sharing_off="measured with tests/training/test_image_sharing.py and the family added to "
           "SHARED_FAMILIES: generation and the old/ref log-probs share exactly, but TRL's MoE loss forward (router "
           "logits on) still encodes every repeated image (496 rows instead of 248): left off until it does",
           **_COMMON),
]
