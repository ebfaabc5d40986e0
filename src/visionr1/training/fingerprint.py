"""A stage's fingerprint: what it trains on and how, recorded when it starts and checked when it resumes.

Why: a stage resumed from its checkpoint accepted a changed data file (same path, other content), another
learning rate, other rewards or ``num_generations``: steps 1-4 on one task, 5-8 on another, and the manifest
recorded a learning rate the restored scheduler did not use. Only finished stages were compared.

The fingerprint is flat, ``{field: value}``: ``seed``, ``model.*``, every value the stage's TRL config gets
(``grpo.learning_rate``, defaults included), the stage's own fields (``rewards``, ``dataset``, ...), and
``data``: a digest of the stage's records as loaded (text fields in full; an image or video by its bytes when
embedded, else by its path, size and modification time -- an image rewritten in place is detected, without
reading every image of a large set). A resume whose fingerprint differs is refused, naming the fields; the few
that do not change what is learned (:data:`SAFE_TO_CHANGE`) may be changed with ``--allow-changed FIELD``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from visionr1.recipe import TrainRecipe
from visionr1.training.plan import PlanError, stage_values

ALLOW_ENV = "VISIONR1_ALLOW_CHANGED"  # set by ``--allow-changed``; inherited by the stage processes
# What a resumed stage may change (with --allow-changed): how it is watched and saved, not what it learns.
SAFE_TO_CHANGE = ("logging_steps", "logging_first_step", "save_steps", "save_total_limit", "report_to",
                  "eval_steps", "eval_strategy", "eval_dataset", "dataloader_num_workers", "log_completions",
                  "num_completions_to_print", "reward_checks", "disable_tqdm")
_NOT_FINGERPRINTED = ("name", "enabled", "type")


def _media(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    return repr(value)


def _file_state(row: Any) -> Any:
    """Undecoded media ({bytes, path}) -> a digest of the bytes, or the file's path, size and mtime."""
    if isinstance(row, dict):
        if set(row) == {"bytes", "path"}:
            if row["bytes"] is not None:
                return _media(row["bytes"])
            try:
                st = os.stat(row["path"])
                return [row["path"], st.st_size, st.st_mtime_ns]
            except (OSError, TypeError):
                return [row["path"], None]
        return {k: _file_state(v) for k, v in row.items()}
    if isinstance(row, list):
        return [_file_state(v) for v in row]
    return row


def data_digest(dataset: Any) -> str | None:
    """A digest of a loaded dataset's records (see the module docstring); None for no dataset."""
    if dataset is None:
        return None
    h = hashlib.sha256(str(len(dataset)).encode())
    if isinstance(dataset, list):  # DPO pairs
        h.update(json.dumps(dataset, sort_keys=True, default=_media).encode())
        return h.hexdigest()[:16]
    arrow = dataset.with_format("arrow")  # undecoded: images as {bytes, path}
    for start in range(0, len(dataset), 1000):
        rows = arrow[start:start + 1000].to_pylist()
        h.update(json.dumps(_file_state(rows), sort_keys=True, default=_media).encode())
    return h.hexdigest()[:16]


def stage_fingerprint(recipe: TrainRecipe, index: int, dataset: Any) -> dict[str, Any]:
    stage = recipe.stages[index]
    fp: dict[str, Any] = {"seed": recipe.seed}
    fp |= {f"model.{k}": v for k, v in recipe.model.model_dump(mode="json").items() if index == 0 or k != "path"}
    fp |= {f"{stage.type}.{k}": v for k, v in stage_values(recipe, stage).items()}
    fp |= {k: v for k, v in stage.model_dump(mode="json").items() if k not in (*_NOT_FINGERPRINTED, stage.type)}
    fp["data"] = data_digest(dataset)
    return json.loads(json.dumps(fp, sort_keys=True, default=str))


def allowed_changes() -> set[str]:
    return {f for f in os.environ.get(ALLOW_ENV, "").split(",") if f}


def check_allowed(fields: list[str]) -> str | None:
    """Why ``--allow-changed`` cannot take these fields, or None."""
    bad = [f for f in fields if f.rsplit(".", 1)[-1] not in SAFE_TO_CHANGE]
    if bad:
        return (f"--allow-changed {', '.join(bad)}: only fields that do not change what a stage learns may change "
                f"on resume: {', '.join(SAFE_TO_CHANGE)}. Fix: use a new --output-dir to train with the new settings")
    return None


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_resume(source: str, stage: str, checkpoint: str | Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to resume ``stage`` from ``checkpoint`` when its fingerprint changed (bar the allowed fields)."""
    allowed = allowed_changes()
    changed = [f for f in changed_fields(old, new) if f not in allowed and f.rsplit(".", 1)[-1] not in allowed]
    if not changed:
        return
    what = "; ".join(f"{f}: {_short(old.get(f))} -> {_short(new.get(f))}" for f in changed[:8])
    more = f" (and {len(changed) - 8} more)" if len(changed) > 8 else ""
    safe = [f for f in changed if f.rsplit(".", 1)[-1] in SAFE_TO_CHANGE]
    hint = (f"; or, for {', '.join(safe)} (how the stage is watched or saved, not what it learns), "
            f"--allow-changed {','.join(s.rsplit('.', 1)[-1] for s in safe)}") if safe else ""
    raise PlanError(
        f"{source}: stage {stage} would resume from {checkpoint}, but its settings or data changed since it "
        f"started: {what}{more}. Resuming would train the steps after the checkpoint on other settings than the "
        f"steps before it. Fix: restore them, or use a new --output-dir to train the stage afresh{hint}")
