"""`visionr1 train RECIPE.yaml [overrides] [--output-dir DIR] [--dry-run] [--cpu-threads N]` (composed into the main app by `visionr1/cli.py`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import CpuThreadsOpt, command_app, fail, parse_cpu_threads
from visionr1.utils.io import OutputError, dumps_json, is_write_error, output_error

app = command_app()


@app.command("train")
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (see recipes/); of a pipeline recipe, its model + stages.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. stages.1.grpo.max_steps=10 model.path=DIR")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Run directory (default: recipe output_dir or runs/<name>).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved plan (every stage, full TRL config) as JSON and exit.")
    ] = False,
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="With --dry-run: plan without reading the data (for a recipe whose "
                           "data is not there yet). Default: the data is checked as the run checks it.")
    ] = False,
    num_processes: Annotated[
        int | None,
        typer.Option("--num-processes", help="With --dry-run: plan for this many processes (default: launch.num_processes)."),
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Train only this stage (the ones before it must be finished).")
    ] = None,
    resume_from: Annotated[
        str | None,
        typer.Option("--resume-from", help="`previous`: when a stage's last checkpoint is damaged, set it aside and "
                     "resume from the one before it (its later steps are trained again). Default: refuse."),
    ] = None,
    allow_changed: Annotated[
        list[str] | None,
        typer.Option("--allow-changed", help="On resume, accept a change of this field of a started stage (only "
                     "ones that do not change what it learns: logging_steps, save_steps, eval_steps, report_to, ...; "
                     "repeat or comma-separate)."),
    ] = None,
    cpu_threads: CpuThreadsOpt = None,
) -> None:
    """Run a recipe's stages (SFT, GRPO/PTST) in order, each in a process of its own (`launch:` in the recipe
    sets how many); re-running the same command resumes a killed run."""
    from visionr1.config.base import RecipeError
    from visionr1.pipeline.load import load_training_recipe, output_dir_overrides
    from visionr1.training.plan import PlanError

    threads = parse_cpu_threads(cpu_threads)
    if allow_changed:
        from visionr1.training.fingerprint import ALLOW_ENV, check_allowed

        fields = [f.strip() for item in allow_changed for f in item.split(",") if f.strip()]
        if (problem := check_allowed(fields)) is not None:
            fail(problem)
        os.environ[ALLOW_ENV] = ",".join(fields)  # the stage processes inherit it
    if resume_from is not None:
        from visionr1.training.checkpoints import RESUME_ENV

        if resume_from != "previous":
            fail(f"--resume-from {resume_from}: the one value is `previous` (resume from the checkpoint before a "
                 "damaged one); without it a damaged checkpoint is an error")
        os.environ[RESUME_ENV] = resume_from  # the stage processes inherit it
    try:
        overrides, output_dir = output_dir_overrides(recipe, overrides or [], output_dir)  # a pipeline moves whole
        resolved = load_training_recipe(recipe, overrides)
    except RecipeError as exc:
        fail(str(exc))
    if threads is not None:
        resolved = resolved.model_copy(update={"cpu_threads": threads})
    if dry_run:
        from visionr1.config.loader import run_dir_of
        from visionr1.training.plan import plan_run

        try:  # TRL configs are built here, for the processes each stage will run on
            plan = plan_run(resolved, output_dir, num_processes or resolved.launch.num_processes, sample_images=True,
                            source=str(recipe))
            # the data, as the run will read it: a dry run refuses what the run refuses (no model needed)
            from visionr1.pipeline.load import is_pipeline_file
            from visionr1.training.runner import preflight

            # (a pipeline recipe's training data is made by its earlier sections: not there to check yet)
            if not plan_only and not is_pipeline_file(recipe):
                preflight(resolved, run_dir_of(resolved, output_dir), num_processes or resolved.launch.num_processes,
                          list(range(len(resolved.stages))), source=str(recipe), data_only=True)
        except PlanError as exc:
            fail(str(exc))
        except (ValueError, TypeError) as exc:
            fail(f"{recipe}: {exc}")
        print(dumps_json(plan, indent=2))  # secrets redacted
        return

    from visionr1.config.loader import run_dir_of
    from visionr1.data.errors import DataError
    from visionr1.rewards.checked import RewardError
    from visionr1.training.checkpoints import CheckpointError
    from visionr1.training.launch import as_stage_process, is_stage_child, stage_launcher
    from visionr1.training.lock import RunLockedError
    from visionr1.training.runner import StageFailed, main

    # each stage in its own process(es), unless this already is one, or an external launcher started us
    launcher = None
    if stage is None and resolved.launch.isolate_stages and not is_stage_child() and "WORLD_SIZE" not in os.environ:
        from visionr1.training.runner import resolved_recipe_path

        run_dir = run_dir_of(resolved, output_dir)  # the stages read the recipe resolved here (overrides applied)
        launcher = stage_launcher(resolved.launch, str(resolved_recipe_path(run_dir)), [], run_dir)
    as_stage_process()  # SIGTERM stops the run as SIGINT does; a stage process also stops with its parent
    try:
        summary = main(resolved, output_dir=output_dir, source=str(recipe), stage=stage, launcher=launcher)
    except KeyboardInterrupt as exc:  # SIGINT / SIGTERM (a scheduler's preemption): stopped, resumable
        import signal

        signum = getattr(exc, "signum", signal.SIGINT)
        if is_stage_child():
            raise typer.Exit(128 + signum) from None
        fail(f"{recipe}: stopped by {signal.Signals(signum).name}; every process of the run has exited and the "
             "manifest marks the stage interrupted. Run the same command again to resume from its last complete "
             "checkpoint", code=128 + signum)
    except (PlanError, DataError, OutputError, RunLockedError, StageFailed, CheckpointError, RewardError) as exc:
        from visionr1.pipeline.load import pipeline_hint

        fail(str(exc) + pipeline_hint(recipe, exc))
    except OSError as exc:  # a full disk or read-only run directory mid-run: one line, not a traceback
        if not is_write_error(exc):
            raise
        fail(str(output_error(exc, exc.filename or output_dir or resolved.output_dir or "the run directory", "the run's outputs")))
    if int(os.environ.get("RANK", "0")) == 0 and not is_stage_child():
        typer.echo(json.dumps(summary, indent=2))
