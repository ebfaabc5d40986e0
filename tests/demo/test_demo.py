"""`visionr1 demo`: the shipped recipe, its validation, and a smoke run of the whole pipeline.

The smoke run is the real demo with a drastically reduced override set (the `test`-size model, a handful of
items, one or two steps per stage, completions of a few tokens): it proves every stage runs and the report
has its contract shape, in well under a minute and a half. It measures nothing: `make demo` and
`benchmarks/demo_seeds.py` do.
"""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.config.base import RecipeError
from visionr1.demo import pipeline, report
from visionr1.demo.pipeline import MARKER, DemoError, _prepare_run_dir, default_recipe_path, load_demo_recipe
from visionr1.evaluation import heldout

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "demo.yaml"
PTST = REPO / "recipes" / "demo-ptst.yaml"

# Every stage runs, nothing is measured: tiny model, a few items, a step or two, a few tokens.
SMOKE = [
    "data.coldstart_items=6", "data.rl_items=4", "data.heldout_items=3", "data.validation_items=2", "eval.split=both",
    "tiny_model.size=test",
    "stages.sft.sft.max_steps=2", "stages.sft.sft.per_device_train_batch_size=2",
    "stages.grpo-1.grpo.max_steps=1", "stages.grpo-1.grpo.max_completion_length=8",
    "stages.grpo-1.grpo.num_generations=2", "stages.grpo-1.grpo.per_device_train_batch_size=4",
    "stages.grpo-2.grpo.max_steps=1", "stages.grpo-2.grpo.max_completion_length=12",
    "stages.grpo-2.grpo.num_generations=2", "stages.grpo-2.grpo.per_device_train_batch_size=2",
    "eval.max_new_tokens=8", "eval.batch_size=2", "eval.samples=2", "eval.examples=1",
]


# ----------------------------------------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------------------------------------


def test_shipped_recipe_is_the_default_and_is_ptst():
    assert default_recipe_path() == RECIPE
    first = RECIPE.read_text().splitlines()[0]
    assert first.startswith("#") and "visionr1 demo" in RECIPE.read_text().split("\n\n")[0]
    r = load_demo_recipe(RECIPE, ["output_dir=/tmp/run"])
    assert r.sections() == ["data", "tiny_model", "coldstart", "train", "eval"]  # a pipeline recipe with every section
    assert [s.type for s in r.stages] == ["sft", "grpo", "grpo"]
    assert [s.name for s in r.stages] == ["sft", "grpo-1", "grpo-2"]
    g1, g2 = r.stages[1].grpo, r.stages[2].grpo
    # PTST: the completion limit grows while the group shrinks
    assert g2["max_completion_length"] > g1["max_completion_length"]
    assert g2["num_generations"] < g1["num_generations"]
    assert [(w.name, w.weight) for w in r.stages[1].rewards] == [("hard_format_result", 1.0)]
    # each section reads the previous one's output: data -> cold start -> SFT; data -> GRPO and eval
    tr = r.training_recipe()
    assert r.coldstart.input.path == "/tmp/run/data/coldstart.jsonl"
    assert tr.model.path == "/tmp/run/model" and tr.output_dir == "/tmp/run/train"
    assert tr.stages[0].dataset.path == "/tmp/run/coldstart/cold_start.jsonl"
    assert tr.stages[2].dataset.path == "/tmp/run/data/rl.jsonl"
    assert r.eval.data == "/tmp/run/data/test.jsonl"
    # measured honestly: a validation split to choose settings on; the shipped demo reports the held-out split
    assert r.data.validation_items > 0 and r.eval.validation_data == "/tmp/run/data/val.jsonl"
    assert r.eval.split == "heldout"


def test_ptst_recipe_is_the_demo_with_an_overthinking_cold_start():
    demo, r = load_demo_recipe(RECIPE), load_demo_recipe(PTST, ["output_dir=/tmp/ptst"])
    assert r.name == "demo-ptst" and r.coldstart.backends["oracle"].max_reflections > 0
    assert r.coldstart.filters.max_repeated_ngram_fraction == 1.0  # the re-checks repeat on purpose: not loops
    g1, g2 = r.stages[1].grpo, r.stages[2].grpo
    assert g1["max_completion_length"] < g2["max_completion_length"] and g1["num_generations"] > g2["num_generations"]
    assert r.eval.max_new_tokens >= g2["max_completion_length"]  # long enough to show what is cut off
    # everything not about the story is the demo's
    assert r.model.max_pixels == demo.model.max_pixels and r.tiny_model == demo.tiny_model
    assert (r.data.name, r.data.rl_items, r.eval.split) == (demo.data.name, demo.data.rl_items, "heldout")
    assert [w.name for w in r.stages[2].rewards] == [w.name for w in demo.stages[2].rewards]
    assert g1["learning_rate"] == demo.stages[1].grpo["learning_rate"]


