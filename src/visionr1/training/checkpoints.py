"""Checkpoints that resume *with their weights*, and logs that do not repeat after a resume.

Why this module exists (transformers 5.x, reproduced with every Qwen-VL family): ``save_pretrained`` writes
Qwen-VL weights under the legacy checkpoint names (``visual.*``, ``model.layers.*``), while the model in memory
names them ``model.visual.*``, ``model.language_model.*``. ``from_pretrained`` maps the names back;
``Trainer._load_from_checkpoint`` does not: it calls ``load_state_dict(strict=False)``, logs "There were missing
keys in the checkpoint model loaded" (56 of 57 tensors) and goes on, so a resumed stage silently continued from
the stage's *start* weights with the checkpoint's optimizer state.

So the trainers get :class:`StrictResumeMixin`: resume loads the checkpoint's weights through ``from_pretrained``
(the one loader that knows the name mapping) and copies them in with ``strict=True``; any load that leaves
keys missing is an error naming the checkpoint and the keys, never a warning. DeepSpeed, FSDP and PEFT
checkpoints keep transformers' own loaders (they store in-memory names and are not affected).

Contract: this overrides two protected ``transformers.Trainer`` methods (``_load_from_checkpoint``,
``_issue_warnings_after_load``); ``tests/training/test_resume.py`` checks their signatures so a transformers
change fails the suite instead of resuming from the wrong weights.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from visionr1.utils.io import atomic_write_text

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(RuntimeError):
    """A checkpoint whose weights do not fit the model being trained."""


def _short(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def raise_on_missing(info: Any, source: str) -> None:
    """Fail on a load that left parameters uninitialised (``from_pretrained`` loading info or a
    ``load_state_dict`` result); unexpected keys are only logged (e.g. a checkpoint with an extra head)."""
    missing = list(info["missing_keys"] if isinstance(info, dict) else info.missing_keys)
    mismatched = list(info.get("mismatched_keys", [])) if isinstance(info, dict) else []
    unexpected = list(info["unexpected_keys"] if isinstance(info, dict) else info.unexpected_keys)
    if missing or mismatched:
        what = f"missing: {_short(missing)}" if missing else ""
        if mismatched:
            what += ("; " if what else "") + f"shape mismatch: {_short([str(m[0]) for m in mismatched])}"
        raise CheckpointError(
            f"{source}: the checkpoint does not hold every weight of the model ({what}). Training on would start "
            "those weights from random values. Fix: point the recipe at the checkpoint of this model family, or "
            "delete the broken checkpoint directory to resume from the one before it"
        )
    if unexpected:
        log.warning("%s: ignored %d weights the model does not have: %s", source, len(unexpected), _short(unexpected))


def load_checkpoint_weights(model: Any, checkpoint: str | os.PathLike) -> None:
    """Copy a ``save_pretrained`` checkpoint's weights into ``model`` (same class), every key accounted for."""
    import torch

    fresh, info = type(model).from_pretrained(str(checkpoint), dtype=next(model.parameters()).dtype,
                                              output_loading_info=True)
    raise_on_missing(info, str(checkpoint))
    with torch.no_grad():
        result = model.load_state_dict(fresh.state_dict(), strict=False)
    raise_on_missing(result, str(checkpoint))
    del fresh


class StrictResumeMixin:
    """Put before the TRL trainer class: ``class T(StrictResumeMixin, GRPOTrainer)``."""

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = model if model is not None else self.model
        plain = not (
            getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)
            or hasattr(model, "peft_config")
        )
        if plain and any((Path(resume_from_checkpoint) / f).is_file() for f in WEIGHT_FILES):
            log.info("loading the weights of %s", resume_from_checkpoint)
            load_checkpoint_weights(model, resume_from_checkpoint)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        raise_on_missing(load_result, "checkpoint")


def trim_logs(run_dir: Path, stage: str, last_step: int, files: tuple[str, ...], iteration: int | None = None) -> int:
    """Drop the rows of ``stage`` logged after ``last_step`` (the checkpoint the stage resumes from, 0 for a
    fresh start): training repeats those steps and logs them again. Rewrites each file atomically; returns
    the number of rows dropped. Rows of other stages and non-JSON lines are kept as they are. ``iteration``
    (DPO, whose iterations each count steps from 0): only that iteration's training rows."""
    dropped = 0
    for name in files:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        keep: list[str] = []
        before = dropped
        for line in path.read_text().splitlines(keepends=True):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                keep.append(line)
                continue
            step = row.get("step") if isinstance(row, dict) else None
            mine = isinstance(row, dict) and row.get("stage") == stage and (
                iteration is None or (row.get("iteration") == iteration and row.get("kind") != "pairs"))
            if mine and isinstance(step, int) and step > last_step:
                dropped += 1
                continue
            keep.append(line)
        if dropped > before:
            atomic_write_text(path, "".join(keep), f"{name} without the rows of {stage} after step {last_step}")
    return dropped


def checkpoint_step(checkpoint: str | None) -> int:
    """``.../checkpoint-12`` -> 12; no checkpoint -> 0.

    >>> checkpoint_step("/runs/x/ptst-1/checkpoint-12"), checkpoint_step(None)
    (12, 0)
    """
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else 0


def last_checkpoint(folder: Path, cleanup: bool = False) -> str | None:
    """The newest *complete* ``checkpoint-N`` of a stage (TRL writes ``trainer_state.json`` last); incomplete
    ones, left by a kill mid-save, are removed when ``cleanup`` (main process only)."""
    if not folder.is_dir():
        return None
    complete: list[tuple[int, Path]] = []
    for path in folder.iterdir():
        if not (path.is_dir() and path.name.startswith("checkpoint-") and path.name[11:].isdigit()):
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
            complete.append((int(path.name[11:]), path))
        except (OSError, json.JSONDecodeError):
            if cleanup:
                log.warning("removing incomplete checkpoint %s (the run was killed while saving it)", path)
                shutil.rmtree(path, ignore_errors=True)
    return str(max(complete)[1]) if complete else None
