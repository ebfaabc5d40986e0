"""`visionr1 demo`: the whole Vision-R1 pipeline, end to end, on a CPU in minutes, with measured learning.

The demo is ``visionr1 run recipes/demo.yaml`` (:mod:`visionr1.pipeline.run`, a pipeline recipe with every
section) plus a report. The story (every part is the project's own component, not a demo copy):
1. data: a synthetic visual task (``tasks.synthetic``), split into cold-start items, RL prompts and held-out
   items, and a randomly initialised ``demo``-size tiny Qwen2.5-VL (``models.tiny``), built locally;
2. cold start: modality bridging (``coldstart``) with the ORACLE backend, i.e. each scene's ground-truth
   description and rule-derived reasoning stand in for the MLLM captioner and the text reasoner;
3. training (``training.runner``): cold-start SFT, then GRPO with PTST (two stages: shorter completions with
   more generations per prompt, then longer with fewer), Vision-R1's hard formatting result reward;
4. evaluation (``evaluation.evaluate_samples``): the base model, the SFT model and every GRPO stage on the
   same held-out items (``eval.split``: or on the validation items, for choosing settings), decoded the same way: the paper's sampling (temperature 0.6, top_p 0.95; the mean
   of k seeded passes) and one greedy pass, with the same completion limit;
5. report: ``report.json``, ``report.md`` with a plot, and a table on the console.

Where the demo departs from the paper, all for a 2-core CPU budget (see the recipe for the numbers): a ~1M
parameter random model instead of Qwen2.5-VL-7B, so SFT teaches the language and the format from scratch and
is deliberately short (it learns the format and part of the task, leaving GRPO something to gain); the oracle
instead of Qwen2.5-VL-72B + DeepSeek-R1; completions of ~100 tokens instead of 4K-8K; KL beta 0 (no reference
model: a second forward pass per step that costs a third of the step time).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from visionr1.config.base import RecipeError
from visionr1.pipeline.config import PipelineRecipe
from visionr1.pipeline.run import MARKER

REPO_ROOT = Path(__file__).resolve().parents[3]  # src/visionr1/demo/pipeline.py -> the checkout (editable install)
DEFAULT_RECIPE = "recipes/demo.yaml"
# what --resume must find unchanged (the evaluation may change: it is redone per checkpoint when it does)
_TRAINED_BY = ("name", "seed", "data", "tiny_model", "coldstart", "model", "stages")
_SECTIONS = ("data", "tiny_model", "coldstart", "stages", "eval")  # a demo recipe has them all


class DemoError(RuntimeError):
    """A demo that cannot run here; the message says why and what to do."""


def main(recipe: PipelineRecipe, recipe_path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
         resume: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns the report (also written to ``RUN_DIR/report.json``)."""
    console = console or Console(highlight=False)
    check_demo_recipe(recipe)
    from visionr1.training.lock import pipeline_lock

    run_dir = recipe.run_dir
    with pipeline_lock(run_dir):  # before the directory is prepared: a fresh demo clears it
        return _main_locked(recipe, recipe_path, overrides, resume, console)


def _main_locked(recipe: PipelineRecipe, recipe_path: str | Path | None, overrides: list[str] | tuple[str, ...],
                 resume: bool, console: Console) -> dict[str, Any]:
    run_dir = recipe.run_dir
    _prepare_run_dir(run_dir, recipe, resume, console)
    _quiet_libraries()
    import time

    from visionr1.pipeline.run import main as run

    t_start = time.perf_counter()
    # --- 1-4. data and model, cold start, training, evaluation: the pipeline's sections -------------------------
    out = run(recipe, recipe_path, overrides, console=console, label="visionr1 demo", extra_steps=1)

    # --- 5. report ------------------------------------------------------------------------------------------------
    from visionr1.demo.report import print_table, write_report

    console.rule("[bold cyan]5/5 report")
    wall = time.perf_counter() - t_start
    report = write_report(run_dir, recipe, recipe.training_recipe(), out["data"], out["coldstart"], out["eval"],
                          out["phases"], wall, {"torch_threads": out["torch_threads"],
                                                "load_average_at_start": out["load_average_at_start"]})
    print_table(report, console, run_dir)
    return report


def default_recipe_path() -> Path:
    """The shipped ``recipes/demo.yaml``: in the checkout beside the package, else under the current directory."""
    for candidate in (REPO_ROOT / DEFAULT_RECIPE, Path.cwd() / DEFAULT_RECIPE):
        if candidate.is_file():
            return candidate
    raise RecipeError(
        f"{DEFAULT_RECIPE} not found beside the package ({REPO_ROOT}) nor in {Path.cwd()}; "
        "pass the recipe: visionr1 demo path/to/demo.yaml"
    )


def load_demo_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PipelineRecipe:
    """Load the demo's pipeline recipe (default: the shipped one) and check it has what the report needs."""
    from visionr1.pipeline.config import load_pipeline

    path = Path(path) if path is not None else default_recipe_path()
    recipe = load_pipeline(path, overrides)
    try:
        check_demo_recipe(recipe)
    except DemoError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return recipe


def check_demo_recipe(recipe: PipelineRecipe) -> None:
    """What the report compares: every section, one SFT stage on the cold start's data, then GRPO stages."""
    missing = [s for s in _SECTIONS if getattr(recipe, s) is None]
    if missing:
        raise DemoError(f"a demo recipe has every section; missing: {', '.join(missing)} (for the sections it "
                        "has alone, use visionr1 run)")
    types = [s.type for s in recipe.stages or []]
    if types[:1] != ["sft"] or len(types) < 2 or any(t != "grpo" for t in types[1:]):
        raise DemoError(f"stages must be one sft stage then grpo stages; got types {types}")


# ----------------------------------------------------------------------------------------------------------
# the parts main() tells
# ----------------------------------------------------------------------------------------------------------


def _quiet_libraries() -> None:
    """A newcomer's console: the demo's own bars and lines, not the libraries' deprecation notices (TRL still
    passes ``gradient_checkpointing``) or per-file loading/saving bars."""
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    hf_logging.disable_progress_bar()


def cpu_threads(setting: int | str | None) -> int:
    """Set torch's CPU threads by the policy ``train`` and ``eval run`` use (:mod:`visionr1.runtime`)."""
    from visionr1.runtime import apply_cpu_threads

    return apply_cpu_threads(setting)["torch_threads"]


def _prepare_run_dir(run_dir: Path, recipe: PipelineRecipe, resume: bool, console: Console) -> None:
    """A fresh run clears a previous pipeline run in ``run_dir`` (never a directory that is not one);
    ``resume`` keeps it, and the finished parts (data, cold start, finished stages) are reused."""
    marker = run_dir / MARKER
    resolved = recipe.model_dump(mode="json")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not marker.is_file():
            raise DemoError(f"{run_dir} exists and is not a demo run directory; choose another --output-dir or empty it")
        if resume:
            old = json.loads(marker.read_text())
            changed = [k for k in _TRAINED_BY if old.get(k) != resolved.get(k)]
            if changed:
                raise DemoError(f"{run_dir} holds a demo run with other settings ({', '.join(changed)}); resume "
                                "with the same recipe and overrides, or run without --resume to start over")
            console.print(f"resuming the demo run in {run_dir}")
        else:
            console.print(f"starting over: clearing the previous demo run in {run_dir}")
            shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(resolved, indent=2) + "\n")
