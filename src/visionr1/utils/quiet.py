"""Library messages that tell a visionr1 user nothing, filtered once per process (the CLI does it for every
command, stage processes included).

- transformers 5 warns ``FutureWarning: `gradient_checkpointing` is deprecated`` for every ``TrainingArguments``
  TRL builds (the field exists whether set or not), and again for ``gradient_checkpointing_enable`` and
  ``is_gradient_checkpointing``: TRL still uses the old names, and the user can change nothing.
- torch's DataLoader warns "'pin_memory' argument is set as true but no accelerator is found" on every CPU run
  (``Trainer`` pins memory by default); it changes nothing about the run.
- transformers draws a "Writing model shards" bar at every checkpoint save (and loading bars); in a log file
  (stderr not a terminal) they are carriage-return noise between the metric lines, so there they are turned off.

Only these exact messages are filtered: any other warning of the same category still shows.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TextIO

GRADIENT_CHECKPOINTING = r"`(is_)?gradient_checkpointing(_enable|_disable|_kwargs)?` is deprecated"
PIN_MEMORY = r"'pin_memory' argument is set as true but no accelerator is found"


def filter_library_noise() -> None:
    warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING, category=FutureWarning)
    warnings.filterwarnings("ignore", message=PIN_MEMORY, category=UserWarning)


def quiet_progress_bars(stream: TextIO | None = None) -> bool:
    """Turn off transformers' progress bars when ``stream`` (default: stderr, where tqdm draws) is not a
    terminal; returns whether it did. Before transformers is imported this is the environment variable its
    bars read at import (``HF_HUB_DISABLE_PROGRESS_BARS``, which a user's own setting overrides), so the CLI
    stays fast and child processes inherit it; after, transformers' own switch."""
    stream = stream if stream is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return False
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging = sys.modules.get("transformers.utils.logging")
    if logging is not None and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] not in ("0", "false", "False"):
        logging.disable_progress_bar()
    return True
