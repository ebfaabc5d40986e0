"""Held-out evaluation of one checkpoint: the paper's sampled decoding (k passes) and greedy, under a progress bar.

The ``eval:`` section of a pipeline recipe (``visionr1 run``, ``visionr1 demo``). A thin loop over
:func:`visionr1.evaluation.evaluate_samples` (the one scorer: accuracy, format, completion length). What it
adds:
- the paper's protocol as the headline: Vision-R1 evaluates with temperature 0.6 and top_p 0.95, so
  ``accuracy`` is the mean over ``samples`` seeded sampling passes (pass@1 estimated from k samples per
  item), and ``pass_at_k`` (any of the k right) comes with it: RL is known to raise pass@1 while pass@k
  stays or falls (it sharpens the distribution), and the demo shows both;
- a greedy pass, reported beside it (``greedy``);
- batches, so a progress bar can move, merged back weighted by their size; every checkpoint gets the image
  budget training used;
- resumption: each batch's predictions and scores are kept (``PASS/part-K/``) until its pass is merged, and
  batch K of a pass is seeded ``seed + 7919 K``, so a run killed mid-evaluation redoes only the unfinished
  batches and draws what an uninterrupted run would have drawn. A checkpoint whose ``summary.json`` was
  written with the same settings and the same weight files is not evaluated again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionr1.evaluation.spec import EvalSpec
from visionr1.utils.io import iter_jsonl

_MEANS = ("accuracy", "format", "hard_format_result", "mean_completion_tokens", "truncated_rate")


def load_heldout(path: Path):
    """The held-out items as canonical samples (prompts built by the data loader, as for training)."""
    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec

    return load_samples(DatasetSpec(format="jsonl", path=str(path))).dataset


def evaluate_checkpoint(model_dir: Path, heldout: Path, out_dir: Path, spec: EvalSpec, max_pixels: int,
                        console: Console, label: str) -> dict[str, Any]:
    """Held-out scores of ``model_dir`` (see the module docstring); predictions under ``out_dir/<pass>/``."""
    settings = {"model": str(model_dir), "weights": weights_id(model_dir), "data": str(heldout),
                "max_pixels": max_pixels, **spec.model_dump(mode="json", exclude={"data", "validation_data", "split", "examples"})}
    done = _finished(out_dir, settings)
    if done is not None:
        console.print(f"  eval {label}: finished before ({out_dir / 'summary.json'}), not evaluated again")
        return done
    if out_dir.is_dir() and _read_json(out_dir / SETTINGS_FILE) not in (None, settings):
        shutil.rmtree(out_dir)  # a previous evaluation with other settings: its batches are not this one's
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    from visionr1.inference import load_model_and_processor
    from visionr1.recipe import ModelSpec
    from visionr1.training.loading import load_processor

    dataset = load_heldout(heldout)
    model, _ = load_model_and_processor(model_dir, dtype=spec.dtype, device=spec.device)
    processor = load_processor(str(model_dir), ModelSpec(path=str(model_dir), max_pixels=max_pixels))
    passes = [(f"sample-{i}", spec.temperature, spec.top_p, spec.seed + i) for i in range(spec.samples)]
    if spec.greedy:
        passes.append(("greedy", 0.0, 1.0, spec.seed))
    n = len(dataset)
    results: dict[str, dict[str, Any]] = {}
    columns = (TextColumn(f"  eval {label:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task("eval", total=n * len(passes))
        for name, temperature, top_p, seed in passes:
            results[name] = _one_pass(model, processor, dataset, out_dir / name, spec, temperature, top_p,
                                      seed, lambda k: progress.advance(bar, k))
    sampled = [results[p[0]] for p in passes if p[0].startswith("sample-")]
    result = merge(sampled)  # k passes over the same items: the mean of the k accuracies
    result.update(n=n, samples=len(sampled), temperature=spec.temperature, top_p=spec.top_p,
                  pass_at_k=pass_at_k([out_dir / p[0] for p in passes if p[0].startswith("sample-")]))
    if spec.greedy:
        result["greedy"] = {k: v for k, v in results["greedy"].items() if k in ("n", *_MEANS)}
    (out_dir / "summary.json").write_text(json.dumps({"model": str(model_dir), "settings": settings, **result},
                                                     indent=2) + "\n")
    greedy = f", greedy {100 * result['greedy']['accuracy']:.1f}%" if spec.greedy else ""
    console.print(f"  eval {label}: accuracy {100 * result['accuracy']:.1f}% (T={spec.temperature}, "
                  f"{len(sampled)} samples){greedy}, format {100 * result['format']:.1f}%, "
                  f"{result['mean_completion_tokens']:.0f} tokens")
    return result


def _one_pass(model, processor, dataset, out: Path, spec: EvalSpec, temperature: float, top_p: float, seed: int,
              advance) -> dict[str, Any]:
    """One decoding pass over the held-out items, batch by batch (finished batches kept); ``out/predictions.jsonl``."""
    import torch

    from visionr1.evaluation import evaluate_samples

    n = len(dataset)
    if (out / PASS_FILE).is_file():  # merged before the run was cut short
        advance(n)
        return json.loads((out / PASS_FILE).read_text())
    parts = []
    for k, start in enumerate(range(0, n, spec.batch_size)):
        part = out / f"part-{k}"
        chunk = dataset.select(range(start, min(n, start + spec.batch_size)))
        if (part / PART_FILE).is_file():
            parts.append(json.loads((part / PART_FILE).read_text()))
        else:
            torch.manual_seed(seed + 7919 * k)
            scores = evaluate_samples(model, chunk, processor=processor, max_new_tokens=spec.max_new_tokens,
                                      temperature=temperature, top_p=top_p, batch_size=spec.batch_size,
                                      output_dir=part)
            parts.append({k: v for k, v in scores.items() if k == "n" or k in _MEANS})
            (part / PART_FILE).write_text(json.dumps(parts[-1]) + "\n")  # last: marks the batch finished
        advance(len(chunk))
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as fh:
        for k in range(len(parts)):
            fh.write((out / f"part-{k}" / "predictions.jsonl").read_text(encoding="utf-8"))
    result = merge(parts)
    (out / PASS_FILE).write_text(json.dumps(result) + "\n")
    for k in range(len(parts)):
        shutil.rmtree(out / f"part-{k}")
    return result


SETTINGS_FILE = "settings.json"  # what this checkpoint's evaluation was started with
PART_FILE = "scores.json"  # a finished batch's scores, beside its predictions
PASS_FILE = "pass.json"  # a finished pass's merged scores


def weights_id(model_dir: Path) -> list[list[Any]]:
    """Name, size and modification time of each weight file: a retrained checkpoint is evaluated again."""
    files = sorted(p for p in Path(model_dir).iterdir() if p.suffix in (".safetensors", ".bin")) if Path(model_dir).is_dir() else []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished(out_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The scores of an evaluation finished with these settings, else None."""
    summary = _read_json(out_dir / "summary.json")
    if not isinstance(summary, dict) or summary.get("settings") != settings:
        return None
    return {k: v for k, v in summary.items() if k not in ("model", "settings")}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores of the whole from the scores of its parts (means weighted by their sizes).

    >>> merge([{"n": 1, "accuracy": 1.0, "format": 1.0}, {"n": 3, "accuracy": 0.0, "format": 1.0}])
    {'n': 4, 'accuracy': 0.25, 'format': 1.0}
    """
    n = sum(p["n"] for p in parts)
    out: dict[str, Any] = {"n": n}
    for key in _MEANS:
        if key in parts[0] and all(p.get(key) is not None for p in parts):
            out[key] = sum(p[key] * p["n"] for p in parts) / n
    return out


def pass_at_k(pass_dirs: list[Path]) -> float | None:
    """Share of items that at least one of the passes answered correctly (from their predictions)."""
    if not pass_dirs:
        return None
    right: dict[str, bool] = {}
    for d in pass_dirs:
        for _, row, problem in iter_jsonl(d / "predictions.jsonl"):
            if problem is not None:
                raise ValueError(f"{d / 'predictions.jsonl'}: {problem}")
            right[row["pid"]] = right.get(row["pid"], False) or bool(row["correct"])
    return sum(right.values()) / len(right) if right else None
