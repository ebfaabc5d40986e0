"""Recipes: strict keys with suggestions, includes, dotted overrides, pass-through validation via TRL."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.config.base import RecipeError, apply_overrides, deep_merge, explain_model
from visionr1.recipe import Recipe, load_recipe

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
        ("stages.1.grpo.num_generations=3", "stages[1].grpo: rejected by trl.GRPOConfig"),
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
    rows = list(explain_model(Recipe))
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
