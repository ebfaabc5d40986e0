"""`visionr1 run RECIPE`: the sections of a pipeline recipe, in order, each resumable, in one run directory.

The story, top to bottom in :func:`main`:
1. data: a synthetic task's items, split into cold-start items, RL prompts and held-out items (``RUN/data/``),
   and the tiny random model when the recipe builds one (``RUN/model/``);
2. cold start: modality bridging (``visionr1.coldstart``) into SFT data (``RUN/coldstart/``);
3. training: the stages, each in a process of its own (``training.launch``) unless ``launch.isolate_stages``
   is false, by the training runner (``RUN/train/``, its manifest);
4. evaluation: the base model and every stage's final weights on the held-out items (``RUN/eval/<stage>/``).

Resuming: re-running the same command continues where a killed run stopped, at any point. A finished data or
model section is recorded in ``RUN/sections/<section>.json`` with the settings it was made with and is not
made again (other settings for it are an error: the later sections were made from it); the cold start
resumes per record (its own store), training per stage and from a stage's last checkpoint (its manifest),
evaluation per checkpoint and per batch (``evaluation.heldout``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from visionr1.pipeline.config import VALIDATION_FILE, PipelineRecipe
from visionr1.utils.io import atomic_write_json

MARKER = "pipeline.json"  # the resolved recipe, written first: marks a directory as a pipeline run


class PipelineError(RuntimeError):
    """A pipeline run that cannot go on; the message says why and what to do."""


def main(pipeline: PipelineRecipe, recipe_path: str | Path | None = None, overrides: Sequence[str] = (),
         console: Console | None = None, label: str = "visionr1 run", extra_steps: int = 0) -> dict[str, Any]:
    """Run the recipe's sections (see the module docstring); returns what each produced (also ``RUN/summary.json``).

    ``recipe_path`` and ``overrides`` are what the recipe was loaded from: each training stage's process loads
    it again (``visionr1 train RECIPE OVERRIDES --stage NAME``); without a path, the stages train here."""
    console = console or Console(highlight=False)
    if pipeline.stages is not None:  # the stages' TRL configs, built by the planner: a bad one fails before the data
        from visionr1.training.plan import plan_run

        train = pipeline.training_recipe()
        plan_run(train, train.output_dir, train.launch.num_processes, source=str(recipe_path or "pipeline recipe"))
    if pipeline.eval is not None and pipeline.eval.benchmark is not None:  # its records: checked before training
        check_benchmark_data(pipeline)
    from visionr1.training.lock import pipeline_lock

    with pipeline_lock(pipeline.run_dir):  # one writer per pipeline run directory (re-entrant for the demo's)
        return _main_locked(pipeline, recipe_path, overrides, console, label, extra_steps)


def _main_locked(pipeline: PipelineRecipe, recipe_path: str | Path | None, overrides: Sequence[str], console: Console,
                 label: str, extra_steps: int) -> dict[str, Any]:
    run_dir = pipeline.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / MARKER, pipeline.model_dump(mode="json"))
    from visionr1.runtime import apply_cpu_threads

    threads = apply_cpu_threads(pipeline.cpu_threads)["torch_threads"]
    load = _load()
    console.print(f"{label} -> {run_dir}  ({threads} torch thread{'s' if threads > 1 else ''}, load average {load:.1f})")
    steps = _Steps(console, [s for s in ("data", "coldstart", "train", "eval") if s in _phases_of(pipeline)],
                   extra_steps)
    out: dict[str, Any] = {"run_dir": str(run_dir), "sections": pipeline.sections(), "torch_threads": threads,
                           "load_average_at_start": load}

    # --- 1. data and model ---------------------------------------------------------------------------------------
    if pipeline.data is not None or pipeline.tiny_model is not None:
        with steps.phase("data", "data: synthetic task" + (" and tiny model" if pipeline.tiny_model else "")):
            if pipeline.data is not None:
                out["data"] = make_data(pipeline, run_dir)
                d = out["data"]
                console.print(f"  {d['task']} ({d['difficulty']}): {d['coldstart']} cold-start items, {d['rl']} RL "
                              f"prompts, {d['heldout']} held-out items"
                              + (f", {d['validation']} validation items (seed {d['validation_seed']})" if "validation" in d else ""))
            if pipeline.tiny_model is not None:
                out["model"] = str(make_model(pipeline, run_dir))
                console.print(f"  tiny model {out['model']}")

    # --- 2. cold start ---------------------------------------------------------------------------------------------
    if pipeline.coldstart is not None:
        with steps.phase("coldstart", "cold start: modality bridging"):
            out["coldstart"] = run_coldstart_section(pipeline, console)

    # --- 3. training -----------------------------------------------------------------------------------------------
    if pipeline.stages is not None:
        with steps.phase("train", "training: " + " -> ".join(f"{s.name} ({s.type})" for s in pipeline.stages)):
            out["train"] = train_section(pipeline, recipe_path, overrides, threads)
        steps.phases.update(_stage_seconds(run_dir / "train"))

    # --- 4. evaluation ---------------------------------------------------------------------------------------------
    if pipeline.eval is not None:
        what = (f"{pipeline.eval.benchmark} (official scoring)" if pipeline.eval.benchmark
                else f"{' and '.join(pipeline.eval_splits())} accuracy")
        with steps.phase("eval", f"evaluation: {what} of every stage"):
            out["eval"] = eval_section(pipeline, console, steps.phases)  # {split: {stage: scores}}

    out["phases"] = steps.phases
    atomic_write_json(run_dir / "summary.json", out)
    return out


def plan(pipeline: PipelineRecipe, num_processes: int | None = None) -> dict[str, Any]:
    """What ``visionr1 run`` would do (``--dry-run``): every section, resolved, with its inputs and outputs;
    for the stages, the full TRL configs. Touches neither model nor data."""
    run_dir = pipeline.run_dir
    out: dict[str, Any] = {"run_dir": str(run_dir), "sections": pipeline.sections()}
    if pipeline.data is not None:
        out["data"] = {**pipeline.data.model_dump(mode="json"), "seed": pipeline.seed,
                       "outputs": [str(run_dir / "data" / f) for f in ("coldstart.jsonl", "rl.jsonl", "test.jsonl",
                                                                       *([VALIDATION_FILE] if pipeline.data.validation_items else []))]}
        if pipeline.data.validation_items:
            out["data"]["validation_seed"] = validation_seed(pipeline.seed)
    if pipeline.tiny_model is not None:
        out["tiny_model"] = {**pipeline.tiny_model.model_dump(mode="json"), "output": str(run_dir / "model")}
    if pipeline.coldstart is not None:
        out["coldstart"] = pipeline.coldstart.model_dump(mode="json")
    if pipeline.stages is not None:
        from visionr1.training.plan import plan_run

        train = pipeline.training_recipe()
        out["train"] = plan_run(train, train.output_dir, num_processes or train.launch.num_processes,
                                source=f"{pipeline.name}: stages")
    if pipeline.eval is not None:
        out["eval"] = {**pipeline.eval.model_dump(mode="json"), "splits": pipeline.eval_splits(), "checkpoints": {k: str(v) for k, v in checkpoints(pipeline).items()}}
        if pipeline.eval.benchmark is not None:  # its records are checked now, not after training
            out["eval"]["check"] = check_benchmark_data(pipeline)
    return out


# ----------------------------------------------------------------------------------------------------------
# the sections
# ----------------------------------------------------------------------------------------------------------


def make_data(pipeline: PipelineRecipe, run_dir: Path) -> dict[str, Any]:
    """Draw ``coldstart + rl + heldout`` items of one stream; write ``coldstart.jsonl`` (the first items),
    ``rl.jsonl`` (the next) and ``test.jsonl`` (the last, held out) beside the images. With
    ``validation_items``, ``val.jsonl`` holds that many items of a second stream (:func:`validation_seed`):
    the first stream is drawn exactly as without it, so adding a validation split changes no training or
    held-out item; a validation item whose content (question and image) equals a training or held-out
    item's is dropped, and the count of drops reported."""
    from visionr1.tasks.synthetic import make_synthetic

    t = pipeline.data
    assert t is not None
    difficulty = t.resolved_difficulty()
    result = {"task": t.name, "difficulty": difficulty.name, "difficulty_params": difficulty.to_dict(),
              "coldstart": t.coldstart_items, "rl": t.rl_items, "heldout": t.heldout_items}
    # (validation_items: 0 is left out, so runs made before the field existed still resume)
    settings = {"data": t.model_dump(mode="json", exclude=set() if t.validation_items else {"validation_items"}),
                "seed": pipeline.seed}
    data_dir = run_dir / "data"
    val_file = data_dir / VALIDATION_FILE
    if _section_done(run_dir, "data", settings, data_dir):
        if t.validation_items:
            result.update(validation=_count_lines(val_file), validation_seed=validation_seed(pipeline.seed))
        return result
    if t.validation_items:  # first, so that the main stream's train.jsonl / test.jsonl are written last
        make_synthetic(t.name, t.validation_items, validation_seed(pipeline.seed), data_dir, difficulty=difficulty,
                       test_fraction=0.0)
        (data_dir / "train.jsonl").replace(val_file)
    n = t.coldstart_items + t.rl_items + t.heldout_items
    make_synthetic(t.name, n, pipeline.seed, data_dir, difficulty=difficulty, test_fraction=t.heldout_items / n)
    train = [line + "\n" for line in (data_dir / "train.jsonl").read_text(encoding="utf-8").split("\n") if line]
    if len(train) != t.coldstart_items + t.rl_items:  # make_synthetic rounds the test share
        raise PipelineError(f"make_synthetic wrote {len(train)} training items, expected {t.coldstart_items + t.rl_items}")
    (data_dir / "coldstart.jsonl").write_text("".join(train[: t.coldstart_items]), encoding="utf-8")
    (data_dir / "rl.jsonl").write_text("".join(train[t.coldstart_items :]), encoding="utf-8")
    if t.validation_items:
        seen = {content_key(data_dir, line) for f in ("train.jsonl", "test.jsonl")
                for line in (data_dir / f).read_text(encoding="utf-8").splitlines() if line}
        lines = [line for line in val_file.read_text(encoding="utf-8").splitlines() if line]
        kept = [line for line in lines if content_key(data_dir, line) not in seen]
        if not kept:
            raise PipelineError(f"data: all {len(lines)} validation items (seed {validation_seed(pipeline.seed)}) are "
                                "training or held-out items too; no validation item is left: the task has too few "
                                "distinct items for three splits (raise its difficulty or lower the items asked)")
        val_file.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        result.update(validation=len(kept), validation_seed=validation_seed(pipeline.seed),
                      validation_dropped_duplicates=len(lines) - len(kept))
    _section_finished(run_dir, "data", settings)
    return result


