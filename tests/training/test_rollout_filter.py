"""Dynamic sampling and online difficulty filtering (``training.rollout_filter``): the groups trained are the
informative ones, refills come from the run's prompt stream, the refill bound is honoured and recorded, a resumed
stage draws the same prompts, the pass-rate table skips always- and never-solved prompts in later stages, and two
processes train on one agreed batch.

The reward plugin ``varied_reward.by_id`` fixes each prompt's rewards by its id (always 1, always 0, or spread
within the group), so which groups are informative does not depend on what the random tiny model writes."""

from __future__ import annotations

import inspect
import json
import logging
import subprocess
from pathlib import Path

import pytest
import torch

from visionr1.recipe import load_recipe
from visionr1.training.data_order import stream_slice
from visionr1.training.rollout_filter import merge_outputs
from visionr1.training.runner import main

from .conftest import (
    REPO,
    TINY,
    kill_after_checkpoint,
    read_jsonl,
    subprocess_env,
    visionr1_cmd,
    write_varied_grpo,
)

VARIED = Path(__file__).with_name("varied_reward.py")
CPU_DDP = REPO / "configs" / "accelerate" / "cpu-ddp.yaml"


def _n(prompt_id: str) -> int:
    return int(prompt_id.rsplit("-", 1)[1])


def _informative(prompt_id: str) -> bool:
    return _n(prompt_id) % 3 == 2


def _stage(name: str, data: Path, steps: int, *extra: str, spread: bool = True, per_device: int = 4) -> list[str]:
    kwargs = "" if spread else ", kwargs: {spread: false}"
    return [f"stages.{name}.dataset={{format: jsonl, path: {data}}}",
            f"stages.{name}.rewards=[{{name: '{VARIED}:by_id'{kwargs}}}]",
            f"stages.{name}.grpo.max_steps={steps}", f"stages.{name}.grpo.per_device_train_batch_size={per_device}",
            f"stages.{name}.grpo.num_generations=2", f"stages.{name}.grpo.max_completion_length=4",
            f"stages.{name}.grpo.save_steps=1", *[f"stages.{name}.{e}" for e in extra]]


def _common(tiny_model_dir) -> list[str]:
    return ["stages.sft.enabled=false", f"model.path={tiny_model_dir}", "logging.completions_per_log=8"]


def _trained(run: Path, stage: str) -> dict[int, list[str]]:
    """Step -> the prompt ids trained at that step, one per group (completions.jsonl holds every row)."""
    steps: dict[int, list[str]] = {}
    for row in read_jsonl(run / "completions.jsonl"):
        if row["stage"] == stage:
            steps.setdefault(row["step"], []).append(row["id"])
    return {s: ids[::2] for s, ids in steps.items()}


def _stage_record(run: Path, name: str) -> dict:
    return next(s for s in json.loads((run / "manifest.json").read_text())["stages"] if s["name"] == name)


@pytest.mark.slow
def test_all_equal_groups_are_replaced_by_informative_ones_from_the_stream(tmp_path, monkeypatch, tiny_model_dir):
    data = write_varied_grpo(tmp_path / "data", n=24)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("VISIONR1_TEST_IDS", str(calls))
    overrides = [*_common(tiny_model_dir),
                 *_stage("ptst-1", data, 2, "dynamic_sampling={enabled: true, max_refill_rounds: 8}"),
                 *_stage("ptst-2", data, 1)]
    run = tmp_path / "run"
    summary = main(load_recipe(TINY / "ptst.yaml", overrides), output_dir=run)
    assert summary["stages"] == {"ptst-1": "done", "ptst-2": "done"}

    first = _stage_record(run, "ptst-1")
    order, counts = first["data_order"], first["rollout_filter"]
    assert counts["groups_dropped"] >= 1 and order["refills"] >= 2  # the stream's own slice had all-equal groups
    trained = _trained(run, "ptst-1")
    assert sorted(trained) == [1, 2] and all(len(ids) == 2 for ids in trained.values())
    assert all(_informative(i) for ids in trained.values() for i in ids), trained  # only informative groups trained

    # every prompt generated for came from the stage's slice and the positions after it, in the stream's order
    stream = [f"varied-{i}" for i in stream_slice(24, 0, 0, order["count"] + order["refills"])]
    lines = calls.read_text().splitlines()[:-1]  # the last call is ptst-2's one batch
    generated = [i for line in map(json.loads, lines) for i in line["ids"][::2]]
    count = order["count"]
    assert len(stream) <= 24 and sorted(generated) == sorted(stream)  # one epoch: no prompt twice
    assert generated[:2] == stream[:2]  # the first batch is the slice's ...
    assert [i for i in generated if i not in stream[:count]] == stream[count:]  # ... refills the positions after it

    # the next stage starts after the refills, and the metrics show the share before and after
    assert _stage_record(run, "ptst-2")["data_order"]["offset"] == order["count"] + order["refills"]
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train" and r["stage"] == "ptst-1"]
    assert [r["informative_group_share"] for r in rows] == [1.0, 1.0]
    assert min(r["informative_group_share/before"] for r in rows) < 1.0
    assert all(r["generated_tokens"] >= 4 and r["dynamic_sampling/refill_rounds"] >= 0 for r in rows)


