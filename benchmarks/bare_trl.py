"""Bare TRL: the trainers a TRL user would write by hand, for the benchmarks that compare visionr1 with TRL alone
(``overhead.py`` on CPU, ``gpu/bench.py`` on a GPU).

Nothing of visionr1's training path is used here: no trainer subclass, no callbacks of ours, no data order, no
accuracy metric. The caller brings the TRL config (built from visionr1's planner, so both sides train with the
same settings), the dataset rows and the reward functions. The processor is left to TRL (``processing_class=None``:
TRL loads the model's own, with left padding for GRPO), as a user of TRL would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


class StepLog:
    """A TrainerCallback (duck-typed: importing transformers stays the caller's cost) keeping every ``on_log``
    row with the wall-clock time it arrived, as visionr1's ``metrics.jsonl`` rows carry it (``time``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            row = {k: (v.item() if hasattr(v, "item") else v) for k, v in logs.items()}
            self.rows.append({**row, "step": state.global_step, "time": round(time.time(), 3)})


def load_model(model_dir: str, dtype: Any, attn: str | None = None):
    from transformers import AutoModelForImageTextToText

    kwargs = {"attn_implementation": attn} if attn else {}
    return AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype, **kwargs)


def grpo_trainer(model_dir: str, config: Any, reward_funcs: Sequence[Any], dataset: Any, dtype: Any,
                 attn: str | None = None, callbacks: Sequence[Any] = ()):
    """``trl.GRPOTrainer`` on the model in ``model_dir``, nothing added."""
    from trl import GRPOTrainer

    return GRPOTrainer(model=load_model(model_dir, dtype, attn), reward_funcs=list(reward_funcs), args=config,
                       train_dataset=dataset, callbacks=list(callbacks))


def sft_trainer(model_dir: str, config: Any, dataset: Any, dtype: Any, attn: str | None = None,
                callbacks: Sequence[Any] = ()):
    """``trl.SFTTrainer`` on the model in ``model_dir``, nothing added."""
    from trl import SFTTrainer

    return SFTTrainer(model=load_model(model_dir, dtype, attn), args=config, train_dataset=dataset,
                      callbacks=list(callbacks))
