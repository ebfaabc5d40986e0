"""What produced an output: package versions and the git commit (style guide rule 10).

One copy for every writer of provenance: the training manifest, the cold-start run info and the evaluation
summary record the same fields, computed the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "visionr1", "torch", "transformers", "trl", "accelerate", "peft", "datasets", "deepspeed", "vllm",
    "math-verify", "pillow", "tensorboard", "wandb", "trackio",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and the installed versions of ``packages`` (absent ones are left out).

    >>> sorted(package_versions(("no-such-package-xyz",)))
    ['python']
    """
    out = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def git_info(start: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding the visionr1 source (``None`` outside git)."""
    here = start or Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}