@pytest.mark.slow
def test_the_refill_bound_is_honoured_logged_and_recorded(tmp_path, tiny_model_dir, caplog):
    data = write_varied_grpo(tmp_path / "data", n=12)
    overrides = [*_common(tiny_model_dir), "stages.ptst-2.enabled=false",
                 *_stage("ptst-1", data, 2, "dynamic_sampling={enabled: true, max_refill_rounds: 1}", spread=False)]
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="visionr1.training.rollout_filter"):
        assert main(load_recipe(TINY / "ptst.yaml", overrides), output_dir=run)["stages"] == {"ptst-1": "done"}
    record = _stage_record(run, "ptst-1")
    assert record["rollout_filter"]["bound_reached"] == 2 and record["rollout_filter"]["refill_rounds"] == 2
    assert record["data_order"]["refills"] == 4  # one round of 2 fresh prompts per step
    assert sum("after 1 refill round(s) 0 of 2 groups are informative" in m for m in caplog.messages) == 2
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["informative_group_share"] for r in rows] == [0.0, 0.0]


@pytest.mark.slow
def test_a_resumed_stage_draws_the_same_prompts_and_keeps_its_table(tmp_path, monkeypatch, tiny_model_dir):
    """6 prompts, 3 steps of 2 groups, both options: refills reach the stream's second epoch, where the table
    (restored from the checkpoint) skips prompts; the killed-and-resumed run generates for the same prompts, round
    by round (refills and their dropped groups included), and trains what the uninterrupted one did."""
    data = write_varied_grpo(tmp_path / "data", n=6)
    options = ["dynamic_sampling={enabled: true, max_refill_rounds: 4}", "difficulty_filter={enabled: true}"]
    overrides = [*_common(tiny_model_dir), "stages.ptst-2.enabled=false", *_stage("ptst-1", data, 3, *options)]
    ref = tmp_path / "ref"
    monkeypatch.setenv("VISIONR1_TEST_IDS", str(tmp_path / "ref-calls.jsonl"))
    assert main(load_recipe(TINY / "ptst.yaml", overrides), output_dir=ref)["stages"] == {"ptst-1": "done"}

    run = tmp_path / "run"
    cmd = visionr1_cmd("train", str(TINY / "ptst.yaml"), *overrides, "--output-dir", str(run))
    monkeypatch.setenv("VISIONR1_TEST_IDS", str(tmp_path / "killed-calls.jsonl"))
    kill_after_checkpoint(cmd, run / "ptst-1" / "checkpoint-1", tmp_path / "first.log")
    assert not (run / "ptst-1" / "final").exists()
    env = subprocess_env(VISIONR1_TEST_IDS=str(tmp_path / "resumed-calls.jsonl"))
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    resumed, reference = _stage_record(run, "ptst-1"), _stage_record(ref, "ptst-1")
    assert resumed.get("resumed_from")
    # every generation round after the checkpoint, refills included, was for the same prompts in the same order
    step_one = next(r for r in read_jsonl(ref / "metrics.jsonl") if r["kind"] == "train" and r["step"] == 1)
    rounds_before = 1 + int(step_one["dynamic_sampling/refill_rounds"])
    ref_calls = [c["ids"] for c in read_jsonl(tmp_path / "ref-calls.jsonl")]
    assert len(ref_calls) > 3 and [c["ids"] for c in read_jsonl(tmp_path / "resumed-calls.jsonl")] == \
        ref_calls[rounds_before:]
    assert _trained(run, "ptst-1") == _trained(ref, "ptst-1")
    assert resumed["data_order"] == reference["data_order"]
    assert resumed["rollout_filter"] == reference["rollout_filter"]
    assert reference["rollout_filter"]["prompts_skipped"] >= 1  # the table did skip prompts in the second epoch


