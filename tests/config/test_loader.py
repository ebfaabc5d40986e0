"""The recipe loader (visionr1.config.loader): one module reads a recipe file for every kind of recipe —
includes, dotted overrides, disabled stages, and paths resolved by the type of their field — so the kinds
cannot disagree again (a ``tiny:`` model was a path next to the recipe for the training recipe, the pipeline
and Insight-V's data recipe, and a tiny model for the cold start's)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import Field

from visionr1.coldstart.config import load_coldstart_recipe
from visionr1.config.base import RecipeError, StrictModel
from visionr1.config.loader import (
    ModelRef,
    PluginRef,
    RecipeFile,
    RecipePath,
    load,
    read_recipe,
    run_dir_of,
)
from visionr1.data.spec import DatasetSpec
from visionr1.insight.config import load_insight_recipe
from visionr1.pipeline.config import load_pipeline
from visionr1.pipeline.load import load_coldstart_section, load_training_recipe
from visionr1.recipe import load_recipe

SRC = Path(__file__).resolve().parents[2] / "src" / "visionr1"

# One recipe of each kind, each naming the model MODEL and the data data/train.jsonl.
TRAIN = """
name: t
model: {path: MODEL}
stages:
  - {name: sft, type: sft, dataset: {format: jsonl, path: data/train.jsonl}}
"""
COLDSTART_BODY = """
input: {format: jsonl, path: data/train.jsonl}
backends:
  mllm: {type: local, model: MODEL}
pseudo_cot: {backend: mllm}
description: {backend: mllm}
reasoning: {backend: mllm}
"""
COLDSTART = "name: t\n" + COLDSTART_BODY
INSIGHT = """
name: t
input: {format: jsonl, path: data/train.jsonl}
backends:
  gen: {type: local, model: MODEL}
reasoner: {backend: gen}
"""
PIPELINE = TRAIN + "coldstart:\n" + "".join(f"  {line}\n" for line in COLDSTART_BODY.strip().splitlines())


def _models_of_every_kind(tmp_path: Path, model: str) -> dict[str, tuple[str, str]]:
    """``{kind: (model as loaded, dataset path as loaded)}`` for every recipe kind and every command's way in."""
    files = {}
    for kind, text in {"train": TRAIN, "coldstart": COLDSTART, "insight": INSIGHT, "pipeline": PIPELINE}.items():
        files[kind] = tmp_path / "recipes" / f"{kind}.yaml"
        files[kind].parent.mkdir(exist_ok=True)
        files[kind].write_text(text.replace("MODEL", model))
    train = load_recipe(files["train"])
    coldstart = load_coldstart_recipe(files["coldstart"])
    insight = load_insight_recipe(files["insight"])
    pipeline = load_pipeline(files["pipeline"])
    section = load_coldstart_section(files["pipeline"])
    trained = load_training_recipe(files["pipeline"])
    return {
        "train": (train.model.path, train.stages[0].dataset.path),
        "coldstart": (coldstart.backends["mllm"].model, coldstart.input.path),
        "insight": (insight.backends["gen"].model, insight.input.path),
        "pipeline.model": (pipeline.model.path, pipeline.stages[0].dataset.path),
        "pipeline.coldstart": (pipeline.coldstart.backends["mllm"].model, pipeline.coldstart.input.path),
        "coldstart <- pipeline": (section.backends["mllm"].model, section.input.path),
        "train <- pipeline": (trained.model.path, trained.stages[0].dataset.path),
    }


