"""The pipeline recipe and `visionr1 run`: one schema of sections, each the schema of its own command; sections
that read each other's outputs; every shipped recipe loads; a run killed in the middle resumes without redoing
what was finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.coldstart.config import load_coldstart_recipe
from visionr1.config.base import RecipeError
from visionr1.config.loader import read_recipe
from visionr1.pipeline.config import PipelineRecipe, load_pipeline
from visionr1.pipeline.load import is_pipeline, load_coldstart_section, load_training_recipe
from visionr1.recipe import TrainRecipe, load_recipe

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

# A tiny pipeline with every section: counting task, a handful of items, 2-step SFT + 2-step GRPO, small eval.
TINY = """\
# visionr1 run tiny.yaml
name: tiny-pipeline
seed: 3
data: {name: counting, coldstart_items: 6, rl_items: 4, heldout_items: 3}
tiny_model: {family: qwen2_5_vl, size: test}
coldstart:
  backends: {oracle: {type: oracle}}
  pseudo_cot: {backend: oracle}
  description: {backend: oracle}
  reasoning: {backend: oracle}
model: {dtype: float32, max_pixels: 12544}
report_to: []
logging: {completions_per_log: 1, progress: none, plot: false}
stages:
  - name: sft
    type: sft
    sft: {max_steps: 2, per_device_train_batch_size: 2, max_length: 512, bf16: false, gradient_checkpointing: false}
  - name: grpo
    type: grpo
    grpo: {max_steps: 2, max_completion_length: 8, num_generations: 2, per_device_train_batch_size: 2,
           beta: 0.0, bf16: false, gradient_checkpointing: false}