@pytest.mark.slow
def test_the_difficulty_table_skips_always_and_never_solved_prompts_in_the_next_stage(tmp_path, tiny_model_dir):
    data = write_varied_grpo(tmp_path / "data", n=6)
    overrides = [*_common(tiny_model_dir),
                 *_stage("ptst-1", data, 3, "difficulty_filter={enabled: true}"),  # every prompt once
                 *_stage("ptst-2", data, 2, "difficulty_filter={enabled: true}")]
    run = tmp_path / "run"
    assert main(load_recipe(TINY / "ptst.yaml", overrides), output_dir=run)["stages"] == {"ptst-1": "done", "ptst-2": "done"}

    table = json.loads((run / "ptst-1" / "difficulty.json").read_text())["table"]
    assert table == {f"varied-{n}": [1.0 if n % 3 == 0 else 0.0 if n % 3 == 1 else 0.5] for n in range(6)}
    first, second = _trained(run, "ptst-1"), _trained(run, "ptst-2")
    assert sorted(i for ids in first.values() for i in ids) == [f"varied-{n}" for n in range(6)]
    assert {i for ids in second.values() for i in ids} <= {"varied-2", "varied-5"}, second
    record = _stage_record(run, "ptst-2")["rollout_filter"]
    assert record["prompts_skipped"] >= 2 and record["filtered_now"] == 4 and record["table_prompts"] == 6


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_train_on_one_refilled_batch(tmp_path, tiny_model_dir):
    """One group per process; the processes' groups are dropped and refilled independently, yet both run the same
    rounds (TRL's collectives would hang otherwise) and the batch trained is the informative groups of both."""
    data = write_varied_grpo(tmp_path / "data", n=12)
    calls = tmp_path / "calls.jsonl"
    run = tmp_path / "run"
    cmd = visionr1_cmd("train", str(TINY / "ptst.yaml"), *_common(tiny_model_dir), "stages.ptst-2.enabled=false",
                       *_stage("ptst-1", data, 2, "dynamic_sampling={enabled: true, max_refill_rounds: 8}", per_device=2),
                       "launch.num_processes=2", f"launch.config_file={CPU_DDP}", "--output-dir", str(run))
    out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(VISIONR1_TEST_IDS=str(calls)), capture_output=True,
                         text=True, timeout=500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    by_rank: dict[int, list[str]] = {0: [], 1: []}
    for line in map(json.loads, calls.read_text().splitlines()):
        by_rank[line["rank"]].append(line["ids"][0])
    assert len(by_rank[0]) == len(by_rank[1]) > 2  # the same number of generation rounds, refills included
    trained = _trained(run, "ptst-1")
    assert sorted(trained) == [1, 2] and all(len(ids) == 2 for ids in trained.values())
    assert all(_informative(i) for ids in trained.values() for i in ids), trained
    for step, ids in trained.items():  # one group from each process's own generations
        assert ids[0] in by_rank[0] and ids[1] in by_rank[1], (step, ids, by_rank)
    record = _stage_record(run, "ptst-1")
    assert record["num_processes"] == 2 and record["rollout_filter"]["groups_dropped"] >= 1


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_skip_filtered_prompts_alike(tmp_path, tiny_model_dir):
    """Both options on two processes, 6 prompts: refills reach the stream's second epoch, where both processes skip
    the prompts their shared table marks always or never solved (each process draws from the one cursor: a process
    skipping differently would generate other prompts than the stream's and its rounds would fall out of step)."""
    data = write_varied_grpo(tmp_path / "data", n=6)
    calls = tmp_path / "calls.jsonl"
    run = tmp_path / "run"
    options = ["dynamic_sampling={enabled: true, max_refill_rounds: 8}", "difficulty_filter={enabled: true}"]
    cmd = visionr1_cmd("train", str(TINY / "ptst.yaml"), *_common(tiny_model_dir), "stages.ptst-2.enabled=false",
                       *_stage("ptst-1", data, 3, *options, per_device=2),
                       "launch.num_processes=2", f"launch.config_file={CPU_DDP}", "--output-dir", str(run))
    out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(VISIONR1_TEST_IDS=str(calls)), capture_output=True,
                         text=True, timeout=500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    rounds: dict[int, list[str]] = {0: [], 1: []}
    for line in map(json.loads, calls.read_text().splitlines()):
        rounds[line["rank"]].append(line["ids"][0])
    assert len(rounds[0]) == len(rounds[1])  # the same generation rounds on both
    generated = [p for pair in zip(rounds[0], rounds[1], strict=True) for p in pair]
    seen: set[str] = set()
    for prompt_id in generated:  # a prompt comes back only when its last pass rate was neither 0 nor 1
        assert prompt_id not in seen or _informative(prompt_id), generated
        seen.add(prompt_id)
    assert len(generated) > len(seen)  # the second epoch was reached: something came back
    assert all(_informative(i) for ids in _trained(run, "ptst-1").values() for i in ids)
    record = _stage_record(run, "ptst-1")["rollout_filter"]
    assert record["prompts_skipped"] >= 1 and record["bound_reached"] == 0


