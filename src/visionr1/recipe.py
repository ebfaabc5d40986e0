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

import contextlib
import dataclasses
import difflib
import functools
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from visionr1.config.base import (
    RecipeError,
    StrictModel,
    SubPathError,
    apply_overrides,
    load_yaml_with_includes,
    parse_model,
    resolve_path,
)
from visionr1.data.spec import DatasetSpec
from visionr1.runtime import CPU_THREADS_HELP, CpuThreads

Freezable = Literal["vision_tower", "projector", "language_model"]


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on LoRA inputs.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules to adapt: a list of names or 'all-linear'."
    )


class ModelSpec(StrictModel):
    path: str = Field(
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
    name: str = Field(..., description="Registered reward name (format, accuracy, hard_format_result, iou, length, ...) or file.py:function; a plugin file is imported when the run starts, which RUNS ITS CODE with your permissions (--dry-run only parses it). Name only files you trust.")
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


def coerce_numbers(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """YAML reads ``1e-4`` (no dot) as a string, and TRL's configs do not check types: a string learning rate
    would only fail at the first optimizer step. Numeric strings for float/int fields become numbers; other
    strings there are errors.

    >>> coerce_numbers("sft", {"learning_rate": "1e-4", "max_steps": "10", "lr_scheduler_type": "cosine"})
    {'learning_rate': 0.0001, 'max_steps': 10, 'lr_scheduler_type': 'cosine'}
    """
    types = {f.name: f.type for f in dataclasses.fields(_trl_config_class(kind))}
    out = dict(values)
    for key, value in values.items():
        t = types.get(key)
        if not isinstance(value, str) or t is None:
            continue
        allowed = {t} if isinstance(t, type) else set(getattr(t, "__args__", ()))
        if str in allowed or not allowed & {int, float}:
            continue
        try:
            out[key] = int(value) if int in allowed and float not in allowed else float(value)
        except ValueError:
            raise SubPathError(key, f"expected a number, got {value!r}") from None
    return out


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
    world_size = validation_world_size()
    try:
        build_trl_config(kind, values, output_dir="/tmp/visionr1-validate", seed=0, check_only=True, world_size=world_size)
    except (TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split()).rstrip(".")
        fix = generation_batch_problem(values, world_size) if kind == "grpo" else None
        fix = f". Fix: {fix.split('. Fix: ', 1)[1]}" if fix and ". Fix: " in fix else ""
        raise ValueError(f"rejected by trl.{_trl_config_class(kind).__name__}: {msg}{fix}") from None


def generation_batch(values: dict[str, Any], world_size: int) -> tuple[int, str]:
    """TRL's generation batch size for these GRPO values on ``world_size`` processes, and how it is made up.

    >>> generation_batch({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}, 2)
    (16, 'per_device_train_batch_size (2) x processes (2) x steps_per_generation (4)')
    """
    per_device = int(values.get("per_device_train_batch_size", 8))
    if values.get("generation_batch_size") is not None:
        return int(values["generation_batch_size"]), f"generation_batch_size ({values['generation_batch_size']})"
    steps = int(values.get("steps_per_generation") or values.get("gradient_accumulation_steps", 1))
    how = f"per_device_train_batch_size ({per_device}) x processes ({world_size}) x steps_per_generation ({steps})"
    return per_device * world_size * steps, how


def generation_batch_problem(values: dict[str, Any], world_size: int) -> str | None:
    """Why a GRPO section's batches cannot be formed on ``world_size`` processes (with the fix), or None.

    Every prompt's ``num_generations`` completions must land in one generation batch, and the generation
    batch must split evenly into per-process batches.

    >>> print(generation_batch_problem({"per_device_train_batch_size": 3, "num_generations": 2}, 1))
    generation batch 3 = per_device_train_batch_size (3) x processes (1) x steps_per_generation (1) is not divisible by num_generations (2). Fix: set per_device_train_batch_size to a multiple of 2 (e.g. 4), or choose num_generations dividing 3
    """
    import math

    k = int(values.get("num_generations", 8))
    per_device = int(values.get("per_device_train_batch_size", 8))
    gen, how = generation_batch(values, world_size)
    if values.get("generation_batch_size") is not None and gen % (per_device * world_size):
        return (
            f"generation_batch_size ({gen}) is not divisible by per_device_train_batch_size x processes "
            f"({per_device} x {world_size}). Fix: set generation_batch_size to a multiple of {per_device * world_size}"
            f" and of num_generations ({k}), or drop it (then it is per_device_train_batch_size x processes x "
            "steps_per_generation)"
        )
    if gen % k == 0:
        return None
    if values.get("generation_batch_size") is not None:
        fix = f"set generation_batch_size to a multiple of {math.lcm(k, per_device * world_size)}"
    else:
        steps = gen // (per_device * world_size)
        need = k // math.gcd(k, world_size * steps)
        fix = (
            f"set per_device_train_batch_size to a multiple of {need} (e.g. {per_device + (-per_device) % need}), "
            f"or choose num_generations dividing {gen}"
        )
    return f"generation batch {gen} = {how} is not divisible by num_generations ({k}). Fix: {fix}"


def validation_world_size() -> int:
    """Processes a recipe is validated for: ``VISIONR1_PLAN_WORLD_SIZE`` (``--dry-run --num-processes``), else
    this launch's ``WORLD_SIZE``, else 1. Batch shapes valid only on more processes are checked again, with
    the real count, before training starts."""
    return int(os.environ.get("VISIONR1_PLAN_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)


def build_trl_config(
    kind: str, values: dict[str, Any], output_dir: str, seed: int, check_only: bool = False, world_size: int = 1
):
    """Build TRL's config for a stage.

    ``check_only`` builds it only to validate (recipe loading, ``--dry-run``): on a machine without a GPU,
    bf16/fp16 requests are validated but dropped (a 7B recipe must dry-run on a laptop), and the build runs as a
    single CPU process. That matters under ``accelerate launch``: building a ``TrainingArguments`` sets up the
    distributed state, and a CPU config would open a gloo process group that the real (NCCL) run then inherits.
    To validate batch shapes for ``world_size`` processes in that single process, per-device batch sizes are
    scaled by ``world_size`` for the build and restored after (TRL derives the generation batch from them).
    """
    cls = _trl_config_class(kind)
    kwargs = dict(values)
    kwargs.setdefault("report_to", "none")
    if not check_only:
        return cls(output_dir=output_dir, seed=seed, **kwargs)
    kwargs.pop("bf16", None)
    kwargs.pop("fp16", None)
    kwargs["use_cpu"] = True
    scaled = {}
    if world_size > 1:
        for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            default = next(f.default for f in dataclasses.fields(cls) if f.name == key)
            scaled[key] = kwargs.get(key, default)
            kwargs[key] = scaled[key] * world_size
    with _single_process_env(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = cls(output_dir=output_dir, seed=seed, **kwargs)
    for key, value in scaled.items():
        setattr(config, key, value)
    return config


_DISTRIBUTED_ENV = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
    "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP",
)


@contextlib.contextmanager
def _single_process_env():
    """Hide the launcher's distributed variables while a validation-only config is built, then forget the
    accelerate state that build created, so the real config of the run sets it up afresh."""
    saved = {k: os.environ.pop(k) for k in _DISTRIBUTED_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
        try:
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        except Exception:  # noqa: BLE001 - accelerate internals moved: nothing to forget then
            pass


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

    @field_validator("sft")
    @classmethod
    def _check_sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = coerce_numbers("sft", v)
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
        if "reward_weights" in v:
            raise SubPathError("reward_weights", "set by visionr1 from rewards[].weight; set the weights there")
        v = coerce_numbers("grpo", v)
        check_trl_section("grpo", v, "grpo")
        return v


Stage = Annotated[SFTStage | GRPOStage, Field(discriminator="type")]


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
    config_file: str | None = Field(
        None, description="accelerate config for the stage processes (configs/accelerate/*.yaml; relative to the recipe)."
    )
    args: list[str] = Field(
        default_factory=list, description="More `accelerate launch` arguments, e.g. [--num_machines, '2', --machine_rank, '0']."
    )
    isolate_stages: bool = Field(
        True, description="Each stage in a process of its own (what DeepSpeed/vLLM/multi-GPU runs need; a single pending stage "
        "of one plain process with no eval_dataset trains in the parent); false = all in this one."
    )


class Recipe(StrictModel):
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

    @model_validator(mode="before")
    @classmethod
    def _drop_disabled(cls, data: Any) -> Any:
        return _drop_disabled_stages(data)

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Recipe:
        names = [s.name for s in self.stages]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {sorted(dup)}")
        return self

    @model_validator(mode="after")
    def _one_image_budget(self) -> Recipe:
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


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, include, override and validate a recipe. Relative data/model paths resolve against the file."""
    path = Path(path)
    try:
        data = _drop_disabled_stages(load_yaml_with_includes(path))
    except RecipeError:
        raise
    except ValueError as exc:
        raise RecipeError(f"{path}: stages: {exc}") from None
    data = apply_overrides(data, [_stage_name_to_index(o, data, path) for o in overrides])
    launch = data.get("launch") if isinstance(data, dict) else None
    processes = launch.get("num_processes") if isinstance(launch, dict) else None
    with _validation_world_size(processes):  # batch shapes are checked for the processes each stage runs on
        recipe = parse_model(Recipe, data, source=str(path))
    return _resolve_paths(recipe, path.resolve().parent)


@contextlib.contextmanager
def _validation_world_size(processes: Any):
    """Validate for ``launch.num_processes`` unless a launch (``WORLD_SIZE``) or ``--dry-run --num-processes``
    already says how many processes there are."""
    if not isinstance(processes, int) or processes < 1 or "VISIONR1_PLAN_WORLD_SIZE" in os.environ or "WORLD_SIZE" in os.environ:
        yield
        return
    os.environ["VISIONR1_PLAN_WORLD_SIZE"] = str(processes)
    try:
        yield
    finally:
        os.environ.pop("VISIONR1_PLAN_WORLD_SIZE", None)


def _drop_disabled_stages(data: Any) -> Any:
    """Stages with ``enabled: false`` leave the recipe before overrides apply, so ``stages.0`` is the first
    stage that runs — the numbering ``--dry-run`` shows."""
    if isinstance(data, dict) and isinstance(data.get("stages"), list):
        kept = [s for s in data["stages"] if not (isinstance(s, dict) and s.get("enabled") is False)]
        if not kept and data["stages"]:
            raise ValueError("every stage has enabled: false; enable at least one")
        data = {**data, "stages": kept}
    return data


def _stage_name_to_index(override: str, data: dict, path: Path) -> str:
    """``stages.ptst-2.grpo.max_steps=5`` -> ``stages.1.grpo.max_steps=5`` (stage names survive reordering).

    >>> _stage_name_to_index("stages.b.x=1", {"stages": [{"name": "a"}, {"name": "b"}]}, Path("r.yaml"))
    'stages.1.x=1'
    """
    key, sep, value = override.partition("=")
    parts = key.strip().split(".")
    if len(parts) < 2 or parts[0] != "stages" or parts[1].lstrip("-").isdigit() or not sep:
        return override
    names = [s.get("name") for s in data.get("stages") or [] if isinstance(s, dict)]
    if parts[1] not in names:
        raise RecipeError(f"{path}: override {override!r}: no stage named {parts[1]!r}; stages are {names}")
    return ".".join(["stages", str(names.index(parts[1])), *parts[2:]]) + sep + value


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    def fix(p: str | None) -> str | None:
        return resolve_path(p, base)

    recipe = recipe.model_copy(deep=True)
    recipe.model.path = fix(recipe.model.path)
    recipe.launch.config_file = fix(recipe.launch.config_file)
    for stage in recipe.stages:
        for reward in getattr(stage, "rewards", []):
            file, sep, func = reward.name.rpartition(":")
            if sep and file.endswith(".py"):  # plugin reward file.py:function, relative to the recipe
                reward.name = f"{fix(file) if file.startswith('.') or (base / file).exists() else file}:{func}"
        for ds in (stage.dataset, stage.eval_dataset):
            if ds is not None:
                ds.path = fix(ds.path)
                ds.image_root = fix(ds.image_root)
    return recipe


__all__ = [
    "GRPOStage", "LaunchSpec", "LoggingSpec", "LoraSpec", "ModelSpec", "Recipe", "RecipeError", "RewardSpec", "SFTStage",
    "build_trl_config", "load_recipe",
]
