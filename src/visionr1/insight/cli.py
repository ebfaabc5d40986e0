"""`visionr1 insight data RECIPE.yaml [overrides] [--output-dir DIR] [--cpu-threads N]` (composed into the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import CpuThreadsOpt, command_app, console, fail, parse_cpu_threads

app = command_app(help="Insight-V: structured reasoning data for a reasoning agent and a summary agent.",
                  no_args_is_help=True)


@app.command("data")
def data(
    recipe: Annotated[Path, typer.Argument(help="Insight-V data recipe YAML (see recipes/insight-v/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. input.n=100 reasoner.chains=8")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Output directory (default: the recipe's, else runs/insight/<name>).")] = None,
    cpu_threads: CpuThreadsOpt = None,
) -> None:
    """Generate structured chains, keep the best-rated right one per question, write both agents' SFT sets. Re-run to resume."""
    from visionr1.config.base import RecipeError
    from visionr1.insight.config import load_insight_recipe
    from visionr1.insight.pipeline import run_insight_data
    from visionr1.utils.io import OutputError, is_write_error, output_error

    try:
        cfg = load_insight_recipe(recipe, overrides or [])
        if any(b.type == "local" for b in cfg.backends.values()):  # torch runs in this process only then
            from visionr1.runtime import apply_cpu_threads, summary_line

            threads = apply_cpu_threads(parse_cpu_threads(cpu_threads) or cfg.cpu_threads)
            console.print(f"local backend: {summary_line(threads)}", highlight=False)
        run_insight_data(cfg, output_dir=output_dir, console=console)
    except (RecipeError, OutputError) as exc:
        fail(str(exc))
    except OSError as exc:
        if not is_write_error(exc):
            raise
        fail(str(output_error(exc, exc.filename or output_dir or "the output directory", "the Insight-V outputs")))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
