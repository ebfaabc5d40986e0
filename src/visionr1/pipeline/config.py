"""The pipeline recipe: one file for a whole run, with optional sections run in order by ``visionr1 run``.

    data        synthetic task items: cold-start, RL, held-out (+ validation)   -> RUN/data/
    tiny_model  a tiny random model built locally (model.path defaults to it)   -> RUN/model/
    coldstart   the cold-start recipe's body (visionr1.coldstart.config)        -> RUN/coldstart/
    model, stages (+ report_to, logging, launch, cpu_threads)
                the training recipe's fields (visionr1.recipe)                  -> RUN/train/
    eval        evaluation of the base model and every stage on the held-out    -> RUN/eval/<stage>/
                and/or the validation items (``eval.split``)                     -> RUN/eval-validation/<stage>/
                or a benchmark's records (``eval.benchmark``), officially scored -> RUN/eval/<stage>/

Every section is validated by its own schema, not a copy of it: ``coldstart`` *is* a
:class:`~visionr1.coldstart.config.ColdstartRecipe`, the stages *are* the training recipe's typed stages and the
training part is checked as a :class:`~visionr1.recipe.TrainRecipe`, ``eval`` is the schema ``visionr1 eval run``
decodes with. Sections refer to each other's outputs by default, so each path is written once: the cold start
reads the data section's cold-start split, the SFT stages train on the cold start's output, the GRPO stages
on the RL split, the evaluation reads the held-out split; an explicit path in the recipe wins. A training
recipe (model + stages only) is a pipeline recipe too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from visionr1.coldstart.config import ColdstartRecipe, resolve_templates
from visionr1.config.base import RecipeError, StrictModel
from visionr1.config.loader import load, run_dir_of
from visionr1.evaluation.spec import EvalSpec
from visionr1.models import families
from visionr1.recipe import LaunchSpec, LoggingSpec, ModelSpec, Stage, TrainRecipe
from visionr1.runtime import CPU_THREADS_HELP, CpuThreads


class SyntheticData(StrictModel):
    """The ``data`` section: one seeded stream of a synthetic task (visionr1.tasks), split three ways, and an
    optional validation split from a stream of its own (settings are chosen on it, results reported on the
    held-out split)."""

    name: Literal["counting", "arithmetic", "choice", "grounding", "spatial"] = Field(
        "counting", description="Synthetic task (visionr1.tasks.synthetic)."
    )
    difficulty: Literal["easy", "medium", "hard"] = Field("easy", description="Difficulty preset (tasks/scene.py).")
    difficulty_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields of the preset to change (e.g. max_objects: 5); see tasks.scene.Difficulty.",
    )
    coldstart_items: int = Field(200, ge=1, description="Training items sent through the cold start (RUN/data/coldstart.jsonl).")
    rl_items: int = Field(400, ge=1, description="Further training items whose questions are the GRPO prompts (RUN/data/rl.jsonl).")
    heldout_items: int = Field(150, ge=1, description="Held-out items every stage is evaluated on (RUN/data/test.jsonl).")
    validation_items: int = Field(
        0, ge=0, description="Validation items for choosing settings (RUN/data/val.jsonl): a stream of their own "
        "(another seed derived from the recipe's), never trained on, never the held-out ones; 0 = none."
    )

    @field_validator("difficulty_overrides")
    @classmethod
    def _known_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        from visionr1.tasks.scene import Difficulty

        valid = [f.name for f in dataclasses.fields(Difficulty) if f.name != "name"]
        bad = [k for k in v if k not in valid]
        if bad:
            raise ValueError(f"unknown difficulty field(s) {bad}; valid: {', '.join(valid)}")
        return v

    def resolved_difficulty(self):
        """The preset with the overrides applied (named ``<preset>+custom`` when changed)."""
        from visionr1.tasks.scene import get_difficulty

        base = get_difficulty(self.difficulty)
        if not self.difficulty_overrides:
            return base
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.difficulty_overrides.items()}
        return dataclasses.replace(base, name=f"{base.name}+custom", **values)


class TinyModelSpec(StrictModel):
    """The ``tiny_model`` section: a random tiny model built into RUN/model (models/tiny.py), no download."""

    family: str = Field("qwen2_5_vl", description="Tiny model architecture: a registered family "
                        "(visionr1.models.families, e.g. qwen2_5_vl, gemma3, internvl).")
    size: Literal["test", "demo"] = Field("demo", description="Tiny model preset (models/tiny.py PRESETS).")
    init_seed: int | None = Field(None, description="Seed of the random initial weights; null = the recipe's seed.")

    @field_validator("family")
    @classmethod
    def _registered(cls, value: str) -> str:

        if value not in families.names():
            raise ValueError(f"unknown family {value!r}; supported: {', '.join(families.names())}")
        return value


class PipelineRecipe(StrictModel):
    name: str = Field(..., description="Run name; the default run directory is runs/<name>.")
    seed: int = Field(42, description="Seed of the data, the tiny model's weights (unless tiny_model.init_seed) and training.")
    output_dir: str | None = Field(
        None, description="Run directory (relative to the current directory); default runs/<name>. `--output-dir` overrides."
    )
    data: SyntheticData | None = Field(None, description="Section 1: synthetic task items (cold-start, RL, held-out splits).")
    tiny_model: TinyModelSpec | None = Field(None, description="Section 1: a tiny random model built locally; model.path defaults to it.")
    coldstart: ColdstartRecipe | None = Field(
        None, description="Section 2: a cold-start recipe (visionr1 coldstart); name, input and output_dir default to the run's."
    )
    model: ModelSpec | None = Field(None, description="Section 3: the model training starts from (as in a training recipe).")
    stages: list[Stage] | None = Field(
        None, description="Section 3: training stages (as in a training recipe); dataset defaults: sft <- the cold start's "
        "output, grpo and dpo (without pairs_file) <- the data section's RL split."
    )
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"], description="Training: trackers besides metrics.jsonl (as in a training recipe)."
    )
    logging: LoggingSpec = Field(default_factory=LoggingSpec, description="Training: what to log besides metrics.jsonl.")
    launch: LaunchSpec = Field(default_factory=LaunchSpec, description="Training: processes per stage and the accelerate launch settings.")
    cpu_threads: CpuThreads = Field("auto", description=CPU_THREADS_HELP + "; `--cpu-threads` overrides.")
    eval: EvalSpec | None = Field(
        None, description="Section 4: held-out evaluation of the base model and every stage's final weights."
    )

    _train: TrainRecipe | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _default_paths(cls, data: Any) -> Any:
        """Each section reads the previous one's output unless the recipe says otherwise."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return data
        data = dict(data)
        run = run_dir_of(data)
        if isinstance(data.get("coldstart"), dict):
            cs = dict(data["coldstart"])
            cs.setdefault("name", f"{data['name']}-coldstart")
            cs.setdefault("output_dir", str(run / "coldstart"))
            if data.get("data") is not None:
                cs.setdefault("input", {"format": "jsonl", "path": str(run / "data" / "coldstart.jsonl")})
            data["coldstart"] = cs
        if data.get("tiny_model") is not None and isinstance(data.get("model") or {}, dict):
            data["model"] = {"path": str(run / "model"), **(data.get("model") or {})}
        if isinstance(data.get("stages"), list):
            defaults = {}
            if isinstance(data.get("coldstart"), dict):
                out = Path(str(data["coldstart"]["output_dir"])).expanduser()
                defaults["sft"] = str((out if out.is_absolute() else Path.cwd() / out) / "cold_start.jsonl")
            if data.get("data") is not None:
                defaults["grpo"] = defaults["dpo"] = str(run / "data" / "rl.jsonl")  # prompts with solutions
            data["stages"] = [
                {**s, "dataset": {"format": "jsonl", "path": defaults[s.get("type", "sft")]}}
                if isinstance(s, dict) and "dataset" not in s and "pairs_file" not in s
                and s.get("type", "sft") in defaults else s
                for s in data["stages"]
            ]
        if isinstance(data.get("eval"), dict) and isinstance(data.get("data"), dict) and not data["eval"].get("benchmark"):
            defaults = {"data": str(run / "data" / "test.jsonl")}
            if data["data"].get("validation_items"):
                defaults["validation_data"] = str(run / "data" / VALIDATION_FILE)
            data["eval"] = {**defaults, **data["eval"]}
        return data

    @model_validator(mode="after")
    def _sections_fit(self) -> PipelineRecipe:
        if self.stages is not None and self.model is None:
            raise ValueError("stages need a model: add a model section (model.path) or a tiny_model section")
        if self.eval is not None:
            if self.model is None:
                raise ValueError("eval evaluates the model and its stages: add a model (or tiny_model) section")
            if self.eval.benchmark is not None and self.eval.data is None:
                raise ValueError(f"eval.data: the {self.eval.benchmark} records as published (JSON, JSONL, parquet or a "
                                 "folder of them), as eval run --data takes them; set it")
            if self.eval.data is None and self.eval.split != "validation":
                raise ValueError("eval.data: the held-out items; set it, or add a data section (its test split)")
            if self.eval.validation_data is None and self.eval.split != "heldout":
                raise ValueError(f"eval.split={self.eval.split} needs validation items: set data.validation_items "
                                 "(e.g. 200) or eval.validation_data")
        if self.stages is not None:  # the training recipe's own checks (stage names, image budget); stages not re-validated
            try:
                self._train = TrainRecipe(name=self.name, seed=self.seed, output_dir=str(self.run_dir / "train"),
                                     model=self.model, stages=self.stages, report_to=self.report_to,
                                     logging=self.logging, launch=self.launch, cpu_threads=self.cpu_threads)
            except ValidationError as exc:
                raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        return self

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self)

    def after_load(self, source: str) -> None:
        """Called by the loader: the cold start's prompt templates (fail now, not after 1000 requests)."""
        if self.coldstart is not None:
            resolve_templates(self.coldstart, source=f"{source}: coldstart")

    def eval_splits(self) -> dict[str, str]:
        """The splits the eval section evaluates on, each with its items: ``{"heldout": path, "validation": path}``."""
        assert self.eval is not None
        names = ("heldout", "validation") if self.eval.split == "both" else (self.eval.split,)
        paths = {"heldout": self.eval.data, "validation": self.eval.validation_data}
        return {name: str(paths[name]) for name in names}

    def sections(self) -> list[str]:
        """The sections this recipe has, in the order they run."""
        present = {"data": self.data, "tiny_model": self.tiny_model, "coldstart": self.coldstart,
                   "train": self.stages, "eval": self.eval}
        return [name for name, value in present.items() if value is not None]

    def training_recipe(self) -> TrainRecipe:
        """The training recipe of the model + stages sections (``visionr1 train`` on this file runs it)."""
        if self._train is None:
            raise RecipeError(f"{self.name}: this pipeline recipe has no stages section to train")
        return self._train


VALIDATION_FILE = "val.jsonl"


def load_pipeline(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineRecipe:
    """Load, include, override and validate a pipeline recipe (``visionr1.config.loader``); relative paths
    resolve against the file."""
    return load(PipelineRecipe, path, overrides)
