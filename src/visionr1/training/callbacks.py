"""What a run writes while it trains, besides TRL's own trackers.

- ``metrics.jsonl`` (one file per run, every stage): one row per logging step with the stage, its step and the
  run-wide step, the stage's ``max_completion_length`` / ``num_generations``, and everything TRL logged —
  for GRPO that is ``reward``, ``rewards/<name>/mean|std``, ``accuracy``, ``completions/mean_length|max_length``,
  ``completions/clipped_ratio``, ``kl``, ``entropy``, ``clip_ratio/*``, ``step_time``, and ours:
  ``informative_group_share`` (groups with a reward spread / all groups trained; ``/before``: in the first
  generation round, before dynamic sampling), ``generated_tokens`` (completion tokens generated for the step,
  all processes and refill rounds) and ``padded_token_share`` (padding positions / all positions of the loss
  forward, all processes; 0 with ``padding_free``; SFT stages log it too). The PTST plot reads it.
- ``completions.jsonl``: a few sampled (prompt id, prompt, completion, rewards, advantage) rows per GRPO logging
  step, from the rows trained (after dynamic sampling): :class:`CompletionsLog`, from TRL's buffers
  (``patches.trl.completion_buffers``).
- the console: rich progress bars on a terminal (TRL's ``RichProgressCallback``), a compact line per logging
  step otherwise (CI logs, ``nohup``).
TensorBoard / W&B / trackio come from TRL's ``report_to``; nothing here duplicates them.
"""

from __future__ import annotations

import math
import time
import weakref
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from visionr1.data.prompts import messages_text
from visionr1.patches.trl import completion_buffers
from visionr1.utils.io import append_jsonl

METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"

# Shown on the console line, in this order, when present.
_CONSOLE_KEYS = (
    ("loss", "loss"),
    ("reward", "reward"),
    ("accuracy", "acc"),
    ("informative_group_share", "informative"),
    ("completions/mean_length", "len"),
    ("completions/max_length", "max"),
    ("completions/clipped_ratio", "clipped"),
    ("kl", "kl"),
    ("entropy", "ent"),
    ("step_time", "s/step"),
)


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf become null, tensors become numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StageInfo:
    """What the callbacks need to know about the stage being trained."""

    def __init__(self, name: str, index: int, type: str, step_offset: int, **extra: Any) -> None:
        self.name, self.index, self.type, self.step_offset, self.extra = name, index, type, step_offset, extra

    def tag(self) -> dict[str, Any]:
        return {"stage": self.name, "stage_index": self.index, "stage_type": self.type, **self.extra}


class MetricsLogger(TrainerCallback):
    """Appends every ``on_log`` to ``RUN_DIR/metrics.jsonl`` (main process only)."""

    def __init__(self, run_dir: Path, stage: StageInfo) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if any(k.startswith("eval_") for k in logs):
            kind = "eval"
        elif "train_runtime" in logs:
            kind = "summary"
        else:
            kind = "train"
        row = {
            "kind": kind,
            **self.stage.tag(),
            "step": state.global_step,
            "run_step": self.stage.step_offset + state.global_step,
            "time": round(time.time(), 3),
            **{k: _clean(v) for k, v in logs.items()},
        }
        append_jsonl(self.path, row)


class ConsoleLines(TrainerCallback):
    """One compact line per logging step, for logs that are files rather than terminals."""

    def __init__(self, stage: StageInfo, console: Console | None = None) -> None:
        self.stage = stage
        self.console = console or Console(highlight=False, soft_wrap=True)  # a log line never wraps at 80 columns

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        parts = []
        for key, short in _CONSOLE_KEYS:
            value = _clean(logs.get(key))
            if isinstance(value, int | float):
                parts.append(f"{short} {value:.3g}")
        evals = {k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(_clean(v), int | float)}
        parts += [f"{k} {v:.3g}" for k, v in list(evals.items())[:6]]
        self.console.print(
            f"[bold]{self.stage.name}[/] step {state.global_step}/{state.max_steps}  " + "  ".join(parts)
        )


def progress_callbacks(mode: str, stage: StageInfo, is_tty: bool) -> list[TrainerCallback]:
    """Console callbacks for ``logging.progress`` (auto | rich | lines | none)."""
    if mode == "none":
        return []
    if mode == "rich" or (mode == "auto" and is_tty):
        from trl.trainer.callbacks import RichProgressCallback

        return [RichProgressCallback()]
    return [ConsoleLines(stage)]


class CompletionsLog(TrainerCallback):
    """At every training log of a GRPO stage, appends the last ``limit`` sampled completions of the generation
    batch trained to ``path`` (main process only; none at the final summary log or an evaluation's).

    Why a callback and not TRL's ``log_completions``: that prints rich tables to the console and writes a parquet
    file per step; the run's record is one JSON-lines file. The rows come from TRL's buffers
    (``patches.trl.completion_buffers``): no public hook sees the advantages or the rows trained. The trainer is
    held by a weak reference (it holds this callback)."""

    def __init__(self, trainer: Any, path: Path, stage: StageInfo, limit: int) -> None:
        self.trainer = weakref.ref(trainer)
        self.path, self.stage, self.limit = Path(path), stage, limit

    def on_log(self, args, state, control, logs=None, **kwargs):
        trainer = self.trainer()
        if (trainer is None or not self.limit or not state.is_world_process_zero or not trainer.model.training
                or "train_runtime" in (logs or {})):
            return
        for row in completion_rows(completion_buffers(trainer), state.global_step, self.stage, self.limit):
            append_jsonl(self.path, row)


def completion_rows(logs: dict[str, Any], step: int, stage: StageInfo, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` samples of TRL's buffers (``patches.trl.completion_buffers``), as JSON rows (images left
    out)."""
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    n = min(limit, len(completions))
    if n == 0:
        return []
    rewards = {name: list(vals) for name, vals in logs["rewards"].items()}
    advantages = list(logs["advantages"])
    ids = list(logs.get("extra", {}).get("id", []))
    rows = []
    for i in range(len(completions) - n, len(completions)):
        rows.append(
            {
                **stage.tag(),
                "step": step,
                "run_step": stage.step_offset + step,
                "id": ids[i] if i < len(ids) else None,
                "prompt": messages_text(prompts[i]),
                "completion": messages_text(completions[i]),
                "rewards": {k: _clean(v[i]) for k, v in rewards.items() if i < len(v)},
                "advantage": _clean(advantages[i]) if i < len(advantages) else None,
            }
        )
    return rows