@pytest.mark.parametrize("written, made, expected", [
    # a tiny model is built locally, never a path: even when a folder of that name sits beside the recipe
    # (before: the training recipe, the pipeline and Insight-V's recipe took that folder, the cold start did not)
    ("tiny:qwen2_5_vl/test", "recipes/tiny:qwen2_5_vl/test", "tiny:qwen2_5_vl/test"),
    ("tiny:qwen3_vl/test", None, "tiny:qwen3_vl/test"),
    ("ckpt", "recipes/ckpt", "{tmp}/recipes/ckpt"),  # a checkpoint beside the recipe
    ("./not-yet", None, "{tmp}/recipes/not-yet"),  # ./ is always local
    ("Qwen/Qwen2.5-VL-7B-Instruct", None, "Qwen/Qwen2.5-VL-7B-Instruct"),  # a hub id, no such folder
], ids=["tiny-beside-a-folder-of-its-name", "tiny", "checkpoint-dir", "dot-relative", "hub-id"])
def test_a_model_reference_means_the_same_in_every_recipe_kind(tmp_path, monkeypatch, written, made, expected):
    if made:
        (tmp_path / made).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # paths resolve against the recipe, not the current directory
    (tmp_path / "recipes").mkdir(exist_ok=True)
    loaded = _models_of_every_kind(tmp_path, written)
    want = expected.format(tmp=tmp_path)
    assert {kind: model for kind, (model, _) in loaded.items()} == dict.fromkeys(loaded, want)
    # no data/train.jsonl beside the recipe: kept as written, in every kind alike
    assert {kind: path for kind, (_, path) in loaded.items()} == dict.fromkeys(loaded, "data/train.jsonl")


