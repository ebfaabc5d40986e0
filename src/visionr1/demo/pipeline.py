"""`visionr1 demo`: the whole Vision-R1 pipeline, end to end, on a CPU in minutes, with measured learning.

The story, top to bottom in :func:`main` (every part is the project's own component, not a demo copy):
1. data: a synthetic visual task (``tasks.synthetic``), split into cold-start items, RL prompts and held-out
   items, and a randomly initialised ``demo``-size tiny Qwen2.5-VL (``models.tiny``), built locally;
2. cold start: modality bridging (``coldstart``) with the ORACLE backend, i.e. each scene's ground-truth
   description and rule-derived reasoning stand in for the MLLM captioner and the text reasoner;
3. training (``training.runner``): cold-start SFT, then GRPO with PTST (two stages: shorter completions with
   more generations per prompt, then longer with fewer), Vision-R1's hard formatting result reward;
4. evaluation (``evaluation.evaluate_samples``): the base model, the SFT model and every GRPO stage on the
   same held-out items, decoded the same way: the paper's sampling (temperature 0.6, top_p 0.95; the mean
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
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from visionr1.demo.config import DemoRecipe

MARKER = "demo_recipe.json"  # written first: marks a directory as a demo run (safe to clear on a fresh start)
_TRAINED_BY = ("name", "seed", "task", "model", "coldstart", "stages")  # what --resume must find unchanged


class DemoError(RuntimeError):
    """A demo that cannot run here; the message says why and what to do."""


def main(recipe: DemoRecipe, output_dir: str | Path | None = None, resume: bool = False,
         console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns the report (also written to ``RUN_DIR/report.json``)."""
    console = console or Console(highlight=False)
    run_dir = Path(output_dir or recipe.output_dir).expanduser().resolve()
    _prepare_run_dir(run_dir, recipe, resume, console)
    phases: dict[str, float] = {}
    t_start = time.perf_counter()
    load = _load()
    threads = cpu_threads(recipe.threads)
    _quiet_libraries()
    console.print(f"visionr1 demo -> {run_dir}  ({threads} torch thread{'s' if threads > 1 else ''}, "
                  f"load average {load:.1f})")

    # --- 1. data and model -----------------------------------------------------------------------------------
    with _phase(phases, "data", console, "1/5 data: synthetic task and tiny model"):
        splits = make_data(recipe, run_dir / "data")
        model_dir = make_model(recipe, run_dir / "model")
    console.print(f"  {recipe.task.name} ({splits['difficulty']}): {splits['coldstart']} cold-start items, "
                  f"{splits['rl']} RL prompts, {splits['heldout']} held-out items; model {model_dir}")

    # --- 2. cold start (modality bridging, oracle backend) ----------------------------------------------------
    with _phase(phases, "coldstart", console, "2/5 cold start: modality bridging (oracle backend)"):
        cold = run_coldstart_step(recipe, run_dir, console)

    # --- 3. training: SFT, then PTST GRPO stages -----------------------------------------------------------------
    train_recipe = recipe.training_recipe(run_dir, model_dir).model_copy(update={"cpu_threads": threads})
    with _phase(phases, "train", console, "3/5 training: cold-start SFT, then GRPO with PTST"):
        from visionr1.training.runner import main as train

        train(train_recipe, output_dir=run_dir / "train", source="demo recipe")
    phases.update(_stage_seconds(run_dir / "train"))

    # --- 4. evaluation: every checkpoint on the same held-out items --------------------------------------------
    checkpoints = {"base": model_dir} | {s.name: run_dir / "train" / s.name / "final" for s in train_recipe.stages}
    heldout: dict[str, dict[str, Any]] = {}
    with _phase(phases, "eval", console, "4/5 evaluation: held-out accuracy of every stage"):
        from visionr1.demo.evaluate import evaluate_checkpoint

        for name, path in checkpoints.items():
            t0 = time.perf_counter()
            heldout[name] = evaluate_checkpoint(path, run_dir / "data" / "test.jsonl", run_dir / "eval" / name,
                                                recipe.eval, recipe.model.max_pixels, console, label=name)
            phases[f"eval:{name}"] = round(time.perf_counter() - t0, 1)

    # --- 5. report ------------------------------------------------------------------------------------------------
    from visionr1.demo.report import print_table, write_report

    console.rule("[bold cyan]5/5 report")
    wall = time.perf_counter() - t_start
    report = write_report(run_dir, recipe, train_recipe, splits, cold, heldout, phases, wall,
                          {"torch_threads": threads, "load_average_at_start": load})
    print_table(report, console, run_dir)
    return report


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


def _load() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def cpu_threads(setting: int | str | None) -> int:
    """Set torch's CPU threads by the policy ``train`` and ``eval run`` use (:mod:`visionr1.runtime`)."""
    from visionr1.runtime import apply_cpu_threads

    return apply_cpu_threads(setting)["torch_threads"]



