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
import sys
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from visionr1.models import families

FAMILIES = families.names()
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

def init_std(p: TinyPreset) -> float:
    """Std of the random init: 1/sqrt(width), the real models' 0.02 at width 3584 (~1.2/sqrt(3584)) scaled down.

    Keeping 0.02 at width 128 makes attention start so flat that a model cannot learn to look at a small object
    within a CPU budget (measured: a one-object colour question stays at chance after 200 steps; with
    1/sqrt(width) it is solved in ~60).

    >>> init_std(PRESETS["test"])
    0.125
    """
    return round(p.hidden_size**-0.5, 4)


def chat_template(family: str) -> str:
    """The real chat template of the family (byte-identical to the Instruct checkpoints' and to TRL's copy,
    so TRL recognises it and swaps in its `{% generation %}` training variant for assistant-only loss)."""
    name = families.family(family).chat_template
    return resources.files("visionr1.models").joinpath("templates", name).read_text(encoding="utf-8")


def count_parameters(model) -> dict[str, int]:
    """Parameters in total and per part (vision tower and projector, language model incl. embeddings and head)."""
    from visionr1.training.freeze import part_of

    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if part_of(n) in ("vision_tower", "projector"))
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

    fam = families.family(family)
    tokenizer = train_tokenizer(family)
    tokenizer.chat_template = chat_template(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*fam.tokens.special, *fam.tokens.added)}
    vocab_size = -(-len(tokenizer) // 64) * 64  # padded like the real 152064-row embedding
    config = fam.build_config(family, preset, vocab_size, ids, init_std(preset))
    config.dtype = "float32"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    t = fam.tokens
    model.generation_config = GenerationConfig(
        bos_token_id=ids[t.bos or t.pad],
        eos_token_id=list(dict.fromkeys([ids[t.eos], ids[t.pad], *(ids[s] for s in t.stop)])),
        pad_token_id=ids[t.pad],
    )
    processor = fam.build_processor(family, tokenizer, preset, chat_template(family))

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
        Path(families.__file__).read_text(encoding="utf-8"),
        Path(sys.modules[families.family(family).build_config.__module__].__file__).read_text(encoding="utf-8"),
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
    families.family(family)  # a one-line refusal for an unknown family
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
