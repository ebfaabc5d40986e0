"""Rewards that carry no signal must say so: non-finite values, wrong types or counts, slow calls, and stages
whose every group scores the same.

The fast rows check the wrapper every GRPO reward goes through; the slow ones train 1-2 GRPO steps of the tiny
model through `visionr1 train`, with rewards written as plugins the way a user writes them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from visionr1.rewards.checked import MAX_ABS, CheckedReward, RewardError, no_signal_callback

from .conftest import train_env

REPO = Path(__file__).resolve().parents[2]
VISIONR1 = str(Path(sys.executable).with_name("visionr1"))
N = 8  # completions per call: 2 prompts x 4 generations


def _const(values):
    return lambda completions, **kw: values


def _bad_at(row, value, n=N):
    return [value if i == row else 0.25 * (i % 3) for i in range(n)]


# (what the reward returns, the words the message must hold); rows built from the ways a value can be bad
BAD_VALUES = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, MAX_ABS * 10]
ROWS = {
    **{f"{v!r}-at-row-{r}": (_bad_at(r, v), [f"returned {v!r}", f"completion {r} of {N}", f"prompt id p{r // 4}"])
       for v in BAD_VALUES for r in (0, 5)},
    "all-nan": ([float("nan")] * N, ["returned nan", "completion 0 of 8"]),
    "numpy-with-nan": (np.array(_bad_at(3, np.nan)), ["returned nan", "completion 3 of 8"]),
    "string": ("0.5", ["returned str '0.5'"]),
    "dict": ({"score": 1.0}, ["returned dict"]),
    "scalar": (0.5, ["returned float 0.5"]),
    "too-few": ([0.0] * (N - 1), [f"returned {N - 1} values for {N} completions"]),
    "too-many": ([0.0] * (N * 2), [f"returned {N * 2} values for {N} completions"]),
    "element-is-string": (_bad_at(2, "1"), ["returned str '1' for completion 2 of 8"]),
    "element-is-list": (_bad_at(6, [1.0]), ["returned list [1.0] for completion 6 of 8"]),
    "element-is-bool": (_bad_at(1, True), ["returned bool True for completion 1 of 8"]),
}


def _call(reward, **extra):
    completions = [f"completion {i}" for i in range(N)]
    return reward(completions, id=[f"p{i // 4}" for i in range(N)], **extra)


@pytest.mark.parametrize("case", list(ROWS))
def test_a_reward_that_returns_what_grpo_cannot_use_is_one_line_naming_it(case):
    out, words = ROWS[case]
    func = _const(out)
    func.__name__ = "my_reward"
    with pytest.raises(RewardError) as info:
        _call(CheckedReward(func))
    msg = str(info.value)
    assert msg.startswith("reward my_reward ") and "\n" not in msg and "Fix:" in msg, msg
    for word in words:
        assert word in msg, (word, msg)


def test_good_rewards_pass_unchanged_and_none_means_does_not_apply():
    values = [0.0, 1.0, -2.5, None, 3, np.float32(0.5), MAX_ABS, -MAX_ABS]
    func = _const(values)
    assert _call(CheckedReward(func)) == [0.0, 1.0, -2.5, None, 3.0, 0.5, MAX_ABS, -MAX_ABS]


def test_masked_non_finite_rewards_are_dropped_and_counted():
    logged = []
    reward = CheckedReward(_const(_bad_at(2, float("nan"))), non_finite="mask")
    out = _call(reward, log_metric=lambda k, v: logged.append((k, v)))
    assert out[2] is None and all(v is not None for i, v in enumerate(out) if i != 2)
    assert reward.masked == 1 and logged == [("rewards/<lambda>/non_finite", 1.0)]


def test_a_slow_reward_is_reported_with_its_name(caplog):
    def slow(completions, **kw):
        time.sleep(0.3)
        return [0.0] * len(completions)

    with caplog.at_level("WARNING"):
        _call(CheckedReward(slow, slow_call_s=0.1))
        _call(CheckedReward(slow, slow_call_s=5))
    slow_lines = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert len(slow_lines) == 1 and slow_lines[0].startswith("reward slow took 0."), slow_lines


def test_no_signal_is_reported_after_the_configured_steps_in_a_row(caplog):
    from types import SimpleNamespace

    reward = CheckedReward(_const([0.0] * N))
    reward.__name__ = "hard_format_result"
    reported = []
    cb = no_signal_callback([reward], "ptst-1", steps=3, frac=0.9, report=lambda **f: reported.append(f))
    state = SimpleNamespace(global_step=0, is_world_process_zero=True)
    with caplog.at_level("WARNING"):
        for step, zero in enumerate([1.0, 1.0, 0.5, 1.0, 0.95, 1.0, 1.0, 1.0], start=1):  # resets at 0.5
            _call(reward)
            state.global_step = step
            cb.on_log(None, state, None, logs={"frac_reward_zero_std": zero})
            assert bool(reported) == (step >= 6), step
    assert len(reported) == 1 and reported[0]["no_signal"]["step"] == 6
    msg = reported[0]["no_signal"]["message"]
    assert "stage ptst-1: no learning signal" in msg and "hard_format_result: [0.0]" in msg
    assert sum("no learning signal" in r.getMessage() for r in caplog.records) == 1


# ----------------------------------------------------------------------------------------------------------
# through `visionr1 train`: 1-2 GRPO steps of the tiny model
# ----------------------------------------------------------------------------------------------------------

PLUGIN = """
import math
def nan_on_second(completions, **kwargs):
    return [math.nan if i == 1 else 0.5 for i in range(len(completions))]