def validation_seed(seed: int) -> int:
    """The validation stream's seed, derived from the recipe's: never the seed itself, and no simple shift of
    it (seed + 1 is another run's training stream). Its items' ids carry it (``counting-s<seed>-...``).

    >>> validation_seed(0) != 0 and validation_seed(0) == validation_seed(0) != validation_seed(1)
    True
    """
    import hashlib

    derived = int.from_bytes(hashlib.sha256(f"visionr1-validation-{seed}".encode()).digest()[:4], "big")
    return derived if derived != seed else derived + 1


def content_key(data_dir: Path, line: str) -> tuple[str, str]:
    """What makes two items the same item whatever their ids: the question and the image's bytes."""
    import hashlib

    record = json.loads(line)
    images = "".join(hashlib.sha256((data_dir / p).read_bytes()).hexdigest() for p in record.get("images") or [])
    return record["question"], images


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line) if path.is_file() else 0


def make_model(pipeline: PipelineRecipe, run_dir: Path) -> Path:
    """A randomly initialised tiny model (seeded), built here: nothing is downloaded."""
    from visionr1.models.tiny import build_tiny_model

    spec = pipeline.tiny_model
    assert spec is not None
    seed = spec.init_seed if spec.init_seed is not None else pipeline.seed
    settings = {"family": spec.family, "size": spec.size, "seed": seed}
    out = run_dir / "model"
    if not _section_done(run_dir, "tiny_model", settings, out):
        build_tiny_model(spec.family, spec.size, out, seed=seed)
        _section_finished(run_dir, "tiny_model", settings)
    return out


