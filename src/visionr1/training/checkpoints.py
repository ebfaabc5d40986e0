"""Checkpoints that resume *with their weights*, and logs that do not repeat after a resume.

Why this module exists (transformers 5.x, reproduced with every Qwen-VL family): ``save_pretrained`` writes
Qwen-VL weights under the legacy checkpoint names (``visual.*``, ``model.layers.*``), while the model in memory
names them ``model.visual.*``, ``model.language_model.*``. ``from_pretrained`` maps the names back;
``Trainer._load_from_checkpoint`` does not: it calls ``load_state_dict(strict=False)``, logs "There were missing
keys in the checkpoint model loaded" (56 of 57 tensors) and goes on, so a resumed stage silently continued from
the stage's *start* weights with the checkpoint's optimizer state.

So the trainers get ``visionr1.patches.transformers.StrictResumeMixin`` (transformers' protected resume and save
hooks, listed in ``visionr1.patches.PATCHES``), built on this module: :func:`load_checkpoint_weights` loads the
checkpoint's weights through ``from_pretrained`` (the one loader that knows the name mapping) and copies them in
with every key accounted for; any load that leaves keys missing is an error naming the checkpoint and the keys
(:func:`raise_on_missing`), never a warning.

Complete and intact (:func:`pick_checkpoint`): after a checkpoint is saved, and before older ones are rotated
away, its files and their sizes are recorded in ``visionr1-checkpoint.json`` (written atomically, last). A
checkpoint without that record was cut short while saving (SIGTERM, SIGKILL, a full disk) and is never loaded;
one whose files no longer match it (a truncated ``model.safetensors``, a deleted ``optimizer.pt``) is an error
naming the file, and the run falls back to the previous complete checkpoint only when the user asks
(``visionr1 train --resume-from previous``): never silently, since that retrains steps or resets Adam.
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

RECORD = "visionr1-checkpoint.json"
RESUME_ENV = "VISIONR1_RESUME_FROM"  # set by ``visionr1 train --resume-from``; inherited by the stage processes
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


def write_record(folder: Path, step: int) -> None:
    """List ``folder``'s files and sizes in its record (written atomically, last)."""
    files = {str(f.relative_to(folder)): f.stat().st_size for f in sorted(folder.rglob("*"))
             if f.is_file() and f.name != RECORD}
    atomic_write_text(folder / RECORD, json.dumps({"step": step, "files": files}, indent=1), "the checkpoint record")


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` (a checkpoint with a record) cannot be resumed from, or None: a listed file missing,
    unreadable, or of another size than saved; a safetensors file whose header does not fit its size."""
    try:
        record = json.loads((folder / RECORD).read_text())
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{RECORD} is unreadable ({exc})"
    for name, size in files.items():
        path = folder / name
        try:
            with path.open("rb") as fh:
                actual = os.fstat(fh.fileno()).st_size
                if actual != size:
                    return f"{name} has {actual:,} bytes, {size:,} were saved (truncated or overwritten)"
                if name.endswith(".safetensors") and (bad := _safetensors_problem(fh, actual)):
                    return f"{name}: {bad}"
        except FileNotFoundError:
            return f"{name} is missing ({size:,} bytes were saved)"
        except OSError as exc:
            return f"{name} is unreadable ({exc.strerror or exc})"
    return None


def _safetensors_problem(fh: Any, size: int) -> str | None:
    """The header must parse and its tensors end where the file does (cheap: the data is not read)."""
    head = fh.read(8)
    if len(head) < 8:
        return "shorter than a safetensors header"
    n = int.from_bytes(head, "little")
    if n > size - 8:
        return "its header runs past the end of the file"
    try:
        header = json.loads(fh.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        return "its header is not valid"
    return None if 8 + n + end == size else f"its tensors need {8 + n + end:,} bytes, the file has {size:,}"


def pick_checkpoint(folder: Path, cleanup: bool = False, fallback: bool | None = None) -> str | None:
    """The newest complete and intact ``checkpoint-N`` of a stage, or None (start the stage afresh).

    Incomplete ones (no record: stopped while saving) are never loaded; when ``cleanup`` (main process only)
    they are removed. A damaged one (files not as recorded) raises :class:`CheckpointError` naming the file,
    unless ``fallback`` (``--resume-from previous``; default: the environment) -- then it is set aside as
    ``damaged-checkpoint-N`` (main process) and the one before it is tried."""
    if fallback is None:
        fallback = os.environ.get(RESUME_ENV) == "previous"
    if not folder.is_dir():
        return None
    found = sorted(((int(p.name[11:]), p) for p in folder.iterdir()
                    if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit()), reverse=True)
    usable: list[Path] = []
    for _, path in found:
        if not (path / RECORD).is_file():
            if cleanup:
                log.warning("removing incomplete checkpoint %s (the run was stopped while saving it)", path)
                shutil.rmtree(path, ignore_errors=True)
            continue
        usable.append(path)
    for i, path in enumerate(usable):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        before = usable[i + 1].name if i + 1 < len(usable) else "the stage's start (no older checkpoint)"
        if not fallback:
            raise CheckpointError(
                f"{path}: damaged checkpoint: {problem}. Fix: restore the file, or run the same command with "
                f"--resume-from previous to resume from {before} (the steps after it are trained again)")
        log.warning("%s: damaged checkpoint (%s); --resume-from previous: resuming from %s", path, problem, before)
        if cleanup:
            path.rename(path.with_name(f"damaged-{path.name}"))
    return None


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
    """The newest complete, intact ``checkpoint-N`` of a stage (:func:`pick_checkpoint`)."""
    return pick_checkpoint(folder, cleanup=cleanup)
