"""`visionr1 demo [RECIPE] [overrides] [--output-dir DIR] [--resume]` (composed into the main app by `visionr1/cli.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import command_app, console, fail

app = command_app()


@app.command("demo")
def demo(
    recipe: Annotated[
        Path | None, typer.Argument(help="Demo recipe (default: the shipped recipes/demo.yaml).", show_default=False)
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. seed=1 stages.grpo-1.grpo.max_steps=10")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Run directory (default: the recipe's, runs/demo).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a killed demo run instead of starting over.")
    ] = False,
) -> None:
    """The whole Vision-R1 pipeline on a CPU in minutes, no download: synthetic task -> cold start (oracle) ->
    SFT -> GRPO with PTST -> held-out evaluation -> runs/demo/report.md. (`visionr1 run` on the same recipe,
    plus the report.)"""
    from visionr1.config.base import RecipeError
    from visionr1.data.errors import DataError
    from visionr1.demo.pipeline import DemoError, default_recipe_path, load_demo_recipe, main
    from visionr1.pipeline.run import PipelineError
    from visionr1.training.lock import RunLockedError
    from visionr1.training.plan import PlanError

    if recipe is not None and "=" in recipe.name and not recipe.is_file():
        overrides = [str(recipe), *(overrides or [])]  # `visionr1 demo seed=1`: overrides on the default recipe
        recipe = None
    overrides = [*(overrides or []), *([f"output_dir={output_dir.expanduser().resolve()}"] if output_dir else [])]
    try:
        path = recipe if recipe is not None else default_recipe_path()
        resolved = load_demo_recipe(path, overrides)
        main(resolved, recipe_path=path, overrides=overrides, resume=resume, console=console)
    except (RecipeError, DemoError, PipelineError, PlanError, DataError, RunLockedError) as exc:
        fail(str(exc))