def run_coldstart_section(pipeline: PipelineRecipe, console: Console) -> dict[str, Any]:
    """The cold start on its input (by default the data section's cold-start split); resumes per record."""
    from visionr1.coldstart import run_coldstart

    cs = pipeline.coldstart
    assert cs is not None
    out = Path(cs.output_dir or pipeline.run_dir / "coldstart")
    settings = cs.model_dump(mode="json")
    report_file = out / "report.json"
    if _section_done(pipeline.run_dir, "coldstart", settings, None, reuse_on_change=True) and report_file.is_file():
        console.print(f"  finished before ({report_file}), not run again")
        report = json.loads(report_file.read_text())
    else:
        report = run_coldstart(cs, output_dir=out, console=console)
        _section_finished(pipeline.run_dir, "coldstart", settings)
    if not report.get("kept"):
        raise PipelineError(f"the cold start kept no sample (see {report_file}); SFT has no data")
    return {"input": report["input_records"], "kept": report["kept"], "dropped": report.get("dropped"),
            "oracle_steps": report.get("oracle_steps"), "oracle_note": report.get("oracle_note"),
            "mean_response_chars": report.get("mean_response_chars"), "report": str(report_file),
            "output": str(out / "cold_start.jsonl")}


def train_section(pipeline: PipelineRecipe, recipe_path: str | Path | None, overrides: Sequence[str],
                  threads: int | None = None) -> dict[str, Any]:
    """The training recipe of the model + stages sections, by the training runner; each stage in a process of
    its own (``visionr1 train RUN/recipe.json --stage NAME``) unless ``launch.isolate_stages`` is false.
    Stages trained here keep the torch threads the run started with (``threads``); a stage's own process
    resolves ``cpu_threads`` itself."""
    import os

    from visionr1.training.launch import is_stage_child, stage_launcher
    from visionr1.training.runner import main as train
    from visionr1.training.runner import resolved_recipe_path

    recipe = pipeline.training_recipe()
    run_dir = Path(str(recipe.output_dir))
    launcher = None
    if recipe_path is not None and recipe.launch.isolate_stages and not is_stage_child() and "WORLD_SIZE" not in os.environ:
        # each stage process reads RUN/recipe.json, the recipe resolved and checked here, never the YAML again
        launcher = stage_launcher(recipe.launch, str(resolved_recipe_path(run_dir)), [], run_dir)
    elif threads is not None:
        recipe = recipe.model_copy(update={"cpu_threads": threads})
    return train(recipe, output_dir=run_dir, source=str(recipe_path or "pipeline recipe"), launcher=launcher)


