"""`visionr1 run RECIPE [overrides] [--output-dir DIR] [--dry-run] [--cpu-threads N]` (composed into the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import CpuThreadsOpt, command_app, console, fail, parse_cpu_threads

app = command_app()


@app.command("run")
def run(
    recipe: Annotated[Path, typer.Argument(help="Pipeline recipe YAML (e.g. recipes/demo.yaml); a training recipe works too.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. seed=1 data.rl_items=100 stages.grpo-1.grpo.max_steps=10")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Run directory (default: the recipe's output_dir, else runs/<name>).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every section resolved (inputs, outputs, full TRL configs) as JSON and exit.")
    ] = False,
    num_processes: Annotated[
        int | None, typer.Option("--num-processes", help="With --dry-run: plan the stages for this many processes.")
    ] = None,
    cpu_threads: CpuThreadsOpt = None,
) -> None:
    """Run the sections a pipeline recipe has, in order: data -> cold start -> training stages -> evaluation.
    Re-running the same command resumes a killed run; finished sections are not redone."""
    from visionr1.config.base import RecipeError
    from visionr1.data.errors import DataError
    from visionr1.pipeline.config import load_pipeline
    from visionr1.pipeline.run import PipelineError, main, plan
    from visionr1.training.lock import RunLockedError
    from visionr1.training.plan import PlanError
    from visionr1.training.runner import StageFailed
    from visionr1.utils.io import OutputError, dumps_json

    threads = parse_cpu_threads(cpu_threads)
    # --output-dir and --cpu-threads become overrides, so each stage's process loads the same recipe
    extra = [*([f"output_dir={output_dir.expanduser().resolve()}"] if output_dir else []),
             *([f"cpu_threads={threads}"] if threads is not None else [])]
    overrides = [*(overrides or []), *extra]
    try:
        pipeline = load_pipeline(recipe, overrides)
        if dry_run:
            try:  # the stages' TRL configs are built by the planner, for the processes each stage will run on
                print(dumps_json(plan(pipeline, num_processes), indent=2))
            except (ValueError, TypeError) as exc:
                fail(f"{recipe}: {exc}")
            return
        summary = main(pipeline, recipe_path=recipe, overrides=overrides, console=console)
    except (RecipeError, PipelineError, PlanError, DataError, OutputError, RunLockedError, StageFailed) as exc:
        fail(str(exc))
    console.print(f"done: {summary['run_dir']} (summary.json)", highlight=False)
