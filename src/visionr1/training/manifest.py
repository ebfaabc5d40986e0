"""The run directory's manifest: what ran, from which recipe, with which code, and how far it got.

``manifest.json`` is rewritten atomically (write to a temp file, then rename) after every status change, so a
run killed at any moment leaves a readable manifest. It records the resolved recipe, the package versions and
the git commit (guideline 10), and per stage: status (pending | running | done | failed | interrupted), timestamps, the
checkpoint it resumed from, its final model directory, and the error that stopped it.

Whether a stage is *finished* is decided by its ``final/`` model directory (written atomically by the runner),
not by the manifest alone: a kill between the two is then harmless.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from visionr1.utils.io import atomic_write_json
from visionr1.utils.provenance import git_info, package_versions

MANIFEST = "manifest.json"


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _cpu_threads() -> dict[str, Any]:
    """The CPU thread policy's decision for this process (see :mod:`visionr1.runtime`)."""
    from visionr1.runtime import describe

    return describe()


def recipe_digest(recipe_dict: dict[str, Any]) -> str:
    """Stable hash of the parts of a resolved recipe that change what is trained.

    ``output_dir`` (where), ``report_to`` and ``logging`` (what is watched), ``launch`` (on how many processes) and
    ``cpu_threads`` (how fast) are left out, so moving a run, turning on W&B or changing GPUs or threads does not
    count as a different run.

    >>> recipe_digest({"name": "a", "output_dir": "x"}) == recipe_digest({"name": "a", "output_dir": "y"})
    True
    """
    keep = {k: v for k, v in recipe_dict.items() if k not in ("output_dir", "report_to", "logging", "launch", "cpu_threads")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """Reads and atomically rewrites ``RUN_DIR/manifest.json``. Only the main process should write."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST

    @classmethod
    def load(cls, run_dir: Path) -> Manifest | None:
        path = run_dir / MANIFEST
        if not path.is_file():
            return None
        try:
            return cls(run_dir, json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}); delete it to start the run afresh") from None

    @classmethod
    def create(cls, run_dir: Path, recipe_dict: dict[str, Any], world_size: int) -> Manifest:
        stages = [
            {"name": s["name"], "type": s["type"], "status": "pending", "started": None, "finished": None,
             "resumed_from": None, "final_dir": None, "global_step": None, "error": None}
            for s in recipe_dict["stages"]
        ]
        data = {
            "run": recipe_dict["name"],
            "created": now(),
            "updated": now(),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "world_size": world_size,
            "git": git_info(),
            "packages": package_versions(),
            "recipe_digest": recipe_digest(recipe_dict),
            "recipe": recipe_dict,
            "stages": stages,
            "history": [],
        }
        return cls(run_dir, data)

    def stage(self, name: str) -> dict[str, Any]:
        for s in self.data["stages"]:
            if s["name"] == name:
                return s
        raise KeyError(name)

    def update_stage(self, name: str, **fields: Any) -> None:
        self.stage(name).update(fields)
        self.save()

    def note_attempt(self, world_size: int) -> None:
        """Record one invocation (first run or resume) with the code, packages and CPU threads it ran with."""
        self.data["history"].append(
            {"started": now(), "command": [Path(sys.argv[0]).name, *sys.argv[1:]], "world_size": world_size,
             "git": git_info(), "packages": package_versions(), "cpu_threads": _cpu_threads()}
        )
        self.save()

    def save(self) -> None:
        self.data["updated"] = now()
        # secrets redacted; a full disk still gets the status written in place (never left "running")
        atomic_write_json(self.path, self.data, "the run manifest", in_place_fallback=True)
