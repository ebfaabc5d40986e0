"""Recipes: strict keys with suggestions, includes, dotted overrides, pass-through sections checked against
TRL's config fields (keys and types) without building any TRL config."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.config.base import RecipeError, explain_model
from visionr1.config.loader import apply_overrides, deep_merge
from visionr1.recipe import TrainRecipe, load_recipe

BASE = """
name: t
model: {path: Qwen/Qwen2.5-VL-7B-Instruct}
stages:
  - name: sft
    type: sft
    dataset: {format: sharegpt, path: x.json}
    sft: {learning_rate: 5.0e-6}
  - name: g1
    type: grpo
    dataset: {format: geometry3k, path: y.parquet}
    grpo: {max_completion_length: 64, num_generations: 4, per_device_train_batch_size: 4}
"""


@pytest.fixture
def base(tmp_path):
    p = tmp_path / "base.yaml"
    p.write_text(BASE)
    return p


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_recipe_loads_and_hub_ids_stay(base):
    r = load_recipe(base)
    assert [s.type for s in r.stages] == ["sft", "grpo"]
    assert r.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("stages.1.grpo.num_generaton=8", "stages[1].grpo.num_generaton: unknown key; did you mean num_generations?"),
        ("stages.0.dataset.formt=x", "stages[0].dataset.formt: unknown key; did you mean format?"),
        ("modle.path=x", "modle: unknown key; did you mean model?"),
        ("model.dtype=bf16", "model.dtype: Input should be"),
        ("stages.0.sft.seed=3", "stages[0].sft.seed: set by visionr1 itself"),
        ("stages.1.grpo.epsilon=high", "stages[1].grpo.epsilon: expected a number, got 'high'"),
        ("stages.0.sft.lr_scheduler_type=cosin", "stages[0].sft.lr_scheduler_type: 'cosin' is not a SFTConfig.lr_scheduler_type; did you mean 'cosine'?"),
        ("stages.1.grpo.save_strategy=step", "did you mean 'steps'?"),
        ("stages.0.sft.loss_type=mse", "stages[0].sft.loss_type: 'mse' is not a SFTConfig.loss_type; choose from ['nll'"),
        ("stages.1.grpo.bf16=yes please", "stages[1].grpo.bf16: expected true or false, got 'yes please'"),
        ("stages.1.grpo.output_dir=/tmp/x", "stages[1].grpo.output_dir: set by visionr1 itself"),
        ("stages.1.grpo.reward_weights=[1]", "stages[1].grpo.reward_weights: set by visionr1 from rewards[].weight"),
        ("stages.1.dataset.max_pixels=10", "stages[1].dataset.max_pixels: Input should be greater than or equal"),
    ],
)
def test_errors_name_path_and_fix(base, override, expected):
    with pytest.raises(RecipeError) as err:
        load_recipe(base, [override])
    assert str(base) in str(err.value)
    assert expected in str(err.value)


def test_include_and_stage_patch_by_name_and_index(tmp_path, base):
    child = write(
        tmp_path,
        "child.yaml",
        """
        include: base.yaml
        name: child
        stages:
          g1: {grpo: {max_completion_length: 128, num_generations: 2}}
          0: {sft: {learning_rate: 1.0e-5}}
        """,
    )
    r = load_recipe(child)
    assert r.name == "child"
    assert r.stages[1].grpo == {"max_completion_length": 128, "num_generations": 2, "per_device_train_batch_size": 4}
    assert r.stages[0].sft["learning_rate"] == 1.0e-5


def test_include_cycle_and_missing(tmp_path):
    write(tmp_path, "a.yaml", "include: b.yaml\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(RecipeError, match="include cycle"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_values():
    d = apply_overrides({"a": [{"b": 1}], "c": {}}, ["a.0.b=2", "c.d=[x, y]", "e=null", "f=true"])
    assert d == {"a": [{"b": 2}], "c": {"d": ["x", "y"]}, "e": None, "f": True}
    with pytest.raises(RecipeError, match="index out of range"):
        apply_overrides({"a": [1]}, ["a.3=1"])
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_deep_merge_replaces_lists():
    assert deep_merge({"a": [1, 2], "b": {"c": 1}}, {"a": [3]}) == {"a": [3], "b": {"c": 1}}


def test_every_field_is_described():
    rows = list(explain_model(TrainRecipe))
    assert len(rows) > 30
    assert all(desc for *_, desc in rows)
    paths = [r[0] for r in rows]
    assert any(p.endswith(".grpo") for p in paths)


def test_cli_recipe_check_and_explain(base):
    runner = CliRunner()
    res = runner.invoke(app, ["recipe", "check", str(base), "stages.1.grpo.max_completion_length=32"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["stages"][1]["grpo"]["max_completion_length"] == 32
    res = runner.invoke(app, ["recipe", "check", str(base), "stages.1.grpo.num_generaton=8"])
    assert res.exit_code == 2
    assert "did you mean num_generations?" in res.output
    res = runner.invoke(app, ["recipe", "explain", "model"])
    assert res.exit_code == 0 and "freeze" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and "visionr1" in res.output


def test_numbers_and_enums_pass_and_cross_field_checks_wait_for_the_planner(base):
    """Loading coerces numeric strings and accepts every enum value; what TRL checks across fields (a
    generation batch num_generations does not divide) is the planner's to report, with the fix."""
    from visionr1.training.plan import PlanError, plan_run

    r = load_recipe(base, ["stages.0.sft.learning_rate=1e-5", "stages.0.sft.lr_scheduler_type=constant_with_warmup",
                           "stages.1.grpo.num_generations=3"])
    assert r.stages[0].sft["learning_rate"] == 1e-5 and r.stages[1].grpo["num_generations"] == 3
    with pytest.raises(PlanError) as err:
        plan_run(r, "/tmp/x", world_size=1, source=str(base))
    msg = str(err.value)
    assert msg.startswith(f"{base}: the run cannot start") and "stage g1: stages[1].grpo.num_generations: rejected by trl.GRPOConfig" in msg
    assert "Fix: set per_device_train_batch_size to a multiple of 3" in msg


def test_loading_creates_no_accelerate_state_and_reads_no_distributed_env(base):
    """Before: validators built TrainingArguments, which set up accelerate's device state, so loading hid the
    launcher's variables and reset accelerate's private state afterwards, and a WORLD_SIZE changed what loaded.
    Now loading builds no TRL config: in a fresh process with odd distributed variables the result is the same
    as here, and accelerate and torch.distributed stay uninitialised."""
    import os
    import subprocess
    import sys

    args = ["stages.1.grpo.generation_batch_size=8"]  # valid on 1 process, not on 7
    script = (
        "import json, sys; from visionr1.recipe import load_recipe; import accelerate.state as s, torch.distributed as d;"
        f"r = load_recipe({str(base)!r}, {args!r});"
        "print(json.dumps({'recipe': r.model_dump(mode='json'), 'state': bool(s.PartialState._shared_state or "
        "s.AcceleratorState._shared_state), 'dist': d.is_available() and d.is_initialized()}))"
    )
    odd = {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "7", "LOCAL_WORLD_SIZE": "7", "MASTER_ADDR": "203.0.113.9",
           "MASTER_PORT": "1", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_USE_CPU": "true"}
    env = {**os.environ, **odd, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen == {"recipe": load_recipe(base, args).model_dump(mode="json"), "state": False, "dist": False}
