"""Held-out evaluation of one checkpoint: the paper's sampled decoding (k passes) and greedy, under a progress bar.

A thin loop over :func:`visionr1.evaluation.evaluate_samples` (the one scorer: accuracy, format, completion
length). What the demo adds:
- the paper's protocol as the headline: Vision-R1 evaluates with temperature 0.6 and top_p 0.95, so
  ``accuracy`` is the mean over ``samples`` seeded sampling passes (pass@1 estimated from k samples per
  item), and ``pass_at_k`` (any of the k right) comes with it: RL is known to raise pass@1 while pass@k
  stays or falls (it sharpens the distribution), and the demo shows both;
- a greedy pass, reported beside it (``greedy``);
- batches, so a progress bar can move, merged back weighted by their size; every checkpoint gets the image
  budget training used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionr1.demo.config import EvalSpec
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
    import torch

    from visionr1.inference import load_model_and_processor
    from visionr1.recipe import ModelSpec
    from visionr1.training.loading import load_processor

    dataset = load_heldout(heldout)
    model, _ = load_model_and_processor(model_dir, dtype="float32", device="cpu")
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
            torch.manual_seed(seed)
            results[name] = _one_pass(model, processor, dataset, out_dir / name, spec, temperature, top_p,
                                      lambda k: progress.advance(bar, k))
    sampled = [results[p[0]] for p in passes if p[0].startswith("sample-")]
    result = merge(sampled)  # k passes over the same items: the mean of the k accuracies
    result.update(n=n, samples=len(sampled), temperature=spec.temperature, top_p=spec.top_p,
                  pass_at_k=pass_at_k([out_dir / p[0] for p in passes if p[0].startswith("sample-")]))
    if spec.greedy:
        result["greedy"] = {k: v for k, v in results["greedy"].items() if k in ("n", *_MEANS)}
    (out_dir / "summary.json").write_text(json.dumps({"model": str(model_dir), **result}, indent=2) + "\n")
    greedy = f", greedy {100 * result['greedy']['accuracy']:.1f}%" if spec.greedy else ""
    console.print(f"  eval {label}: accuracy {100 * result['accuracy']:.1f}% (T={spec.temperature}, "
                  f"{len(sampled)} samples){greedy}, format {100 * result['format']:.1f}%, "
                  f"{result['mean_completion_tokens']:.0f} tokens")
    return result


def _one_pass(model, processor, dataset, out: Path, spec: EvalSpec, temperature: float, top_p: float,
              advance) -> dict[str, Any]:
    """One decoding pass over the held-out items, batch by batch; ``out/predictions.jsonl``."""
    from visionr1.evaluation import evaluate_samples

    n = len(dataset)
    parts = []
    for k, start in enumerate(range(0, n, spec.batch_size)):
        chunk = dataset.select(range(start, min(n, start + spec.batch_size)))
        parts.append(evaluate_samples(model, chunk, processor=processor, max_new_tokens=spec.max_new_tokens,
                                      temperature=temperature, top_p=top_p, batch_size=spec.batch_size,
                                      output_dir=out / f"part-{k}"))
        advance(len(chunk))
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as fh:
        for k in range(len(parts)):
            fh.write((out / f"part-{k}" / "predictions.jsonl").read_text(encoding="utf-8"))
            shutil.rmtree(out / f"part-{k}")
    return merge(parts)


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
