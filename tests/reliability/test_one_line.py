"""Bad input that used to end in a traceback (or a hang) gets one line naming the file, field and fix; and
``--dry-run`` refuses what the run refuses. Each row is generated here, never a stored copy of a bad file."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app

REPO = Path(__file__).resolve().parents[2]
GRPO = REPO / "recipes" / "tiny" / "grpo.yaml"


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "visionr1", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _one_line(out: str) -> str:
    assert "Traceback" not in out, out[-3000:]
    return " ".join(out.split())


# ---- recipes: include depth, alias expansion ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1000])
def test_a_deep_include_chain_is_one_line(tmp_path, depth):
    for i in range(depth):
        (tmp_path / f"r{i}.yaml").write_text(f"include: r{i + 1}.yaml\n")
    (tmp_path / f"r{depth}.yaml").write_text(GRPO.read_text().replace("include: ptst.yaml", f"include: {GRPO.parent / 'ptst.yaml'}"))
    out = _cli("recipe", "check", str(tmp_path / "r0.yaml"))
    assert out.returncode == 2
    assert "includes nest deeper than 32 files" in _one_line(out.stdout + out.stderr)


def test_a_shallow_include_chain_still_loads(tmp_path):
    for i in range(10):
        (tmp_path / f"r{i}.yaml").write_text(f"include: r{i + 1}.yaml\n")
    (tmp_path / "r10.yaml").write_text(GRPO.read_text().replace("include: ptst.yaml", f"include: {GRPO.parent / 'ptst.yaml'}"))
    from visionr1.recipe import load_recipe

    assert load_recipe(tmp_path / "r0.yaml").name == "tiny-grpo"


def _alias_bomb(levels: int, width: int) -> str:
    lines = [f'l0: &l0 [{", ".join(["x"] * width)}]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\nname: bomb\n"


@pytest.mark.parametrize(("levels", "width"), [(9, 9), (6, 20), (30, 2)])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, levels, width):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(levels, width))
    assert path.stat().st_size < 2000 and width ** levels > 10 ** 7  # small file, huge expansion
    start = time.monotonic()
    out = _cli("recipe", "check", str(path), timeout=90)
    assert time.monotonic() - start < 60
    assert out.returncode == 2
    assert "more than 100,000 values once its YAML aliases" in _one_line(out.stdout + out.stderr)


# ---- TRL sections: types and choices, checked against TRL's dataclass fields ------------------------------


def _bad_values() -> list[tuple[str, object, str]]:
    """(field, bad value, words) for GRPOConfig fields of each kind of type: a list where a number goes, a
    mapping where a number goes, a list where an integer goes, an unknown choice."""
    from trl import GRPOConfig

    from visionr1.recipe import _choices

    fields = {f.name: f for f in dataclasses.fields(GRPOConfig)}
    rows = []
    floats = [n for n, f in fields.items() if f.type is float][:3]
    ints = [n for n, f in fields.items() if f.type in (int, int | None) and n not in ("seed",)][:3]
    choices = [n for n, f in fields.items() if f.type is str and _choices(f)][:3]
    for name in floats:
        rows += [(name, [1.0], "expected a number, got list"), (name, {"a": 1}, "expected a number, got dict")]
    for name in ints:
        rows.append((name, [4], "expected an integer"))
    for name in choices:
        rows.append((name, "bogus", "is not a GRPOConfig." + name))
    assert {"temperature", "epsilon"} <= set(floats) or floats
    return rows


BAD = _bad_values()


@pytest.mark.parametrize(("field", "value", "words"), BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_trl_values_of_the_wrong_type_or_choice_fail_recipe_check(field, value, words):
    from visionr1.config.base import RecipeError
    from visionr1.recipe import load_recipe

    with pytest.raises(RecipeError) as info:
        load_recipe(GRPO, [f"stages.0.grpo.{field}={json.dumps(value)}"])
    assert f"stages[0].grpo.{field}" in str(info.value) and words in str(info.value), str(info.value)


@pytest.mark.parametrize("override", ["stages.0.grpo.loss_type=bogus", "stages.0.grpo.temperature=[1.0]",
                                      "stages.0.grpo.epsilon={a: 1}", "stages.0.grpo.num_generations=[4]"])
def test_the_issue_examples_fail_the_dry_run(override):
    res = CliRunner().invoke(app, ["train", str(GRPO), override, "--dry-run", "--plan-only"])
    assert res.exit_code == 2 and "stages[0].grpo." in res.output, res.output


def test_valid_trl_values_still_pass():
    from visionr1.recipe import load_recipe

    for override in ["stages.0.grpo.loss_type=dapo", "stages.0.grpo.temperature=1", "stages.0.grpo.num_generations=2",
                     "stages.0.grpo.vllm_mode=colocate", "stages.0.grpo.top_k=null", "stages.0.grpo.lr_scheduler_kwargs={a: 1}"]:
        load_recipe(GRPO, [override])


# ---- runs: unknown reward, hub id without a hub, dry run = run's data checks -----------------------------------


@pytest.fixture(scope="module")
def counting(tmp_path_factory) -> Path:
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("counting")
    make_synthetic("counting", 4, 0, root)
    return root / "train.jsonl"


def test_an_unknown_reward_in_a_real_run_is_one_line(tmp_path, counting):
    res = CliRunner().invoke(app, ["train", str(GRPO), "stages.0.rewards=[{name: no_such_reward}]",
                                   f"stages.0.dataset.path={counting}", "-o", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert "stage ptst-1: rewards: unknown reward 'no_such_reward'" in _one_line(res.output)


def test_a_hub_id_with_no_hub_reachable_says_at_once_it_must_be_local(tmp_path, counting, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    start = time.monotonic()
    res = CliRunner().invoke(app, ["train", str(GRPO), "model.path=SomeOrg/Some-VL-7B", f"stages.0.dataset.path={counting}",
                                   "-o", str(tmp_path / "run")])
    assert time.monotonic() - start < 60
    assert res.exit_code == 2, res.output
    said = _one_line(res.output)
    assert "'SomeOrg/Some-VL-7B' is a hub id, but the hub cannot be reached" in said and "must be a local model directory" in said


def _bad_sharegpt(root: Path) -> Path:
    """ShareGPT with two <image> placeholders and one image: LLaMA-Factory and the run refuse it."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32)).save(root / "a.png")
    rec = {"id": "s1", "messages": [{"role": "user", "content": "<image><image>How many?"},
                                    {"role": "assistant", "content": "<think>x</think><answer>2</answer>"}],
           "images": ["a.png"]}
    (root / "bad.json").write_text(json.dumps([rec]))
    return root / "bad.json"


