"""The recipe: one YAML file that drives a whole run (model, stages, rewards, evaluation).

A run is a list of stages executed in order, each starting from the previous stage's final weights:
cold-start SFT (possibly a curriculum of several SFT stages), then GRPO stages. Vision-R1's Progressive
Thinking Suppression Training (PTST) is simply several GRPO stages whose ``max_completion_length`` grows while
``num_generations`` shrinks (4K x 16 -> 8K x 8).

The ``sft:``, ``grpo:`` and ``dpo:`` sections pass straight through to TRL's ``SFTConfig`` / ``GRPOConfig`` /
``DPOConfig``. Loading a recipe checks their keys and types against those dataclasses' fields (not copies of them here), so every TRL
option is available and a typo is caught with a suggestion; it builds no TRL config, so it has no side effects
(a ``TrainingArguments`` sets up accelerate's device state). The planner (``visionr1.training.plan``) builds
each stage's config once, for an explicit number of processes, and reports what TRL rejects there.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from visionr1.config.base import RecipeError, StrictModel, SubPathError
from visionr1.config.loader import ModelRef, PluginRef, RecipePath, load
from visionr1.data.spec import DatasetSpec
from visionr1.runtime import CPU_THREADS_HELP, CpuThreads

Freezable = Literal["vision_tower", "projector", "language_model"]


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on LoRA inputs.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules to adapt: a list of names, 'all-linear' (vision tower included), or "
        "'family': the model family's language-model layers (visionr1.models.families: Family.lora_targets)."
    )


class ModelSpec(StrictModel):
    path: ModelRef = Field(
        ...,
        description="Local directory or hub id of an image-text-to-text model (Qwen2/2.5/3-VL); "
        "'tiny:FAMILY/SIZE' (e.g. tiny:qwen2_5_vl/test) builds a tiny random model locally.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto = the checkpoint's (float32 on CPU is safest)."
    )
    attn_implementation: str | None = Field(
        None, description="eager | sdpa | flash_attention_2; null = transformers' default."
    )
    freeze: list[Freezable] = Field(
        default_factory=list, description="Parts whose requires_grad is set to False: vision_tower, projector, language_model."
    )
    min_pixels: int | None = Field(
        None, ge=28 * 28, description="The run's image budget, lower end: processor min_pixels per image (null = model's)."
    )
    max_pixels: int | None = Field(
        None,
        ge=28 * 28,
        description="The run's image budget: processor max_pixels per image, and datasets resize to it "
        "(null = a dataset's max_pixels, else 401408 = 512 tokens of 28x28).",
    )
    lora: LoraSpec | None = Field(None, description="Train LoRA adapters (peft) instead of full weights.")


class RewardSpec(StrictModel):
    name: PluginRef = Field(..., description="Registered reward name (format, accuracy, hard_format_result, iou, length, ...) or file.py:function; a plugin file is imported when the run starts, which RUNS ITS CODE with your permissions (--dry-run only parses it). Name only files you trust.")
    weight: float = Field(1.0, description="Weight of this reward in the sum GRPO optimises.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments bound to the reward function.")


@functools.cache
def trl_config_class(kind: str) -> type:
    """TRL's config dataclass for a stage kind (``sft``, ``grpo``, ``dpo``); imported on first use."""
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


@functools.cache
def _trl_fields(kind: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(trl_config_class(kind))}


# Fields the runner owns: setting them in a recipe section would be silently overwritten, so we refuse them.
_RUNNER_OWNED = {"output_dir", "seed", "resume_from_checkpoint", "report_to"}


def _allowed_types(t: Any) -> set:
    return {t} if isinstance(t, type) else set(getattr(t, "__args__", ()))