def test_ptst_recipe_dry_runs_and_make_names_it():
    result = CliRunner().invoke(app, ["run", str(PTST), "--dry-run", "-o", "/tmp/ptst-dry"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["coldstart"]["backends"]["oracle"]["max_reflections"] == 4
    assert [s["trl_config"].get("max_completion_length") for s in plan["train"]["stages"]] == [None, 192, 256]
    make = subprocess.run(["make", "-n", "demo-ptst"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert make.returncode == 0, make.stderr
    assert "visionr1 demo recipes/demo-ptst.yaml" in make.stdout


def test_overrides_by_dotted_key_and_stage_name():
    r = load_demo_recipe(RECIPE, ["seed=3", "stages.grpo-2.grpo.max_steps=7", "data.difficulty_overrides={max_objects: 5}"])
    assert r.seed == 3 and r.stages[2].grpo["max_steps"] == 7
    assert r.data.resolved_difficulty().max_objects == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.nme=counting", "data.nme: unknown key; did you mean name?"),
        ("stages.grpo-1.grpo.num_generaton=4", "stages[1].grpo.num_generaton: unknown key; did you mean num_generations?"),
        ("stages.sft.enabled=false", "stages must be one sft stage then grpo stages; got types ['grpo', 'grpo']"),
        ("stages.nope.grpo.max_steps=1", "no stage named 'nope'"),
        ("data.difficulty_overrides={max_objets: 5}", "unknown difficulty field(s) ['max_objets']"),
        ("eval=null", "a demo recipe has every section; missing: eval"),
    ],
)
def test_recipe_errors_name_the_key_and_the_fix(override, message):
    with pytest.raises(RecipeError) as exc:
        load_demo_recipe(RECIPE, [override])
    assert message in str(exc.value)


def test_cli_takes_overrides_without_a_recipe_and_reports_errors():
    result = CliRunner().invoke(app, ["demo", "data.nme=counting"])
    assert result.exit_code == 2
    assert "data.nme: unknown key; did you mean name?" in result.output


def test_a_fresh_run_clears_only_a_demo_directory(tmp_path):
    r = load_demo_recipe()
    from rich.console import Console

    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(DemoError, match="not a demo run directory"):
        _prepare_run_dir(other, r, resume=False, console=quiet)
    assert (other / "precious.txt").is_file()

    run = tmp_path / "run"
    _prepare_run_dir(run, r, resume=False, console=quiet)
    (run / "old.txt").write_text("previous run")
    _prepare_run_dir(run, r, resume=False, console=quiet)
    assert (run / MARKER).is_file() and not (run / "old.txt").exists()
    with pytest.raises(DemoError, match="other settings"):
        _prepare_run_dir(run, load_demo_recipe(RECIPE, ["seed=5"]), resume=True, console=quiet)


def test_doctests():
    for module in (pipeline, heldout, report):
        assert doctest.testmod(module).failed == 0


# ----------------------------------------------------------------------------------------------------------
# the smoke run
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_smoke_run_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "VISIONR1_CACHE": str(tmp_path / "cache")}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, str(Path(sys.executable).with_name("visionr1")), "demo", *SMOKE, "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # --- report.json: the contract of issue 8 -----------------------------------------------------------------
    rep = json.loads((out / "report.json").read_text())
    assert rep["stages"] == ["base", "sft", "grpo-1", "grpo-2"]
    # eval.split=both: the headline numbers are the held-out split's; the validation split is beside them
    assert rep["split"] == "heldout" == rep["gain"]["split"]
    assert {s: (rep["validation"][s]["split"], rep["validation"][s]["n"]) for s in rep["stages"]} == {
        s: ("validation", 2) for s in rep["stages"]}
    assert rep["task"]["validation"] == 2
    for stage in rep["stages"]:
        h = rep["heldout"][stage]
        assert h["n"] == 3 and h["samples"] == 2 and h["temperature"] == 0.6 and h["split"] == "heldout"
        assert 0 <= h["truncated_rate"] <= 1
        assert 0 <= h["accuracy"] <= h["pass_at_k"] <= 1 and 0 <= h["format"] <= 1
        assert 0 < h["mean_completion_tokens"] <= 8
        assert set(h["greedy"]) >= {"accuracy", "format", "mean_completion_tokens"}
    assert rep["wall_seconds"] > 0
    assert set(rep["phases"]) >= {"data", "coldstart", "train", "eval", "train:sft", "train:grpo-1", "train:grpo-2",
                                  "eval:base", "eval:grpo-2"}
    assert rep["gain"]["grpo_over_sft"] == pytest.approx(
        100 * (rep["heldout"]["grpo-2"]["accuracy"] - rep["heldout"]["sft"]["accuracy"]))
    assert rep["coldstart"]["kept"] == 6 and "ORACLE" in rep["coldstart"]["oracle_note"]
    assert rep["training"]["grpo-1"]["steps"] == 1 and rep["training"]["sft"]["steps"] == 2
    assert rep["training"]["grpo-2"]["max_completion_length"] == 12
    assert 0 <= rep["training"]["grpo-1"]["clipped_ratio_first_quarter"] <= 1  # PTST: what the limit cut off

    # --- every stage ran: its weights, its logged steps -------------------------------------------------------
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert {s["name"]: s["status"] for s in manifest["stages"]} == {"sft": "done", "grpo-1": "done", "grpo-2": "done"}
    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows if r["kind"] == "train"} == {"sft", "grpo-1", "grpo-2"}
    for stage in rep["stages"]:
        for decoding in ("sample-0", "sample-1", "greedy"):
            assert len((out / "eval" / stage / decoding / "predictions.jsonl").read_text().split("\n")) == 3 + 1

    # --- report.md with its plot, and the closing table on the console --------------------------------------
    md = (out / "report.md").read_text()
    assert "| stage | accuracy | format | mean completion tokens | truncated |" in md
    assert "**held-out split** (items never trained on and never used to choose settings" in md
    assert "**validation split** (items for choosing settings" in md and "2 validation items" in md
    assert "| grpo-2 |" in md and "![" in md and "oracle" in md.lower()
    assert (out / "report.png").stat().st_size > 10_000
    assert "held-out results" in proc.stdout and "GRPO over SFT (held-out)" in proc.stdout
