"""One image budget per run, and what it costs in image tokens.

Why one budget: a run used to have two, the processor's (``model.max_pixels``) and the loader's resize
(``dataset.max_pixels``, 401,408 by default), and the smaller won silently: the 7B recipe asked for 1,280
tokens per image and got ~512. Now ``model.min_pixels`` / ``model.max_pixels`` are the budget; datasets
follow it (``visionr1.recipe`` fills their ``max_pixels`` in, and a dataset value that differs is an error
naming both). With neither set the budget is 401,408 pixels (512 tokens), applied to both.

What a budget costs is shown in tokens, the unit memory and sequence length follow: Qwen-VL's processor
turns an image into ``(h / 28) * (w / 28)`` tokens after its ``smart_resize`` (rounding each side to a
multiple of 28 px, 32 for Qwen3-VL, within ``[min_pixels, max_pixels]``). :func:`image_tokens` calls that
function itself, so the count is the processor's, including its quirk of exceeding ``max_pixels`` for very
thin images (a 5600x28 strip at a 50,176-pixel budget becomes 113 tokens, not 64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionr1.data.spec import DEFAULT_MAX_PIXELS

DEFAULT_MIN_PIXELS = 56 * 56  # Qwen2/2.5-VL's processor default (4 tokens)


def patch_factor(model_path: str | None) -> int:
    """Pixels per side of one image token: 28 (Qwen2/2.5-VL: 14 px patches, 2x2 merge), 32 for Qwen3-VL.

    >>> patch_factor("Qwen/Qwen2.5-VL-7B-Instruct"), patch_factor("tiny:qwen3_vl/test")
    (28, 32)
    """
    from visionr1.models.families import guess_from_path

    fam = guess_from_path(model_path)
    return (fam.patch_factor if fam is not None else None) or 28


def image_tokens(width: int, height: int, min_pixels: int, max_pixels: int, factor: int = 28) -> int:
    """Image tokens the Qwen-VL processor makes of a ``width`` x ``height`` image under this budget.

    >>> image_tokens(112, 112, 3136, 401408), image_tokens(2000, 8000, 3136, 401408)
    (16, 495)
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return (h // factor) * (w // factor)


@dataclass(frozen=True)
class ImageBudget:
    """The run's pixel budget per image; ``min_pixels`` None = the model's own (estimated as 56x56).

    ``family`` (a ``config.model_type``) counts tokens the family's own way (``Family.image_tokens``: GLM-4.1V's
    processor counts an image as two frames against ``max_pixels``); None: Qwen-VL's count. A family without a
    pixel budget (Gemma 3: fixed tokens per image; InternVL: 256 per 448 px tile; ``factor`` None) costs what the
    family says (the real checkpoint's processor), or what ``count`` says when the model's own processor could
    be read (a tiny or local model)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_pixels: int | None = None
    factor: int | None = 28
    family: str | None = None
    count: Callable[[int, int], int] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_model(cls, model: Any) -> ImageBudget:
        """From a recipe's ``model`` section (after the recipe resolved the budget)."""
        from visionr1.models.families import guess_from_path

        fam = guess_from_path(model.path)
        if fam is not None and fam.patch_factor is None:
            return cls(model.max_pixels or DEFAULT_MAX_PIXELS, model.min_pixels, None, fam.name,
                       _local_counter(model.path, fam))
        factor = (fam.patch_factor if fam is not None else None) or 28  # patch_factor's answer, without a 2nd lookup
        return cls(model.max_pixels or DEFAULT_MAX_PIXELS, model.min_pixels, factor, fam.name if fam is not None else None)

    def tokens(self, width: int, height: int) -> int:
        if self.count is not None:
            return self.count(width, height)
        if self.family is not None:
            from visionr1.models.families import family

            count = family(self.family).image_tokens
            if count is not None:
                return count(width, height, self.min_pixels, self.max_pixels)
        return image_tokens(width, height, self.min_pixels or DEFAULT_MIN_PIXELS, self.max_pixels, self.factor or 28)

    @property
    def max_tokens(self) -> int | None:
        """Image tokens ``max_pixels`` allows (GLM-4.1V's processor counts an image as two frames); None for a
        family without a pixel budget."""
        if self.factor is None:
            return None
        from visionr1.models.families import family

        frames = family(self.family).budget_frames if self.family is not None else 1
        return self.max_pixels // (self.factor * self.factor * frames)

    def describe(self) -> dict[str, Any]:
        if self.factor is None:
            from visionr1.models.families import family

            return {
                "min_pixels": self.min_pixels,
                "max_pixels": self.max_pixels,
                "pixels_per_token": None,
                "max_tokens_per_image": None,
                "tokens_per_image": f"{family(self.family).label}: not pixel-budgeted (max_pixels only bounds the "
                "stored image); " + ("counted by the model's processor" if self.count is not None
                                     else "counted as the real checkpoint's processor does"),
            }
        return {
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "pixels_per_token": f"{self.factor}x{self.factor}",
            "max_tokens_per_image": self.max_tokens,
        }


def _local_counter(path: str, fam: Any) -> Callable[[int, int], int] | None:
    """Per-image tokens of the model's own processor when it is on disk (a local checkpoint, or a tiny model:
    built once, cached), else None. Tiny models make fewer tokens per image than the real checkpoints."""
    if fam.processor_image_tokens is None:
        return None
    if path.startswith("tiny:"):
        from visionr1.training.loading import resolve_model_path

        path = resolve_model_path(path)
    if not (Path(path) / "config.json").is_file():
        return None
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    return lambda width, height: fam.processor_image_tokens(processor, width, height)


def token_stats(sizes: list[tuple[tuple[int, int], tuple[int, int]]], budget: ImageBudget) -> dict[str, Any]:
    """Image tokens per image over ``(original size, stored size)`` pairs (``LoadResult.image_sizes``):
    min/mean/max, how many images the budget resized, and how many the processor still rounds up past
    ``max_pixels`` (very thin strips)."""
    if not sizes:
        return {"images": 0}
    tokens = [budget.tokens(*stored) for _, stored in sizes]
    cap = budget.max_tokens
    return {
        "images": len(tokens),
        "tokens_min": min(tokens),
        "tokens_mean": round(sum(tokens) / len(tokens), 1),
        "tokens_max": max(tokens),
        "resized": sum(orig != stored for orig, stored in sizes),
        "over_budget": sum(t > cap for t in tokens) if cap is not None else 0,
    }


def format_stats(stats: dict[str, Any]) -> str:
    """One line: ``12 images: 4 / 181.3 / 512 tokens (min / mean / max), 3 resized to the budget``."""
    if not stats.get("images"):
        return "no images"
    line = (
        f"{stats['images']} images: {stats['tokens_min']} / {stats['tokens_mean']} / {stats['tokens_max']} tokens "
        f"(min / mean / max), {stats['resized']} resized to the budget"
    )
    if stats.get("over_budget"):
        line += f", {stats['over_budget']} above it after the processor's rounding (thin strips)"
    return line


def dataset_token_report(spec: Any, budget: ImageBudget, limit: int = 64) -> dict[str, Any]:
    """Image tokens per image over the first ``limit`` records of a dataset, for ``train --dry-run``: the
    plan needs no data, so data that is not there (yet) is reported as such rather than failing."""
    from visionr1.data.errors import DataError
    from visionr1.data.loaders import load_samples

    try:
        result = load_samples(spec.model_copy(update={"limit": limit, "skip_bad_records": True}))
    except DataError as exc:
        return {"not_checked": str(exc)}
    stats = token_stats(result.image_sizes, budget)
    return {"sampled_records": len(result.dataset), **stats, "summary": format_stats(stats)}


def plan_image_budget(recipe: Any, sample_data: bool = False) -> dict[str, Any]:
    """The run's budget (and, with ``sample_data``, what it costs per stage dataset) for the plan."""
    budget = ImageBudget.of_model(recipe.model)
    out: dict[str, Any] = budget.describe()
    if sample_data:
        out["stages"] = {
            stage.name: dataset_token_report(stage.dataset, budget) for stage in recipe.stages if stage.dataset
        }
    return out


def saved_processor_budget(model_dir: str | Path) -> tuple[int | None, int | None]:
    """``(min_pixels, max_pixels)`` of a saved checkpoint's image processor, or ``(None, None)`` when the
    directory holds none (a hub id). transformers 5 writes ``processor_config.json`` with the image
    processor nested and the budget in ``size.shortest_edge`` / ``size.longest_edge``; older checkpoints have
    ``preprocessor_config.json`` with ``min_pixels`` / ``max_pixels``. Read as JSON: no model, no tokenizer."""
    import json

    for name, nested in (("processor_config.json", "image_processor"), ("preprocessor_config.json", None)):
        try:
            cfg = json.loads((Path(model_dir) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        cfg = cfg.get(nested) if nested else cfg
        if not isinstance(cfg, dict):
            continue
        size = cfg.get("size") if isinstance(cfg.get("size"), dict) else {}
        lo = size.get("shortest_edge", cfg.get("min_pixels"))
        hi = size.get("longest_edge", cfg.get("max_pixels"))
        if isinstance(hi, int):
            return (lo if isinstance(lo, int) else None), hi
    return None, None


def apply_budget(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Set a loaded Qwen-VL processor's image budget in place (transformers 5 keeps it in ``size``), so the
    processor and the loader's resize agree. Processors without a pixel budget are left alone."""
    sub = getattr(processor, "image_processor", None)
    size = getattr(sub, "size", None)
    if sub is None or size is None or (min_pixels is None and max_pixels is None):
        return
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
    if get("longest_edge") is None:
        return
    hi = max_pixels if max_pixels is not None else get("longest_edge")
    lo = min_pixels if min_pixels is not None else get("shortest_edge")
    sub.size = {"shortest_edge": min(lo, hi) if lo is not None else lo, "longest_edge": hi}
