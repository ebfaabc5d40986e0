"""Inputs that change under a run: the recipe file edited while a stage trains, and (on resume) a stage whose
settings or data are no longer those it started with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VISIONR1 = str(Path(sys.executable).with_name("visionr1"))


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("changed-data")
    make_synthetic("counting", 6, 0, root)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    sft = [{**r, "completion": f"<think>count</think><answer> Final Answer:{r['solution']} </answer>"} for r in rows]
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return {"grpo": root / "train.jsonl", "sft": root / "sft.jsonl"}


def _recipe(path: Path, grpo_steps: int, extra: str = "") -> None:
    path.write_text(f"""include: {REPO / 'recipes' / 'tiny' / 'ptst.yaml'}
name: edited
stages:
  sft: {{sft: {{max_steps: 1}}}}
  ptst-1:
    grpo: {{max_steps: {grpo_steps}}}
    rewards: [{{name: {REPO / 'recipes' / 'tiny' / 'toy_rewards.py'}:letters}}]
{extra}  ptst-2: {{enabled: false}}
""")


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["other-value", "invalid"])
def test_editing_the_recipe_while_a_stage_trains_changes_nothing(tmp_path, tiny_model_dir, data, edit):
    """Two stages, each in a process of its own: the YAML is edited once the run has started (stage 1 trains);
    stage 2 still trains what was checked at the start."""
    recipe = tmp_path / "recipe.yaml"
    _recipe(recipe, grpo_steps=1)
    run = tmp_path / "run"
    cmd = [sys.executable, VISIONR1, "train", str(recipe), f"model.path={tiny_model_dir}",
           f"stages.sft.dataset.path={data['sft']}", f"stages.ptst-1.dataset.path={data['grpo']}", "--output-dir", str(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (run / "manifest.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert (run / "manifest.json").is_file()
    if edit == "other-value":
        _recipe(recipe, grpo_steps=2)
    else:
        recipe.write_text("stages: [this is: {not a recipe\n")
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-4000:]
    stages = {s["name"]: s for s in json.loads((run / "manifest.json").read_text())["stages"]}
    assert stages["ptst-1"]["status"] == "done" and stages["ptst-1"]["global_step"] == 1
    assert json.loads((run / "recipe.json").read_text())["stages"][1]["grpo"]["max_steps"] == 1


def test_the_resolved_recipe_loads_back_as_itself(tmp_path):
    """Every shipped training recipe: what the stage processes read (RUN/recipe.json) is the recipe checked."""
    from visionr1.config.base import RecipeError
    from visionr1.pipeline.load import load_training_recipe
    from visionr1.training.runner import write_resolved_recipe

    checked = 0
    for path in sorted((REPO / "recipes").rglob("*.yaml")):
        try:
            recipe = load_training_recipe(path, ["cpu_threads=1"])
        except RecipeError:
            continue  # not a training recipe (cold start, evaluation, ...)
        run = tmp_path / path.stem
        write_resolved_recipe(recipe, run)
        again = load_training_recipe(run / "recipe.json", [])
        assert again.model_dump(mode="json") == recipe.model_dump(mode="json"), path
        checked += 1
    assert checked >= 8
