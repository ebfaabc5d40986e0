"""What every command module of the CLI shares: the consoles, ``fail``, the ``--cpu-threads`` option, and the
factory of a command module's own ``typer.Typer``.

This module exists so the command modules (``visionr1/*/cli.py``) need not import ``visionr1.cli``: the main
app imports *them* (lazily, by name), never the other way round, so there is no import cycle.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error (no traceback: the message names the file, field and fix) and exit non-zero; anything
    that looks like a secret is redacted."""
    from rich.markup import escape

    from visionr1.utils.secrets import redact_text

    # the message is text, not markup: "pip install 'visionr1[vllm]'" keeps its brackets
    err_console.print(f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False)
    raise typer.Exit(code)


def command_app(**kwargs: Any) -> typer.Typer:
    """The ``typer.Typer`` a command module registers its command (or command group) on.

    ``visionr1.cli`` composes these under their names; completion options stay on the main app only.
    """
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, **kwargs)


CpuThreadsOpt = Annotated[
    str | None,
    typer.Option(
        "--cpu-threads",
        help="torch CPU threads: auto (the cores other processes and ranks leave free, less one for the "
        "process's own work; OMP_NUM_THREADS if set) or a number. Default: the recipe's cpu_threads, else auto.",
        show_default=False,
    ),
]


def parse_cpu_threads(value: str | None) -> int | str | None:
    """``--cpu-threads`` as the recipe field takes it (``auto`` or an int >= 1); ``None`` when not given."""
    if value is None or value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    fail(f"--cpu-threads {value!r}: use auto or a whole number >= 1 (e.g. --cpu-threads 1)")
    return None  # unreachable: fail() exits
