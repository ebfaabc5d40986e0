"""`visionr1 coldstart RECIPE.yaml [overrides] [--output-dir DIR] [--cpu-threads N]` (composed into the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import CpuThreadsOpt, command_app, console, fail, parse_cpu_threads

app = command_app()


@app.command("coldstart")
def coldstart(
    recipe: Annotated[Path, typer.Argument(help="Cold-start recipe YAML (see recipes/coldstart/); of a pipeline recipe, its coldstart section.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. input.limit=100 backends.mllm.concurrency=32")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Output directory (default: the recipe's, else runs/coldstart/<name>).")] = None,
    cpu_threads: CpuThreadsOpt = None,
) -> None:
    """Build long-CoT cold-start SFT data by modality bridging (Vision-R1-cold). Re-run to resume."""
    from visionr1.coldstart.pipeline import run_coldstart
    from visionr1.config.base import RecipeError
    from visionr1.utils.io import OutputError, is_write_error, output_error

    try:
        from visionr1.pipeline.load import load_coldstart_section, output_dir_overrides

        overrides, output_dir = output_dir_overrides(recipe, overrides or [], output_dir)  # a pipeline moves whole
        cfg = load_coldstart_section(recipe, overrides)
        if any(b.type == "local" for b in cfg.backends.values()):  # torch runs in this process only then
            from visionr1.runtime import apply_cpu_threads, summary_line

            threads = apply_cpu_threads(parse_cpu_threads(cpu_threads) or cfg.cpu_threads)
            console.print(f"local backend: {summary_line(threads)}", highlight=False)
        run_coldstart(cfg, output_dir=output_dir, console=console)
    except (RecipeError, OutputError) as exc:  # OutputError: a full disk or read-only output, in one line
        fail(str(exc))
    except OSError as exc:
        if not is_write_error(exc):
            raise
        fail(str(output_error(exc, exc.filename or output_dir or "the output directory", "the cold-start outputs")))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
