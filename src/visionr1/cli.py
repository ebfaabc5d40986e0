"""The `visionr1` command line. Each stage of the pipeline registers its command here.

Heavy imports (torch, transformers, trl) happen inside commands, so `visionr1 --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visionr1 import __version__

app = typer.Typer(
    name="visionr1",
    help="Teach vision-language models to reason: cold-start data, SFT, GRPO with PTST, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipe_app = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error (no traceback: the message names the file, field and fix) and exit non-zero."""
    from visionr1.utils.secrets import redact_text

    err_console.print(f"[bold red]error:[/] {redact_text(message)}", highlight=False)
    raise typer.Exit(code)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"visionr1 {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """visionr1 command line."""


@recipe_app.command("explain")
def recipe_explain(
    section: Annotated[str, typer.Argument(help="Only fields whose path starts with this (e.g. stages, model).")] = "",
) -> None:
    """List every recipe field with its type, default and one-line description."""
    from visionr1.config.base import explain_model
    from visionr1.recipe import Recipe

    table = Table(title="recipe fields", show_lines=False)
    for col in ("field", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for path, tp, default, desc in explain_model(Recipe):
        if path.startswith(section):
            table.add_row(path, tp, default, desc)
    console.print(table)
    console.print("sft.* and grpo.* pass through to trl.SFTConfig / trl.GRPOConfig: see TRL's documentation.")


@recipe_app.command("check")
def recipe_check(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. stages.0.grpo.max_steps=10")] = None,
) -> None:
    """Validate a recipe (includes and overrides applied) and print it resolved, as JSON."""
    from visionr1.config.base import RecipeError
    from visionr1.recipe import load_recipe

    try:
        resolved = load_recipe(recipe, overrides or [])
    except RecipeError as exc:
        fail(str(exc))
    print(json.dumps(resolved.model_dump(mode="json"), indent=2))


# Each pipeline stage registers its commands on `app` when imported (kept last: they import `app`).
from visionr1.coldstart import cli as _coldstart_cli  # noqa: E402,F401  (registers coldstart)
from visionr1.data import cli as _data_cli  # noqa: E402,F401
from visionr1.demo import cli as _demo  # noqa: E402,F401  (registers demo)
from visionr1.evaluation import cli as _eval_cli  # noqa: E402,F401  (registers eval)
from visionr1.models import cli as _models_cli  # noqa: E402,F401  (registers make-tiny-model, make-synthetic)
from visionr1.rewards import cli as _rewards_cli  # noqa: E402,F401  (registers score-rewards)
from visionr1.training import cli as _training_cli  # noqa: E402,F401  (registers train)
