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

from .conftest import train_env

REPO = Path(__file__).resolve().parents[2]
VISIONR1 = str(Path(sys.executable).with_name("visionr1"))


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
    proc = subprocess.Popen(cmd, cwd=REPO, env=train_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


# ----------------------------------------------------------------------------------------------------------
# resuming a stage whose settings or data changed since it started
# ----------------------------------------------------------------------------------------------------------


def _edit_record(data: Path) -> Path:
    """The same path, other content: one record's answer changed."""
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[-1]["completion"] = rows[-1]["completion"].replace("Final Answer:", "Final Answer: 7 +")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _repaint_image(data: Path) -> Path:
    """The same record and image path, another picture."""
    from PIL import Image

    row = json.loads(data.read_text().splitlines()[0])
    image = data.parent / row["images"][0]
    Image.new("RGB", (64, 48), (1, 2, 3)).save(image)
    return image


# (change to the data: edits a file in place and returns it; or overrides), the words the refusal must hold
CHANGES = {
    "data-record-edited": (_edit_record, (), ["stage sft would resume from", "checkpoint-2", "data:"]),
    "image-repainted": (_repaint_image, (), ["stage sft would resume from", "checkpoint-2", "data:"]),
    "learning-rate": (None, ("stages.sft.sft.learning_rate=0.01",), ["stage sft would resume from", "checkpoint-2", "sft.learning_rate: 0.0001 -> 0.01"]),
    "max-length": (None, ("stages.sft.sft.max_length=900",), ["stage sft would resume from", "checkpoint-2", "sft.max_length: 1024 -> 900"]),
    "save-steps": (None, ("stages.sft.sft.save_steps=5",), ["stage sft would resume from", "checkpoint-2", "sft.save_steps: 1 -> 5", "--allow-changed save_steps"]),
    # the run-wide settings: refused for any stage, started or finished (the check that was already there)
    "seed": (None, ("seed=7",), ["trained with different settings (seed)"]),
    "freeze": (None, ("model.freeze=[vision_tower]",), ["trained with different settings (model)"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CHANGES))
def test_resuming_a_stage_whose_settings_or_data_changed_is_refused(sft_run, tmp_path, case):
    run = sft_run.unfinished(tmp_path)
    assert json.loads((run / "manifest.json").read_text())["stages"][0]["fingerprint"]["data"]
    edit, overrides, words = CHANGES[case]
    saved: dict[Path, tuple[bytes, int]] = {}
    if edit is not None:  # the run's own data file (shared by the session's tests): put back afterwards
        for path in [sft_run.data, *sorted(sft_run.data.parent.rglob("*.png"))]:
            saved[path] = (path.read_bytes(), path.stat().st_mtime_ns)
        edit(sft_run.data)
    try:
        refused = sft_run.train(run, *overrides)
    finally:
        for path, (content, mtime) in saved.items():
            path.write_bytes(content)
            os.utime(path, ns=(mtime, mtime))
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-3000:]
    error = " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr and "new --output-dir" in error, error[-3000:]
    assert all(w in error for w in words), error[-3000:]
    if case == "save-steps":  # how the stage is saved, not what it learns: allowed when asked
        allowed = sft_run.train(run, *overrides, "--allow-changed", "save_steps")
        assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-3000:]
    if edit is not None:  # the data put back as it was: the stage resumes
        resumed = sft_run.train(run)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]


def test_allow_changed_takes_only_fields_that_do_not_change_what_is_learned():
    from visionr1.training.fingerprint import check_allowed

    assert check_allowed(["save_steps", "grpo.logging_steps", "report_to"]) is None
    for field in ("learning_rate", "data", "grpo.num_generations", "rewards", "seed"):
        assert field in (check_allowed([field]) or ""), field


def test_grpo_fingerprint_names_rewards_and_group_size():
    from visionr1.recipe import load_recipe
    from visionr1.training.fingerprint import changed_fields, stage_fingerprint

    base = REPO / "recipes" / "tiny" / "grpo.yaml"
    fps = {}
    for name, overrides in {"base": [], "rewards": ["stages.ptst-1.rewards=[{name: format}]"],
                            "group": ["stages.ptst-1.grpo.num_generations=2"],
                            "lr": ["stages.ptst-1.grpo.learning_rate=1e-3"]}.items():
        recipe = load_recipe(base, overrides)
        fps[name] = stage_fingerprint(recipe, 0, None)
    assert changed_fields(fps["base"], fps["rewards"]) == ["grpo.reward_weights", "rewards"]
    assert changed_fields(fps["base"], fps["group"]) == ["grpo.num_generations"]
    assert changed_fields(fps["base"], fps["lr"]) == ["grpo.learning_rate"]
