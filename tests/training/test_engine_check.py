"""A stage refuses to train in processes other than its plan's (count and engine), in one line naming both."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from visionr1.recipe import LaunchSpec
from visionr1.training.launch import CHILD_ENV, planned_engine, stage_command
from visionr1.training.stage import EngineMismatch, check_engine

REPO = Path(__file__).resolve().parents[2]
CONFIGS = str(REPO / "configs" / "accelerate")


def _acc(kind: str, n: int):
    return SimpleNamespace(distributed_type=f"DistributedType.{kind}", num_processes=n)


def _run(launch: LaunchSpec):
    return SimpleNamespace(recipe=SimpleNamespace(launch=launch), stage=SimpleNamespace(name="ptst-1"))


@pytest.mark.parametrize(("config", "engine"), [
    (None, "DDP"), ("cpu-ddp.yaml", "DDP"), ("cpu-fsdp2.yaml", "FSDP"), ("cpu-zero3.yaml", "DEEPSPEED"),
    ("ddp.yaml", "DDP"), ("fsdp2.yaml", "FSDP"), ("zero3.yaml", "DEEPSPEED"),
])
def test_the_plan_names_the_engine_of_each_shipped_config(config, engine):
    assert planned_engine(LaunchSpec(num_processes=2, config_file=config and f"{CONFIGS}/{config}")) == engine


@pytest.mark.parametrize(("config", "got", "n", "ok"), [
    ("cpu-ddp.yaml", "MULTI_CPU", 2, True),
    ("cpu-ddp.yaml", "NO", 1, False),  # accelerate's single-process launcher
    ("cpu-fsdp2.yaml", "FSDP", 2, True),
    ("cpu-fsdp2.yaml", "MULTI_CPU", 2, False),  # FSDP silently trained as DDP
    ("cpu-zero3.yaml", "DEEPSPEED", 2, True),
    ("cpu-zero3.yaml", "MULTI_CPU", 2, False),
    ("cpu-zero3.yaml", "DEEPSPEED", 1, False),
])
def test_a_launched_stage_is_held_to_its_plan(monkeypatch, config, got, n, ok):
    monkeypatch.setenv(CHILD_ENV, "1")
    run = _run(LaunchSpec(num_processes=2, config_file=f"{CONFIGS}/{config}"))
    if ok:
        check_engine(_acc(got, n), run)
    else:
        with pytest.raises(EngineMismatch, match=r"the plan is 2 process\(es\), .* but this process runs in"):
            check_engine(_acc(got, n), run)


def test_a_process_launched_by_hand_is_held_to_its_own_world_size(monkeypatch):
    """`accelerate launch --multi_gpu ... visionr1 train` without ACCELERATE_USE_CPU: each of the 2 processes
    believed it was rank 0 of 1 and both wrote the same directory."""
    monkeypatch.delenv(CHILD_ENV, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(EngineMismatch, match=r"the plan is 2 process\(es\)"):
        check_engine(_acc("NO", 1), _run(LaunchSpec()))
    check_engine(_acc("MULTI_CPU", 2), _run(LaunchSpec()))


def test_each_launch_gets_a_port_of_its_own_unless_one_is_named(tmp_path):
    launch = LaunchSpec(num_processes=2, config_file=f"{CONFIGS}/cpu-ddp.yaml")
    cmd = stage_command(launch, "r.yaml", [], tmp_path, "sft", port=41234)
    assert cmd[cmd.index("--main_process_port") + 1] == "41234"
    named = LaunchSpec(num_processes=2, args=["--main_process_port", "29600"])
    assert stage_command(named, "r.yaml", [], tmp_path, "sft", port=41234).count("--main_process_port") == 1
    nodes = LaunchSpec(num_processes=16, args=["--num_machines", "2", "--machine_rank", "0"])
    assert "--main_process_port" not in stage_command(nodes, "r.yaml", [], tmp_path, "sft", port=41234)


def test_a_deepspeed_json_beside_its_config_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = stage_command(LaunchSpec(num_processes=2, config_file=f"{CONFIGS}/cpu-zero3.yaml"), "r.yaml", [],
                        tmp_path, "sft", port=1)
    assert Path(cmd[cmd.index("--deepspeed_config_file") + 1]) == Path(CONFIGS) / "cpu-zero3.json"