def checkpoints(pipeline: PipelineRecipe) -> dict[str, Path | str]:
    """What the evaluation scores: the model training starts from (``base``), then every stage's final weights."""
    from visionr1.training.plan import final_dir

    assert pipeline.model is not None
    out: dict[str, Path | str] = {"base": pipeline.model.path}
    if pipeline.stages is not None:
        run_dir = Path(str(pipeline.training_recipe().output_dir))
        out.update({s.name: final_dir(run_dir, s) for s in pipeline.stages})
    return out


def eval_section(pipeline: PipelineRecipe, console: Console, phases: dict[str, float]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every checkpoint on the same items, decoded the same way (``evaluation.heldout``), for each split of
    ``eval.split``: ``{"heldout": {stage: scores}, "validation": {...}}`` (the splits asked for). Held-out
    results go to ``RUN/eval/<stage>/``, validation results to ``RUN/eval-validation/<stage>/``."""
    from visionr1.evaluation.heldout import evaluate_checkpoint
    from visionr1.training.loading import resolve_model_path

    spec = pipeline.eval
    assert spec is not None and pipeline.model is not None
    if spec.benchmark is not None:
        return {"heldout": benchmark_section(pipeline, console, phases)}
    splits = pipeline.eval_splits()
    for split, data in splits.items():
        if not Path(data).is_file():
            field = "eval.data" if split == "heldout" else "eval.validation_data"
            raise PipelineError(f"{field}: {data} not found; set {field} to the {split} items (canonical JSONL)")
    max_pixels = pipeline.model.max_pixels
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for split, data in splits.items():
        out_dir = pipeline.run_dir / EVAL_DIRS[split]
        results[split] = {}
        for name, path in checkpoints(pipeline).items():
            path = Path(resolve_model_path(str(path)))
            if not path.is_dir():
                raise PipelineError(f"eval: checkpoint {name} ({path}) not found; its stage has not finished")
            t0 = time.perf_counter()
            label = name if split == "heldout" else f"{name} (validation)"
            scores = evaluate_checkpoint(path, Path(data), out_dir / name, spec, max_pixels, console, label=label)
            results[split][name] = {"split": split, **scores}
            phases[f"eval:{name}" if split == "heldout" else f"eval:{name}@validation"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(out_dir / "summary.json", results[split])
    return results


EVAL_DIRS = {"heldout": "eval", "validation": "eval-validation"}  # per split, under the run directory


def check_benchmark_data(pipeline: PipelineRecipe) -> dict[str, Any]:
    """Before anything trains (and in ``--dry-run``): ``eval.data`` loads as ``eval.benchmark``'s records
    (``eval.columns`` applied) and every record has what its official scoring reads (each is scored once on
    an empty response). Returns ``{"records": N}``; raises PipelineError naming the file, record and fix."""
    from visionr1.evaluation.benchmarks import ScoringContext, get_benchmark
    from visionr1.evaluation.records import EvalError

    spec = pipeline.eval
    assert spec is not None and spec.benchmark is not None and spec.data is not None
    bench = get_benchmark(spec.benchmark)
    ctx = ScoringContext(leniencies=frozenset(spec.lenient), strict=frozenset(spec.strict))
    try:
        if not Path(spec.data).exists():
            raise EvalError(f"{spec.data} not found; set eval.data to the {bench.name} records as published")
        items = bench.load(Path(spec.data), columns=spec.columns)
        for item in items:
            bench.score(item, "", ctx)
    except EvalError as exc:
        raise PipelineError(f"eval ({bench.name}): {exc}") from None
    if not items:
        raise PipelineError(f"eval ({bench.name}): {spec.data} holds no records")
    return {"records": len(items)}


def benchmark_section(pipeline: PipelineRecipe, console: Console, phases: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Every checkpoint evaluated as ``visionr1 eval run -b BENCHMARK --data eval.data`` evaluates it (one
    sampled pass with the section's decoding; the benchmark's prompts and official scoring), into
    ``RUN/eval/<stage>/`` (resumable as eval run is). ``{stage: {"benchmark", "accuracy", "correct", "n", ...}}``."""
    from visionr1.evaluation.records import EvalError
    from visionr1.evaluation.run import run_benchmark
    from visionr1.evaluation.spec import DecodingConfig
    from visionr1.training.loading import resolve_model_path

    spec = pipeline.eval
    assert spec is not None and spec.benchmark is not None and pipeline.model is not None
    check_benchmark_data(pipeline)
    decoding = DecodingConfig(**spec.model_dump(include=set(DecodingConfig.model_fields)))
    out_dir = pipeline.run_dir / EVAL_DIRS["heldout"]
    results: dict[str, dict[str, Any]] = {}
    for name, path in checkpoints(pipeline).items():
        path = Path(resolve_model_path(str(path)))
        if not path.is_dir():
            raise PipelineError(f"eval: checkpoint {name} ({path}) not found; its stage has not finished")
        t0 = time.perf_counter()
        try:
            summary = run_benchmark(spec.benchmark, path, spec.data, out_dir / name, decoding, dtype=spec.dtype,
                                    device=spec.device, max_pixels=pipeline.model.max_pixels,
                                    leniencies=spec.lenient, strict=spec.strict, columns=spec.columns)
        except EvalError as exc:
            raise PipelineError(f"eval ({spec.benchmark}, {name}): {exc}") from None
        results[name] = {"split": "heldout", "benchmark": summary["benchmark"],
                         **{k: summary.get(k) for k in ("accuracy", "correct", "n", "metrics", "mean_completion_tokens",
                                                        "truncated_rate")},
                         "leniencies": summary["scoring"]["leniencies"], "strict": summary["scoring"]["strict"]}
        console.print(f"  eval {name}: {summary['benchmark']} {100 * summary['accuracy']:.1f}% "
                      f"({summary['correct']}/{summary['n']}, official scoring"
                      f"{', lenient ' + ', '.join(spec.lenient) if spec.lenient else ''})", highlight=False)
        phases[f"eval:{name}"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out_dir / "summary.json", results)
    return results


# ----------------------------------------------------------------------------------------------------------
# bookkeeping
# ----------------------------------------------------------------------------------------------------------


def _section_file(run_dir: Path, name: str) -> Path:
    return run_dir / "sections" / f"{name}.json"


def _section_done(run_dir: Path, name: str, settings: dict[str, Any], output: Path | None,
                  reuse_on_change: bool = False) -> bool:
    """True when section ``name`` finished with ``settings``. A finished section with other settings is an error
    (later sections were made from its output) unless ``reuse_on_change``; an unfinished one's partial
    ``output`` is cleared."""
    marker = _section_file(run_dir, name)
    if marker.is_file():
        old = json.loads(marker.read_text())["settings"]
        if old == settings:
            return True
        if not reuse_on_change:
            changed = sorted(k for k in {*old, *settings} if old.get(k) != settings.get(k))
            raise PipelineError(
                f"{run_dir} holds a run whose {name} section was made with other settings ({', '.join(changed)}); "
                "resume with the same recipe and overrides, or choose another --output-dir"
            )
        marker.unlink()
    if output is not None and output.exists():
        shutil.rmtree(output)
    return False


def _section_finished(run_dir: Path, name: str, settings: dict[str, Any]) -> None:
    from visionr1.training.manifest import now

    atomic_write_json(_section_file(run_dir, name), {"settings": settings, "finished": now()})


def _phases_of(pipeline: PipelineRecipe) -> set[str]:
    sections = set(pipeline.sections())
    return {"data" if s == "tiny_model" else s for s in sections}


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


def _load() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


class _Steps:
    """Numbered phases: a rule on the console, then the phase's wall seconds into ``phases``."""

    def __init__(self, console: Console, names: list[str], extra: int) -> None:
        self.console, self.names, self.total = console, names, len(names) + extra
        self.phases: dict[str, float] = {}

    def phase(self, name: str, title: str) -> _Phase:
        return _Phase(self, name, f"{self.names.index(name) + 1}/{self.total} {title}")


class _Phase:
    def __init__(self, steps: _Steps, name: str, title: str) -> None:
        self.steps, self.name, self.title = steps, name, title

    def __enter__(self) -> None:
        self.steps.console.rule(f"[bold cyan]{self.title}")
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.steps.phases[self.name] = round(time.perf_counter() - self.t0, 1)
        if exc[0] is None:
            self.steps.console.print(f"  [dim]{self.name}: {self.steps.phases[self.name]:.0f} s[/]")
