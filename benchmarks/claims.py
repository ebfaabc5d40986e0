"""Shared parts of the claim benchmarks (``sft_vs_rl_ood.py``, ``ptst_ablation.py``): data, cold start,
training runs and held-out evaluation, all through the project's own components (the same ones the demo
uses), so a benchmark measures the pipeline a user runs, not a copy of it.

A "run" here is one ``visionr1 train`` recipe (``training.runner.main``) started from a given checkpoint;
branching two arms from the same start is two runs whose ``model.path`` is that start's ``final/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console


def setup() -> int:
    """Quiet library notices and pick torch's CPU threads as the demo does (on a busy machine one thread is
    ~3x faster for these tiny models than threads waiting for a core); returns the thread count."""
    from visionr1.demo.pipeline import _quiet_libraries, cpu_threads

    _quiet_libraries()
    return cpu_threads("auto")


def run_seeds(doc: str, default_out: Path, full: dict[str, Any], smoke: dict[str, Any], one_seed: Any,
              argv: list[str] | None = None, variants: dict[str, dict[str, Any]] | None = None,
              ) -> tuple[argparse.Namespace, dict[str, Any], list[int], list[Any]]:
    """The command line both claim scripts share (``--seeds``, ``--out``, ``--smoke``, ``--start-model``, and
    ``--variant`` when a script has other full settings), then ``one_seed(seed, out_dir, cfg, console,
    start_model)`` per seed; returns (args, cfg, seeds, results)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="Default: 0 1 2 (smoke: 0).")
    parser.add_argument("--out", type=Path, default=None, help=f"Default: {default_out}[-VARIANT].")
    parser.add_argument("--smoke", action="store_true", help="Tiny settings: proves every step runs, measures nothing.")
    parser.add_argument("--start-model", type=Path, default=None, help="Base checkpoint instead of a new random one.")
    if variants:
        parser.add_argument("--variant", choices=sorted(variants), default=None,
                            help="Other full settings: " + "; ".join(f"{k}: {v.get('about', '')}" for k, v in variants.items()))
    args = parser.parse_args(argv)
    variant = getattr(args, "variant", None)
    if args.out is None:
        args.out = default_out.with_name(f"{default_out.name}-{variant}") if variant else default_out
    cfg = smoke if args.smoke else (variants[variant] if variant else full)
    seeds = args.seeds if args.seeds is not None else ([0] if args.smoke else [0, 1, 2])
    console = Console(highlight=False)
    setup()
    per_seed = [cached(args.out / f"seed-{s}" / "result.json", _settings(cfg, args),
                       lambda s=s: one_seed(s, args.out / f"seed-{s}", cfg, console, args.start_model), console)
                for s in seeds]
    return args, cfg, seeds, per_seed


