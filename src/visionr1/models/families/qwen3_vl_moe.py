"""Qwen3-VL-MoE (Qwen3-VL-30B-A3B, 235B-A22B): Qwen3-VL's vision tower, tokens, template and mRoPE, with a
mixture-of-experts MLP in every language-model layer.

What differs from Qwen3-VL: the LM's MLP is a router (``mlp.gate``, a bare weight, not an ``nn.Linear``) over
fused expert weights (``mlp.experts.gate_up_proj`` / ``down_proj``, 3-D ``nn.Parameter`` tensors, not
``nn.Linear``). So LoRA adapts the attention projections only (``lora_targets``; PEFT's ``all-linear`` finds
the same LM modules plus the vision tower's linears): the experts and the router train only in full
fine-tuning. On CPU transformers runs the experts in its eager loop (one ``F.linear`` per chosen expert).
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

# A tiny model keeps the real routing shape in small: 4 experts of which 2 per token (real: 128, 8).
TINY_EXPERTS, TINY_TOP_K = 4, 2


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import Qwen3VLMoeConfig

    head_dim = p.hidden_size // p.num_heads
    text = text_config(p, vocab_size, ids, init_std)
    text.update(
        head_dim=head_dim,
        attention_bias=False,
        max_position_embeddings=262144,
        num_experts=TINY_EXPERTS,
        num_experts_per_tok=TINY_TOP_K,
        moe_intermediate_size=p.intermediate_size // 2,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        router_aux_loss_coef=0.001,
        tie_word_embeddings=False,
        # the real checkpoints' config carries it (vLLM reads it; transformers always renormalises the top-k)
        norm_topk_prob=True,
    )
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_interleaved": True,
        "mrope_section": mrope_section(head_dim, (24, 20, 20)),
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
        deepstack_visual_indexes=list(range(max(1, p.vision_depth - 1))),
    )
    return Qwen3VLMoeConfig(
        text_config=text,
        vision_config=vision,
        **special_token_fields(ids),
    )


def build_processor(family: str, tokenizer, p, chat_template: str):
    """The real checkpoints ship Qwen3-VL's processor classes unchanged."""
    from visionr1.models.families.qwen import build_processor as qwen_processor

    return qwen_processor("qwen3_vl", tokenizer, p, chat_template)


FAMILIES = [
    Family(
        name="qwen3_vl_moe",
        label="Qwen3-VL-MoE",
        example="Qwen/Qwen3-VL-30B-A3B-Instruct",
        tokens=Tokens(special=QWEN_SPECIAL, added=QWEN3_ADDED, model_max_length=262144),
        chat_template="qwen3_vl.jinja",  # the Instruct MoE checkpoints ship Qwen3-VL's template byte for byte
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        vision=("visual",),
        projector=(r"visual\.merger", r"visual\.deepstack_merger_list"),
        lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"),
        image_sharing_off="measured with tests/training/test_image_sharing.py and the family added to "
        "SHARED_FAMILIES: generation and the old/ref log-probs share exactly, but TRL's MoE loss forward (router "
        "logits on) still encodes every repeated image (496 rows instead of 248): left off until it does",
        build_config=build_config,
        build_processor=build_processor,
        image_tokens=qwen_image_tokens(32),
        patch_factor=32,
        notes="experts are fused 3-D parameters: LoRA adapts attention only; a tiny model has 4 experts, top-2",
    ),
]
