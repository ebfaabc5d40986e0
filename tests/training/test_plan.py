"""Plans and preflight: every shipped recipe plans without model or data; a stage that cannot run fails
before any training starts, with the reason and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.recipe import load_recipe
from visionr1.training.plan import PlanError, check_stage_settings, generation_batch_problem, plan_run
from visionr1.training.runner import main

from .conftest import REPO, TINY

RECIPES = sorted([*(REPO / "recipes").glob("vision-r1*.yaml"), *TINY.glob("*.yaml")])  # the training recipes


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO / "recipes")) for p in RECIPES])
def test_every_shipped_recipe_plans_and_says_how_to_run_it(path, tmp_path):
    text = path.read_text()
    assert text.startswith("#") and "visionr1 train" in text.split("\n\n")[0]  # the command that runs it
    assert "Override example" in text
    result = CliRunner().invoke(app, ["train", str(path), "--dry-run", "--plan-only", "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["run_dir"] == str(tmp_path / "run")
    for i, stage in enumerate(plan["stages"]):
        assert stage["trl_config"]["output_dir"] == str(tmp_path / "run" / stage["name"])
        assert stage["trl_config"]["logging_steps"] == 1  # per-step metrics
        if i:
            assert stage["starts_from"] == plan["stages"][i - 1]["final_dir"]
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_vision_r1_recipes_carry_the_paper_numbers():
    plan = plan_run(load_recipe(REPO / "recipes" / "vision-r1-7b.yaml"), "/tmp/x", world_size=8)
    sft, g1, g2 = plan["stages"]
    c = sft["trl_config"]
    assert (c["learning_rate"], c["lr_scheduler_type"], c["warmup_steps"], c["num_train_epochs"], c["max_length"]) == (
        5e-6, "cosine", 0.05, 2, 16384)
    assert c["bf16"] is True
    assert c["per_device_train_batch_size"] * c["gradient_accumulation_steps"] * 8 == 32  # global batch 32
    assert [(g["ptst"]["max_completion_length"], g["ptst"]["num_generations"], g["ptst"]["max_steps"]) for g in (g1, g2)] == [
        (4096, 16, 100), (8192, 8, 100)]
    for g in (g1, g2):
        assert (g["trl_config"]["epsilon"], g["trl_config"]["beta"]) == (0.2, 0.01)
        assert [r["name"] for r in g["rewards"]] == ["hard_format_result"]
        assert g["share_images"] is True  # the default: one image encoding per group
        assert g["dataset"]["prompt"]["system"] is None
    zero = plan_run(load_recipe(REPO / "recipes" / "vision-r1-zero.yaml"), "/tmp/x", world_size=8)["stages"]
    assert [s["type"] for s in zero] == ["grpo"] and zero[0]["starts_from"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert [(r["name"], r["weight"]) for r in zero[0]["rewards"]] == [("format", 1.0), ("accuracy", 1.0)]
    assert (zero[0]["ptst"]["max_completion_length"], zero[0]["ptst"]["num_generations"], zero[0]["ptst"]["max_steps"]) == (4096, 16, 300)
    long = plan_run(load_recipe(REPO / "recipes" / "vision-r1-long.yaml"), "/tmp/x", world_size=8)["stages"]
    assert [(s["name"], s.get("ptst", {}).get("max_completion_length"), s.get("ptst", {}).get("num_generations")) for s in long] == [
        ("sft", None, None), ("ptst-1", 16384, 4)]


@pytest.mark.parametrize(
    "values, world_size, expected",
    [
        ({"per_device_train_batch_size": 4, "num_generations": 4}, 1, None),
        ({"per_device_train_batch_size": 3, "num_generations": 2}, 1, "multiple of 2 (e.g. 4)"),
        ({"per_device_train_batch_size": 2, "num_generations": 8, "gradient_accumulation_steps": 2}, 1, "multiple of 4"),
        ({"per_device_train_batch_size": 2, "num_generations": 8, "gradient_accumulation_steps": 2}, 2, None),
        ({"per_device_train_batch_size": 2, "generation_batch_size": 6, "num_generations": 2}, 2, "multiple of 4"),
        ({"per_device_train_batch_size": 2, "generation_batch_size": 6, "num_generations": 4}, 1, "generation_batch_size to a multiple of 4"),
    ],
)
def test_generation_batch_problems_name_the_fix(values, world_size, expected):
    msg = generation_batch_problem(values, world_size)
    if expected is None:
        assert msg is None
    else:
        assert "Fix:" in msg and expected in msg


def test_stage_that_needs_more_processes_fails_with_fix(tmp_path):
    recipe = load_recipe(TINY / "grpo.yaml", ["stages.0.grpo.generation_batch_size=4", "stages.0.grpo.per_device_train_batch_size=4"])
    problems = check_stage_settings(recipe, recipe.stages[0], world_size=2)
    assert len(problems) == 1 and "processes (4 x 2)" in problems[0] and "Fix:" in problems[0]


def test_indivisible_batch_loads_but_dry_run_rejects_it_with_the_fix():
    """TRL's own check (its __post_init__), reached through the planner: the recipe loads, --dry-run fails."""
    recipe = load_recipe(TINY / "grpo.yaml", ["stages.0.grpo.num_generations=3"])
    with pytest.raises(PlanError) as err:
        plan_run(recipe, "/tmp/x", world_size=1)
    assert "stages[0].grpo.num_generations: rejected by trl.GRPOConfig" in str(err.value)
    assert "Fix: set per_device_train_batch_size" in str(err.value)
    res = CliRunner().invoke(app, ["train", str(TINY / "grpo.yaml"), "stages.0.grpo.num_generations=3", "--dry-run", "--plan-only"])
    assert res.exit_code == 2 and str(TINY / "grpo.yaml") in res.output and "rejected by trl.GRPOConfig" in res.output