DRY = {
    "misspelt-path": (lambda tmp, counting: [f"stages.0.dataset.path={counting.with_name('trian.jsonl')}"],
                      "no such file or directory"),
    "bad-record": (lambda tmp, counting: ["stages.0.dataset.format=sharegpt", f"stages.0.dataset.path={_bad_sharegpt(tmp / 'sg')}"],
                   "record s1"),
}


@pytest.mark.parametrize("case", list(DRY))
def test_the_dry_run_refuses_what_the_run_refuses(tmp_path, counting, case):
    overrides, words = DRY[case]
    args = ["train", str(GRPO), *overrides(tmp_path, counting), "-o", str(tmp_path / "run")]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 2, dry.output
    assert words in _one_line(dry.output), dry.output
    assert CliRunner().invoke(app, [*args, "--dry-run", "--plan-only"]).exit_code == 0  # the plan alone is fine


# ---- data: a symlink loop where an image should be ------------------------------------------------------------

LOOPS = {
    "self": lambda d: (d / "loop.png").symlink_to("loop.png"),
    "pair": lambda d: ((d / "a.png").symlink_to("b.png"), (d / "b.png").symlink_to("a.png")),
    "folder": lambda d: ((d / "d1").symlink_to("d2"), (d / "d2").symlink_to("d1")),
}
TARGET = {"self": "images/loop.png", "pair": "images/a.png", "folder": "images/d1/x.png"}


@pytest.mark.parametrize("skip_bad", [False, True])
@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_symlink_loop_in_an_image_folder_is_one_line(tmp_path, loop, skip_bad):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32)).save(images / "ok.png")
    LOOPS[loop](images)
    rows = [{"id": "good", "question": "<image>How many?", "images": ["images/ok.png"], "solution": "1", "task": "count"},
            {"id": "looped", "question": "<image>How many?", "images": [TARGET[loop]], "solution": "1", "task": "count"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "train.jsonl"), "--format", "jsonl",
                                   *(["--skip-bad"] if skip_bad else [])])
    said = _one_line(res.output)
    assert "looped: field images[0]" in said and "cannot be resolved" in said, said[-2000:]
    assert res.exit_code == (0 if skip_bad else 2), said[-2000:]