def huge(completions, **kwargs):
    return [1e300] * len(completions)
def one_short(completions, **kwargs):
    return [0.0] * (len(completions) - 1)
"""


@pytest.fixture(scope="module")
def grpo_data(tmp_path_factory) -> Path:
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("grpo-data")
    make_synthetic("counting", 6, 0, root)
    return root / "train.jsonl"


def _train(run: Path, model: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, VISIONR1, "train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), f"model.path={model}",
           f"stages.ptst-1.dataset.path={data}", "stages.ptst-1.grpo.max_steps=1", *overrides, "--output-dir", str(run)]
    return subprocess.run(cmd, cwd=REPO, env=train_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("func", "words"), [
    ("nan_on_second", ["reward nan_on_second returned nan for completion 1 of 4"]),
    ("huge", ["reward huge returned 1e+300 for completion 0 of 4"]),
    ("one_short", ["reward one_short returned 3 values for 4 completions"]),
])
def test_train_stops_on_a_bad_reward_naming_it(tmp_path, tiny_model_dir, grpo_data, func, words):
    (tmp_path / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    out = _train(tmp_path / "run", tiny_model_dir, grpo_data, f"stages.ptst-1.rewards=[{{name: '{tmp_path}/plugin.py:{func}'}}]")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    error = " ".join(out.stderr.split())
    assert all(w in error for w in words), error[-2000:]
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "failed" and words[0] in stage["error"]


@pytest.mark.slow
def test_a_stage_without_learning_signal_says_so(tmp_path, tiny_model_dir, grpo_data):
    """hard_format_result alone on the random tiny model: every completion scores 0."""
    out = _train(tmp_path / "run", tiny_model_dir, grpo_data, "stages.ptst-1.rewards=[{name: hard_format_result}]",
                 "stages.ptst-1.grpo.max_steps=2", "stages.ptst-1.reward_checks.no_signal_steps=2")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    said = " ".join((out.stdout + out.stderr).split())
    assert "stage ptst-1: no learning signal" in said and "hard_format_result: [0.0]" in said, said[-3000:]
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["no_signal"]["values"] == {"hard_format_result": [0.0]}


@pytest.mark.slow
def test_the_shipped_tiny_grpo_recipe_has_a_learning_signal(tmp_path, tiny_model_dir, grpo_data):
    out = _train(tmp_path / "run", tiny_model_dir, grpo_data, "stages.ptst-1.grpo.max_steps=2")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    assert train and all(r["frac_reward_zero_std"] < 0.9 for r in train), [r.get("frac_reward_zero_std") for r in train]
    assert all(math.isfinite(r["reward"]) for r in train)
    assert "no learning signal" not in out.stdout + out.stderr
