"""What differs between model families, in one place per family.

The method (cold start, GRPO with PTST, evaluation) is the same for every vision-language model; only a few
facts differ per family, and every module that needs one asks :func:`family` / :func:`family_of` instead of
testing model names:

- how to build a tiny random model of it (config, processor, chat template, tokenizer's special tokens):
  ``visionr1.models.tiny``;
- where its vision tower and projector live (``training.freeze``), and its LM's linear layers (LoRA targets);
- its image placeholder token and how many tokens an image of a given size costs (``data.budget``,
  ``--dry-run``);
- whether it takes video, and whether per-group image sharing is exact for it (``patches.image_sharing``).

Each family module (``qwen.py``, ...) defines ``FAMILIES``: a list of :class:`Family`. A family not listed here is
refused by name (:func:`family_of`) with the list of supported ones, never run half-working.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The modules that define families, in the order `--family` lists them.
_MODULES = ("qwen", "qwen3_vl_moe", "qwen3_5", "glm4v", "gemma3", "internvl")


@dataclass(frozen=True)
class Tokens:
    """The tokenizer a tiny model of the family gets (our BPE, the family's special tokens and class)."""

    special: tuple[str, ...]  # special tokens in the real checkpoint's order (the first is the pad/eot token)
    added: tuple[str, ...] = ()  # non-special added tokens of the real tokenizer (survive skip_special_tokens)
    eos: str = "<|im_end|>"  # the Instruct checkpoint's eos: generation stops at the end of the turn
    pad: str = "<|endoftext|>"
    bos: str | None = None
    model_max_length: int = 32768
    # Named special-token attributes the family's processor reads from its tokenizer (e.g. Gemma 3's
    # ``image_token``, ``boi_token``): name -> token.
    named: tuple[tuple[str, str], ...] = ()
    # The real checkpoint's tokenizer class, as (module, class): the class and its module's PRETOKENIZE_REGEX
    # wrap our BPE (Qwen3.5 splits digits one by one and keeps combining marks in words, unlike Qwen2).
    tokenizer_class: tuple[str, str] = ("transformers.models.qwen2.tokenization_qwen2", "Qwen2Tokenizer")
    # Further tokens the real generation config stops at, after ``eos`` and ``pad`` (GLM: ``<|user|>``).
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """One model family: its checkpoints' ``config.model_type`` and what the toolkit must know of it."""

    name: str  # config.model_type of its checkpoints (e.g. "qwen2_5_vl"); `tiny:NAME/SIZE` in recipes
    label: str  # for people: "Qwen2.5-VL"
    example: str  # a real checkpoint id, for messages and recipes
    tokens: Tokens
    chat_template: str  # file name under visionr1/models/templates/
    image_token: str  # the token the processor repeats once per image feature
    # The token the chat template writes once per image (None: ``image_token`` itself, as in Qwen-VL and
    # InternVL; Gemma 3 writes ``<start_of_image>`` and the processor expands it into ``image_token`` runs).
    prompt_image_token: str | None = field(default=None, kw_only=True)
    video_token: str | None  # None: the family takes no video
    # Parameter-name patterns (regex alternatives matched after a "." or at the start of the name).
    vision: tuple[str, ...]  # the vision tower
    projector: tuple[str, ...]  # the vision -> LM projector (matched before `vision`: it may live inside it)
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    # None: per-group image sharing is exact for the family; else why it is off for it.
    image_sharing_off: str | None = "not verified for this family"
    # Whether `padding_free` packing is tested exact for the family (training.packing: per-sequence mRoPE
    # positions from its own get_rope_index); other families are refused by the stage's preflight.
    padding_free: bool = False
    # Builders of a tiny model (see visionr1.models.tiny): (family, preset, vocab_size, token ids) -> config,
    # (family, tokenizer, preset) -> processor, and image tokens of a (width, height) image under a
    # (min_pixels, max_pixels) budget.
    build_config: Callable[..., Any] = field(default=None, repr=False)  # type: ignore[assignment]
    build_processor: Callable[..., Any] = field(default=None, repr=False)  # type: ignore[assignment]
    image_tokens: Callable[[int, int, int | None, int | None], int] = field(default=None, repr=False)  # type: ignore[assignment]
    # Pixels per side of one image token (Qwen-style processors), for budgets and messages; None: not
    # pixel-budgeted (e.g. a fixed number of tokens per image or per tile).
    patch_factor: int | None = 28
    # Frames an image counts as against the processor's max_pixels (GLM-4.1V: 2, its temporal patch), so
    # max_pixels allows max_pixels / (patch_factor**2 * budget_frames) tokens per image.
    budget_frames: int = 1
    # Tokens a loaded processor of the family makes of one (width, height) image, wrappers included; None: the
    # pixel-budget count of ``image_tokens`` under the processor's own budget (Qwen-VL). Tiny models differ from
    # the real checkpoints in tokens per image, so a loaded processor is asked where there is one.
    processor_image_tokens: Callable[[Any, int, int], int] | None = field(default=None, repr=False)
    notes: str = ""

    @property
    def takes_video(self) -> bool:
        return self.video_token is not None

    @property
    def lora_target_regex(self) -> str:
        """``lora_targets`` inside the language model only, as PEFT's ``target_modules`` regex (a plain name list
        also adapts the vision tower's layers of the same names: Qwen's and GLM's ``down_proj``, ...).

        >>> import re; rx = family("qwen2_5_vl").lora_target_regex
        >>> [bool(re.fullmatch(rx, n)) for n in ("model.language_model.layers.0.mlp.down_proj",
        ...                                       "model.visual.blocks.0.mlp.down_proj")]
        [True, False]
        """
        return r".*\blanguage_model\..*\.(" + "|".join(map(re.escape, self.lora_targets)) + ")"


def _load() -> dict[str, Family]:
    out: dict[str, Family] = {}
    for mod in _MODULES:
        for fam in importlib.import_module(f"visionr1.models.families.{mod}").FAMILIES:
            out[fam.name] = fam
    return out


_REGISTRY: dict[str, Family] | None = None


def registry() -> dict[str, Family]:
    """Every supported family, by name."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
    return _REGISTRY


def names() -> tuple[str, ...]:
    return tuple(registry())


class UnsupportedFamily(ValueError):
    """A model whose family the toolkit does not support (one line: which, and the supported ones)."""


def family(name: str) -> Family:
    """The family called ``name`` (a ``config.model_type``), or a one-line refusal listing the supported ones."""
    fam = registry().get(name)
    if fam is None:
        raise UnsupportedFamily(f"unknown family {name!r}: visionr1 supports {', '.join(names())}")
    return fam


def family_of(model: Any) -> Family:
    """The family of a model, a config, a `tiny:F/S` reference or a model_type string."""
    if isinstance(model, str):
        m = re.match(r"tiny:([A-Za-z0-9_]+)(/|$)", model)
        return family(m.group(1) if m else model)
    config = getattr(model, "config", model)
    return family(getattr(config, "model_type", type(config).__name__))


def find_family(model: Any) -> Family | None:
    """Like :func:`family_of`, but None for an unsupported or unknown model."""
    try:
        return family_of(model)
    except UnsupportedFamily:
        return None


def guess_from_path(path: str | None) -> Family | None:
    """The family a model path names (`tiny:F/S`, or a hub id / directory containing a family's label or name),
    without loading it: used where only the recipe is known (budgets before the model loads)."""
    if not path:
        return None
    config = Path(path) / "config.json"
    if config.is_file():  # a local checkpoint: its config says
        import json

        return registry().get(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    m = re.match(r"tiny:([A-Za-z0-9_]+)(/|$)", path)
    if m:
        return registry().get(m.group(1))
    key = re.sub(r"[^a-z0-9]", "", path.lower().rsplit("/", 1)[-1] if "/" in path else path.lower())
    best = None
    for fam in registry().values():
        for alias in (fam.name, fam.label):
            a = re.sub(r"[^a-z0-9]", "", alias.lower())
            if a and a in key and (best is None or len(a) > best[0]):
                best = (len(a), fam)
    return best[1] if best else None


def router_logits_off(model: Any) -> Any:
    """Turn a mixture-of-experts model's ``output_router_logits`` off in its config; returns the model.

    Why: TRL's SFTTrainer switches it on in the config for its load-balancing loss (Qwen3-VL-MoE,
    Qwen3.5-MoE: ``router_aux_loss_coef`` 0.001) and the stage's checkpoint keeps it, so every later forward
    adds the aux loss: in cached generation transformers then multiplies one token's router weights by the
    whole attention mask and crashes ("The size of tensor a (4) must match the size of tensor b (1380)").
    The trainers that want the aux loss ask for it per forward (GRPO, DPO) or switch it on again (SFT).
    """
    for config in {id(c): c for c in (getattr(model, "config", None), _text_config(model))}.values():
        if config is not None and getattr(config, "output_router_logits", False):
            config.output_router_logits = False
    return model


def _text_config(model: Any) -> Any:
    config = getattr(model, "config", None)
    return config.get_text_config() if hasattr(config, "get_text_config") else None
