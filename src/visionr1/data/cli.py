"""``visionr1 data inspect``: load a dataset exactly as a trainer would and show what came out.

Why a command: the first thing to check before a long run is what the model will actually be shown, the
rendered prompt with its image slots, the solution the reward compares against, and how many records were
bad. The command takes the same ``DatasetSpec`` a recipe holds, from a recipe (a stage's dataset), from a
YAML file holding just the dataset section, or from a path and options.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionr1.cli_common import command_app, console, fail

app = command_app(help="Look at datasets the way the trainers will see them.", no_args_is_help=True)


def _spec_from_yaml(path: Path, stage: str | None, eval_set: bool, overrides: list[str]):
    """A recipe (has ``stages``: take a stage's dataset, and the recipe's model for the image budget) or a
    bare dataset section; returns ``(spec, model section or None)``."""
    from visionr1.config.base import RecipeError
    from visionr1.config.loader import override_recipe, read_recipe, validate
    from visionr1.data.spec import DatasetSpec

    written = read_recipe(path)
    raw = override_recipe(written, overrides, path)
    if "stages" in written:
        from visionr1.recipe import TrainRecipe

        recipe = validate(TrainRecipe, raw, path)
        names = [s.name for s in recipe.stages]
        chosen = next((s for s in recipe.stages if s.name == stage), None) if stage else recipe.stages[0]
        if chosen is None:
            raise RecipeError(f"{path}: no stage {stage!r}; stages are {names}")
        spec = chosen.eval_dataset if eval_set else chosen.dataset
        if spec is None:
            raise RecipeError(f"{path}: stage {chosen.name!r} has no eval_dataset")
        return spec, recipe.model
    return validate(DatasetSpec, raw, path), None


def _clip(text: str, n: int = 600) -> str:
    return text if len(text) <= n else text[:n] + f" ... (+{len(text) - n} chars)"


@app.command("inspect")
def inspect(
    source: Annotated[
        Path, typer.Argument(help="A recipe, a YAML file with one dataset section, or a data file/directory.")
    ],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides of the spec (or recipe), e.g. limit=10.")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Data format when SOURCE is data: geometry3k | sharegpt | mathvista | jsonl | video.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split to read (train, test, ...).")] = None,
    task: Annotated[str | None, typer.Option(help="Task of records that carry none.")] = None,
    limit: Annotated[int | None, typer.Option(help="Load at most this many samples.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and count bad records instead of failing.")] = False,
    stage: Annotated[str | None, typer.Option(help="Recipe stage whose dataset to load (default: the first).")] = None,
    eval_set: Annotated[bool, typer.Option("--eval", help="Load the stage's eval_dataset instead.")] = False,
    show: Annotated[int, typer.Option(help="How many samples to print.")] = 2,
) -> None:
    """Load a dataset as canonical samples; print counts, skipped records and a few samples."""
    from visionr1.config.base import RecipeError, parse_model
    from visionr1.config.loader import apply_overrides
    from visionr1.data.budget import ImageBudget, format_stats, patch_factor, token_stats
    from visionr1.data.errors import DataError
    from visionr1.data.loaders import load_samples
    from visionr1.data.prompts import messages_text
    from visionr1.data.spec import DatasetSpec

    model = None
    try:
        if source.suffix in (".yaml", ".yml"):
            spec, model = _spec_from_yaml(source, stage, eval_set, overrides or [])
        else:
            if format is None:
                fail("--format is required when SOURCE is a data file or directory (or pass a recipe / spec YAML)")
            raw: dict[str, Any] = {"format": format, "path": str(source), "split": split, "task": task}
            spec = parse_model(DatasetSpec, apply_overrides(raw, overrides or []), source="command line")
        if limit is not None:
            spec.limit = limit
        if skip_bad:
            spec.skip_bad_records = True
        result = load_samples(spec)
    except (DataError, RecipeError) as exc:
        fail(str(exc))

    ds = result.dataset
    n_images = [len(x) for x in ds["images"]]
    table = Table(title=f"{spec.format}: {result.source}", show_header=False)
    table.add_row("samples", str(len(ds)))
    table.add_row("records in source", str(result.num_records))
    table.add_row("skipped (bad records)", str(len(result.skipped)))
    table.add_row("tasks", ", ".join(f"{t}: {n}" for t, n in Counter(ds["task"]).most_common()))
    table.add_row("images per sample", f"min {min(n_images)}, mean {sum(n_images) / len(n_images):.2f}, max {max(n_images)}")
    budget = ImageBudget.of_model(model) if model is not None else ImageBudget(spec.image_max_pixels, factor=patch_factor(None))
    b = budget.describe()
    per_image = (f"{b['max_tokens_per_image']} tokens of {b['pixels_per_token']} px" if b["pixels_per_token"]
                 else b["tokens_per_image"])
    table.add_row(
        "image budget",
        f"max_pixels {b['max_pixels']:,} ({per_image}), "
        f"min_pixels {b['min_pixels'] or 'model default'}" + ("" if model is not None else " (dataset alone: no model)"),
    )
    table.add_row("image tokens per image", format_stats(token_stats(result.image_sizes, budget)))
    table.add_row("with completion (SFT)", str(sum(c is not None for c in ds["completion"])))
    table.add_row("empty solution", str(sum(not s for s in ds["solution"])))
    console.print(table)
    for rid, why in result.skipped[:10]:
        console.print(f"[yellow]skipped[/] {rid}: {why}", highlight=False)
    if len(result.skipped) > 10:
        console.print(f"[yellow]... and {len(result.skipped) - 10} more skipped[/]")
    for i in range(min(show, len(ds))):
        row = ds[i]
        sizes = ", ".join(f"{im.width}x{im.height}" for im in row["images"])
        console.rule(f"{row['id']} ({row['task']})")
        console.print(f"[bold]images[/]: {len(row['images'])} ({sizes})", highlight=False)
        console.print("[bold]prompt[/]:")
        console.print(_clip(messages_text(row["prompt"], media="[{}]")), markup=False, highlight=False)
        console.print(f"solution: {row['solution']!r}   choices: {row['choices']}", markup=False, highlight=False)
        if row["completion"]:
            console.print("[bold]completion[/]:")
            console.print(_clip(messages_text(row["completion"], media="[{}]")), markup=False, highlight=False)
        console.print(f"metadata: {_clip(json.dumps(json.loads(row['metadata']), ensure_ascii=False), 300)}", markup=False, highlight=False)


@app.command("render")
def render(
    source: Annotated[
        Path | None, typer.Argument(help="A recipe, a dataset-section YAML or a data file/directory (or use --text).")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides of the spec, e.g. render.width=448.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs (one per record: <id>.png).")] = Path("rendered"),
    format: Annotated[str | None, typer.Option("--format", "-f", help="Data format when SOURCE is data.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to read (train, test, ...).")] = None,
    limit: Annotated[int, typer.Option(help="Render at most this many records.")] = 5,
    stage: Annotated[str | None, typer.Option(help="Recipe stage whose dataset to load (default: the first).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Render this question instead of a dataset's.")] = None,
) -> None:
    """Render questions (LaTeX included) as the images `render_question: true` puts in the prompt."""
    from visionr1.config.base import RecipeError, parse_model
    from visionr1.config.loader import apply_overrides
    from visionr1.data.errors import DataError
    from visionr1.data.loaders import load_samples
    from visionr1.data.render import RenderError, RenderSpec, render_question
    from visionr1.data.spec import DatasetSpec

    out.mkdir(parents=True, exist_ok=True)
    if text is not None:
        args = ([str(source)] if source is not None else []) + (overrides or [])  # with --text all are overrides
        try:
            spec = parse_model(RenderSpec, apply_overrides({}, [o.removeprefix("render.") for o in args]), source="command line")
            img = render_question(text, spec)
        except (RenderError, ValueError, RecipeError) as exc:
            fail(f"--text: {exc}")
        img.save(out / "question.png")
        console.print(f"{out / 'question.png'} ({img.width}x{img.height})", highlight=False)
        return
    if source is None:
        fail("give SOURCE (a dataset) or --text QUESTION")
    try:
        if source.suffix in (".yaml", ".yml"):
            dspec = _spec_from_yaml(source, stage, False, overrides or [])
        else:
            if format is None:
                fail("--format is required when SOURCE is a data file or directory (or pass a recipe / spec YAML)")
            raw: dict[str, Any] = {"format": format, "path": str(source), "split": split}
            dspec = parse_model(DatasetSpec, apply_overrides(raw, overrides or []), source="command line")
        dspec.render_question, dspec.limit = True, limit
        ds = load_samples(dspec).dataset
    except (DataError, RecipeError) as exc:
        fail(str(exc))
    table = Table(title=f"rendered questions -> {out}")
    for col in ("id", "image", "size", "question"):
        table.add_column(col, overflow="fold")
    for row in ds:
        img = row["images"][json.loads(row["metadata"])["rendered_question_image"]]
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in row["id"]) + ".png"
        img.save(out / name)
        table.add_row(row["id"], name, f"{img.width}x{img.height}", _clip(row["question"], 80))
    console.print(table)