def test_dry_run_checks_batches_for_the_processes_asked(tmp_path):
    """A generation batch of 4 fits one process of 4 but not two: --num-processes 2 must say so, and name the
    field and the fix; the same recipe plans on one process."""
    args = ["train", str(TINY / "grpo.yaml"), "stages.0.grpo.generation_batch_size=4",
            "stages.0.grpo.per_device_train_batch_size=4", "stages.0.grpo.num_generations=4", "--dry-run", "--plan-only",
            "-o", str(tmp_path / "run")]
    one = CliRunner().invoke(app, [*args, "--num-processes", "1"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["stages"][0]["ptst"]["generation_batch_size"] == 4
    two = CliRunner().invoke(app, [*args, "--num-processes", "2"])
    assert two.exit_code == 2, two.output
    assert f"{TINY / 'grpo.yaml'}: the run cannot start" in two.output
    assert "stages[0].grpo.generation_batch_size: rejected by trl.GRPOConfig" in two.output
    assert "Fix: set generation_batch_size to a multiple of 8" in two.output
    assert not (tmp_path / "run").exists()


def test_unrunnable_stages_fail_before_training_with_all_reasons(tmp_path, tiny_data):
    no_solution = tmp_path / "nosol.jsonl"
    rows = [json.loads(x) for x in Path(tiny_data["grpo"]).read_text().splitlines()[:3]]
    rows[1]["solution"] = ""
    no_solution.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(
        TINY / "ptst.yaml",
        [f"stages.0.dataset.path={tiny_data['grpo']}",  # SFT data without completions
         f"stages.1.dataset.path={no_solution}", f"stages.1.dataset.image_root={Path(tiny_data['grpo']).parent}",
         f"stages.2.dataset.path={tiny_data['grpo']}", "model.path=/nonexistent/model"],
    )
    with pytest.raises(PlanError) as err:
        main(recipe, output_dir=tmp_path / "run")
    msg = str(err.value)
    assert "model path '/nonexistent/model' does not exist" in msg and "fix model.path" in msg
    assert "stage sft: dataset" in msg and "without `completion`" in msg and "Fix:" in msg
    assert "stage ptst-1: dataset" in msg and "without `solution`" in msg
    assert not (tmp_path / "run" / "sft").exists()  # nothing trained


def test_cli_reports_plan_errors_without_traceback(tmp_path, tiny_data):
    result = CliRunner().invoke(
        app, ["train", str(TINY / "grpo.yaml"), f"stages.0.dataset.path={tmp_path / 'missing.jsonl'}",
              "--output-dir", str(tmp_path / "run")],
    )
    assert result.exit_code == 2
    assert "cannot start" in result.output and "missing.jsonl" in result.output
    assert "Traceback" not in result.output


def test_sft_prompt_longer_than_max_length_is_refused(tmp_path, tiny_model_dir, tiny_data):
    recipe = load_recipe(TINY / "sft.yaml", [f"model.path={tiny_model_dir}", f"stages.sft.dataset.path={tiny_data['multi']}",
                                             "stages.sft.sft.max_length=24"])
    with pytest.raises(PlanError, match="truncation would cut image tokens. Fix: raise sft.max_length"):
        main(recipe, output_dir=tmp_path / "run")


def test_resuming_with_a_changed_finished_stage_is_refused(tmp_path, tiny_model_dir, tiny_data):
    from visionr1.training.manifest import Manifest

    args = [f"model.path={tiny_model_dir}", f"stages.sft.dataset.path={tiny_data['sft']}",
            f"stages.ptst-1.dataset.path={tiny_data['grpo']}", f"stages.ptst-2.dataset.path={tiny_data['grpo']}"]
    recipe = load_recipe(TINY / "ptst.yaml", args)
    run = tmp_path / "run"
    Manifest.create(run, recipe.model_dump(mode="json"), world_size=1).save()
    (run / "sft" / "final").mkdir(parents=True)  # as if the SFT stage had finished
    changed = load_recipe(TINY / "ptst.yaml", [*args, "stages.sft.sft.learning_rate=0.5"])
    with pytest.raises(PlanError, match=r"different settings \(stages.sft\)"):
        main(changed, output_dir=run)