eval: {samples: 1, greedy: true, max_new_tokens: 6, batch_size: 2, seed: 5}
"""


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(SRC)}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(var, None)
    return env


# ----------------------------------------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------------------------------------


SHIPPED = sorted(p for p in (REPO / "recipes").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_every_shipped_recipe_loads(path: Path):
    raw = read_recipe(path)
    if is_pipeline(raw):
        p = load_pipeline(path)
        assert p.sections()
    elif "reasoner" in raw:  # Insight-V data (visionr1 insight data): not a section of the pipeline recipe
        from visionr1.insight.config import load_insight_recipe

        load_insight_recipe(path)
    elif "backends" in raw:
        load_coldstart_recipe(path)
    else:
        recipe = load_recipe(path)
        # a training recipe is a pipeline recipe with one section, trained the same way
        p = load_pipeline(path)
        assert p.sections() == ["train"]
        assert [s.name for s in p.training_recipe().stages] == [s.name for s in recipe.stages]


def test_sections_read_each_others_outputs_and_explicit_paths_win(tiny_recipe: Path, tmp_path: Path):
    run = tmp_path / "run"
    p = load_pipeline(tiny_recipe, [f"output_dir={run}"])
    assert p.sections() == ["data", "tiny_model", "coldstart", "train", "eval"]
    train = p.training_recipe()
    assert isinstance(train, TrainRecipe) and train.output_dir == str(run / "train")
    assert p.coldstart.input.path == str(run / "data" / "coldstart.jsonl")
    assert p.coldstart.output_dir == str(run / "coldstart") and p.coldstart.name == "tiny-pipeline-coldstart"
    assert train.model.path == str(run / "model")
    assert [s.dataset.path for s in train.stages] == [str(run / "coldstart" / "cold_start.jsonl"), str(run / "data" / "rl.jsonl")]
    assert p.eval.data == str(run / "data" / "test.jsonl")
    # the cold start's output moves: the SFT data follows; an explicit dataset or eval path is kept
    own = tmp_path / "mine.jsonl"
    p = load_pipeline(tiny_recipe, [f"output_dir={run}", f"coldstart.output_dir={tmp_path / 'cs'}",
                                    f"stages.grpo.dataset={{format: jsonl, path: {own}}}", f"eval.data={own}"])
    assert p.training_recipe().stages[0].dataset.path == str(tmp_path / "cs" / "cold_start.jsonl")
    assert p.training_recipe().stages[1].dataset.path == str(own)
    assert p.eval.data == str(own)
    # a DPO stage samples the RL prompts too, unless it trains on a pairs file
    dpo = tmp_path / "dpo.yaml"
    dpo.write_text("name: d\ndata: {}\nmodel: {path: tiny:qwen2_5_vl/test}\n"
                   "stages: [{name: a, type: dpo}, {name: b, type: dpo, pairs_file: pairs.jsonl}]\n")
    stages = load_pipeline(dpo, [f"output_dir={run}"]).training_recipe().stages
    assert stages[0].dataset.path == str(run / "data" / "rl.jsonl") and stages[1].dataset is None


def test_train_and_coldstart_take_their_section(tiny_recipe: Path, tmp_path: Path):
    overrides = [f"output_dir={tmp_path / 'run'}"]
    p = load_pipeline(tiny_recipe, overrides)
    assert load_training_recipe(tiny_recipe, overrides).model_dump() == p.training_recipe().model_dump()
    assert load_coldstart_section(tiny_recipe, overrides).model_dump() == p.coldstart.model_dump()
    # `visionr1 train PIPELINE --dry-run`: the stages with the data the earlier sections make
    result = CliRunner().invoke(app, ["train", str(tiny_recipe), *overrides, "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["run_dir"] == str(tmp_path / "run" / "train")
    assert [s["name"] for s in plan["stages"]] == ["sft", "grpo"]
    # the earlier sections have not run: the error names the missing inputs and the command that makes them
    result = CliRunner().invoke(app, ["train", str(tiny_recipe), *overrides])
    assert result.exit_code == 2
    assert "cold_start.jsonl: no such file" in result.output and f"visionr1 run {tiny_recipe}" in result.output
    # a section the recipe lacks: the error says which sections it has
    data_only = tmp_path / "data_only.yaml"
    data_only.write_text("name: d\ndata: {coldstart_items: 2}\n")
    with pytest.raises(RecipeError, match=r"without a stages section.*its sections: data"):
        load_training_recipe(data_only)
    with pytest.raises(RecipeError, match=r"without a coldstart section"):
        load_coldstart_section(data_only)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.nme=counting", "data.nme: unknown key; did you mean name?"),
        ("data.coldstart_items=0", "data.coldstart_items: Input should be greater than or equal to 1"),
        ("tiny_model.sise=demo", "tiny_model.sise: unknown key; did you mean size?"),
        ("coldstart.pseudo_cot.backnd=oracle", "coldstart.pseudo_cot.backnd: unknown key; did you mean backend?"),
        ("coldstart.reasoning.backend=orcle", "coldstart.reasoning.backend: unknown backend 'orcle'; did you mean oracle?"),
        ("coldstart.backends.oracle.typ=oracle", "coldstart.backends.oracle.typ: unknown key; did you mean type?"),
        ("model.pth=x", "model.pth: unknown key; did you mean path?"),
        ("stages.grpo.grpo.num_generaton=2", "stages[1].grpo.num_generaton: unknown key; did you mean num_generations?"),
        ("stages.sft.sft.learning_rat=1", "stages[0].sft.learning_rat: unknown key; did you mean learning_rate?"),
        ("stages.1.name=sft", "stage names must be unique"),
        ("eval.temprature=0.6", "eval.temprature: unknown key; did you mean temperature?"),
        ("eval.top_p=2", "eval.top_p: Input should be less than or equal to 1"),
        ("stagse=[]", "stagse: unknown key; did you mean stages?"),
        ("logging.progres=none", "logging.progres: unknown key; did you mean progress?"),
    ],
)
def test_a_typo_in_any_section_names_its_path(tiny_recipe: Path, override: str, message: str):
    with pytest.raises(RecipeError) as exc:
        load_pipeline(tiny_recipe, [override])
    assert message in str(exc.value) and str(tiny_recipe) in str(exc.value)


def test_sections_that_need_another_say_so(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nstages: [{name: s, type: sft, dataset: {format: jsonl, path: x.jsonl}}]\n")
    with pytest.raises(RecipeError, match="stages need a model"):
        load_pipeline(path)
    path.write_text("name: p\nmodel: {path: tiny:qwen2_5_vl/test}\neval: {samples: 1}\n")
    with pytest.raises(RecipeError, match="eval.data: the held-out items"):
        load_pipeline(path)
    path.write_text("name: p\nmodel: {path: tiny:qwen2_5_vl/test}\nstages: [{name: s, type: sft}]\n")
    with pytest.raises(RecipeError, match=r"stages\[0\].dataset: Field required"):  # no section makes SFT data
        load_pipeline(path)


def test_the_demo_recipe_dry_runs_as_a_pipeline(tmp_path: Path):
    result = CliRunner().invoke(app, ["run", str(REPO / "recipes" / "demo.yaml"), "--dry-run", "-o", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["sections"] == ["data", "tiny_model", "coldstart", "train", "eval"]
    assert plan["data"]["outputs"][0] == str(tmp_path / "d" / "data" / "coldstart.jsonl")
    assert plan["coldstart"]["pseudo_cot"]["backend"] == "oracle"
    assert [s["name"] for s in plan["train"]["stages"]] == ["sft", "grpo-1", "grpo-2"]
    assert plan["train"]["stages"][1]["trl_config"]["num_generations"] == 8  # TRL's config, built by the planner
    assert plan["train"]["stages"][0]["dataset"]["path"] == str(tmp_path / "d" / "coldstart" / "cold_start.jsonl")
    assert set(plan["eval"]["checkpoints"]) == {"base", "sft", "grpo-1", "grpo-2"}
    assert not (tmp_path / "d").exists()  # a dry run writes nothing
    # planned for more processes: the stages' TRL configs are built for that many; a shape that cannot work fails
    result = CliRunner().invoke(app, ["run", str(REPO / "recipes" / "demo.yaml"), "--dry-run", "--num-processes", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train"]["world_size"] == 2
    result = CliRunner().invoke(app, ["run", str(REPO / "recipes" / "demo.yaml"), "stages.grpo-2.grpo.num_generations=3",
                                      "--dry-run"])
    assert result.exit_code == 2 and "num_generations" in result.output


def test_pipeline_schema_fields_all_described():
    from visionr1.config.base import explain_model

    rows = list(explain_model(PipelineRecipe))
    paths = {r[0] for r in rows}
    assert {"data.rl_items", "coldstart.pseudo_cot.backend", "stages[]<type=grpo>.grpo", "eval.temperature"} <= paths
    assert all(r[3] for r in rows)
    result = CliRunner().invoke(app, ["recipe", "explain", "eval", "--pipeline"])
    assert result.exit_code == 0 and "eval.temperature" in result.output and "eval.samples" in result.output
    result = CliRunner().invoke(app, ["recipe", "check", str(REPO / "recipes" / "demo.yaml"), "data.rl_items=5"])
    assert result.exit_code == 0 and json.loads(result.output)["data"]["rl_items"] == 5


# ----------------------------------------------------------------------------------------------------------
# running, killing, resuming
# ----------------------------------------------------------------------------------------------------------


def test_a_changed_finished_section_is_refused(tmp_path: Path):
    from rich.console import Console

    from visionr1.pipeline.run import PipelineError, main

    path = tmp_path / "d.yaml"
    path.write_text("name: d\nseed: 1\ndata: {coldstart_items: 2, rl_items: 2, heldout_items: 2}\n")
    run = tmp_path / "run"
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    main(load_pipeline(path, [f"output_dir={run}"]), console=quiet)
    first = (run / "data" / "rl.jsonl").stat().st_mtime_ns
    main(load_pipeline(path, [f"output_dir={run}"]), console=quiet)  # finished: not made again
    assert (run / "data" / "rl.jsonl").stat().st_mtime_ns == first
    with pytest.raises(PipelineError, match=r"data section was made with other settings \(seed\)"):
        main(load_pipeline(path, [f"output_dir={run}", "seed=2"]), console=quiet)


def test_stages_that_cannot_train_fail_before_the_first_section(tiny_recipe: Path, tmp_path: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tiny_recipe), "stages.grpo.grpo.num_generations=3", "-o", str(run)])
    assert result.exit_code == 2
    assert "num_generations" in result.output and "grpo" in result.output
    assert not (run / "data").exists() and not (run / "coldstart").exists()  # nothing was made first


def _mtimes(run: Path) -> dict[str, int]:
    files = ["data/coldstart.jsonl", "data/rl.jsonl", "data/test.jsonl", "model/config.json",
             "coldstart/cold_start.jsonl", "train/sft/final/model.safetensors"]
    return {f: (run / f).stat().st_mtime_ns for f in files}


@pytest.mark.slow
def test_run_killed_during_training_resumes_without_redoing_finished_sections(tiny_recipe: Path, tmp_path: Path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "visionr1", "run", str(tiny_recipe), "--output-dir", str(run)]
    env = {**_env(tmp_path), "VISIONR1_CACHE": str(tmp_path / "cache")}
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run / "train" / "sft" / "final").is_dir():  # SFT finished: GRPO's process is starting or training
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "SFT did not finish in time"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its stage process, mid-training
    proc.wait()
    assert not (run / "train" / "grpo" / "final").exists() and not (run / "eval").exists()
    before = _mtimes(run)
    sft_started = json.loads((run / "train" / "manifest.json").read_text())["stages"][0].get("started")

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _mtimes(run) == before  # data, model, cold start and the SFT weights were not made again
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train"]["trained"] == ["grpo"]  # only the unfinished stage trained
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert {s["name"]: s["status"] for s in manifest["stages"]} == {"sft": "done", "grpo": "done"}
    assert manifest["stages"][0].get("started") == sft_started
    rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["step"] for r in rows if r["kind"] == "train" and r["stage"] == "grpo") == [1, 2]
    assert set(summary["eval"]["heldout"]) == {"base", "sft", "grpo"}  # {split: {stage: scores}}
    for name in ("base", "sft", "grpo"):
        s = json.loads((run / "eval" / name / "summary.json").read_text())
        assert s["n"] == 3 and s["samples"] == 1 and 0 <= s["accuracy"] <= 1
        assert len((run / "eval" / name / "greedy" / "predictions.jsonl").read_text().splitlines()) == 3
    # a third run: everything finished, nothing redone
    evals = {n: (run / "eval" / n / "summary.json").stat().st_mtime_ns for n in ("base", "sft", "grpo")}
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["train"]["trained"] == []
    assert {n: (run / "eval" / n / "summary.json").stat().st_mtime_ns for n in evals} == evals
    assert _mtimes(run) == before

    # each command on its own section of the same recipe: eval heldout (finished: read back), coldstart (resumed)
    result = CliRunner().invoke(app, ["eval", "heldout", str(tiny_recipe), "-o", str(run)])
    assert result.exit_code == 0, result.output
    assert "grpo: accuracy" in result.output and "not evaluated again" in result.output
    assert {n: (run / "eval" / n / "summary.json").stat().st_mtime_ns for n in evals} == evals
    result = CliRunner().invoke(app, ["coldstart", str(tiny_recipe), f"output_dir={run}"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "coldstart" / "report.json").read_text())["kept"] == 6