def test_merged_rows_keep_their_tokens_and_padding():
    """Rows of two rounds with different prompt and completion lengths: prompts left-padded, completions
    right-padded, images carried with their rows."""
    def out(plen, clen, tag):
        return {"prompt_ids": torch.full((2, plen), tag), "prompt_mask": torch.ones(2, plen, dtype=torch.long),
                "completion_ids": torch.full((2, clen), tag + 1), "completion_mask": torch.ones(2, clen, dtype=torch.long),
                "advantages": torch.tensor([tag, -tag], dtype=torch.float), "num_items_in_batch": torch.tensor(4),
                "ref_per_token_logps": torch.full((2, clen), float(tag)),
                "mm_token_type_ids": torch.cat([torch.ones(2, plen, dtype=torch.long), torch.zeros(2, clen, dtype=torch.long)], 1),
                "pixel_values": torch.full((8, 3), float(tag)), "image_grid_thw": torch.tensor([[1, 2, 2], [1, 2, 2]]),
                "num_images": [1, 1]}
    merged = merge_outputs([out(3, 2, 10), out(5, 4, 20)], [(1, 0), (0, 1)], pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[20] * 5, [0, 0, 10, 10, 10]]
    assert merged["prompt_mask"].tolist() == [[1] * 5, [0, 0, 1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[21] * 4, [11, 11, 0, 0]]
    assert merged["completion_mask"].tolist() == [[1] * 4, [1, 1, 0, 0]]
    assert merged["advantages"].tolist() == [20.0, -10.0]
    assert merged["mm_token_type_ids"].tolist() == [[1] * 5 + [0] * 4, [0, 0, 1, 1, 1, 0, 0, 0, 0]]
    assert merged["pixel_values"].tolist() == [[20.0] * 3] * 4 + [[10.0] * 3] * 4
    assert merged["image_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 2]] and merged["num_images"] == [1, 1]
    assert "num_items_in_batch" not in merged  # the caller counts it over every process


def test_the_wrapped_trl_hooks_still_exist():
    """Contract: patches.grpo_sampling wraps TRL's private scoring methods; a TRL change must fail here."""
    from trl import GRPOTrainer

    from visionr1.patches.grpo_sampling import RolloutFilterHooks
    from visionr1.training.grpo import VisionR1GRPOTrainer

    for name in ("_generate_and_score_completions", "_calculate_rewards"):
        assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters) == \
            list(inspect.signature(getattr(RolloutFilterHooks, name)).parameters), name
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "rewards_per_func = self._calculate_rewards(" in source
    assert 'self._metrics[mode]["frac_reward_zero_std"]' in source
    assert "maxlen=args.generation_batch_size" in inspect.getsource(GRPOTrainer.__init__)  # _logs: one batch
    assert VisionR1GRPOTrainer.__mro__.index(RolloutFilterHooks) < VisionR1GRPOTrainer.__mro__.index(GRPOTrainer)


def test_groups_split_across_processes_are_refused_before_training(tmp_path):
    """Each process keeps and replaces whole groups: a batch of 2 rows per process with groups of 4 is a plan
    error naming the option, the numbers and the fix, on the CLI without a traceback; without the option it plans."""
    from typer.testing import CliRunner

    from visionr1.cli import app

    args = ["train", str(TINY / "grpo.yaml"), "stages.0.grpo.per_device_train_batch_size=2",
            "stages.0.grpo.num_generations=4", "--dry-run", "--plan-only", "--num-processes", "2", "-o", str(tmp_path / "run")]
    assert CliRunner().invoke(app, args).exit_code == 0
    res = CliRunner().invoke(app, [*args, "stages.0.dynamic_sampling={enabled: true}"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert ("dynamic_sampling needs whole groups on each process: per_device_train_batch_size (2) x "
            "steps_per_generation (1) = 2 rows is not a multiple of num_generations (4). Fix: set "
            "per_device_train_batch_size to a multiple of 4") in " ".join(res.output.split())


def test_a_run_recorded_before_the_options_existed_still_resumes(tmp_path, tiny_model_dir, tiny_data):
    """A finished GRPO stage whose manifest has no dynamic_sampling / difficulty_filter (recorded by an older
    visionr1) trained with their defaults: resuming is not refused; enabling one on the finished stage is."""
    from visionr1.training.manifest import Manifest
    from visionr1.training.plan import PlanError

    args = [f"model.path={tiny_model_dir}", "stages.sft.enabled=false",
            f"stages.ptst-1.dataset.path={tiny_data['grpo']}", f"stages.ptst-2.dataset.path={tiny_data['grpo']}"]
    recipe = load_recipe(TINY / "ptst.yaml", args)
    resolved = recipe.model_dump(mode="json")
    for stage in resolved["stages"]:
        del stage["dynamic_sampling"], stage["difficulty_filter"]
    run = tmp_path / "run"
    Manifest.create(run, resolved, world_size=1).save()
    (run / "ptst-1" / "final").mkdir(parents=True)  # as if ptst-1 had finished
    (run / "ptst-2" / "final").mkdir(parents=True)  # ... and ptst-2: nothing left to train
    main(recipe, output_dir=run)
    changed = load_recipe(TINY / "ptst.yaml", [*args, "stages.ptst-1.dynamic_sampling={enabled: true}"])
    with pytest.raises(PlanError, match=r"different settings \(stages.ptst-1\)"):
        main(changed, output_dir=run)


def test_the_demo_report_summarises_the_informative_share_and_the_tokens(tmp_path):
    from visionr1.demo.report import _training_summary

    recipe = load_recipe(TINY / "ptst.yaml", ["stages.sft.enabled=false", "stages.ptst-2.enabled=false"])
    rows = [{"kind": "train", "stage": "ptst-1", "step": s, "reward": 0.5, "informative_group_share": share,
             "generated_tokens": tokens} for s, share, tokens in ((1, 0.25, 100), (2, 0.5, 200), (3, 0.75, 300), (4, 1.0, 600))]
    entry = _training_summary(recipe, rows, tmp_path)["ptst-1"]
    assert (entry["informative_share_first_quarter"], entry["informative_share_last_quarter"]) == (0.25, 1.0)
    assert entry["generated_tokens_per_step"] == 300


def test_draws_never_return_a_filtered_prompt_while_one_is_left(caplog):
    """4 of 6 prompts filtered: across an epoch boundary more than 6 filtered prompts can follow each other in the
    stream (up to 4 + 4), which is not "every prompt filtered". Found by the two-process test above: a draw
    returned a filtered prompt after 6 skips in a row, with the warning that everything was filtered."""
    from types import SimpleNamespace as S

    from datasets import Dataset

    from visionr1.training.rollout_filter import RolloutFilter, RolloutFilterState

    source = Dataset.from_dict({"id": [f"varied-{n}" for n in range(6)]})
    table = {f"varied-{n}": [0.5 if _informative(f"varied-{n}") else float(n % 3 == 0)] for n in range(6)}
    spec = S(enabled=True, last_k=1, low=0.0, high=1.0)
    for seed in range(20):
        rf = RolloutFilter(source, 6, seed, True, S(enabled=True), spec, RolloutFilterState(table=table))
        with caplog.at_level(logging.WARNING, logger="visionr1.training.rollout_filter"):
            drawn = [source[i]["id"] for i in rf.draw(60)]
        assert all(_informative(i) for i in drawn), (seed, drawn)
        assert not caplog.records
    every = {f"varied-{n}": [1.0] for n in range(6)}  # everything filtered: one pass, then the next prompt anyway
    rf = RolloutFilter(source, 6, 0, True, S(enabled=True), spec, RolloutFilterState(table=every))
    with caplog.at_level(logging.WARNING, logger="visionr1.training.rollout_filter"):
        assert len(rf.draw(1)) == 1
    assert "every prompt of the dataset is filtered" in caplog.text
