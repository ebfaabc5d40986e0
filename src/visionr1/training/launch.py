"""One process per stage: ``visionr1 train RECIPE`` runs each pending stage as a child process of its own.

Why: with every stage in one Python process, state left by stage k (process groups, DeepSpeed engines, vLLM
colocated engines, CUDA memory held by caches) broke stage k+1, and a rank-0-only evaluation between stages made
the other ranks wait in the next trainer's set-up until the NCCL timeout. Now the parent process plans, checks
every pending stage's data (all problems before any training), then for each stage starts

    python -m visionr1 train RECIPE [overrides] --stage NAME --output-dir RUN_DIR            (1 process)
    accelerate launch --num_processes N [--config_file F] [args] -m visionr1 train ... --stage NAME   (N > 1)

and waits for it. The child trains the stage and writes ``final/`` and the manifest; the parent then evaluates
the stage's final weights (``eval_dataset``) in its own process, after the child's GPUs are free, as a step of
its own that a re-run repeats if it was cut short. The manifest is the plan: a re-run starts at the first stage
without ``final/``. ``--stage NAME`` is also how a user runs one stage by hand.

One exception (``runner.trains_in_parent``): a single pending stage of one plain process with no evaluation after
it trains in the parent, since a child would only repeat the parent's imports, checks and preflight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from visionr1.recipe import LaunchSpec

CHILD_ENV = "VISIONR1_STAGE_CHILD"  # set in a stage's process(es): the parent writes the summary, holds the lock


def is_stage_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def accelerate_executable() -> str:
    """The ``accelerate`` console script of this environment (next to the running Python), else on PATH."""
    here = Path(sys.executable).with_name("accelerate")
    return str(here) if here.exists() else (shutil.which("accelerate") or "accelerate")


def stage_command(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path, stage: str) -> list[str]:
    """The command line of one stage's process(es)."""
    train = ["train", str(recipe_path), *overrides, "--stage", stage, "--output-dir", str(run_dir)]
    if launch.num_processes == 1 and not launch.config_file and not launch.args:
        return [sys.executable, "-m", "visionr1", *train]
    cmd = [accelerate_executable(), "launch", "--num_processes", str(launch.num_processes)]
    if launch.config_file:
        cmd += ["--config_file", launch.config_file]
    return [*cmd, *launch.args, "-m", "visionr1", *train]


def stage_launcher(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path) -> Callable[[str], int]:
    """``launcher(stage_name) -> exit code``: runs the stage's process(es), their output going to ours."""

    def run(stage: str) -> int:
        cmd = stage_command(launch, recipe_path, overrides, run_dir, stage)
        env = {**os.environ, CHILD_ENV: "1"}
        for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(var, None)  # the child's launcher sets its own
        return subprocess.run(cmd, env=env, check=False).returncode

    return run
