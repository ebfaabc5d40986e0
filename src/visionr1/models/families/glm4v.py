"""GLM-4.1V-Thinking (``glm4v``): a GLM-4 language model with 3-D mRoPE over half of each head, and a vision
tower at ``model.visual`` whose projector is a strided ``downsample`` convolution plus a ``merger`` MLP.

What differs from the Qwen-VL families:
- tokens: ``<|image|>`` is the placeholder (between ``<|begin_of_image|>`` / ``<|end_of_image|>``), turns
  are ``<|system|>`` / ``<|user|>`` / ``<|assistant|>`` after a ``[gMASK]<sop>`` prefix, and nothing closes
  an assistant turn: SFT appends the eos ``<|endoftext|>`` to completions (``training.sft.close_open_turns``),
  and generation stops there or at the next role token (``<|user|>``, ``<|observation|>``: the generation
  config's stops). Our template renders assistant/system content given as text parts (TRL always passes it
  so); the real GLM-4.1V file prints it raw (a list's repr): the one departure from the real template;
- the image budget: GLM's ``smart_resize`` counts an image as two frames, so ``longest_edge`` (the recipe's
  ``max_pixels``) allows ``h * w <= max_pixels / 2`` and an image costs ``(h / 28) * (w / 28)`` tokens of
  that (:func:`glm_image_tokens`); the real default is 28*28*2*6144 = 9,633,792, i.e. 6,144 tokens;
- video frames are each framed as an image with its timestamp (``replace_frame_token_id``), two frames
  per temporal patch;
- the MLP is a fused ``gate_up_proj``: LoRA targets it by that name.

GLM-4.1V-Thinking's own answer format is ``<think>...</think><answer>...</answer>``, Vision-R1's; the real
tokenizer has ``<think>`` / ``</think>`` as special tokens, ours keeps them non-special (like every family's)
so rewards see them after ``skip_special_tokens`` decoding.
"""

from __future__ import annotations

from visionr1.models.families import Family, Tokens

# In the real tokenizer's order (ids 151329..): <|endoftext|> first; <|image|> = 151343, <|video|> = 151344.
GLM_SPECIAL = (
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|image|>",
    "<|video|>",
    "<|begin_of_box|>",
    "<|end_of_box|>",
)
PATCH, MERGE, TEMPORAL = 14, 2, 2
FACTOR = PATCH * MERGE
REAL_MROPE = (8, 12, 12)  # of the 32 rotary frequencies (head_dim 128 x partial_rotary_factor 0.5 / 2)
PARTIAL_ROTARY = 0.5
DEFAULT_MIN_PIXELS = 112 * 112  # the real processor's shortest_edge


def glm_image_tokens(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> int:
    """Image tokens GLM-4.1V's processor makes of a ``width`` x ``height`` image (its own ``smart_resize``,
    which counts the image as ``temporal_patch_size`` = 2 frames against the budget).

    >>> glm_image_tokens(112, 112, None, 12544 * 2), glm_image_tokens(224, 224, None, 12544 * 2)
    (16, 16)
    """
    from transformers.models.glm4v.image_processing_glm4v import smart_resize

    from visionr1.data.spec import DEFAULT_MAX_PIXELS

    h, w = smart_resize(num_frames=TEMPORAL, height=height, width=width, temporal_factor=TEMPORAL, factor=FACTOR,
                        min_pixels=min_pixels or DEFAULT_MIN_PIXELS, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    return (h // FACTOR) * (w // FACTOR)


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import Glm4vConfig

    from visionr1.models.families.qwen import mrope_section

    head_dim = p.hidden_size // p.num_heads
    text = dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=65536,
        rms_norm_eps=1e-5,
        initializer_range=init_std,
        pad_token_id=ids["<|endoftext|>"],
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": PARTIAL_ROTARY,
            "mrope_section": mrope_section(int(head_dim * PARTIAL_ROTARY), REAL_MROPE),
        },
    )
    vision = dict(
        depth=p.vision_depth,
        num_heads=p.vision_heads,
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.intermediate_size,  # the merger's context width (real: the LM's 13696)
        out_hidden_size=p.hidden_size,
        patch_size=PATCH,
        spatial_merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
        image_size=336,  # the real learnt position grid (24 x 24 patches), interpolated per image
        initializer_range=init_std,
    )
    return Glm4vConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
        tie_word_embeddings=False,
    )


def build_processor(family: str, tokenizer, p, chat_template: str):
    from transformers import Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor

    from visionr1.models.families.qwen import CLIP_MEAN, CLIP_STD

    # longest_edge counts two frames: max_image_tokens tokens of 28x28 px per image.
    max_pixels = p.max_image_tokens * FACTOR * FACTOR * TEMPORAL
    geometry = dict(patch_size=PATCH, temporal_patch_size=TEMPORAL, merge_size=MERGE, image_mean=CLIP_MEAN,
                    image_std=CLIP_STD)
    image = Glm4vImageProcessor(size={"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": max_pixels}, **geometry)
    video = Glm4vVideoProcessor(size={"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": 16 * max_pixels},
                                max_image_size={"longest_edge": max_pixels}, fps=2, num_frames=16, **geometry)
    return Glm4vProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                          chat_template=chat_template)


FAMILIES = [
    Family(
        name="glm4v",
        label="GLM-4.1V",
        example="zai-org/GLM-4.1V-9B-Thinking",
        tokens=Tokens(special=GLM_SPECIAL, eos="<|endoftext|>", pad="<|endoftext|>", model_max_length=65536,
                      stop=("<|user|>", "<|observation|>")),
        chat_template="glm4v.jinja",
        image_token="<|image|>",
        video_token="<|video|>",
        vision=("visual",),
        projector=(r"visual\.merger", r"visual\.downsample"),
        lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
        image_sharing_off="the sharing wrapper assumes Qwen-VL's per-image feature layout; GLM's tower returns "
        "another (tests/training/test_image_sharing.py with glm4v added: split_with_sizes fails in the loss "
        "forward)",
        build_config=build_config,
        build_processor=build_processor,
        image_tokens=glm_image_tokens,
        patch_factor=FACTOR,
        budget_frames=TEMPORAL,
        notes="GLM smart_resize counts an image as 2 frames (tokens <= max_pixels / 2 / 784); no end-of-turn "
        "token (eos <|endoftext|>, stops at <|user|>)",
    ),
]
