"""`visionr1 make-tiny-model` and `visionr1 make-synthetic`: the no-download defaults, as commands.

Registered on the main app by the import at the bottom of `visionr1/cli.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli import app, console, fail


@app.command("make-tiny-model")
def make_tiny_model(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model, processor and tokenizer to.")],
    family: Annotated[
        str, typer.Option("--family", help="Architecture: qwen2_vl | qwen2_5_vl | qwen3_vl.")
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


@app.command("make-synthetic")
def make_synthetic_cmd(
    task: Annotated[
        str, typer.Option("--task", help="counting | arithmetic | choice | grounding | spatial | detection.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for train.jsonl, test.jsonl and images/.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of items (train + test).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed writes byte-identical files.")] = 0,
    difficulty: Annotated[
        str, typer.Option("--difficulty", help="easy | medium | hard (object count, clutter, image size).")
    ] = "easy",
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", min=0.0, max=0.99, help="Share of items in test.jsonl.")
    ] = 0.1,
) -> None:
    """Draw a synthetic visual-reasoning dataset with Pillow, in the jsonl format `data.format: jsonl` reads."""
    from visionr1.tasks.scene import DIFFICULTIES
    from visionr1.tasks.synthetic import TASKS, make_synthetic

    if task not in TASKS:
        fail(f"--task {task!r} is not one of {', '.join(TASKS)}")
    if difficulty not in DIFFICULTIES:
        fail(f"--difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    path = make_synthetic(task, n, seed, out, difficulty=difficulty, test_fraction=test_fraction)
    counts = {s: sum(1 for _ in (path / f"{s}.jsonl").open(encoding="utf-8")) for s in ("train", "test")}
    console.print(f"wrote {counts['train']} train + {counts['test']} test {task} items ({difficulty}) to {path}")