def _settings(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {**cfg, "start_model": str(args.start_model) if args.start_model else None}


def cached(path: Path, settings: dict[str, Any], compute: Any, console: Console | None = None) -> Any:
    """``compute()``'s result, kept in ``path`` with the settings it was computed under: a rerun (one seed per
    process, then all seeds to merge; or after a kill) reuses it when the settings are the same and recomputes
    it when they are not, so a summary never mixes settings."""
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("settings") == json.loads(json.dumps(settings, default=str)):
            if console is not None:
                console.print(f"reusing {path} (same settings)")
            return saved["result"]
        if console is not None:
            console.print(f"{path}: computed under other settings, recomputing")
    result = compute()
    write_json(path, {"settings": settings, "result": result})
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def difficulty(preset: str, **changes: Any):
    """A difficulty preset with fields changed (named ``<preset>+<what changed>``)."""
    from visionr1.tasks.scene import get_difficulty

    base = get_difficulty(preset)
    if not changes:
        return base
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return dataclasses.replace(base, name=f"{base.name}+{'+'.join(sorted(changes))}", **values)


def make_split(task: str, n: int, seed: int, out: Path, diff) -> Path:
    """``n`` items of one distribution, all in ``out/train.jsonl`` (a benchmark splits them itself)."""
    from visionr1.tasks.synthetic import make_synthetic

    make_synthetic(task, n, seed, out, difficulty=diff, test_fraction=0.0)
    return out / "train.jsonl"


def split_lines(path: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """Cut a jsonl file into consecutive parts ``{name: size}`` written beside it as ``<name>.jsonl``."""
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
    if sum(sizes.values()) > len(lines):
        raise SystemExit(f"{path}: {len(lines)} items, {sum(sizes.values())} needed")
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = path.with_name(f"{name}.jsonl")
        out[name].write_text("".join(line + "\n" for line in lines[start : start + size]), encoding="utf-8")
        start += size
    return out


def coldstart(items: Path, out: Path, max_reflections: int = 0, console: Console | None = None) -> Path:
    """Modality-bridging cold start with the oracle backend (optionally reflective); returns cold_start.jsonl.
    With reflections the repetition-loop filter is off: the oracle's re-checks repeat its reasoning word for
    word on purpose (that is the overthinking being modelled), which the filter would drop as a loop."""
    from visionr1.coldstart import run_coldstart
    from visionr1.coldstart.config import ColdstartRecipe
    from visionr1.config.base import parse_model

    cs = parse_model(ColdstartRecipe, {
        "name": "claims-coldstart",
        "input": {"format": "jsonl", "path": str(items)},
        "backends": {"oracle": {"type": "oracle", "max_reflections": max_reflections}},
        "pseudo_cot": {"backend": "oracle"}, "description": {"backend": "oracle"}, "reasoning": {"backend": "oracle"},
        "filters": {"max_repeated_ngram_fraction": 1.0} if max_reflections else {},
    }, source="benchmark cold start")
    run_coldstart(cs, output_dir=out, console=console or Console(quiet=True))
    return out / "cold_start.jsonl"


def build_model(size: str, seed: int, out: Path, given: Path | None = None) -> Path:
    """A seeded random tiny Qwen2.5-VL (``given``: use that checkpoint instead, e.g. the tests' cached one)."""
    from visionr1.models.tiny import INFO_FILE, build_tiny_model

    if given is not None:
        return given
    return out if (out / INFO_FILE).is_file() else build_tiny_model("qwen2_5_vl", size, out, seed=seed)


def sft_stage(name: str, data: Path, steps: int, batch: int, lr: float) -> dict[str, Any]:
    return {"name": name, "type": "sft", "dataset": {"format": "jsonl", "path": str(data)},
            "sft": {"max_steps": steps, "learning_rate": lr, "lr_scheduler_type": "cosine", "warmup_steps": 0.05,
                    "per_device_train_batch_size": batch, "max_length": 1024, "bf16": False,
                    "gradient_checkpointing": False, "save_steps": max(steps, 1)}}


def grpo_stage(name: str, data: Path, steps: int, length: int, generations: int, prompts: int, lr: float,
               rewards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A GRPO stage: ``prompts`` prompts x ``generations`` completions of at most ``length`` tokens per step."""
    return {"name": name, "type": "grpo", "dataset": {"format": "jsonl", "path": str(data)},
            "rewards": rewards or [{"name": "hard_format_result", "weight": 1.0}],
            "grpo": {"max_completion_length": length, "num_generations": generations,
                     "per_device_train_batch_size": prompts * generations, "max_steps": steps, "learning_rate": lr,
                     "beta": 0.0, "epsilon": 0.2, "loss_type": "grpo", "temperature": 1.0, "bf16": False,
                     "gradient_checkpointing": False, "save_steps": max(steps, 1)}}


def train(name: str, start: Path, stages: list[dict[str, Any]], out: Path, seed: int, max_pixels: int,
          plot: bool = True) -> dict[str, Path]:
    """One training run from checkpoint ``start``; returns each stage's ``final/`` directory."""
    from visionr1.config.base import parse_model
    from visionr1.recipe import TrainRecipe
    from visionr1.training.runner import main as run

    recipe = parse_model(TrainRecipe, {
        "name": name, "seed": seed, "report_to": [],
        "model": {"path": str(start), "dtype": "float32", "max_pixels": max_pixels},
        "logging": {"completions_per_log": 1, "progress": "none", "plot": plot},
        "stages": stages,
    }, source=f"benchmark run {name}")
    run(recipe, output_dir=out, source=f"benchmark run {name}")
    return {s["name"]: out / s["name"] / "final" for s in stages}


def evaluate(model_dir: Path, sets: dict[str, Path], max_new_tokens: int, samples: int, max_pixels: int,
             greedy: bool = True, batch_size: int = 50, seed: int = 1234) -> dict[str, dict[str, Any]]:
    """Held-out scores of one checkpoint on several sets (the model is loaded once), the demo's protocol:
    ``accuracy`` = mean of ``samples`` sampled passes (T 0.6, top_p 0.95, pass i seeded ``seed + i``, so every
    checkpoint sees the same draws), plus a greedy pass; format, mean completion tokens and truncation rate."""
    import torch

    from visionr1.evaluation import evaluate_samples
    from visionr1.evaluation.heldout import load_heldout, merge
    from visionr1.inference import load_model_and_processor
    from visionr1.recipe import ModelSpec
    from visionr1.training.loading import load_processor

    model, _ = load_model_and_processor(model_dir, dtype="float32", device="cpu")
    processor = load_processor(str(model_dir), ModelSpec(path=str(model_dir), max_pixels=max_pixels))
    out: dict[str, dict[str, Any]] = {}
    for name, path in sets.items():
        dataset = load_heldout(path)
        passes = []
        for i in range(samples):
            torch.manual_seed(seed + i)
            passes.append(evaluate_samples(model, dataset, processor=processor, max_new_tokens=max_new_tokens,
                                           temperature=0.6, top_p=0.95, batch_size=batch_size))
        result = merge(passes)
        if greedy:
            g = evaluate_samples(model, dataset, processor=processor, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size)
            result["greedy"] = {k: g[k] for k in ("accuracy", "format", "mean_completion_tokens", "truncated_rate")}
        out[name] = result
    return out


def train_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The training rows of a run's metrics.jsonl (latest row per stage and step)."""
    from visionr1.training.plot import read_metrics

    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == "train"]
    latest = {(r["stage_index"], r["step"]): r for r in rows}
    return [latest[k] for k in sorted(latest)]


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