def coerce_numbers(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """YAML reads ``1e-4`` (no dot) as a string, and TRL's configs do not check types: a string learning rate
    would only fail at the first optimizer step. Numeric strings for float/int fields become numbers; other
    strings there are errors.

    >>> coerce_numbers("sft", {"learning_rate": "1e-4", "max_steps": "10", "lr_scheduler_type": "cosine"})
    {'learning_rate': 0.0001, 'max_steps': 10, 'lr_scheduler_type': 'cosine'}
    """
    fields = _trl_fields(kind)
    out = dict(values)
    for key, value in values.items():
        if not isinstance(value, str) or key not in fields:
            continue
        allowed = _allowed_types(fields[key].type)
        if str in allowed or not allowed & {int, float}:
            continue
        try:
            out[key] = int(value) if int in allowed and float not in allowed else float(value)
        except ValueError:
            raise SubPathError(key, f"expected a number, got {value!r}") from None
    return out


def _choices(field: dataclasses.Field) -> list[str] | None:
    """The values a string field of a TRL config accepts, where its type says so cheaply: an ``Enum | str``
    field (``lr_scheduler_type``, ``optim``, ``save_strategy``) or ``metadata["choices"]``."""
    for t in _allowed_types(field.type):
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return [str(m.value) for m in t]
    choices = field.metadata.get("choices")
    if choices:
        return [str(c) for c in choices]
    return _help_choices(field.metadata.get("help") or "")


_CHOICES_SENTENCE = re.compile(r"(?:Supported values are|Must be one of)\s+([^:.]*?)\.(?:\s|$)")
_CHOICE = re.compile(r"[`']+([A-Za-z_][A-Za-z0-9_]*)[`']+")


def _help_choices(help_text: str) -> list[str] | None:
    """Choices TRL states only in a field's help ("Supported values are 'grpo', 'dr_grpo', ... and 'vespo'.",
    "Must be one of `'server'` or `'colocate'`."), so ``loss_type: bogus`` fails at ``recipe check``, not at
    step 1. Only the plain one-sentence form counts (no colon: a list with explanations is not parsed).

    >>> _help_choices("Specifies the loss. Supported values are 'grpo', 'dr_grpo', and 'dapo'. 'grpo': ...")
    ['grpo', 'dr_grpo', 'dapo']
    """
    match = _CHOICES_SENTENCE.search(help_text)
    if not match:
        return None
    found = _CHOICE.findall(match.group(1))
    return found if len(found) >= 2 else None


def _type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` (from YAML) fits one type of a TRL field's annotation (unknown kinds of type: yes)."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return value is None
    if tp is typing.Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        return isinstance(value, str)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    if tp is list or origin is list:
        args = typing.get_args(tp)
        return isinstance(value, list) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    return True


def _type_names(tp: Any) -> str:
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    names = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "a mapping"}
    out = []
    for t in args:
        if t in names:
            out.append(names[t])
        elif typing.get_origin(t) is list or t is list:
            inner = typing.get_args(t)
            out.append(f"a list of {_type_names(inner[0]).replace('a ', '').replace('an ', '')}s" if inner else "a list")
        elif typing.get_origin(t) is dict:
            out.append("a mapping")
        elif isinstance(t, type) and issubclass(t, enum.Enum):
            out.append("a string")
        else:
            out.append(getattr(t, "__name__", str(t)))
    return " or ".join(dict.fromkeys(out))


def check_trl_section(kind: str, values: dict[str, Any], where: str) -> None:
    """Check a pass-through section (``where``: ``sft``, ``grpo``, ...) against the fields of the TRL config it
    will become, without building that config: unknown keys (with the closest valid one), runner-owned keys,
    booleans and the choices of enum-like fields. What TRL checks across fields (``__post_init__``) is checked
    when the planner builds the config (``visionr1.training.plan``), for the processes the stage runs on."""
    fields = _trl_fields(kind)
    cls = trl_config_class(kind).__name__
    for key, value in values.items():
        if key in _RUNNER_OWNED:
            raise SubPathError(key, "set by visionr1 itself (use the recipe's top-level fields instead)")
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; see the fields of trl.{cls}"
            raise SubPathError(key, f"unknown key{hint}")
        if value is None:
            continue
        allowed = _allowed_types(fields[key].type)
        if allowed and allowed <= {bool, type(None)} and not isinstance(value, bool):
            raise SubPathError(key, f"expected true or false, got {value!r}")
        if not _type_ok(value, fields[key].type):  # TRL's configs do not check types: step 1 would crash
            raise SubPathError(key, f"expected {_type_names(fields[key].type)}, got {type(value).__name__} {value!r}")
        choices = _choices(fields[key])
        if choices and isinstance(value, str) and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SubPathError(key, f"{value!r} is not a {cls}.{key}; {hint}choose from {choices}")


class _StageBase(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Stage name; also its run sub-directory.")
    dataset: DatasetSpec = Field(..., description="Training data of this stage.")
    eval_dataset: DatasetSpec | None = Field(None, description="Held-out data evaluated during/after the stage.")
    freeze: list[Freezable] | None = Field(None, description="Overrides model.freeze for this stage.")
    enabled: bool = Field(
        True, description="false drops the stage from the run (lets a recipe drop a stage of one it includes)."
    )


class SFTStage(_StageBase):
    type: Literal["sft"] = Field("sft", description="Supervised fine-tuning (TRL SFTTrainer), loss on assistant tokens.")
    sft: dict[str, Any] = Field(default_factory=dict, description="Passed to trl.SFTConfig (learning_rate, num_train_epochs, max_length, ...).")
    padding_free: bool = Field(
        False, description="Pack each micro-batch into one row, no padding, per-sequence mRoPE positions, no attention across samples (LLaMA-Factory neat_packing per micro-batch; loss unchanged; Qwen-VL families; training.packing). Off: see benchmarks/README.md."
    )

    @field_validator("sft")
    @classmethod
    def _check_sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = coerce_numbers("sft", v)
        check_trl_section("sft", v, "sft")
        return v


class RewardChecks(StrictModel):
    """What a GRPO stage checks of its rewards (``rewards.checked``)."""

    non_finite: Literal["error", "mask"] = Field(
        "error", description="A NaN, inf or |r| > 1e6 reward: `error` (names the reward and row) or `mask` (dropped from the sum, counted in the log).")
    slow_call_s: float | None = Field(60.0, gt=0, description="Warn, naming the reward, when one call takes longer (seconds); null: never.")
    no_signal_steps: int = Field(5, ge=1, description="Report 'no learning signal' after this many logged steps in a row with frac_reward_zero_std >= no_signal_frac.")
    no_signal_frac: float = Field(0.9, gt=0, le=1, description="Share of groups with all rewards equal that counts as no signal.")


class DynamicSamplingSpec(StrictModel):
    """DAPO's dynamic sampling (``training.rollout_filter``): a group whose rewards are all equal has zero advantage
    and no policy gradient, so it is dropped and replaced by a group of a fresh prompt from the stage's stream."""

    enabled: bool = Field(False, description="Drop all-equal-reward groups and refill the generation batch with fresh prompts (off: at CPU scale it made every group informative but no more accurate per generated token; benchmarks/rollout_filter.py).")
    max_refill_rounds: int = Field(
        3, ge=1, le=64,
        description="Extra generation rounds per batch at most; at the bound the batch trains with all-equal groups "
        "(zero advantage), logged as a warning and counted in the manifest (rollout_filter.bound_reached).",
    )


class DifficultyFilterSpec(StrictModel):
    """Online difficulty filtering (EasyR1's filter_low / filter_high): prompts the policy always or never solves in
    their last ``last_k`` appearances are skipped in later epochs and later stages (``training.rollout_filter``)."""

    enabled: bool = Field(False, description="Skip prompts whose pass rate was at or beyond low/high in their last_k appearances (off: no accuracy gain per compute at CPU scale; benchmarks/rollout_filter.py).")
    last_k: int = Field(1, ge=1, description="Appearances (generation groups) a prompt's pass rate is averaged over; fewer recorded: never skipped.")
    low: float = Field(0.0, ge=0, le=1, description="Skip when the mean pass rate is <= low (0.0: no sample passed).")
    high: float = Field(1.0, ge=0, le=1, description="Skip when the mean pass rate is >= high (1.0: every sample passed).")
    pass_reward: float = Field(1.0, description="A sample passes when its weighted reward sum is >= this (hard_format_result: 1 = right answer, right format).")

    @model_validator(mode="after")
    def _ordered(self) -> DifficultyFilterSpec:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}), or every prompt is skipped")
        return self


class GRPOStage(_StageBase):
    type: Literal["grpo"] = Field("grpo", description="GRPO with verifiable rewards (TRL GRPOTrainer).")
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="hard_format_result")],
        min_length=1,
        description="Reward functions and their weights (Vision-R1: hard_format_result alone).",
    )
    grpo: dict[str, Any] = Field(default_factory=dict, description="Passed to trl.GRPOConfig (max_completion_length, num_generations, max_steps, epsilon, beta, ...).")
    share_images: bool = Field(
        True, description="Process and encode each image once per group of generations (exact; patches.image_sharing); false = TRL's per-row work."
    )
    padding_free: bool = Field(
        False, description="Pack the log-prob forwards (policy, old, reference) into one row per chunk, no padding, per-sequence mRoPE positions, no attention across sequences (exact; Qwen-VL families; training.packing). Off: see benchmarks/README.md."
    )
    reward_checks: RewardChecks = Field(default_factory=RewardChecks, description="Checks of the rewards' values, speed and signal (rewards.checked).")
    dynamic_sampling: DynamicSamplingSpec = Field(
        default_factory=DynamicSamplingSpec, description="DAPO dynamic sampling: replace groups whose rewards are all equal (off by default)."
    )
    difficulty_filter: DifficultyFilterSpec = Field(
        default_factory=DifficultyFilterSpec, description="Skip prompts always or never solved in their last appearances (off by default)."
    )
    max_tokens_per_micro_batch: int | None = Field(
        None, ge=1,
        description="Token budget of a loss forward: each micro-batch of per_device_train_batch_size rows is cut into "
        "micro-batches of rows x (longest prompt + longest completion, image tokens included) <= this, the loss "
        "scaled so it equals the fixed-count loss (training.token_budget; every process runs as many). "
        "null (default): TRL's fixed rows per micro-batch. Must exceed max_completion_length + the longest prompt.",
    )

    @field_validator("grpo")
    @classmethod
    def _check_grpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "reward_weights" in v:
            raise SubPathError("reward_weights", "set by visionr1 from rewards[].weight; set the weights there")
        v = coerce_numbers("grpo", v)
        check_trl_section("grpo", v, "grpo")
        return v


class DPOSampling(StrictModel):
    """How an iteration of a DPO stage samples its responses (``inference.generate_candidates``)."""

    max_new_tokens: int = Field(512, ge=1, description="Token limit of a sampled response.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (> 0: the K responses must differ).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    batch_size: int = Field(8, ge=1, description="Sequences (prompts x K) per generate call.")


class DPOStage(_StageBase):
    type: Literal["dpo"] = Field("dpo", description="Iterative DPO (TRL DPOTrainer) on pairs the model samples itself, or on a pairs file.")
    dataset: DatasetSpec | None = Field(None, description="Prompts to sample from (with solutions for the rewards); not with pairs_file.")
    pairs_file: RecipePath | None = Field(None, description="JSONL of preference pairs (TRL format: prompt, chosen, rejected, images as paths relative to the file); skips sampling.")
    iterations: int = Field(1, ge=1, description="Sample -> pair -> train rounds, each from the previous round's weights.")
    samples_per_prompt: int = Field(4, ge=2, description="K responses sampled per prompt; the best and the worst by reward become a pair.")
    prompts_per_iteration: int | None = Field(None, ge=1, description="Prompts each iteration samples, the next slice of the run's prompt stream; default: the whole dataset every iteration.")
    sampling: DPOSampling = Field(default_factory=DPOSampling, description="Sampling of the K responses.")
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="hard_format_result")], min_length=1,
        description="Rewards ranking the K responses (weighted sum); `llm_judge` makes a scoring agent rank them.",
    )
    dpo: dict[str, Any] = Field(default_factory=dict, description="Passed to trl.DPOConfig (beta, loss_type, learning_rate, max_steps, max_length, ...).")

    @field_validator("dpo")
    @classmethod
    def _check_dpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = coerce_numbers("dpo", v)
        check_trl_section("dpo", v, "dpo")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DPOStage:
        if (self.dataset is None) == (self.pairs_file is None):
            raise ValueError("give either dataset (prompts the model samples from) or pairs_file (fixed pairs), not both or neither")
        if self.pairs_file is not None and self.iterations != 1:
            raise ValueError(f"pairs_file gives fixed pairs, so iterations must be 1 (got {self.iterations}). Fix: drop "
                             "iterations, or use dataset: to sample new pairs in every iteration")
        return self


Stage = Annotated[SFTStage | GRPOStage | DPOStage, Field(discriminator="type")]


class LoggingSpec(StrictModel):
    completions_per_log: int = Field(
        4, ge=0, description="GRPO: sampled (prompt, completion, rewards) rows appended to completions.jsonl per logging step; 0 = none."
    )
    progress: Literal["auto", "rich", "lines", "none"] = Field(
        "auto", description="Console progress: rich bars (auto = when stdout is a terminal), a line per logging step, or none."
    )
    plot: bool = Field(True, description="Write ptst.png (reward and completion length per step, all stages) when the run ends.")


class LaunchSpec(StrictModel):
    """How ``visionr1 train`` starts the process(es) of each stage (``training.launch``)."""

    num_processes: int = Field(1, ge=1, description="Processes (GPUs) per stage; > 1 launches each stage with `accelerate launch`.")
    config_file: RecipePath | None = Field(
        None, description="accelerate config for the stage processes (configs/accelerate/*.yaml; relative to the recipe)."
    )
    args: list[str] = Field(
        default_factory=list, description="More `accelerate launch` arguments, e.g. [--num_machines, '2', --machine_rank, '0']."
    )
    isolate_stages: bool = Field(
        True, description="Each stage in a process of its own (what DeepSpeed/vLLM/multi-GPU runs need; a single pending stage "
        "of one plain process with no eval_dataset trains in the parent); false = all in this one."
    )


class TrainRecipe(StrictModel):
    name: str = Field(..., description="Run name (used for the default output directory runs/<name>).")
    seed: int = Field(42, description="Seed for data order, sampling and initialisation.")
    output_dir: str | None = Field(None, description="Run directory; default runs/<name>. `--output-dir` overrides.")
    model: ModelSpec = Field(..., description="Model to start from.")
    stages: list[Stage] = Field(..., min_length=1, description="Stages run in order, each from the previous stage's weights.")
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"], description="Trackers besides metrics.jsonl: tensorboard, wandb, trackio."
    )
    logging: LoggingSpec = Field(default_factory=LoggingSpec, description="metrics.jsonl is always written; what else to log.")
    launch: LaunchSpec = Field(default_factory=LaunchSpec, description="Processes per stage and the accelerate launch settings.")
    cpu_threads: CpuThreads = Field("auto", description=CPU_THREADS_HELP + "; `--cpu-threads` overrides.")

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, v: list[str]) -> list[str]:
        known = {"tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "clearml", "none"}
        bad = [t for t in v if t not in known]
        if bad:
            raise ValueError(f"unknown tracker(s) {bad}; choose from {sorted(known)} (metrics.jsonl is always written)")
        return [t for t in v if t != "none"]

    @model_validator(mode="after")
    def _unique_stage_names(self) -> TrainRecipe:
        names = [s.name for s in self.stages]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {sorted(dup)}")
        return self

    @model_validator(mode="after")
    def _one_image_budget(self) -> TrainRecipe:
        """One pixel budget per run (see visionr1/data/budget.py for why): ``model.max_pixels``, which the
        processor gets and every dataset resizes to. A dataset value that differs is an error naming both."""
        from visionr1.data.spec import DEFAULT_MAX_PIXELS

        specs = [
            (f"stages[{i}].{which}.max_pixels", ds)
            for i, stage in enumerate(self.stages)
            for which, ds in (("dataset", stage.dataset), ("eval_dataset", stage.eval_dataset))
            if ds is not None
        ]
        explicit = [(name, ds.max_pixels) for name, ds in specs if ds.max_pixels is not None]
        fix = "one image budget per run. Fix: set model.max_pixels only (datasets follow it)"
        if self.model.max_pixels is not None:
            for name, value in explicit:
                if value != self.model.max_pixels:
                    raise ValueError(
                        f"{name} ({value:,}) conflicts with model.max_pixels ({self.model.max_pixels:,}): {fix}"
                    )
        else:
            for name, value in explicit[1:]:
                if value != explicit[0][1]:
                    raise ValueError(f"{explicit[0][0]} ({explicit[0][1]:,}) and {name} ({value:,}) differ: {fix}")
            self.model.max_pixels = explicit[0][1] if explicit else DEFAULT_MAX_PIXELS
        if self.model.min_pixels is not None and self.model.min_pixels > self.model.max_pixels:
            raise ValueError(
                f"model.min_pixels ({self.model.min_pixels:,}) is above model.max_pixels ({self.model.max_pixels:,})"
            )
        for _, ds in specs:
            ds.max_pixels = self.model.max_pixels
        return self


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainRecipe:
    """Load, include, override and validate a training recipe (``visionr1.config.loader``); relative data and
    model paths resolve against the file."""
    return load(TrainRecipe, path, overrides)


__all__ = [
    "DPOStage", "DifficultyFilterSpec", "DynamicSamplingSpec", "GRPOStage", "LaunchSpec", "LoggingSpec", "LoraSpec", "ModelSpec", "RecipeError", "RewardSpec", "SFTStage", "TrainRecipe",
    "check_trl_section", "coerce_numbers", "load_recipe", "trl_config_class",
]
