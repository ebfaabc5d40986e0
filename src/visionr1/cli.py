"""The `visionr1` command line: the main app composes each stage's commands, importing a command's module
only when that command runs (or when `--help` lists them all).

Why lazy: a command module imports its stage's package (the cold-start one alone costs 0.4 s of start-up), so
`visionr1 train` imports the training command and nothing else. Why composed: each ``visionr1/*/cli.py``
builds its own ``typer.Typer`` (see :func:`visionr1.cli_common.command_app`) and never imports this module,
so there is no import cycle. Heavy imports (torch, transformers, trl) happen inside commands, as before.
A new command is one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from visionr1 import __version__
from visionr1.cli_common import console, err_console, fail

__all__ = ["COMMANDS", "app", "console", "err_console", "fail"]

# Command name -> "module:attribute" of the typer.Typer holding it (one command, or a group of them).
# The order is the order `visionr1 --help` lists them in.
COMMANDS: dict[str, str] = {
    "coldstart": "visionr1.coldstart.cli:app",
    "demo": "visionr1.demo.cli:app",
    "make-tiny-model": "visionr1.models.cli:app",
    "make-synthetic": "visionr1.tasks.cli:app",
    "score-rewards": "visionr1.rewards.cli:app",
    "train": "visionr1.training.cli:app",
    "recipe": "visionr1.cli:recipe_app",
    "data": "visionr1.data.cli:app",
    "eval": "visionr1.evaluation.cli:app",
    "insight": "visionr1.insight.cli:app",
    "run": "visionr1.pipeline.cli:app",
}


def load_command(name: str, target: str) -> Any:
    """Import ``module:attribute`` and turn the typer.Typer found there into the click command ``name``: the
    command itself when the Typer holds just the command of that name, else a group (``data inspect``)."""
    module, _, attr = target.partition(":")
    sub_app = getattr(importlib.import_module(module), attr)
    registered = sub_app.registered_commands
    single = len(registered) == 1 and not sub_app.registered_groups and registered[0].name == name
    command = typer.main.get_command(sub_app) if single else typer.main.get_group(sub_app)
    command.name = name
    return command


class _LazyCommands(MutableMapping):
    """The main group's ``commands`` mapping: every name of :data:`COMMANDS` is a key from the start (help,
    typo suggestions and completion see them all); a value is imported on first access."""

    def __init__(self, table: dict[str, str], loaded: dict[str, Any]) -> None:
        self._table = dict(table)
        self._loaded = dict(loaded)

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in self._table:
                raise KeyError(name)
            self._loaded[name] = load_command(name, self._table[name])
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command
        self._table.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        self._table.pop(name)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


class LazyGroup(TyperGroup):
    """A TyperGroup whose sub-commands are :data:`COMMANDS`, each imported when first looked up."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands(COMMANDS, dict(self.commands))

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names, without importing anything


app = typer.Typer(
    name="visionr1",
    help="Teach vision-language models to reason: cold-start data, SFT, GRPO with PTST, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)
recipe_app = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True, add_completion=False)


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
    from visionr1.utils.quiet import filter_library_noise, quiet_progress_bars

    filter_library_noise()
    quiet_progress_bars()


@recipe_app.command("explain")
def recipe_explain(
    section: Annotated[str, typer.Argument(help="Only fields whose path starts with this (e.g. stages, model).")] = "",
    pipeline: Annotated[
        bool, typer.Option("--pipeline", help="The pipeline recipe's fields (data, tiny_model, coldstart, stages, eval).")
    ] = False,
) -> None:
    """List every recipe field with its type, default and one-line description."""
    from visionr1.config.base import explain_model

    if pipeline:
        from visionr1.pipeline.config import PipelineRecipe as schema
    else:
        from visionr1.recipe import TrainRecipe as schema

    table = Table(title=f"{'pipeline ' if pipeline else ''}recipe fields", show_lines=False)
    for col in ("field", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for path, tp, default, desc in explain_model(schema):
        if path.startswith(section):
            table.add_row(path, tp, default, desc)
    console.print(table)
    console.print("sft.* and grpo.* pass through to trl.SFTConfig / trl.GRPOConfig: see TRL's documentation.")


@recipe_app.command("check")
def recipe_check(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. stages.0.grpo.max_steps=10")] = None,
) -> None:
    """Validate a recipe (includes and overrides applied; each stage's TRL config built for launch.num_processes)
    and print it resolved, as JSON; a pipeline recipe with every section."""
    from visionr1.config.base import RecipeError
    from visionr1.config.loader import override_recipe, read_recipe, validate
    from visionr1.pipeline.load import is_pipeline
    from visionr1.recipe import TrainRecipe
    from visionr1.training.plan import PlanError, plan_run

    try:
        written = read_recipe(recipe)  # read once; its kind is the file's
        raw = override_recipe(written, overrides or [], recipe)
        if is_pipeline(written):
            from visionr1.pipeline.config import PipelineRecipe

            resolved = validate(PipelineRecipe, raw, recipe)
            if resolved.stages is not None:
                train = resolved.training_recipe()
                plan_run(train, train.output_dir, train.launch.num_processes, source=str(recipe))
        else:
            resolved = validate(TrainRecipe, raw, recipe)
            plan_run(resolved, None, resolved.launch.num_processes, source=str(recipe))
    except (RecipeError, PlanError) as exc:
        fail(str(exc))
    print(json.dumps(resolved.model_dump(mode="json"), indent=2))
