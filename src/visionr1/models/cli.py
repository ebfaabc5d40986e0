"""`visionr1 make-tiny-model`: the no-download model, as a command (composed into the main app by
`visionr1/cli.py`; `make-synthetic` lives in `visionr1/tasks/cli.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import command_app, console, fail
from visionr1.models import families

app = command_app()


@app.command("make-tiny-model")
def make_tiny_model(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model, processor and tokenizer to.")],
    family: Annotated[
        str, typer.Option("--family", help="Architecture: " + " | ".join(families.names()) + ".")
    ] = "qwen2_5_vl",
    size: Annotated[
        str, typer.Option("--size", help="Preset: test (unit tests, ~0.3M parameters) | demo (the CPU demo, ~1.3M).")
    ] = "test",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
) -> None:
    """Build a tiny randomly initialised VLM of a real architecture (nothing is downloaded).

    The directory loads like a real checkpoint with AutoModelForImageTextToText / AutoProcessor.
    """
    from visionr1.models.tiny import FAMILIES, INFO_FILE, PRESETS, build_tiny_model

    if family not in FAMILIES:
        fail(f"--family {family!r} is not one of {', '.join(FAMILIES)}")
    if size not in PRESETS:
        fail(f"--size {size!r} is not one of {', '.join(PRESETS)}")
    path = build_tiny_model(family, size, out, seed=seed)
    info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    params = info["parameters"]
    console.print(
        f"wrote {family} ({size}) to {path}: {params['total']:,} parameters "
        f"({params['vision']:,} vision), vocabulary {info['vocab_size']}"
    )
