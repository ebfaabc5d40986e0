"""InternVL 3 / 3.5 in transformers' own format (``internvl``: OpenGVLab/InternVL3-2B-hf, InternVL3-8B-hf,
InternVL3_5-*-HF): an InternViT tower at ``model.vision_tower``, a pixel-shuffle (0.5) + MLP projector at
``model.multi_modal_projector``, and a Qwen2.5 (InternVL3) or Qwen3 (InternVL3.5) language model.

What InternVL needs that the Qwen-VL families do not:
- dynamic tiling instead of a pixel budget: the image processor (``GotOcr2ImageProcessor``) cuts an image into
  1..``max_patches`` (12) tiles of 448x448 on the grid closest to its aspect ratio, plus a thumbnail when there
  is more than one tile; each tile costs 256 tokens, and ``<img>`` / ``</img>`` wrap the image;
- the chat template writes ``<IMG_CONTEXT>\\n`` per image (``<video>\\n`` per video) and the processor expands
  it, so the tokenizer carries the named tokens ``start_image_token``, ``end_image_token``,
  ``context_image_token`` and ``video_token``;
- ``pixel_values`` are indexed by tile, not by image: TRL recovers the tiles per image itself (``num_patches``).
"""

from __future__ import annotations

from visionr1.models.families import Family, Tokens
from visionr1.models.families.qwen import CLIP_MEAN, CLIP_STD, QWEN2_5_ADDED, QWEN_SPECIAL

# Qwen2.5's special tokens, then InternVL's (the real ids follow Qwen2.5's: <img>=151665, ..., <IMG_CONTEXT>=151667).
INTERNVL_SPECIAL = QWEN_SPECIAL + (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
)
PATCH = 14
TINY_TILE = 56  # real 448 (32x32 patches, pixel-shuffled 0.5 -> 256 tokens); tiny 56: 4x4 -> 4 tokens per tile
TINY_MAX_TILES = 4  # real 12
REAL_TILE, REAL_MAX_TILES, REAL_TOKENS_PER_TILE = 448, 12, 256


def build_config(family: str, p, vocab_size: int, ids: dict[str, int], init_std: float):
    from transformers import InternVLConfig

    text = dict(
        model_type="qwen2",
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        rms_norm_eps=1e-6,
        initializer_range=init_std,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        num_hidden_layers=p.vision_depth,
        num_attention_heads=p.vision_heads,
        image_size=[TINY_TILE, TINY_TILE],
        patch_size=[PATCH, PATCH],
        initializer_range=init_std,
    )
    return InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=tokens_per_tile(TINY_TILE),
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        tie_word_embeddings=False,  # InternVL3-8B: untied, like its Qwen2.5-7B
    )


def tokens_per_tile(tile: int) -> int:
    """``(tile / 14)^2 * 0.5^2``: 256 for the real 448 px tile.

    >>> tokens_per_tile(448), tokens_per_tile(56)
    (256, 4)
    """
    return (tile // PATCH) ** 2 // 4


def build_processor(family: str, tokenizer, p, chat_template: str):
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    size = {"height": TINY_TILE, "width": TINY_TILE}
    image = GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=TINY_MAX_TILES,
                                  image_mean=CLIP_MEAN, image_std=CLIP_STD)
    video = InternVLVideoProcessor(size=size, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return InternVLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                             image_seq_length=tokens_per_tile(TINY_TILE), chat_template=chat_template)


def tiles(width: int, height: int, tile: int, max_tiles: int) -> int:
    """Tiles (thumbnail included) InternVL's image processor cuts a ``width`` x ``height`` image into."""
    from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

    if max_tiles <= 1:
        return 1
    cols, rows = get_optimal_tiled_canvas((height, width), (tile, tile), 1, max_tiles)
    return 1 + cols * rows if cols * rows > 1 else 1


def image_tokens(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> int:
    """Tokens a real InternVL3 processor (448 px tiles, up to 12 + a thumbnail) makes of an image, ``<img>`` and
    ``</img>`` included; the pixel budget does not enter (the image is tiled, not resized to a budget).

    >>> image_tokens(448, 448, None, None), image_tokens(896, 448, None, None)
    (258, 770)
    """
    return 2 + REAL_TOKENS_PER_TILE * tiles(width, height, REAL_TILE, REAL_MAX_TILES)


def processor_image_tokens(processor, width: int, height: int) -> int:
    """Tokens this (loaded) InternVL processor makes of one image: its own tile count and tokens per tile."""
    n = processor.image_processor.get_number_of_image_patches(height, width, {})
    return 2 + processor.image_seq_length * n


FAMILIES = [
    Family(
        name="internvl",
        label="InternVL",
        example="OpenGVLab/InternVL3-8B-hf",
        tokens=Tokens(
            special=INTERNVL_SPECIAL,
            added=QWEN2_5_ADDED,
            model_max_length=32768,
            named=(("start_image_token", "<img>"), ("end_image_token", "</img>"),
                   ("context_image_token", "<IMG_CONTEXT>"), ("video_token", "<video>")),
        ),
        chat_template="internvl.jinja",
        image_token="<IMG_CONTEXT>",
        prompt_image_token="<IMG_CONTEXT>",
        video_token="<video>",
        vision=("vision_tower",),
        projector=("multi_modal_projector",),
        image_sharing_off=(
            "the per-group image sharing wraps Qwen-VL's get_image_features(pixel_values, image_grid_thw); "
            "InternVL's pixel_values are tiles without a grid, so the wrapper does not apply (it leaves the model "
            "alone) and sharing is not verified"
        ),
        build_config=build_config,
        build_processor=build_processor,
        image_tokens=image_tokens,
        processor_image_tokens=processor_image_tokens,
        patch_factor=None,
        notes="tiles instead of a pixel budget; named img/IMG_CONTEXT/video tokens; tile-indexed pixel_values",
    ),
]
