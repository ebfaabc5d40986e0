"""`visionr1 make-synthetic`: draw a synthetic visual-reasoning dataset, as a command (composed into the main
app by `visionr1/cli.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import command_app, console, fail

app = command_app()


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
    from visionr1.tasks.synthetic import SYNTHETIC_TASKS, make_synthetic

    if task not in SYNTHETIC_TASKS:
        fail(f"--task {task!r} is not one of {', '.join(SYNTHETIC_TASKS)}")
    if difficulty not in DIFFICULTIES:
        fail(f"--difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    path = make_synthetic(task, n, seed, out, difficulty=difficulty, test_fraction=test_fraction)
    counts = {s: sum(1 for _ in (path / f"{s}.jsonl").open(encoding="utf-8")) for s in ("train", "test")}
    console.print(f"wrote {counts['train']} train + {counts['test']} test {task} items ({difficulty}) to {path}")
