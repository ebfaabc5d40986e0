"""Gemma 3 (``gemma3``: google/gemma-3-4b-it and its 12B/27B peers): a SigLIP tower at ``model.vision_tower``,
its average-pooled patches projected by ``model.multi_modal_projector`` into a fixed number of tokens per image
(256 in the real checkpoints, whatever the image's size: it is resized to 896x896 first).

What Gemma 3 needs that the Qwen-VL families do not:
- the chat template writes ``<start_of_image>`` (the tokenizer's ``boi_token``) where an image goes; the
  processor expands it to ``\\n\\n<start_of_image>`` + 256 x ``<image_soft_token>`` + ``<end_of_image>\\n\\n``, so the
  tokenizer must carry the named tokens ``boi_token``, ``eoi_token`` and ``image_token`` the processor reads;
- ``token_type_ids`` mark the image tokens (attention is bidirectional inside an image): TRL passes them;
- the assistant role is ``model``, the turn ends with ``<end_of_turn>`` and a system prompt is folded into the
  first user turn (the real template does that; TRL ships the same template, byte for byte);
- no pixel budget: ``model.max_pixels`` only bounds what the loader stores, every image costs the same tokens;
- no native video: a video record's frames go in as images (``visionr1.data.video``), each a full image's tokens.
"""

from __future__ import annotations

from visionr1.models.families import Family, Tokens

# The real tokenizer's special tokens in id order (<pad>=0, <eos>=1, <bos>=2, <unk>=3, the turn markers at
# 105/106, <start_of_image>=255999, <end_of_image>=256000, <image_soft_token>=262144).
GEMMA3_SPECIAL = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)
PATCH = 14  # SigLIP's patch size, as in the real tower
TINY_IMAGE = 112  # the real tower sees 896x896 (64x64 patches pooled 4x4 -> 256 tokens); tiny: 8x8 pooled 2x2 -> 16
TINY_TOKENS = 16
REAL_TOKENS_PER_IMAGE = 256


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import Gemma3Config

    head_dim = p.hidden_size // p.num_heads
    text = dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        # The real 5:1 interleave of local (sliding, window 1024) and global layers, with one of each here.
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(p.num_layers)],
        sliding_window=1024,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1e6},
        },
        max_position_embeddings=131072,
        rms_norm_eps=1e-6,
        initializer_range=init_std,
        pad_token_id=ids["<pad>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        bos_token_id=ids["<bos>"],
    )
    vision = dict(
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        num_hidden_layers=p.vision_depth,
        num_attention_heads=p.vision_heads,
        image_size=TINY_IMAGE,
        patch_size=PATCH,
        vision_use_head=False,
        layer_norm_eps=1e-6,
    )
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=TINY_TOKENS,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        initializer_range=init_std,
        tie_word_embeddings=True,  # as the real checkpoints
    )


def build_processor(family: str, tokenizer, p, chat_template: str):
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    image = Gemma3ImageProcessor(
        size={"height": TINY_IMAGE, "width": TINY_IMAGE},
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
        do_pan_and_scan=False,
        resample=2,  # bilinear, as the real preprocessor_config
    )
    return Gemma3Processor(image_processor=image, tokenizer=tokenizer, chat_template=chat_template,
                           image_seq_length=TINY_TOKENS)


def image_tokens(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> int:
    """Tokens a real Gemma 3 processor makes of any image (no pan-and-scan): 256 soft tokens plus
    ``<start_of_image>`` and ``<end_of_image>`` (the blank lines around them are text)."""
    return REAL_TOKENS_PER_IMAGE + 2


def processor_image_tokens(processor, width: int, height: int) -> int:
    """Tokens this (loaded) Gemma 3 processor puts in a sequence for one image, blank lines included:
    ``full_image_sequence`` through its own tokenizer."""
    return len(processor.tokenizer(processor.full_image_sequence, add_special_tokens=False)["input_ids"])


FAMILIES = [
    Family(
        name="gemma3",
        label="Gemma 3",
        example="google/gemma-3-4b-it",
        tokens=Tokens(
            special=GEMMA3_SPECIAL,
            eos="<end_of_turn>",  # the Instruct model's generation_config stops at <end_of_turn> (and <eos>)
            pad="<pad>",
            bos="<bos>",
            model_max_length=131072,
            named=(("boi_token", "<start_of_image>"), ("eoi_token", "<end_of_image>"),
                   ("image_token", "<image_soft_token>")),
        ),
        chat_template="gemma3.jinja",
        image_token="<image_soft_token>",
        prompt_image_token="<start_of_image>",
        video_token=None,
        vision=("vision_tower",),
        projector=("multi_modal_projector",),
        image_sharing_off=(
            "the per-group image sharing wraps Qwen-VL's get_image_features(pixel_values, image_grid_thw) and its "
            "processor's (pixel_values, image_grid_thw) output; Gemma 3's tower takes fixed 896x896 images "
            "without a grid, so the wrapper does not apply (it leaves the model alone) and sharing is not verified"
        ),
        build_config=build_config,
        build_processor=build_processor,
        image_tokens=image_tokens,
        processor_image_tokens=processor_image_tokens,
        patch_factor=None,
        notes="fixed tokens per image; named boi/eoi/image tokens; token_type_ids; no native video",
    ),
]
