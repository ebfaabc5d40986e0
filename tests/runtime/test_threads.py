"""The CPU thread policy: the auto rule, the recipe field, the --cpu-threads flags, and the manifest record."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from visionr1 import runtime
from visionr1.cli import app
from visionr1.config.base import RecipeError
from visionr1.recipe import load_recipe

runner = CliRunner()

RECIPE = """
name: t
model: {{path: Qwen/Qwen2.5-VL-7B-Instruct}}
{extra}
stages:
  - name: g1
    type: grpo
    dataset: {{format: jsonl, path: x.jsonl}}
    grpo: {{max_completion_length: 8, num_generations: 2, per_device_train_batch_size: 2}}
"""


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "load", "local", "omp", "expected"),
    [
        (2, 0.0, 1, None, 1),      # idle 2-core machine: one core for torch, one for the rest (measured)
        (2, 5.3, 1, None, 1),      # a shared machine: never below 1
        (4, 0.4, 1, None, 3),      # load rounds to 0
        (64, 10.0, 1, None, 53),   # a big host with other jobs: the free cores less one
        (64, 0.0, 8, None, 7),     # 8 ranks on one host share its cores
        (64, 60.0, 8, None, 3),    # ... and the load they and others make
        (2, 0.0, 1, "3", 3),       # an explicit OMP_NUM_THREADS wins (torchrun sets it per rank)
        (2, 0.0, 1, "0", 1),       # ... unless it is not a usable count
        (2, 0.0, 1, "x", 1),
    ],
)
def test_auto_rule(cores, load, local, omp, expected):
    threads, reason = runtime.auto_threads(cores, load, local, omp)
    assert threads == expected and reason


def test_resolve_and_apply(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    monkeypatch.setattr(runtime, "load_average", lambda: 1.2)
    assert runtime.resolve_cpu_threads("auto")[0] == 3
    assert runtime.resolve_cpu_threads(None) == (None, "torch default")
    rec = runtime.apply_cpu_threads(1)
    assert torch.get_num_threads() == 1
    assert rec["setting"] == 1 and rec["torch_threads"] == 1 and rec["reason"] == "cpu_threads=1"
    assert runtime.summary_line(rec) == "1 torch thread (cpu_threads=1)"
    with pytest.raises(ValueError, match="'auto' or a whole number >= 1"):
        runtime.resolve_cpu_threads(0)


@pytest.mark.parametrize(("value", "ok"), [("auto", True), ("1", True), ("4", True), ("0", False), ("many", False)])
def test_recipe_field(tmp_path, value, ok):
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE.format(extra=f"cpu_threads: {value}"))
    if ok:
        assert load_recipe(p).cpu_threads == (value if value == "auto" else int(value))
    else:
        with pytest.raises(RecipeError, match="cpu_threads"):
            load_recipe(p)
    p.write_text(RECIPE.format(extra=""))
    assert load_recipe(p).cpu_threads == "auto"


def test_train_flag_overrides_the_recipe(tmp_path, monkeypatch):
    import visionr1.training.runner as runner_mod

    seen = {}
    monkeypatch.setattr(runner_mod, "main", lambda recipe, **kw: seen.setdefault("recipe", recipe) and {})
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE.format(extra="cpu_threads: 2"))
    result = runner.invoke(app, ["train", str(p), "--cpu-threads", "1"])
    assert result.exit_code == 0, result.output
    assert seen["recipe"].cpu_threads == 1
    seen.clear()
    assert runner.invoke(app, ["train", str(p)]).exit_code == 0 and seen["recipe"].cpu_threads == 2
    bad = runner.invoke(app, ["train", str(p), "--cpu-threads", "two"])
    assert bad.exit_code == 2 and "--cpu-threads 'two': use auto or a whole number >= 1" in bad.output


def test_eval_run_applies_the_flag(tmp_path, monkeypatch):
    import visionr1.evaluation.run as run_mod

    monkeypatch.setattr(run_mod, "run_benchmark", lambda *a, **kw: (_ for _ in ()).throw(FileNotFoundError("stop")))
    result = runner.invoke(app, ["eval", "run", "-b", "synthetic", "--model", str(tmp_path), "--data", str(tmp_path),
                                 "-o", str(tmp_path / "o"), "--cpu-threads", "1"])
    assert "1 torch thread (cpu_threads=1)" in result.output and torch.get_num_threads() == 1


def test_coldstart_applies_it_only_with_a_local_backend(tmp_path, monkeypatch):
    import visionr1.coldstart.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_coldstart", lambda *a, **kw: {})
    p = tmp_path / "c.yaml"
    p.write_text(
        "name: c\ninput: {format: synthetic, task: counting, n: 2}\ncpu_threads: 1\n"
        "backends: {o: {type: oracle}, m: {type: local, model: m}}\n"
        "pseudo_cot: {backend: m}\ndescription: {backend: o}\nreasoning: {backend: o}\n"
    )
    torch.set_num_threads(2)
    result = runner.invoke(app, ["coldstart", str(p)])
    assert result.exit_code == 0, result.output
    assert "local backend: 1 torch thread (cpu_threads=1)" in result.output and torch.get_num_threads() == 1
    p.write_text(p.read_text().replace(", m: {type: local, model: m}", "").replace("{backend: m}", "{backend: o}"))
    torch.set_num_threads(2)
    result = runner.invoke(app, ["coldstart", str(p), "--cpu-threads", "1"])
    assert result.exit_code == 0 and "torch thread" not in result.output and torch.get_num_threads() == 2


def test_the_manifest_records_each_attempts_threads(tmp_path):
    from visionr1.training.manifest import Manifest, recipe_digest

    runtime.apply_cpu_threads(1)
    manifest = Manifest.create(tmp_path, {"name": "t", "stages": []}, world_size=1)
    manifest.note_attempt(1)
    record = json.loads((tmp_path / "manifest.json").read_text())["history"][-1]["cpu_threads"]
    assert record["setting"] == 1 and record["torch_threads"] == 1 and record["cores"] >= 1
    # the thread count is how fast, not what is trained: a resumed run may change it
    assert recipe_digest({"name": "t", "cpu_threads": 1}) == recipe_digest({"name": "t", "cpu_threads": "auto"})


def test_doctests():
    import doctest

    result = doctest.testmod(runtime)
    assert result.attempted >= 4 and result.failed == 0
