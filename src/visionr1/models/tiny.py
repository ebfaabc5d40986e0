"""Tiny, randomly initialised Qwen-VL models of the real architectures, built locally (no download).

`build_tiny_model` writes a directory that loads exactly like a real checkpoint:
`AutoModelForImageTextToText.from_pretrained(dir)` gives the real model class (`Qwen2_5_VLForConditionalGeneration`,
...), `AutoProcessor.from_pretrained(dir)` the real processor class with the family's real image and video
processors, tokenizer class (`Qwen2Tokenizer`) and chat template. Only the widths and depths are small, so
every test and the CPU demo go through the code paths (mRoPE, window attention, patch merging, deepstack,
placeholder expansion, TRL's template detection) a real Qwen-VL takes.

Departures from the real checkpoints, all for speed or because nothing can be downloaded:
- widths/depths are tiny and the weights random (fixed seed: the same seed gives the same weights), drawn
  with std 1/sqrt(width) instead of 0.02 (see `init_std`: with 0.02 a tiny model barely learns to look);
- the tokenizer is a byte-level BPE of ~950 tokens learnt from a built-in corpus (see `tokenizer.py`),
  with `<think>`, `</think>`, `<answer>`, `</answer>` as single tokens;
- the image processors' max_pixels allow at most `max_image_tokens` tokens per image (64 by default),
  so a 112x112 image costs 16 tokens; weights are stored in float32 (CPU) instead of bfloat16;
- the generation config is greedy with no repetition penalty (the real Instruct ones sample with
  top_k=1 and repetition_penalty=1.05); trainers and evaluation pass their own sampling settings anyway.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
SIZES = ("test", "demo")
INFO_FILE = "visionr1_tiny.json"  # written last: its presence marks a complete build


@dataclass(frozen=True)
class TinyPreset:
    """Widths and depths of a tiny model (the same shape for every family; each maps it to its config)."""

    hidden_size: int  # language model width
    num_layers: int
    num_heads: int  # head_dim = hidden_size // num_heads; mRoPE sections are scaled to it
    num_kv_heads: int
    intermediate_size: int
    vision_hidden_size: int
    vision_depth: int
    vision_heads: int
    vision_intermediate_size: int
    max_image_tokens: int = 64  # per image, after the 2x2 merge: bounds the processors' max_pixels


PRESETS: dict[str, TinyPreset] = {
    # ~0.3M parameters; loads in ~0.1 s and generates 32 tokens in ~0.1 s on one CPU core: for unit tests.
    "test": TinyPreset(
        hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
        vision_hidden_size=32, vision_depth=2, vision_heads=2, vision_intermediate_size=64,
    ),
    # ~1.3M parameters; ~0.03 CPU-s forward+backward per 200-token sample with one 112px image.
    # Chosen by measurement (SFT on easy counting with reasoning, batch 8, lr 1e-3, one CPU thread): a 4.1M
    # model (width 256) reached the same loss per step (0.117 vs 0.114 at step 600, 0.107 vs 0.106 at 800)
    # at 2.4x the cost per step, and 6.3M / 11.3M cost 3.5x / 6x. At a demo's budget steps, not parameters,
    # are what the model lacks, so the demo gets the size that takes the most steps per minute.
    "demo": TinyPreset(
        hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=384,
        vision_hidden_size=64, vision_depth=2, vision_heads=2, vision_intermediate_size=128,
    ),
}

# Patch geometry of the real vision towers (so the real image processors' resizing applies unchanged).
_PATCH = {"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16}
_MERGE = 2
_TEMPORAL = 2
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _mrope_section(head_dim: int, real: tuple[int, int, int]) -> list[int]:
    """Scale the real (t, h, w) mRoPE split (which sums to 64 = head_dim/2 of 128) to a smaller head_dim.

    >>> _mrope_section(16, (16, 24, 24)), _mrope_section(32, (24, 20, 20))
    ([2, 3, 3], [6, 5, 5])
    """
    half = head_dim // 2
    sec = [max(1, round(r * half / sum(real))) for r in real]
    sec[0] += half - sum(sec)
    return sec


def init_std(p: TinyPreset) -> float:
    """Std of the random init: 1/sqrt(width), the real models' 0.02 at width 3584 (~1.2/sqrt(3584)) scaled down.

    Keeping 0.02 at width 128 makes attention start so flat that a model cannot learn to look at a small object
    within a CPU budget (measured: a one-object colour question stays at chance after 200 steps; with
    1/sqrt(width) it is solved in ~60).

    >>> init_std(PRESETS["test"])
    0.125
    """
    return round(p.hidden_size**-0.5, 4)


def _config(family: str, p: TinyPreset, vocab_size: int, ids: dict[str, int]):
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    head_dim = p.hidden_size // p.num_heads
    text = dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        initializer_range=init_std(p),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    special = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    # The real patch geometry, so the real image processors' resizing applies unchanged.
    vision = dict(
        depth=p.vision_depth,
        num_heads=p.vision_heads,
        patch_size=_PATCH[family],
        spatial_merge_size=_MERGE,
        temporal_patch_size=_TEMPORAL,
        initializer_range=init_std(p),
    )
    if family == "qwen2_vl":
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": _mrope_section(head_dim, (16, 24, 24)),
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
            "mrope_section": _mrope_section(head_dim, (16, 24, 24)),
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
    if family == "qwen3_vl":
        text.update(head_dim=head_dim, attention_bias=False, max_position_embeddings=262144)
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_interleaved": True,
            "mrope_section": _mrope_section(head_dim, (24, 20, 20)),
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
    raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")


def chat_template(family: str) -> str:
    """The real chat template of the family (byte-identical to the Instruct checkpoints' and to TRL's copy,
    so TRL recognises it and swaps in its `{% generation %}` training variant for assistant-only loss)."""
    name = "qwen3_vl.jinja" if family == "qwen3_vl" else "qwen2_vl.jinja"  # Qwen2-VL and 2.5-VL ship the same
    return resources.files("visionr1.models").joinpath("templates", name).read_text(encoding="utf-8")


def _processor(family: str, tokenizer, p: TinyPreset):
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    factor = _PATCH[family] * _MERGE  # pixels per side of one LM token
    max_pixels = p.max_image_tokens * factor * factor
    min_pixels = 4 * factor * factor  # real: 56*56 (Qwen2/2.5) = 4 tokens; Qwen3-VL's 65536 is too big here
    mean, std = (_CLIP_MEAN, _CLIP_STD) if family != "qwen3_vl" else ([0.5] * 3, [0.5] * 3)
    geometry = dict(patch_size=_PATCH[family], temporal_patch_size=_TEMPORAL, merge_size=_MERGE,
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
    return cls(image_processor=image, tokenizer=tokenizer, video_processor=video, chat_template=chat_template(family))


def count_parameters(model) -> dict[str, int]:
    """Parameters in total and per part (vision tower, language model incl. embeddings and head)."""
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return {"total": total, "vision": vision, "language": total - vision}


def build_tiny_model(family: str, size: str | TinyPreset, out_dir: str | Path, seed: int = 0) -> Path:
    """Build a tiny random `family` model into `out_dir` (created); returns the directory.

    `size` is a preset name (`test`, `demo`) or a `TinyPreset` for experiments with other shapes.
    Deterministic: the same (family, size, seed) and library versions give the same tokenizer and weights.
    """
    if isinstance(size, TinyPreset):
        return _build(family, size, Path(out_dir), seed, size_name="custom")
    if size not in PRESETS:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(PRESETS)}")
    return _build(family, PRESETS[size], Path(out_dir), seed, size_name=size)


def _build(family: str, preset: TinyPreset, out: Path, seed: int, size_name: str) -> Path:
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    from visionr1.models.tokenizer import train_tokenizer

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    tokenizer = train_tokenizer(family)
    tokenizer.chat_template = chat_template(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                           "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    vocab_size = -(-len(tokenizer) // 64) * 64  # padded like the real 152064-row embedding
    config = _config(family, preset, vocab_size, ids)
    config.dtype = "float32"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    processor = _processor(family, tokenizer, preset)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    info = {
        "family": family,
        "size": size_name,
        "seed": seed,
        "preset": dataclasses.asdict(preset),
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "build_key": build_key(family, preset),
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def build_key(family: str, preset: TinyPreset) -> str:
    """Hash of everything a build depends on: this code, the tokenizer corpus, templates, library versions."""
    import tokenizers
    import torch
    import transformers

    from visionr1.models import tokenizer as tok_module

    h = hashlib.sha256()
    for part in (
        family,
        json.dumps(dataclasses.asdict(preset), sort_keys=True),
        Path(__file__).read_text(encoding="utf-8"),
        Path(tok_module.__file__).read_text(encoding="utf-8"),
        "\n".join(tok_module.corpus()),
        chat_template(family),
        transformers.__version__,
        tokenizers.__version__,
        torch.__version__.split("+")[0],
    ):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:12]


def default_cache_root() -> Path:
    """$VISIONR1_CACHE, else ~/.cache/visionr1."""
    return Path(os.environ.get("VISIONR1_CACHE") or Path.home() / ".cache" / "visionr1")


def get_tiny_model(family: str = "qwen2_5_vl", size: str = "test", cache_root: str | Path | None = None) -> Path:
    """Path of a built tiny model, building it once into `cache_root/tiny/<family>-<size>-<key>` (seed 0).

    The key hashes the builder code and its inputs, so a code change builds a fresh directory. Safe under
    concurrent callers: each builds into a private temporary directory and renames it into place.
    """
    if size not in PRESETS:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(PRESETS)}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / "tiny" / f"{family}-{size}-{build_key(family, PRESETS[size])}"
    if (target / INFO_FILE).is_file():
        return target
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        build_tiny_model(family, size, tmp, seed=0)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / INFO_FILE).is_file():  # not a finished concurrent build: a stale partial one
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
