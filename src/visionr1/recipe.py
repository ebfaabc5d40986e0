"""The recipe: one YAML file that drives a whole run (model, stages, rewards, evaluation).

A run is a list of stages executed in order, each starting from the previous stage's final weights:
cold-start SFT (possibly a curriculum of several SFT stages), then GRPO stages. Vision-R1's Progressive
Thinking Suppression Training (PTST) is simply several GRPO stages whose ``max_completion_length`` grows while
``num_generations`` shrinks (4K x 16 -> 8K x 8).

The ``sft:`` and ``grpo:`` sections pass straight through to TRL's ``SFTConfig`` / ``GRPOConfig``. They are
validated by building those configs (not by copying TRL's fields here), so every TRL option is available and
a typo is caught with a suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from visionr1.config.base import (
    RecipeError,
    SubPathError,
    StrictModel,
    apply_overrides,
    load_yaml_with_includes,
    parse_model,
)
from visionr1.data.spec import DatasetSpec

Freezable = Literal["vision_tower", "projector", "language_model"]


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on LoRA inputs.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules to adapt: a list of names or 'all-linear'."
    )


class ModelSpec(StrictModel):
    path: str = Field(..., description="Local directory or hub id of an image-text-to-text model (Qwen2/2.5/3-VL).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto = the checkpoint's (float32 on CPU is safest)."
    )
    attn_implementation: str | None = Field(
        None, description="eager | sdpa | flash_attention_2; null = transformers' default."
    )
    freeze: list[Freezable] = Field(
        default_factory=list, description="Parts whose requires_grad is set to False: vision_tower, projector, language_model."
    )
    min_pixels: int | None = Field(None, ge=28 * 28, description="Processor min_pixels per image (null = model's).")
    max_pixels: int | None = Field(None, ge=28 * 28, description="Processor max_pixels per image (null = model's).")
    lora: LoraSpec | None = Field(None, description="Train LoRA adapters (peft) instead of full weights.")


class RewardSpec(StrictModel):
    name: str = Field(..., description="Registered reward name (format, accuracy, hard_format_result, iou, length, ...) or file.py:function.")
    weight: float = Field(1.0, description="Weight of this reward in the sum GRPO optimises.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments bound to the reward function.")


def _trl_config_fields(kind: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_trl_config_class(kind))}


@functools.cache
def _trl_config_class(kind: str) -> type:
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig
    if kind == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    if kind == "dpo":
        from trl import DPOConfig

        return DPOConfig
    raise KeyError(kind)


# Fields the runner owns: setting them in a recipe section would be silently overwritten, so we refuse them.
_RUNNER_OWNED = {"output_dir", "seed", "resume_from_checkpoint", "report_to"}


def check_trl_section(kind: str, values: dict[str, Any], where: str) -> None:
    """Validate a pass-through section by building the TRL config it will become."""
    fields = _trl_config_fields(kind)
    for key in values:
        if key in _RUNNER_OWNED:
            raise SubPathError(key, "set by visionr1 itself (use the recipe's top-level fields instead)")
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; see the fields of trl.{_trl_config_class(kind).__name__}"
            raise SubPathError(key, f"unknown key{hint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_trl_config(kind, values, output_dir="/tmp/visionr1-validate", seed=0, check_only=True)
    except (TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise ValueError(f"rejected by trl.{_trl_config_class(kind).__name__}: {msg}") from None


def build_trl_config(kind: str, values: dict[str, Any], output_dir: str, seed: int, check_only: bool = False):
    """Build TRL's config for a stage. On a machine without a GPU, bf16/fp16 requests are validated but dropped
    when only checking (a 7B recipe must dry-run on a laptop)."""
    cls = _trl_config_class(kind)
    kwargs = dict(values)
    if check_only:
        kwargs.pop("bf16", None)
        kwargs.pop("fp16", None)
        kwargs.setdefault("use_cpu", True)
    kwargs.setdefault("report_to", "none")
    return cls(output_dir=output_dir, seed=seed, **kwargs)


class _StageBase(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Stage name; also its run sub-directory.")
    dataset: DatasetSpec = Field(..., description="Training data of this stage.")
    eval_dataset: DatasetSpec | None = Field(None, description="Held-out data evaluated during/after the stage.")
    freeze: list[Freezable] | None = Field(None, description="Overrides model.freeze for this stage.")


class SFTStage(_StageBase):
    type: Literal["sft"] = Field("sft", description="Supervised fine-tuning (TRL SFTTrainer), loss on assistant tokens.")
    sft: dict[str, Any] = Field(default_factory=dict, description="Passed to trl.SFTConfig (learning_rate, num_train_epochs, max_length, ...).")

    @field_validator("sft")
    @classmethod
    def _check_sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_trl_section("sft", v, "sft")
        return v


class GRPOStage(_StageBase):
    type: Literal["grpo"] = Field("grpo", description="GRPO with verifiable rewards (TRL GRPOTrainer).")
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="hard_format_result")],
        min_length=1,
        description="Reward functions and their weights (Vision-R1: hard_format_result alone).",
    )
    grpo: dict[str, Any] = Field(default_factory=dict, description="Passed to trl.GRPOConfig (max_completion_length, num_generations, max_steps, epsilon, beta, ...).")

    @field_validator("grpo")
    @classmethod
    def _check_grpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_trl_section("grpo", v, "grpo")
        return v


Stage = Annotated[SFTStage | GRPOStage, Field(discriminator="type")]


class Recipe(StrictModel):
    name: str = Field(..., description="Run name (used for the default output directory runs/<name>).")
    seed: int = Field(42, description="Seed for data order, sampling and initialisation.")
    output_dir: str | None = Field(None, description="Run directory; default runs/<name>. `--output-dir` overrides.")
    model: ModelSpec = Field(..., description="Model to start from.")
    stages: list[Stage] = Field(..., min_length=1, description="Stages run in order, each from the previous stage's weights.")
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"], description="Trackers besides metrics.jsonl: tensorboard, wandb, trackio."
    )

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Recipe:
        names = [s.name for s in self.stages]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {sorted(dup)}")
        return self


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, include, override and validate a recipe. Relative data/model paths resolve against the file."""
    path = Path(path)
    data = apply_overrides(load_yaml_with_includes(path), list(overrides))
    recipe = parse_model(Recipe, data, source=str(path))
    return _resolve_paths(recipe, path.resolve().parent)


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    def fix(p: str | None) -> str | None:
        if p is None or "://" in p:
            return p
        q = Path(p).expanduser()
        if q.is_absolute():
            return str(q)
        cand = base / q
        # a hub id like Qwen/Qwen2.5-VL-7B-Instruct stays as written when no such local path exists
        return str(cand) if cand.exists() or p.startswith(".") else p

    recipe = recipe.model_copy(deep=True)
    recipe.model.path = fix(recipe.model.path)
    for stage in recipe.stages:
        for ds in (stage.dataset, stage.eval_dataset):
            if ds is not None:
                ds.path = fix(ds.path)
                ds.image_root = fix(ds.image_root)
    return recipe


__all__ = ["GRPOStage", "Recipe", "RecipeError", "RewardSpec", "SFTStage", "load_recipe", "ModelSpec"]
