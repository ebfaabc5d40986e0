"""`visionr1 train`: run a recipe's stages in order — cold-start SFT, GRPO stages (PTST), iterative DPO — resumably.

The story of a run, top to bottom in :func:`main`:
1. plan: resolve every stage's settings (``--dry-run`` stops here and needs neither model nor data);
2. manifest: start a new run directory, or reopen one and check the finished stages are still the recipe's;
3. preflight: load every pending stage's data, check models, rewards and batch shapes — all problems are
   reported before any training starts;
4. stages: each starts from the previous stage's ``final/`` weights and resumes from its own last complete
   checkpoint when there is one; a stage with a ``final/`` directory is finished and never rerun. From the CLI
   each stage trains in a process of its own (``training.launch``), then its evaluation runs here; a single
   pending stage of one plain process with no evaluation trains here (:func:`trains_in_parent`);
5. plot: ``ptst.png``, reward and completion length per step across all stages.
Re-running the same command after a kill (at any moment) continues where the run stopped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionr1.config.loader import run_dir_of
from visionr1.recipe import TrainRecipe
from visionr1.training.callbacks import COMPLETIONS_FILE, METRICS_FILE
from visionr1.training.checkpoints import checkpoint_step, last_checkpoint, trim_logs
from visionr1.training.data_order import dataset_key, stage_offset
from visionr1.training.launch import is_stage_child
from visionr1.training.lock import run_lock
from visionr1.training.manifest import Manifest, now
from visionr1.training.plan import (
    PlanError,
    Prepared,
    check_dataset,
    check_model_path,
    check_prompt_lengths,
    check_stage_settings,
    final_dir,
    plan_run,
    raise_if,
    stage_dir,
    stage_values,
    start_path,
    world_size_from_env,
)
from visionr1.utils.io import atomic_write_json

log = logging.getLogger(__name__)
PLOT_FILE = "ptst.png"
RESOLVED_RECIPE = "recipe.json"  # the recipe as the parent resolved and checked it; what each stage process reads


def resolved_recipe_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESOLVED_RECIPE


def write_resolved_recipe(recipe: TrainRecipe, run_dir: Path) -> None:
    """``RUN/recipe.json``: the resolved recipe (includes, overrides, relative paths all applied), so that a
    stage process started hours later trains what was checked, whatever became of the YAML since (an edit
    used to change stage 3 without a word, and an invalid one failed it hours later). Written by the parent
    only. Secrets are redacted, which changes nothing a stage needs: a recipe holding a literal secret is
    refused when loaded (it names an environment variable instead)."""
    atomic_write_json(resolved_recipe_path(run_dir), recipe.model_dump(mode="json"), "the resolved recipe")


def main(recipe: TrainRecipe, output_dir: str | os.PathLike | None = None, dry_run: bool = False,
         source: str = "recipe", stage: str | None = None,
         launcher: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Run (or, with ``dry_run``, plan) ``recipe``; returns the plan or a summary of the run.

    ``stage``: train only that stage (the stages before it must be finished). ``launcher``: train each pending
    stage by calling ``launcher(stage_name)`` (a process of its own, ``training.launch``) instead of here."""
    # --- 1. plan (for the processes the stages will run on) ------------------------------------------------------
    world_size = world_size_from_env()  # this process's launch
    if world_size > 1 and not dry_run:
        from visionr1.patches.accelerate import apply_cpu_distributed_shims

        apply_cpu_distributed_shims()  # on a machine without a GPU only: gloo DDP / FSDP2 / ZeRO-3 (patches.accelerate)
    if not dry_run:
        from visionr1.runtime import apply_cpu_threads, summary_line

        log.info("CPU threads: %s", summary_line(apply_cpu_threads(recipe.cpu_threads)))  # recorded in the manifest
    stage_world = recipe.launch.num_processes if launcher is not None else world_size
    if dry_run:
        return plan_run(recipe, output_dir, stage_world, source=source)
    if world_size == 1:  # a rank of a launch builds only its real configs (a check build would set up devices)
        plan_run(recipe, output_dir, stage_world, source=source)  # every stage's TRL config, before any trains
    run_dir = run_dir_of(recipe, output_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0
    # one train per run directory (a stale lock is taken over); a stage's processes run under their parent's lock
    with run_lock(run_dir, enabled=is_main and not is_stage_child()):
        return _run_locked(recipe, run_dir, world_size, stage_world, is_main, source, stage, launcher)


def _run_locked(recipe: TrainRecipe, run_dir: Path, world_size: int, stage_world: int, is_main: bool, source: str,
                stage: str | None, launcher: Callable[[str], int] | None) -> dict[str, Any]:
    # --- 2. manifest: new run, or resume -----------------------------------------------------------------------
    done = [final_dir(run_dir, s).is_dir() for s in recipe.stages]
    pending = [i for i, finished in enumerate(done) if not finished]
    if stage is not None:
        pending = _only(recipe, stage, done, source)
    child = is_stage_child()
    manifest = _open_manifest(run_dir, recipe, stage_world, done, source, write=is_main, note=not child)
    if is_main:
        _mark_finished(manifest, recipe, run_dir, done)

    # --- 3. preflight: everything a pending stage needs, before the first one trains -------------------------
    prepared = preflight(recipe, run_dir, stage_world, pending, source)
    _check_resumed_stages(recipe, run_dir, manifest, pending, prepared, source)
    if launcher is not None and trains_in_parent(recipe, pending):
        launcher = None

    # --- 4. stages, each followed by its evaluation (a step of its own, in this process) ------------------------
    from visionr1.training.stage import release

    for i, st in enumerate(recipe.stages):
        if i in pending:
            if launcher is not None:
                _launch(launcher, st.name, run_dir, source)
                manifest = Manifest.load(run_dir)  # the stage's process(es) wrote it
            else:
                _train_here(recipe, i, run_dir, manifest, prepared[i], is_main)
                release()
        # evaluation: by the parent after the stage's processes are gone, or here when this is a single process
        wants_eval = st.eval_dataset is not None and final_dir(run_dir, st).is_dir() and not manifest.stage(st.name).get("eval")
        if wants_eval and is_main and not child and (stage is None or stage == st.name):
            if world_size > 1:
                log.warning("stage %s: evaluating on the main process only; the others wait (prefer one process "
                            "per stage: `visionr1 train` without an external launcher)", st.name)
            _evaluate(recipe, i, run_dir, manifest, prepared[i].eval if i in prepared else None)
        _barrier(world_size)

    # --- 5. plot ---------------------------------------------------------------------------------------------------
    plot = None
    if is_main and not child and recipe.logging.plot and (run_dir / METRICS_FILE).is_file():
        from visionr1.training.plot import plot_run

        plot = plot_run(run_dir / METRICS_FILE, run_dir / PLOT_FILE, title=f"{recipe.name}: reward and length per step")
    return {
        "run_dir": str(run_dir),
        "stages": {s["name"]: s["status"] for s in manifest.data["stages"]},
        "final_dir": str(final_dir(run_dir, recipe.stages[-1])),
        "plot": str(plot) if plot else None,
        "trained": [recipe.stages[i].name for i in pending],
    }


def _train_here(recipe: TrainRecipe, i: int, run_dir: Path, manifest: Manifest, prepared: Prepared, is_main: bool) -> None:
    """Train stage ``i`` in this process (resuming from its last checkpoint) and record it in the manifest."""
    from visionr1.training.dpo import train_dpo
    from visionr1.training.grpo import train_grpo
    from visionr1.training.loading import resolve_model_path
    from visionr1.training.sft import train_sft
    from visionr1.training.stage import StageRun

    stage = recipe.stages[i]
    resume = last_checkpoint(stage_dir(run_dir, stage), cleanup=is_main)
    run = StageRun(
        recipe=recipe, stage=stage, index=i, run_dir=run_dir, stage_dir=stage_dir(run_dir, stage),
        start_path=resolve_model_path(start_path(recipe, i, run_dir)), resume_from=resume,
        step_offset=_step_offset(manifest, recipe, i), train_dataset=prepared.train,
        eval_dataset=prepared.eval, data_offset=_data_offset(manifest, recipe, i),
    )
    _banner(run, is_main)
    if is_main:
        # the steps after the checkpoint are trained (and logged) again: their old rows go (DPO: per iteration)
        if stage.type != "dpo":
            trim_logs(run_dir, stage.name, checkpoint_step(resume), (METRICS_FILE, COMPLETIONS_FILE))
        from visionr1.training.fingerprint import stage_fingerprint

        manifest.update_stage(stage.name, status="running", started=now(), resumed_from=resume, error=None,
                              fingerprint=stage_fingerprint(recipe, i, prepared.train))
        run.report = lambda **fields: manifest.update_stage(stage.name, **fields)
    try:
        result = {"sft": train_sft, "grpo": train_grpo, "dpo": train_dpo}[stage.type](run)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (launch.Stopped): a preemption, not a failure
        if is_main:
            manifest.update_stage(stage.name, status="interrupted", error=f"stopped by {exc or 'SIGINT'}")
        raise
    except BaseException as exc:
        if is_main:
            manifest.update_stage(stage.name, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if is_main:
        manifest.update_stage(stage.name, status="done", finished=now(), **result)


def _has_progress(folder: Path) -> str | None:
    """A saved state a re-run would continue from (a recorded checkpoint, a DPO iteration's final), or None."""
    from visionr1.training.checkpoints import RECORD

    found = sorted(folder.glob(f"checkpoint-*/{RECORD}")) + sorted(folder.glob(f"iter-*/checkpoint-*/{RECORD}"))
    if found:
        return str(found[-1].parent)
    finals = sorted(folder.glob("iter-*/final"))
    return str(finals[-1]) if finals else None


def _check_resumed_stages(recipe: TrainRecipe, run_dir: Path, manifest: Manifest, pending: list[int],
                          prepared: dict[int, Prepared], source: str) -> None:
    """A stage that continues from saved state must still have the settings and data it started with."""
    from visionr1.training.fingerprint import check_resume, stage_fingerprint

    for i in pending:
        stage = recipe.stages[i]
        old = manifest.stage(stage.name).get("fingerprint")
        saved = _has_progress(stage_dir(run_dir, stage))
        if old and saved and i in prepared:
            check_resume(source, stage.name, saved, old, stage_fingerprint(recipe, i, prepared[i].train))


def trains_in_parent(recipe: TrainRecipe, pending: list[int]) -> bool:
    """Whether ``visionr1 train`` trains the one stage left here rather than in a child process: a single pending
    stage, one plain process (no ``accelerate launch``), and no evaluation after it. Isolation is for what one
    stage leaves to the next, or to the evaluation, and here there is neither; a child would only repeat this
    process's imports, recipe checks and preflight (``benchmarks/overhead.py``, a 6-step GRPO run of the demo
    model: 27-29 CPU seconds per command with the child, 18-20 without, bare TRL 17-19)."""
    launch = recipe.launch
    return (len(pending) == 1 and launch.num_processes == 1 and not launch.config_file and not launch.args
            and recipe.stages[pending[0]].eval_dataset is None)


class StageFailed(RuntimeError):
    """A stage's process(es) exited with an error (their output says why; the manifest has the error)."""


def _launch(launcher: Callable[[str], int], name: str, run_dir: Path, source: str) -> None:
    try:
        code = launcher(name)
    except KeyboardInterrupt as exc:  # stopped: its processes are gone; one SIGKILLed left the manifest "running"
        manifest = Manifest.load(run_dir)
        if manifest is not None and manifest.stage(name).get("status") == "running":
            manifest.update_stage(name, status="interrupted", error=f"stopped by {exc or 'SIGINT'}")
        raise
    if code != 0:
        manifest = Manifest.load(run_dir)
        error = manifest.stage(name).get("error") if manifest else None
        raise StageFailed(f"{source}: stage {name} failed (exit code {code})" + (f": {error}" if error else "")
                          + f". Fix the cause, then run the same command again: it resumes at stage {name}")


def _only(recipe: TrainRecipe, name: str, done: list[bool], source: str) -> list[int]:
    """``--stage NAME``: that stage alone, once every stage before it is finished."""
    names = [s.name for s in recipe.stages]
    if name not in names:
        raise PlanError(f"{source}: no stage named {name!r}; the recipe's stages are {names}")
    i = names.index(name)
    missing = [n for n, d in zip(names[:i], done[:i], strict=True) if not d]
    if missing:
        raise PlanError(f"{source}: stage {name} starts from the weights of {names[i - 1]}, but {missing} "
                        f"{'is' if len(missing) == 1 else 'are'} not finished. Fix: run `--stage {missing[0]}` first, "
                        "or run all stages (no --stage)")
    return [] if done[i] else [i]


def _barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


# ----------------------------------------------------------------------------------------------------------
# the parts main() tells
# ----------------------------------------------------------------------------------------------------------


def _with_new_defaults(old: dict[str, Any] | None, spec: Any) -> dict[str, Any] | None:
    """A finished stage as recorded, plus the defaults of stage fields added since (e.g. ``dynamic_sampling``):
    a run recorded before a field existed trained with its default, so it still resumes."""
    if old is None:
        return None
    added = {}
    for name, field in type(spec).model_fields.items():
        if name not in old:
            default = field.get_default(call_default_factory=True)
            added[name] = default.model_dump(mode="json") if hasattr(default, "model_dump") else default
    return {**old, **added}


def _open_manifest(run_dir: Path, recipe: TrainRecipe, world_size: int, done: list[bool], source: str, write: bool,
                   note: bool = True) -> Manifest:
    """A new manifest, or the existing one after checking the finished stages are still this recipe's."""
    resolved = recipe.model_dump(mode="json")
    manifest = Manifest.load(run_dir)
    if manifest is None:
        manifest = Manifest.create(run_dir, resolved, world_size)
    else:
        old = manifest.data["recipe"]
        changed = [k for k in ("model", "seed") if old.get(k) != resolved.get(k)]
        old_stages = {s["name"]: s for s in old["stages"]}
        for spec, stage, finished in zip(recipe.stages, resolved["stages"], done, strict=True):
            if finished and _with_new_defaults(old_stages.get(stage["name"]), spec) != stage:
                changed.append(f"stages.{stage['name']}")
        if changed:
            raise PlanError(
                f"{source}: {run_dir} holds a run whose finished part was trained with different settings "
                f"({', '.join(changed)}). Fix: use a new --output-dir, or delete {run_dir} to start over"
            )
        # pending stages may change (e.g. a third PTST stage appended): record the recipe as it now is
        names = {s["name"] for s in manifest.data["stages"]}
        manifest.data["recipe"] = resolved
        manifest.data["stages"] += [
            {"name": s["name"], "type": s["type"], "status": "pending", "started": None, "finished": None,
             "resumed_from": None, "final_dir": None, "global_step": None, "error": None}
            for s in resolved["stages"] if s["name"] not in names
        ]
        manifest.data["stages"] = sorted(
            (s for s in manifest.data["stages"] if s["name"] in {r["name"] for r in resolved["stages"]}),
            key=lambda s: [r["name"] for r in resolved["stages"]].index(s["name"]),
        )
    if write:
        (run_dir).mkdir(parents=True, exist_ok=True)
        if note:  # a stage's own process is part of its parent's attempt, and reads the parent's recipe.json
            write_resolved_recipe(recipe, run_dir)
            manifest.note_attempt(world_size)
        else:
            manifest.save()
    return manifest


def preflight(recipe: TrainRecipe, run_dir: Path, world_size: int, pending: list[int], source: str = "recipe",
              data_only: bool = False) -> dict[int, Prepared]:
    """Load the data of every pending stage and check everything that would otherwise fail mid-run.
    ``data_only`` (``--dry-run``): the data checks alone -- no model, no plugin imported -- so a dry run refuses
    a misspelt data path or a bad record as the run would."""
    from visionr1.data.errors import DataError
    from visionr1.data.loaders import load_samples

    problems: list[tuple[str, str]] = []
    if pending and not data_only:
        first = start_path(recipe, pending[0], run_dir)
        if (msg := check_model_path(first)) is not None:
            problems.append((recipe.stages[pending[0]].name, msg))
        elif packed := [recipe.stages[i].name for i in pending if getattr(recipe.stages[i], "padding_free", False)]:
            from visionr1.training.loading import resolve_model_path
            from visionr1.training.packing import family_problem

            if (msg := family_problem(resolve_model_path(first))) is not None:
                problems.append((packed[0], msg))
    prepared: dict[int, Prepared] = {}
    for i in pending:
        stage = recipe.stages[i]
        problems += [(stage.name, m) for m in check_stage_settings(recipe, stage, world_size)]
        if not data_only and (stage.type == "grpo" or (stage.type == "dpo" and not stage.pairs_file)):
            try:
                from visionr1.rewards.registry import build_reward_funcs

                build_reward_funcs(stage.rewards)
            except (ValueError, KeyError, ImportError, FileNotFoundError) as exc:
                problems.append((stage.name, f"rewards: {exc}"))
        loaded: dict[str, Any] = {}
        for which, spec in (("dataset", stage.dataset), ("eval_dataset", stage.eval_dataset)):
            if spec is None:
                continue
            try:
                result = load_samples(spec)
            except DataError as exc:
                problems.append((stage.name, f"{which}: {exc}"))
                continue
            loaded[which] = result
            problems += [(stage.name, m) for m in check_dataset(stage, result.dataset, which)]
        if getattr(stage, "pairs_file", None):
            from visionr1.training.dpo import DPOError, load_pairs

            try:
                prepared[i] = Prepared(train=load_pairs(stage.pairs_file))
            except DPOError as exc:
                problems.append((stage.name, f"pairs_file: {exc}"))
        if "dataset" in loaded:
            prepared[i] = Prepared(
                train=loaded["dataset"].dataset,
                eval=loaded["eval_dataset"].dataset if "eval_dataset" in loaded else None,
                skipped=loaded["dataset"].skipped,
            )
    raise_if(problems, source)

    # Image-token budget vs SFT truncation and the GRPO token budget need the processor: only once the cheap checks
    # passed.
    sft_pending = [i for i in pending if recipe.stages[i].type == "sft" and not data_only]
    budgeted = [i for i in pending if getattr(recipe.stages[i], "max_tokens_per_micro_batch", None) and not data_only]
    if sft_pending or budgeted:
        from visionr1.models.families import guess_from_path
        from visionr1.training.loading import load_processor, resolve_model_path

        model_path = resolve_model_path(start_path(recipe, pending[0], run_dir))
        processor = load_processor(model_path, recipe.model)
        family = guess_from_path(model_path)
        for i in sft_pending:
            max_length = stage_values(recipe, recipe.stages[i]).get("max_length", 1024)
            problems += [(recipe.stages[i].name, m) for m in check_prompt_lengths(
                recipe.stages[i], prepared[i].train, processor, max_length, family=family)]
        for i in budgeted:
            problems += [(recipe.stages[i].name, m) for m in budget_problems(recipe, i, prepared[i].train, processor, family)]
        raise_if(problems, source)
    return prepared


def budget_problems(recipe: TrainRecipe, index: int, dataset: Any, processor: Any, family: Any = None) -> list[str]:
    """A GRPO stage's ``max_tokens_per_micro_batch`` against its longest prompt (tokens and image tokens, counted
    cheaply by ``plan.sequence_lengths``) plus a full-length completion."""
    from visionr1.training.plan import sequence_lengths
    from visionr1.training.token_budget import longest_prompt_problem

    stage = recipe.stages[index]
    longest = int(stage_values(recipe, stage).get("max_completion_length", 256))
    msg = longest_prompt_problem(sequence_lengths(dataset, processor, family), stage.max_tokens_per_micro_batch, longest)
    return [msg] if msg else []


def _mark_finished(manifest: Manifest, recipe: TrainRecipe, run_dir: Path, done: list[bool]) -> None:
    """A stage whose ``final/`` exists is finished, whatever the manifest says (a kill between the rename and
    the manifest update): record it as done from ``final/stage.json``."""
    from visionr1.training.stage import read_stage_record

    for stage, finished in zip(recipe.stages, done, strict=True):
        if finished and manifest.stage(stage.name).get("status") != "done":
            record = read_stage_record(final_dir(run_dir, stage))
            log.warning("stage %s: final weights found, marking it done", stage.name)
            manifest.update_stage(stage.name, status="done", error=None, finished=manifest.stage(stage.name).get("finished") or now(),
                                  **{"final_dir": str(final_dir(run_dir, stage)), **record})


def _data_offset(manifest: Manifest, recipe: TrainRecipe, index: int) -> int:
    """Where stage ``index`` continues the prompt stream of its dataset (``training.data_order``)."""
    stage = recipe.stages[index]
    if stage.type not in ("grpo", "dpo") or stage.dataset is None:
        return 0
    earlier = [manifest.stage(s.name).get("data_order") for s in recipe.stages[:index]]
    return stage_offset(earlier, dataset_key(stage.dataset.model_dump(mode="json")))


def _step_offset(manifest: Manifest, recipe: TrainRecipe, index: int) -> int:
    total = 0
    for stage in recipe.stages[:index]:
        total += int(manifest.stage(stage.name).get("global_step") or 0)
    return total


def _banner(run: Any, is_main: bool) -> None:
    if not is_main:
        return
    from rich.console import Console

    stage = run.stage
    what = f"{stage.type.upper()} stage {run.index + 1}: {stage.name}"
    if stage.type == "grpo":
        v = stage.grpo
        what += f"  (max_completion_length {v.get('max_completion_length', 512)}, num_generations {v.get('num_generations', 8)})"
    if stage.type == "dpo":
        what += f"  ({stage.iterations} iteration(s), " + (
            "pairs from file)" if stage.pairs_file else f"{stage.samples_per_prompt} samples per prompt)")
    resume = f", resuming from {Path(run.resume_from).name}" if run.resume_from else ""
    Console(highlight=False).rule(f"[bold]{what}[/]")
    Console(highlight=False).print(f"starts from {run.start_path}{resume}; {len(run.train_dataset)} training samples")


def _evaluate(recipe: TrainRecipe, index: int, run_dir: Path, manifest: Manifest, eval_dataset: Any = None) -> None:
    """Score a finished stage's final weights on its eval_dataset with the in-process evaluator (the one scorer
    RL rewards use): accuracy, format rate, mean completion tokens. One ``kind: eval`` row in metrics.jsonl;
    predictions under ``<stage>/eval/``. Greedy, with the stage's completion limit (GRPO) or 1024 tokens.
    Recorded in the manifest (``eval``), so a run cut short here evaluates again on the next run."""
    from rich.console import Console

    from visionr1.evaluation import evaluate_samples
    from visionr1.evaluation.run import dataset_benchmark, eval_line
    from visionr1.utils.io import append_jsonl

    stage = recipe.stages[index]
    if eval_dataset is None:
        from visionr1.data.loaders import load_samples

        eval_dataset = load_samples(stage.eval_dataset).dataset
    values = stage_values(recipe, stage)
    limit = stage.sampling.max_new_tokens if stage.type == "dpo" else values.get("max_completion_length", 1024)
    scores = evaluate_samples(
        str(final_dir(run_dir, stage)), eval_dataset, max_new_tokens=int(limit),
        output_dir=stage_dir(run_dir, stage) / "eval", benchmark=dataset_benchmark(stage.eval_dataset),
    )
    Console(highlight=False).print(eval_line(stage.name, scores))
    step = int(manifest.stage(stage.name).get("global_step") or 0)
    row = {"kind": "eval", "stage": stage.name, "stage_index": index, "stage_type": stage.type,
           "step": step, "run_step": _step_offset(manifest, recipe, index) + step,
           **{f"eval/{k}": v for k, v in scores.items() if isinstance(v, int | float) or v is None}}
    append_jsonl(run_dir / METRICS_FILE, row)
    manifest.update_stage(stage.name, eval=scores)