def make_data(recipe: DemoRecipe, data_dir: Path) -> dict[str, Any]:
    """Draw ``coldstart + rl + heldout`` items of one stream; write ``coldstart.jsonl`` (the first items),
    ``rl.jsonl`` (the next) and ``test.jsonl`` (the last, held out) beside the images."""
    from visionr1.tasks.synthetic import make_synthetic

    t = recipe.task
    difficulty = t.resolved_difficulty()
    n = t.coldstart_items + t.rl_items + t.heldout_items
    make_synthetic(t.name, n, recipe.seed, data_dir, difficulty=difficulty, test_fraction=t.heldout_items / n)
    train = [line + "\n" for line in (data_dir / "train.jsonl").read_text(encoding="utf-8").split("\n") if line]
    if len(train) != t.coldstart_items + t.rl_items:  # make_synthetic rounds the test share
        raise DemoError(f"make_synthetic wrote {len(train)} training items, expected {t.coldstart_items + t.rl_items}")
    (data_dir / "coldstart.jsonl").write_text("".join(train[: t.coldstart_items]), encoding="utf-8")
    (data_dir / "rl.jsonl").write_text("".join(train[t.coldstart_items :]), encoding="utf-8")
    return {"task": t.name, "difficulty": difficulty.name, "difficulty_params": difficulty.to_dict(),
            "coldstart": t.coldstart_items, "rl": t.rl_items, "heldout": t.heldout_items}


def make_model(recipe: DemoRecipe, out: Path) -> Path:
    """A randomly initialised tiny model (seeded), built here: nothing is downloaded."""
    from visionr1.models.tiny import INFO_FILE, build_tiny_model

    if (out / INFO_FILE).is_file():  # resumed run: the same seed built the same weights
        return out
    seed = recipe.model.init_seed if recipe.model.init_seed is not None else recipe.seed
    return build_tiny_model(recipe.model.family, recipe.model.size, out, seed=seed)


def run_coldstart_step(recipe: DemoRecipe, run_dir: Path, console: Console) -> dict[str, Any]:
    """Vision-R1-cold on the cold-start items: pseudo-CoT -> description -> reasoning -> filters -> SFT data."""
    from visionr1.coldstart import run_coldstart
    from visionr1.coldstart.config import ColdstartRecipe
    from visionr1.config.base import parse_model

    cs = parse_model(ColdstartRecipe, {
        "name": f"{recipe.name}-coldstart",
        "input": {"format": "jsonl", "path": str(run_dir / "data" / "coldstart.jsonl")},
        "backends": {"oracle": {"type": "oracle"}},
        "pseudo_cot": {"backend": "oracle"},
        "description": {"backend": "oracle", "variant": recipe.coldstart.variant},
        "reasoning": {"backend": "oracle"},
        "filters": {"check_answer": recipe.coldstart.check_answer},
    }, source="demo recipe: coldstart")
    report = run_coldstart(cs, output_dir=run_dir / "coldstart", console=console)
    if not report.get("kept"):
        raise DemoError(f"the cold start kept no sample (see {run_dir / 'coldstart' / 'report.json'}); SFT has no data")
    return {"input": report["input_records"], "kept": report["kept"], "dropped": report.get("dropped"),
            "oracle_steps": report.get("oracle_steps"), "oracle_note": report.get("oracle_note"),
            "mean_response_chars": report.get("mean_response_chars"),
            "report": str(run_dir / "coldstart" / "report.json")}


def _stage_seconds(train_dir: Path) -> dict[str, float]:
    """Wall seconds of each training stage, from the manifest's timestamps (model loading included)."""
    from datetime import datetime

    manifest = json.loads((train_dir / "manifest.json").read_text())
    out = {}
    for s in manifest["stages"]:
        if s.get("started") and s.get("finished"):
            secs = (datetime.fromisoformat(s["finished"]) - datetime.fromisoformat(s["started"])).total_seconds()
            out[f"train:{s['name']}"] = secs
    return out


class _phase:
    """Context manager: a rule on the console, then the phase's wall seconds into ``phases``."""

    def __init__(self, phases: dict[str, float], name: str, console: Console, title: str) -> None:
        self.phases, self.name, self.console, self.title = phases, name, console, title

    def __enter__(self) -> None:
        self.console.rule(f"[bold cyan]{self.title}")
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.phases[self.name] = round(time.perf_counter() - self.t0, 1)
        if exc[0] is None:
            self.console.print(f"  [dim]{self.name}: {self.phases[self.name]:.0f} s[/]")


def _prepare_run_dir(run_dir: Path, recipe: DemoRecipe, resume: bool, console: Console) -> None:
    """A fresh run clears a previous demo run in ``run_dir`` (never a directory the demo did not make);
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
