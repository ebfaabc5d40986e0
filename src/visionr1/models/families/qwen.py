"""The Qwen-VL families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): 3-D mRoPE, ``<|image_pad|>`` placeholders, the
``smart_resize`` image processor (one token per 28x28 px, 32x32 for Qwen3-VL), the vision tower at
``model.visual`` with its merger (and Qwen3-VL's deepstack mergers) as the projector."""

from __future__ import annotations

from visionr1.models.families import Family, Tokens

# Special tokens, in the order (and so the relative ids) of the real checkpoints' added_tokens_decoder.
QWEN_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Non-special added tokens of the real tokenizers (decoded even with skip_special_tokens=True).
QWEN2_5_ADDED = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN3_ADDED = QWEN2_5_ADDED + ("<tool_response>", "</tool_response>", "<think>", "</think>")

PATCH = {"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16}
MERGE = 2
TEMPORAL = 2
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def mrope_section(head_dim: int, real: tuple[int, int, int]) -> list[int]:
    """Scale the real (t, h, w) mRoPE split (which sums to 64 = head_dim/2 of 128) to a smaller head_dim.

    >>> mrope_section(16, (16, 24, 24)), mrope_section(32, (24, 20, 20))
    ([2, 3, 3], [6, 5, 5])
    """
    half = head_dim // 2
    sec = [max(1, round(r * half / sum(real))) for r in real]
    sec[0] += half - sum(sec)
    return sec


def qwen_image_tokens(factor: int):
    """Image tokens the Qwen-VL processor makes of a ``width`` x ``height`` image (its own ``smart_resize``)."""

    def tokens(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> int:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        from visionr1.data.budget import DEFAULT_MIN_PIXELS
        from visionr1.data.spec import DEFAULT_MAX_PIXELS

        h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels or DEFAULT_MIN_PIXELS,
                            max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
        return (h // factor) * (w // factor)

    return tokens


def text_config(p, vocab_size: int, ids: dict[str, int], init_std: float) -> dict:
    """The language model's config fields shared by the Qwen-VL families."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        initializer_range=init_std,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )


def special_token_fields(ids: dict[str, int]) -> dict:
    """The top-level config fields naming the Qwen vision tokens (every family built on Qwen's tokens)."""
    return dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    head_dim = p.hidden_size // p.num_heads
    text = text_config(p, vocab_size, ids, init_std)
    special = special_token_fields(ids)
    # The real patch geometry, so the real image processors' resizing applies unchanged.
    vision = dict(
        depth=p.vision_depth,
        num_heads=p.vision_heads,
        patch_size=PATCH[family],
        spatial_merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
        initializer_range=init_std,
    )
    if family == "qwen2_vl":
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": mrope_section(head_dim, (16, 24, 24)),
        }
        vision.update(
            embed_dim=p.vision_hidden_size,
            hidden_size=p.hidden_size,  # Qwen2-VL's merger outputs the LM width under this name
            mlp_ratio=p.vision_intermediate_size // p.vision_hidden_size,
        )
        return Qwen2VLConfig(text_config=text, vision_config=vision, **special)
    if family == "qwen2_5_vl":
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": mrope_section(head_dim, (16, 24, 24)),
        }
        # Window attention in every block but the last, like the real tower's full-attention [7, 15, 23, 31].
        vision.update(
            hidden_size=p.vision_hidden_size,
            intermediate_size=p.vision_intermediate_size,
            out_hidden_size=p.hidden_size,
            window_size=112,
            tokens_per_second=2,
            fullatt_block_indexes=[p.vision_depth - 1],
        )
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
    # qwen3_vl
    text.update(head_dim=head_dim, attention_bias=False, max_position_embeddings=262144)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_interleaved": True,
        "mrope_section": mrope_section(head_dim, (24, 20, 20)),
    }
    # Deepstack: features of early vision blocks are added into the first LM layers, as in the real
    # model (blocks [8, 16, 24] of 27). The 48x48 learnt position grid is the real one.
    vision.update(
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        out_hidden_size=p.hidden_size,
        num_position_embeddings=2304,
        deepstack_visual_indexes=list(range(max(1, p.vision_depth - 1))),
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, **special)


def build_processor(family: str, tokenizer, p, chat_template: str):
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    factor = PATCH[family] * MERGE  # pixels per side of one LM token
    max_pixels = p.max_image_tokens * factor * factor
    min_pixels = 4 * factor * factor  # real: 56*56 (Qwen2/2.5) = 4 tokens; Qwen3-VL's 65536 is too big here
    mean, std = (CLIP_MEAN, CLIP_STD) if family != "qwen3_vl" else ([0.5] * 3, [0.5] * 3)
    geometry = dict(patch_size=PATCH[family], temporal_patch_size=TEMPORAL, merge_size=MERGE,
                    image_mean=mean, image_std=std)
    image = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **geometry)
    if family == "qwen3_vl":
        # size bounds the whole clip (frames x pixels), as in the real Qwen3-VL video preprocessor config.
        video = Qwen3VLVideoProcessor(size={"shortest_edge": min_pixels, "longest_edge": 16 * max_pixels},
                                      fps=2, min_frames=2, max_frames=16, **geometry)
        cls = Qwen3VLProcessor
    else:
        video = Qwen2VLVideoProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels // 4},
                                      cap_pixels_per_frame=True, **geometry)
        cls = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
    return cls(image_processor=image, tokenizer=tokenizer, video_processor=video, chat_template=chat_template)


_COMMON = dict(
    image_token="<|image_pad|>",
    video_token="<|video_pad|>",
    vision=("visual",),
    projector=(r"visual\.merger", r"visual\.deepstack_merger_list"),
    image_sharing_off=None,
    padding_free=True,
    build_config=build_config,
    build_processor=build_processor,
)

FAMILIES = [
    Family(name="qwen2_vl", label="Qwen2-VL", example="Qwen/Qwen2-VL-7B-Instruct",
           tokens=Tokens(special=QWEN_SPECIAL, model_max_length=32768), chat_template="qwen2_vl.jinja",
           image_tokens=qwen_image_tokens(28), patch_factor=28, **_COMMON),
    # Qwen2-VL and 2.5-VL ship the same chat template.
    Family(name="qwen2_5_vl", label="Qwen2.5-VL", example="Qwen/Qwen2.5-VL-7B-Instruct",
           tokens=Tokens(special=QWEN_SPECIAL, added=QWEN2_5_ADDED, model_max_length=131072),
           chat_template="qwen2_vl.jinja", image_tokens=qwen_image_tokens(28), patch_factor=28, **_COMMON),
    Family(name="qwen3_vl", label="Qwen3-VL", example="Qwen/Qwen3-VL-8B-Instruct",
           tokens=Tokens(special=QWEN_SPECIAL, added=QWEN3_ADDED, model_max_length=262144),
           chat_template="qwen3_vl.jinja", image_tokens=qwen_image_tokens(32), patch_factor=32, **_COMMON),
]
