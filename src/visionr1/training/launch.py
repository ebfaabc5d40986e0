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
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from visionr1.recipe import LaunchSpec
from visionr1.training.plan import PlanError

CHILD_ENV = "VISIONR1_STAGE_CHILD"  # set in a stage's process(es): the parent writes the summary, holds the lock


def is_stage_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def accelerate_executable() -> str:
    """The ``accelerate`` console script of this environment (next to the running Python), else on PATH."""
    here = Path(sys.executable).with_name("accelerate")
    return str(here) if here.exists() else (shutil.which("accelerate") or "accelerate")


class LaunchError(PlanError):
    """A launch section that cannot start the processes it describes."""


def accelerate_config(launch: LaunchSpec) -> dict[str, Any]:
    """The accelerate config file the launch names (``{}`` for none)."""
    if not launch.config_file:
        return {}
    try:
        data = yaml.safe_load(Path(launch.config_file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchError(f"launch.config_file {launch.config_file}: cannot read it ({exc}). Fix: name an accelerate "
                          "config, e.g. configs/accelerate/zero3.yaml") from None
    if not isinstance(data, dict):
        raise LaunchError(f"launch.config_file {launch.config_file}: not an accelerate config (a YAML mapping)")
    return data


def planned_engine(launch: LaunchSpec) -> str:
    """The distributed engine a stage's processes must run: ``DEEPSPEED``, ``FSDP``, ``DDP`` (several processes
    without sharding) or ``NO`` (one process). What ``stage.check_engine`` holds each stage to."""
    kind = str(accelerate_config(launch).get("distributed_type", "")).upper()
    if kind in ("DEEPSPEED", "FSDP"):
        return kind
    return "DDP" if launch.num_processes > 1 else "NO"


def free_port() -> int:
    """A TCP port free on this machine now, for one run's rendezvous (accelerate and TRL default to 29500, so two
    runs on one machine collided with ``EADDRINUSE``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sets(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def stage_command(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path, stage: str,
                  port: int | None = None) -> list[str]:
    """The command line of one stage's process(es). ``port``: the rendezvous port for a one-machine launch that
    names none (a port in the launch's ``args`` or its config file wins)."""
    train = ["train", str(recipe_path), *overrides, "--stage", stage, "--output-dir", str(run_dir)]
    if launch.num_processes == 1 and not launch.config_file and not launch.args:
        return [sys.executable, "-m", "visionr1", *train]
    config = accelerate_config(launch)
    cmd = [accelerate_executable(), "launch", "--num_processes", str(launch.num_processes)]
    if launch.config_file:
        cmd += ["--config_file", launch.config_file]
    ds_file = (config.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if ds_file and not Path(ds_file).is_absolute() and not _sets(launch.args, "--deepspeed_config_file"):
        # accelerate reads it relative to the working directory; a config's JSON lives beside the config
        cmd += ["--deepspeed_config_file", str(Path(launch.config_file).resolve().parent / ds_file)]
    one_machine = int(config.get("num_machines", 1)) == 1 and not _sets(launch.args, "--num_machines")
    if (port is not None and one_machine and not _sets(launch.args, "--main_process_port")
            and "main_process_port" not in config):
        cmd += ["--main_process_port", str(port)]
    return [*cmd, *launch.args, "-m", "visionr1", *train]


def stage_launcher(launch: LaunchSpec, recipe_path: str, overrides: Sequence[str], run_dir: Path) -> Callable[[str], int]:
    """``launcher(stage_name) -> exit code``: runs the stage's process(es), their output going to ours."""

    def run(stage: str) -> int:
        port = int(os.environ.get("MASTER_PORT") or free_port())  # the user's, else one of this run's own
        cmd = stage_command(launch, recipe_path, overrides, run_dir, stage, port=port)
        env = {**os.environ, CHILD_ENV: "1"}
        for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(var, None)  # the child's launcher sets its own
        return subprocess.run(cmd, env=env, check=False).returncode

    return run
