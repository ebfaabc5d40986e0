"""The demo recipe (``recipes/demo.yaml``): one file for the whole pipeline, task to report.

It holds what ``visionr1 train`` recipes hold (model settings, the SFT and GRPO stages, passed through to TRL)
plus what the demo adds around them: the synthetic task, the cold start and the held-out evaluation. The
stages carry no ``dataset``: the demo fills it in (cold-start SFT data for SFT, the RL prompts for GRPO) and
validates them by building the training recipe they become, so a typo in ``stages[1].grpo`` fails at load
time with the training recipe's own message and suggestion.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from visionr1.config.base import (
    RecipeError,
    StrictModel,
    apply_overrides,
    load_yaml_with_includes,
    parse_model,
)

REPO_ROOT = Path(__file__).resolve().parents[3]  # src/visionr1/demo/config.py -> the checkout (editable install)
DEFAULT_RECIPE = "recipes/demo.yaml"


class TaskSpec(StrictModel):
    name: Literal["counting", "arithmetic", "choice", "grounding", "spatial"] = Field(
        "counting", description="Synthetic task (visionr1.tasks.synthetic)."
    )
    difficulty: Literal["easy", "medium", "hard"] = Field("easy", description="Difficulty preset (tasks/scene.py).")
    difficulty_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields of the preset to change (e.g. max_objects: 5); see tasks.scene.Difficulty.",
    )
    coldstart_items: int = Field(200, ge=1, description="Training items sent through the cold start (SFT data).")
    rl_items: int = Field(400, ge=1, description="Further training items whose questions are the GRPO prompts.")
    heldout_items: int = Field(150, ge=1, description="Held-out items every stage is evaluated on.")

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


class DemoModelSpec(StrictModel):
    family: Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] = Field("qwen2_5_vl", description="Tiny model architecture.")
    size: Literal["test", "demo"] = Field("demo", description="Tiny model preset (models/tiny.py PRESETS).")
    init_seed: int | None = Field(None, description="Seed of the random initial weights; null = the recipe's seed.")
    max_pixels: int = Field(12544, ge=28 * 28, description="Pixels per image for the processor (12544 = 112x112 = 16 image tokens).")
    freeze: list[Literal["vision_tower", "projector", "language_model"]] = Field(
        default_factory=list, description="Parts kept frozen in every stage."
    )


class ColdStartSpec(StrictModel):
    variant: Literal["detailed", "formal", "caption_first"] = Field(
        "detailed", description="Description step variant (coldstart DescriptionStepSpec.variant); caption_first makes long thinking."
    )
    check_answer: bool = Field(True, description="Drop samples whose final answer is wrong (always right with the oracle).")


class EvalSpec(StrictModel):
    samples: int = Field(4, ge=1, description="Sampled passes over the held-out items; accuracy is their mean (pass@1).")
    temperature: float = Field(0.6, gt=0, description="Sampling temperature (the paper's evaluation: 0.6).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass (the paper's evaluation: 0.95).")
    greedy: bool = Field(True, description="Also decode greedily once and report it beside the sampled accuracy.")
    seed: int = Field(1234, description="Seed of the sampling passes (pass i uses seed + i): every stage sees the same draws.")
    max_new_tokens: int = Field(256, ge=1, description="Completion limit, the same for every stage (a fair comparison).")
    batch_size: int = Field(50, ge=1, description="Prompts per generate call.")
    examples: int = Field(2, ge=0, description="Held-out completions per stage quoted in report.md.")


class DemoRecipe(StrictModel):
    name: str = Field("demo", description="Run name.")
    seed: int = Field(0, description="Seed of the data, the initial weights (unless model.init_seed) and training.")
    output_dir: str = Field("runs/demo", description="Run directory (relative to the current directory); --output-dir overrides.")
    task: TaskSpec = Field(default_factory=TaskSpec, description="Synthetic task, difficulty and item counts.")
    model: DemoModelSpec = Field(default_factory=DemoModelSpec, description="Tiny model built locally (no download).")
    coldstart: ColdStartSpec = Field(default_factory=ColdStartSpec, description="Modality-bridging cold start (oracle backend).")
    stages: list[dict[str, Any]] = Field(
        ..., min_length=2,
        description="Training stages as in a train recipe (name, type, sft | grpo + rewards), without dataset: "
        "first the SFT stage, then the GRPO (PTST) stages.",
    )
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Held-out evaluation of every stage.")
    threads: int | Literal["auto"] | None = Field(
        "auto", description="torch CPU threads, by the policy train and eval run use (visionr1.runtime). auto: the "
        "cores other processes leave free (1-minute load average) less one for the process's own work, at least 1 "
        "(measured on 2 cores: 2 threads 1.4-1.6x slower than 1 for GRPO at load 5-11). null = torch's default.",
    )
    progress: Literal["auto", "rich", "lines", "none"] = Field(
        "auto", description="Training progress: rich bars on a terminal (auto), a line per step, or none."
    )

    @model_validator(mode="after")
    def _sft_then_grpo(self) -> DemoRecipe:
        types = [s.get("type") for s in self.stages]
        if types[0] != "sft" or any(t != "grpo" for t in types[1:]):
            raise ValueError(f"stages must be one sft stage then grpo stages; got types {types}")
        for s in self.stages:
            if "dataset" in s or "eval_dataset" in s:
                raise ValueError(f"stage {s.get('name')!r}: leave out dataset / eval_dataset, the demo sets them")
        return self

    def training_recipe(self, run_dir: Path, model_dir: Path, source: str = "demo recipe"):
        """The ``visionr1 train`` recipe the stages become, with their data under ``run_dir``."""
        from visionr1.recipe import Recipe, _resolve_paths

        data = {
            "sft": {"format": "jsonl", "path": str(run_dir / "coldstart" / "cold_start.jsonl")},
            "grpo": {"format": "jsonl", "path": str(run_dir / "data" / "rl.jsonl")},
        }
        stages = [{**s, "dataset": data[s["type"]]} for s in self.stages]
        raw = {
            "name": self.name,
            "seed": self.seed,
            "model": {"path": str(model_dir), "dtype": "float32", "max_pixels": self.model.max_pixels,
                      "freeze": list(self.model.freeze)},
            "stages": stages,
            "report_to": [],
            "logging": {"completions_per_log": 2, "progress": self.progress, "plot": True},
        }
        recipe = parse_model(Recipe, raw, source=source)
        return _resolve_paths(recipe, run_dir)


def default_recipe_path() -> Path:
    """The shipped ``recipes/demo.yaml``: in the checkout beside the package, else under the current directory."""
    for candidate in (REPO_ROOT / DEFAULT_RECIPE, Path.cwd() / DEFAULT_RECIPE):
        if candidate.is_file():
            return candidate
    raise RecipeError(
        f"{DEFAULT_RECIPE} not found beside the package ({REPO_ROOT}) nor in {Path.cwd()}; "
        "pass the recipe: visionr1 demo path/to/demo.yaml"
    )


def load_demo_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DemoRecipe:
    """Load, include, override and validate the demo recipe (stages included, by their training recipe)."""
    path = Path(path) if path is not None else default_recipe_path()
    raw = load_yaml_with_includes(path)
    data = apply_overrides(raw, [_named_stage(o, raw, path) for o in overrides])
    recipe = parse_model(DemoRecipe, data, source=str(path))
    recipe.training_recipe(Path(recipe.output_dir).resolve(), Path("/nonexistent-model"), source=str(path))
    return recipe


def _named_stage(override: str, data: dict, path: Path) -> str:
    """``stages.grpo-1.grpo.max_steps=5`` -> ``stages.1.grpo.max_steps=5`` (as ``visionr1 train`` accepts)."""
    from visionr1.recipe import _stage_name_to_index

    return _stage_name_to_index(override, data, path)
