"""Generate then score: ``visionr1 eval run``, and :func:`evaluate_samples` for the demo and training callbacks.

Decoding defaults are the Vision-R1 paper's evaluation settings (temperature 0.6, top_p 0.95, up to 16,384
new tokens). Each batch's responses are appended to ``DIR/predictions.jsonl`` (flushed and synced) as soon as
they are generated, so a run that is killed -- a pre-empted node, a lost SSH session -- resumes where it
stopped: the same command skips every id already in the file (a half-written last line is dropped). The
settings a run was started with are kept in ``DIR/run_config.json``; resuming with anything that shapes a
response changed is an error, since one file would then hold two experiments: the model (path and weight
files), dtype, backend, template, image budget, image root and decoding settings are compared, and each
response row carries a digest of the record it answered, so a ``--data`` with the same ids but other
questions, answers or image bytes is refused too.

Before the model is loaded, every image of the records still to generate is checked the way training checks
them (``data.images.prepare_image``: missing files, corrupt pixels, aspect ratios the processor refuses,
decompression bombs): a bad record is an error naming it, or with ``--skip-bad`` is left out, counted in the
summary and scored as missing. The image budget is one value, as in training: ``--max-pixels`` if given (the
processor gets it too), else the checkpoint processor's own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from visionr1.data.spec import DEFAULT_MAX_PIXELS
from visionr1.evaluation.benchmarks import Benchmark, ScoringContext, get_benchmark
from visionr1.evaluation.benchmarks.synthetic import score_completion
from visionr1.evaluation.judge import EvalJudge
from visionr1.evaluation.records import EvalError, read_resumable_jsonl
from visionr1.evaluation.score import score_predictions
from visionr1.evaluation.spec import DecodingConfig


class Generator:
    """A loaded model behind one ``__call__(prompts, images) -> list[Generation]``, either backend."""

    def __init__(self, model_path: Path, decoding: DecodingConfig, backend: str, dtype: str, device: str | None):
        import torch

        torch.manual_seed(decoding.seed)
        self.decoding, self.backend = decoding, backend
        if backend == "vllm":
            from visionr1.inference import load_vllm

            self.model, self.processor = load_vllm(model_path, dtype=dtype, seed=decoding.seed)
        elif backend == "transformers":
            from visionr1.inference import load_model_and_processor

            self.model, self.processor = load_model_and_processor(model_path, dtype=dtype, device=device)
        else:
            raise EvalError(f"unknown backend {backend!r}: use transformers or vllm")
        from visionr1.data.prompts import opened_thinking

        # what the template's generation prompt already opened (Qwen3.5: "<think>\n"): a response is read with it
        self.opened = opened_thinking(self.processor)

    def __call__(self, prompts: Sequence[Any], images: Sequence[Any]) -> list[Any]:
        """The responses, each the whole assistant turn: what the template opened, then the generated text."""
        d = self.decoding
        if self.backend == "vllm":
            from visionr1.inference import generate_vllm

            gens = generate_vllm(self.model, self.processor, prompts, images, d.max_new_tokens, d.temperature, d.top_p)
        else:
            from visionr1.inference import generate

            gens = generate(
                self.model, self.processor, prompts, images, d.max_new_tokens, d.temperature, d.top_p,
                batch_size=d.batch_size,
            )
        return [dataclasses.replace(g, text=self.opened + g.text) for g in gens]


def _environment() -> dict[str, Any]:
    """Package versions and the git commit, recorded with every run (style guide rule 10)."""
    from visionr1.utils.provenance import git_info, package_versions

    return {"versions": package_versions(), "git_commit": git_info()["commit"]}


# What shapes a response, besides the record itself (the batch size and the data file's path do not).
RESUME_KEYS = ("benchmark", "model", "model_files", "template", "backend", "dtype", "max_pixels", "min_pixels",
               "image_root", "summary_model_files")


def record_digest(record: dict[str, Any]) -> str:
    """A short digest of one benchmark record as read (image bytes included), stored with its response.

    >>> record_digest({"q": "1+1?", "a": 2}) == record_digest({"a": 2, "q": "1+1?"})
    True
    """
    def default(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return "sha256:" + hashlib.sha256(value).hexdigest()
        return repr(value)

    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def model_files(model_dir: Path) -> list[list[Any]] | None:
    """Name, size and modification time of a checkpoint's config and weight files: re-training into the
    same directory changes them (hashing gigabytes of weights on every resume would not be worth it)."""
    if not model_dir.is_dir():
        return None
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and (
        p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".pt")))
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _check_resume(config_path: Path, config: dict[str, Any]) -> None:
    if not config_path.is_file():
        return
    def settings(cfg: dict[str, Any]) -> dict[str, Any]:  # what changes the experiment (not the batch size)
        decoding = {k: v for k, v in (cfg.get("decoding") or {}).items() if k != "batch_size"}
        return {**{k: cfg.get(k) for k in RESUME_KEYS}, **{f"decoding.{k}": v for k, v in decoding.items()},
                "strategy": cfg.get("strategy") or {"name": "single", "step_judge": False}}

    old, new = settings(json.loads(config_path.read_text(encoding="utf-8"))), settings(config)
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        diffs = "; ".join(f"{k}: was {old.get(k)!r}, now {new[k]!r}" for k in changed)
        raise EvalError(
            f"{config_path.parent}: holds a run with other settings ({diffs}); rerun with the same settings to "
            f"resume, or choose a new --output"
        )


def _check_records(out: Path, done: dict[str, dict[str, Any]], digests: dict[str, str]) -> None:
    """Every kept response must answer the record as it is now (same id, other question: refused)."""
    changed = [pid for pid, row in done.items() if pid in digests and row.get("record_digest") != digests[pid]]
    if changed:
        old = sum(1 for pid in changed if done[pid].get("record_digest") is None)
        why = (f"{old} of them were written without record digests (an older visionr1)" if old
               else "the data holds other questions, answers or images under the same ids")
        raise EvalError(
            f"{out / 'predictions.jsonl'}: {len(changed)} responses answer records that differ from --data now "
            f"(e.g. {', '.join(changed[:3])}): {why}. Use the data the run started with to resume, or a new --output"
        )


def check_item_images(bench: Benchmark, items: list[Any], template: str, max_pixels: int,
                      image_root: Path | None) -> list[tuple[str, str]]:
    """``(pid, reason)`` for each item whose images cannot be given to the model (see the module docstring)."""
    bad = []
    for item in items:
        try:
            bench.samples([item], template, max_pixels, image_root)
        except EvalError as exc:
            bad.append((item.pid, str(exc)))
    return bad


def _append(fh: Any, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def run_benchmark(
    benchmark: str | Benchmark,
    model: str | Path,
    data: str | Path,
    output_dir: str | Path,
    decoding: DecodingConfig | None = None,
    *,
    limit: int | None = None,
    backend: str = "transformers",
    dtype: str = "auto",
    device: str | None = None,
    template: str | None = None,
    image_root: str | Path | None = None,
    max_pixels: int | None = None,
    skip_bad: bool = False,
    judge: EvalJudge | None = None,
    progress: Any = None,
    strategy: Any = None,
    leniencies: Iterable[str] = (),
    strict: Iterable[str] = (),
    columns: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Generate the missing responses for ``data`` (first ``limit`` records), then score them all.

    ``model``: a checkpoint directory or ``tiny:FAMILY/SIZE`` (as in recipes). ``max_pixels``: the image
    budget (None: the checkpoint processor's, else 401,408). ``skip_bad``: leave out records whose images
    cannot be used instead of failing (counted in ``skipped_bad_records``, scored as missing).

    Returns the summary (also in ``output_dir/summary.json``), with generation statistics added:
    ``generated_this_run``, ``resumed_from``, ``mean_completion_tokens``, ``truncated_rate`` and, when
    something was generated, ``tokens_per_second`` / ``samples_per_second``. ``progress(done, total)`` is
    called after each batch. ``strategy``: an inference-time strategy (``evaluation.strategies``;
    default ``single``, one response per item). ``leniencies`` / ``strict``: named scoring options, as
    ``eval score`` takes them (they change no response, so a run resumes across them). ``columns``: the
    benchmark's field names for the data's columns (``{field: column}``; a pipeline's ``eval.columns``).
    """
    from visionr1.data.budget import saved_processor_budget
    from visionr1.data.spec import DEFAULT_TEMPLATE
    from visionr1.evaluation.strategies import StrategyConfig, run_strategy, strategy_summary
    from visionr1.training.loading import resolve_model_path

    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    decoding = decoding or DecodingConfig()
    template = template or DEFAULT_TEMPLATE
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategy = strategy or StrategyConfig()
    strategy.check(decoding.temperature, judge)
    items = bench.load(Path(data), for_generation=True, columns=columns)
    if limit is not None:
        items = items[:limit]
    model_dir = Path(resolve_model_path(str(model)))
    summary_dir = (Path(resolve_model_path(strategy.summary_model))
                   if strategy.name == "insight-v" and strategy.summary_model else None)
    saved_min, saved_max = saved_processor_budget(model_dir)
    budget_max = max_pixels or saved_max or DEFAULT_MAX_PIXELS
    root = Path(image_root) if image_root else None

    # ---- resume --------------------------------------------------------------------------------------
    config = {
        "benchmark": bench.name, "model": str(model), "model_files": model_files(model_dir), "data": str(data),
        "decoding": decoding.model_dump(), "template": template, "backend": backend, "dtype": dtype, "limit": limit,
        "max_pixels": budget_max, "min_pixels": saved_min, "image_root": str(root.resolve()) if root else None,
        "strategy": strategy.to_json(), "columns": columns or {}, **_environment(),
        **({"summary_model_files": model_files(summary_dir)} if summary_dir else {}),
    }
    config_path, pred_path = out / "run_config.json", out / "predictions.jsonl"
    ScoringContext(leniencies=frozenset(leniencies), strict=frozenset(strict))  # unknown names: refused now
    done = {str(row.get("pid")): row for row in read_resumable_jsonl(pred_path)}
    if done:  # an attempt that made no response (it failed before generating) binds no settings
        _check_resume(config_path, config)
    digests = {item.pid: record_digest(item.record) for item in items}
    _check_records(out, done, digests)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    todo = [item for item in items if item.pid not in done]

    # ---- check images before the model is loaded ----------------------------------------------------
    bad = check_item_images(bench, todo, template, budget_max, root)
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise EvalError(f"{bad[0][1]}{more}; fix the data, or pass --skip-bad to leave such records out")
    skipped = {pid for pid, _ in bad}
    todo = [item for item in todo if item.pid not in skipped]

    # ---- generate ------------------------------------------------------------------------------------
    generated, new_tokens, seconds = 0, 0, 0.0
    if todo:
        generator = Generator(model_dir, decoding, backend, dtype, device)
        # insight-v's summary agent: a second model, unless it is the reasoner's own checkpoint
        summarizer = (Generator(summary_dir, decoding, backend, dtype, device)
                      if summary_dir is not None and summary_dir.resolve() != model_dir.resolve() else None)
        if max_pixels is not None and backend == "transformers":
            from visionr1.data.budget import apply_budget

            for g in (generator, summarizer):
                if g is not None:
                    apply_budget(g.processor, None, max_pixels)  # one budget: the processor's = the resize
        step = decoding.batch_size if backend == "transformers" else max(decoding.batch_size, 64)
        with pred_path.open("a", encoding="utf-8") as fh:
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                samples = bench.samples(chunk, template, budget_max, root)
                t0 = time.perf_counter()
                if strategy.name == "single" and not strategy.step_judge:
                    gens = generator([s.prompt for s in samples], [s.images for s in samples])
                    rows = [
                        {"pid": s.pid, "response": g.text, "num_tokens": g.num_tokens, "truncated": g.truncated}
                        for s, g in zip(samples, gens, strict=True)
                    ]
                else:  # an inference-time strategy: candidates, the kept one, tokens spent (strategies.py)
                    rows = run_strategy(strategy, generator, bench, chunk, samples, judge, summarizer)
                seconds += time.perf_counter() - t0
                for r in rows:  # what the resume check compares the record with
                    r["record_digest"] = digests[r["pid"]]
                _append(fh, rows)
                done.update({r["pid"]: r for r in rows})
                generated += len(rows)
                new_tokens += sum(r["num_tokens"] for r in rows)
                if progress is not None:
                    progress(len(items) - len(todo) - len(skipped) + generated, len(items))

    # ---- score ---------------------------------------------------------------------------------------
    rows = [done[i.pid] for i in items if i.pid in done]
    stats: dict[str, Any] = {
        "model": str(model),
        "generated_this_run": generated,
        "resumed_from": len(items) - len(todo) - len(skipped),
        "skipped_bad_records": [{"pid": pid, "reason": why} for pid, why in bad],
        "image_budget": {"max_pixels": budget_max, "min_pixels": saved_min},
        "decoding": decoding.model_dump(),
        "mean_completion_tokens": _mean(r.get("num_tokens") for r in rows),
        "truncated_rate": _mean(float(bool(r.get("truncated"))) for r in rows),
        **strategy_summary(strategy, rows),
    }
    if generated:
        stats.update({"generation_seconds": seconds, "tokens_per_second": new_tokens / seconds,
                      "samples_per_second": generated / seconds})
    summary = score_predictions(
        bench, Path(data), [{"pid": r["pid"], "response": r.get("response")} for r in rows], out,
        judge=judge, items=items, only_ids=[i.pid for i in items], extra=stats, leniencies=leniencies, strict=strict,
    )
    if "format" in summary.get("metrics", {}):
        summary["format"] = summary["metrics"]["format"]
        (out / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
    return summary


def _mean(values: Any) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def evaluate_samples(
    model: str | Path | Any,
    dataset: str | Path | Any,
    *,
    processor: Any = None,
    max_new_tokens: int = 1024,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    limit: int | None = None,
    output_dir: str | Path | None = None,
    benchmark: str | None = None,
) -> dict[str, Any]:
    """Accuracy, format rate and mean completion length of a model on canonical samples, in-process.

    ``model``: a checkpoint directory, or a loaded model (then pass its ``processor``) -- a training
    callback evaluates the weights it holds. ``dataset``: a make-synthetic directory / jsonl file, or
    canonical samples (a ``datasets.Dataset`` or list of dicts with ``id, prompt, images, solution, task,
    choices``). Greedy and 1,024 tokens by default: a callback wants a stable number quickly.

    Returns ``{"benchmark", "scored_by", "n", "accuracy", "format", "hard_format_result",
    "mean_completion_tokens", "truncated_rate", "per_task", "tokens_per_second"}``; with ``output_dir``, also
    writes predictions/items/summary there. ``benchmark``: what the samples are (a stage's ``eval_dataset``:
    :func:`dataset_benchmark`); default ``synthetic`` for a make-synthetic path, else ``samples``. Scored by
    the rewards' scorer, not a benchmark's official rules (``eval run -b`` / a pipeline's ``eval.benchmark``).
    """
    from visionr1.inference import generate, load_model_and_processor

    name = "samples"
    if isinstance(dataset, (str, Path)):
        from visionr1.data.loaders import load_samples
        from visionr1.data.spec import DatasetSpec
        from visionr1.evaluation.benchmarks.synthetic import synthetic_file

        name = "synthetic"

        dataset = load_samples(DatasetSpec(format="jsonl", path=str(synthetic_file(Path(dataset))))).dataset
    rows = [dataset[i] for i in range(len(dataset) if limit is None else min(limit, len(dataset)))]
    if not rows:
        raise EvalError("evaluate_samples: the dataset is empty")
    if isinstance(model, (str, Path)):
        model, processor = load_model_and_processor(model)
    elif processor is None:
        raise EvalError("evaluate_samples: pass the processor along with a loaded model")
    was_training = getattr(model, "training", False)
    model.eval()
    t0 = time.perf_counter()
    try:
        gens = generate(
            model, processor, [r["prompt"] for r in rows], [list(r["images"] or []) for r in rows],
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size,
        )
    finally:
        if was_training:
            model.train()
    seconds = time.perf_counter() - t0
    from visionr1.data.prompts import opened_thinking

    opened = opened_thinking(processor)  # a template that opens <think>: the response is read with it (Generator)
    gens = [dataclasses.replace(g, text=opened + g.text) for g in gens]
    verdicts = [score_completion(g.text, r["solution"], r.get("task"), r.get("choices")) for g, r in zip(gens, rows, strict=True)]
    n = len(rows)
    per_task: dict[str, dict[str, float]] = {}
    for r, v in zip(rows, verdicts, strict=True):
        t = per_task.setdefault(str(r.get("task")), {"n": 0, "accuracy": 0.0})
        t["n"] += 1
        t["accuracy"] += v["correct"]
    for t in per_task.values():
        t["accuracy"] /= t["n"]
    result = {
        "benchmark": benchmark or name,
        "scored_by": "rewards",
        "n": n,
        "accuracy": sum(v["correct"] for v in verdicts) / n,
        "format": sum(v["format"] for v in verdicts) / n,
        "hard_format_result": sum(v["hard"] for v in verdicts) / n,
        "mean_completion_tokens": sum(g.num_tokens for g in gens) / n,
        "truncated_rate": sum(g.truncated for g in gens) / n,
        "per_task": per_task,
        "tokens_per_second": sum(g.num_tokens for g in gens) / seconds if seconds > 0 else None,
    }
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "predictions.jsonl").open("w", encoding="utf-8") as fh:
            for r, g, v in zip(rows, gens, verdicts, strict=True):
                fh.write(json.dumps({"pid": r["id"], "response": g.text, "num_tokens": g.num_tokens,
                                     "truncated": g.truncated, "extracted": v["extracted"],
                                     "correct": v["correct"], "format": v["format"]}, ensure_ascii=False) + "\n")
        (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# a training dataset format -> the benchmark its data is (a stage's eval_dataset summary names it)
_FORMAT_BENCHMARKS = {"mathv": "mathvision", "mathvista": "mathvista"}


def dataset_benchmark(spec: Any) -> str:
    """What a stage's ``eval_dataset`` (a :class:`~visionr1.data.spec.DatasetSpec`) holds, for its summary:
    ``mathvision`` for ``format: mathv``, else the format and the file ("jsonl test.jsonl").

    >>> from visionr1.data.spec import DatasetSpec
    >>> dataset_benchmark(DatasetSpec(format="mathv", path="d/testmini.jsonl"))
    'mathvision'
    """
    name = _FORMAT_BENCHMARKS.get(spec.format)
    return name if name is not None else f"{spec.format} {Path(str(spec.path)).name}"


def eval_line(label: str, scores: dict[str, Any]) -> str:
    """The console line of an in-process evaluation (a stage's eval_dataset).

    >>> eval_line("grpo", {"benchmark": "mathvision", "n": 4, "accuracy": 0.5, "format": 1.0, "mean_completion_tokens": 12.0})
    "eval grpo: mathvision (4 items, rewards' scorer): accuracy 50.0%, format 100.0%, 12 tokens"
    """
    return (f"eval {label}: {scores.get('benchmark')} ({scores['n']} items, rewards' scorer): accuracy "
            f"{100 * scores['accuracy']:.1f}%, format {100 * scores['format']:.1f}%, "
            f"{scores['mean_completion_tokens']:.0f} tokens")