def test_data_beside_the_recipe_resolves_alike_in_every_kind(tmp_path, monkeypatch):
    (tmp_path / "recipes" / "data").mkdir(parents=True)
    (tmp_path / "recipes" / "data" / "train.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    loaded = _models_of_every_kind(tmp_path, "tiny:qwen2_5_vl/test")
    want = str(tmp_path / "recipes" / "data" / "train.jsonl")
    assert {kind: path for kind, (_, path) in loaded.items()} == dict.fromkeys(loaded, want)


class _Item(StrictModel):
    file: RecipePath = Field(..., description="a path")


class _Typed(StrictModel):
    data: RecipePath = Field(..., description="a path or hub id")
    hub: RecipePath = Field(..., description="a path or hub id")
    root: RecipePath | None = Field(None, description="optional path")
    template: RecipeFile = Field(..., description="always beside the recipe")
    model: ModelRef = Field(..., description="a model")
    tiny: ModelRef = Field(..., description="a model")
    plugin: PluginRef = Field(..., description="plugin file")
    registered: PluginRef = Field(..., description="registered name")
    plain: str = Field(..., description="not a path")
    items: list[_Item] = Field(default_factory=list, description="nested")


TYPED = """
data: data/x.jsonl
hub: org/dataset
root: ~/images
template: prompts/step.txt
model: ./ckpt
tiny: tiny:qwen2_vl/test
plugin: rewards.py:score
registered: accuracy
plain: data/x.jsonl
items: [{file: data/x.jsonl}]
"""


def test_paths_resolve_by_the_type_of_their_field(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("")
    (tmp_path / "rewards.py").write_text("")
    (tmp_path / "r.yaml").write_text(TYPED)
    monkeypatch.chdir("/")
    got = load(_Typed, tmp_path / "r.yaml")
    assert got.data == str(tmp_path / "data" / "x.jsonl")
    assert got.hub == "org/dataset"  # no such path beside the recipe: a hub id, kept
    assert got.root == str(Path.home() / "images")
    assert got.template == str(tmp_path / "prompts" / "step.txt")  # a recipe's own file, even before it exists
    assert got.model == str(tmp_path / "ckpt")
    assert got.tiny == "tiny:qwen2_vl/test"
    assert got.plugin == f"{tmp_path / 'rewards.py'}:score"
    assert got.registered == "accuracy"
    assert got.plain == "data/x.jsonl"  # not a path type: as written
    assert got.items[0].file == str(tmp_path / "data" / "x.jsonl")  # nested sections too
    # validated without a recipe file (a command line's options, a stage's resolved RUN/recipe.json): as written
    import yaml

    assert _Typed.model_validate(yaml.safe_load(TYPED)).data == "data/x.jsonl"


def test_includes_then_overrides_then_disabled_stages(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "ptst.yaml").write_text(
        "name: base\nseed: 1\nmodel: {path: tiny:qwen2_5_vl/test}\nstages:\n"
        + "".join(f"  - {{name: {n}, type: sft, dataset: {{format: jsonl, path: data/{n}.jsonl}}}}\n"
                  for n in ("a", "b", "c", "d"))
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.jsonl").write_text("")
    top = tmp_path / "run.yaml"
    top.write_text("include: base/ptst.yaml\nname: top\nstages:\n  b: {sft: {max_steps: 5}}\n  c: {enabled: false}\n")
    raw = read_recipe(top, ["stages.1.sft.learning_rate=0.001", "stages.d.enabled=false", "seed=3"])
    assert raw["name"] == "top" and raw["seed"] == 3
    # stages.1 is the second stage that runs (c was dropped before the overrides); d dropped after them
    assert [s["name"] for s in raw["stages"]] == ["a", "b"]
    assert raw["stages"][1]["sft"] == {"max_steps": 5, "learning_rate": 0.001}
    recipe = load_recipe(top, ["stages.d.enabled=false"])
    # paths of an included file resolve against the recipe that was loaded (here: data/b.jsonl exists beside it)
    assert recipe.stages[1].dataset.path == str(tmp_path / "data" / "b.jsonl")
    assert recipe.stages[0].dataset.path == "data/a.jsonl"
    # the pipeline's training section and `visionr1 train` see the same stages
    assert [s.name for s in load_pipeline(top, ["stages.d.enabled=false"]).stages] == ["a", "b"]
    assert [s.name for s in load_training_recipe(top, ["stages.d.enabled=false"]).stages] == ["a", "b"]


@pytest.mark.parametrize("loader", [load_recipe, load_pipeline, load_training_recipe],
                         ids=["train", "pipeline", "train <- file"])
@pytest.mark.parametrize("how", ["override", "file"])
def test_every_stage_disabled_is_one_line_naming_the_file(tmp_path, loader, how):
    path = tmp_path / "r.yaml"
    path.write_text(TRAIN.replace("MODEL", "tiny:qwen2_5_vl/test").replace("type: sft,", "type: sft, enabled: false,")
                    if how == "file" else TRAIN.replace("MODEL", "tiny:qwen2_5_vl/test"))
    with pytest.raises(RecipeError) as exc:
        loader(path, ["stages.sft.enabled=false"] if how == "override" else [])
    assert str(exc.value) == f"{path}: stages: every stage has enabled: false; enable at least one"


def test_a_bare_dataset_section_is_a_recipe_kind_too(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "base.yaml").write_text("format: jsonl\npath: train.jsonl\n")
    (tmp_path / "ds.yaml").write_text("include: base.yaml\nlimit: 3\n")  # includes work here as everywhere
    spec = load(DatasetSpec, tmp_path / "ds.yaml", ["shuffle_seed=1"])
    assert (spec.path, spec.limit, spec.shuffle_seed) == (str(tmp_path / "train.jsonl"), 3, 1)


def test_one_run_dir_for_a_raw_or_loaded_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text(TRAIN.replace("MODEL", "tiny:qwen2_5_vl/test"))
    recipe = load_recipe(path)
    assert run_dir_of(recipe) == run_dir_of(read_recipe(path)) == tmp_path / "runs" / "t"
    assert run_dir_of(recipe, "out") == tmp_path / "out"
    assert run_dir_of({"name": "t", "output_dir": "~/x"}) == Path.home() / "x"


# ----------------------------------------------------------------------------------------------------------
# the loader is the one module that reads recipe files
# ----------------------------------------------------------------------------------------------------------

# What only the loader does: parse YAML, merge includes, resolve a recipe's paths.
READING = {"safe_load", "load_yaml_with_includes", "resolve_path", "deep_merge"}
# training/launch.py reads accelerate's own config file (not a recipe) with yaml.safe_load.
NOT_RECIPES = {"training/launch.py"}


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def test_only_the_loader_reads_recipe_files():
    readers = sorted(
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
        if _calls(ast.parse(p.read_text())) & READING and str(p.relative_to(SRC)) not in NOT_RECIPES
    )
    assert readers == ["config/loader.py"]


RECIPE_MODULES = ("visionr1.config", "visionr1.recipe", "visionr1.pipeline", "visionr1.coldstart.config",
                  "visionr1.insight.config", "visionr1.data.spec", "visionr1.evaluation.spec")


def test_no_private_helper_of_the_recipe_modules_is_imported_elsewhere():
    found = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(RECIPE_MODULES):
                found += [f"{p.relative_to(SRC)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []
