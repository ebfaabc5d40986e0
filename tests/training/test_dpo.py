"""Iterative DPO stages: recipe validation, pairs made from the model's own samples (and from a file), weights
that move, iteration 2 starting from iteration 1's weights, and a SIGKILLed `visionr1 train` that resumes at the
iteration (and inside an iteration's training at its checkpoint) without redoing finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch

from visionr1.config.base import RecipeError
from visionr1.recipe import load_recipe
from visionr1.training.checkpoints import trim_logs
from visionr1.training.dpo import DPOError, best_and_worst, load_pairs, score_samples, weights_fingerprint
from visionr1.training.plan import plan_run

from .conftest import REPO, TINY, VARIED_QUESTIONS, read_jsonl, subprocess_env, visionr1_cmd

DPO_RECIPE = TINY / "dpo.yaml"


# ----------------------------------------------------------------------------------------------------------
# recipe validation and the plan (no model)
# ----------------------------------------------------------------------------------------------------------


def _recipe(tmp_path: Path, stage: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent("""
        name: t
        model: {path: Qwen/Qwen2.5-VL-7B-Instruct}
        stages:
          - name: dpo
            type: dpo
    """) + textwrap.indent(textwrap.dedent(stage), "    "))
    return p


DATA = "dataset: {format: jsonl, path: x.jsonl}\n"


@pytest.mark.parametrize("stage, expected", [
    (DATA + "dpo: {betta: 0.1}", "stages[0].dpo.betta: unknown key; did you mean beta?"),
    (DATA + "dpo: {output_dir: x}", "stages[0].dpo.output_dir: set by visionr1 itself"),
    (DATA + "dpo: {learning_rate: fast}", "stages[0].dpo.learning_rate: expected a number"),
    (DATA + "iterations: 0", "stages[0].iterations"),
    (DATA + "samples_per_prompt: 1", "stages[0].samples_per_prompt"),
    (DATA + "sampling: {temprature: 0.7}", "stages[0].sampling.temprature"),
    (DATA + "sampling: {temperature: 0}", "stages[0].sampling.temperature"),
    ("pairs_file: p.jsonl\niterations: 2", "iterations must be 1"),
    (DATA + "pairs_file: p.jsonl", "either dataset"),
    ("iterations: 2", "either dataset"),
])
def test_bad_dpo_sections_are_caught_with_the_fix(tmp_path, stage, expected):
    with pytest.raises(RecipeError) as err:
        load_recipe(_recipe(tmp_path, stage))
    assert expected in str(err.value), str(err.value)


def test_dry_run_plan_shows_the_iterations_and_the_dpo_config(tmp_path):
    recipe = load_recipe(DPO_RECIPE, ["stages.dpo.iterations=3", "stages.dpo.dpo.beta=0.25", "stages.dpo.dpo.loss_type=[ipo]"])
    (stage,) = plan_run(recipe, tmp_path / "run", world_size=1)["stages"]
    assert stage["type"] == "dpo" and stage["trl_config_class"] == "DPOConfig"
    assert (stage["trl_config"]["beta"], stage["trl_config"]["loss_type"]) == (0.25, ["ipo"])  # passed through
    assert stage["dpo"]["iteration_dirs"] == [str(tmp_path / "run" / "dpo" / f"iter-{i}") for i in (1, 2, 3)]
    assert stage["rewards"][1]["name"].endswith("recipes/tiny/toy_rewards.py:letters")  # resolved against the recipe
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------------------
# pure parts: ranking, scoring, pairs files, log trimming
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rewards, expected", [
    ([0.0, 1.0], (1, 0)),
    ([1.0, 0.0, 1.0, 0.0], (0, 1)),
    ([0.3, 0.3, 0.3], None),
    ([-2.0, 5.0, 0.1, -2.5], (1, 3)),
])
def test_best_and_worst(rewards, expected):
    assert best_and_worst(rewards) == expected
    if expected:
        assert rewards[expected[0]] > rewards[expected[1]]


def test_score_samples_is_the_weighted_sum_with_the_row_columns():
    from visionr1.rewards.registry import build_reward_funcs

    funcs = build_reward_funcs([{"name": "accuracy", "weight": 2.0}, {"name": "length", "weight": -1.0, "kwargs": {"per_token": 0.1}}])
    rows = [{"prompt": [], "solution": "3", "task": "count", "choices": None}]
    texts = ["<think>a</think><answer> 3 </answer>", "<think>a</think><answer> 4 </answer>"]
    got = score_samples(funcs, texts, rows, 2, [[1] * 5, [1] * 7])
    assert got == pytest.approx([2.0 - 0.5, 0.0 - 0.7])


@pytest.fixture
def judge_server():
    """tests/rewards/test_judge_cli.py's OpenAI-style judge on loopback: CORRECT when the answer holds the reference."""
    import threading

    from tests.rewards.test_judge_cli import FakeOpenAI, QuietServer

    FakeOpenAI.active = FakeOpenAI.max_active = FakeOpenAI.requests = 0
    FakeOpenAI.failed_once = set()
    srv = QuietServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", FakeOpenAI
    srv.shutdown()
    srv.server_close()


def test_a_scoring_agent_ranks_the_samples(judge_server):
    from visionr1.rewards.registry import build_reward_funcs

    url, handler = judge_server
    funcs = build_reward_funcs([{"name": "llm_judge", "kwargs": {"base_url": url, "model": "judge", "backoff": 0.01}}])
    rows = [{"prompt": [], "solution": "red cube", "task": "free", "question": "What is it?"}] * 2
    texts = ["<think>t</think><answer>a blue ball</answer>", "<think>t</think><answer>a big red cube</answer>",
             "<think>t</think><answer>the red cube, surely</answer>", "<think>t</think><answer>green</answer>"]
    for _ in range(2):  # twice: each call runs and closes its own client
        rewards = score_samples(funcs, texts, rows, 2, [[1]] * 4)
        assert rewards == [0.0, 1.0, 1.0, 0.0]
        assert best_and_worst(rewards[:2]) == (1, 0) and best_and_worst(rewards[2:]) == (0, 1)
    assert handler.requests == 8  # every verdict came from the agent


def _png(path: Path, size: tuple[int, int], color=(200, 30, 30)) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path.name if path.parent.name != "images" else f"images/{path.name}"


def _pairs_file(root: Path) -> Path:
    """Varied preference pairs: one image (odd size), two images, a text-only prompt, a plain-string prompt whose
    image goes in front (TRL's rule), prompts of 9 to ~1,500 characters."""
    a, b, c = (_png(root / "images" / f"{n}.png", s) for n, s in (("a", (40, 600)), ("b", (300, 200)), ("c", (1600, 90))))
    img, text = {"type": "image"}, lambda t: {"type": "text", "text": t}
    rows = [
        {"prompt": [{"role": "user", "content": [img, text(VARIED_QUESTIONS[2])]}], "images": [a],
         "chosen": [{"role": "assistant", "content": "<think>one</think><answer> 3 </answer>"}],
         "rejected": [{"role": "assistant", "content": "no idea"}]},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [img, img, text("Same?")]}],
         "images": [b, c], "chosen": "<answer> yes </answer>", "rejected": "<answer> no </answer>"},
        {"prompt": VARIED_QUESTIONS[3], "images": [], "chosen": "<answer> 7 </answer>", "rejected": "seven or so"},
        {"prompt": "How many?", "images": [c], "chosen": "<answer> 2 </answer>", "rejected": "<answer> 9 </answer>"},
    ]
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pairs_file_loads_with_images_and_text_only_records(tmp_path):
    ds = load_pairs(_pairs_file(tmp_path))
    assert len(ds) == 4
    sizes = [[im.size for im in row["images"]] for row in ds]
    assert sizes == [[(40, 600)], [(300, 200), (1600, 90)], [], [(1600, 90)]]
    for row in ds:  # one image part per image, in the prompt; responses are assistant turns
        assert sum(p["type"] == "image" for m in row["prompt"] for p in m["content"]) == len(row["images"])
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert ds[3]["prompt"][0]["content"][0]["type"] == "image"  # a text prompt: its image in front


@pytest.mark.parametrize("line, expected", [
    ({"prompt": "q", "chosen": "a"}, "line 1: missing field(s) ['rejected']"),
    ({"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}], "chosen": "a",
      "rejected": "b", "images": []}, "line 1: the prompt has 1 image part(s) but 'images' lists 0"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "images": ["missing.png"]}, "line 1: field 'images': cannot open"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "line 1: field 'chosen' must be a string or a list"),
])
def test_bad_pairs_name_file_line_and_field(tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(DPOError) as err:
        load_pairs(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


def test_trim_logs_of_one_iteration_keeps_the_other_iterations(tmp_path):
    rows = [{"kind": "train", "stage": "dpo", "iteration": it, "step": s} for it in (1, 2) for s in (1, 2, 3)]
    rows.append({"kind": "pairs", "stage": "dpo", "iteration": 2, "step": 0})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert trim_logs(tmp_path, "dpo", 1, ("metrics.jsonl",), iteration=2) == 2
    left = [(r["iteration"], r["step"]) for r in read_jsonl(tmp_path / "metrics.jsonl")]
    assert left == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 0)]


# ----------------------------------------------------------------------------------------------------------
# with the tiny model
# ----------------------------------------------------------------------------------------------------------


def _fingerprint(model_dir: Path) -> str:
    from transformers import AutoModelForImageTextToText

    return weights_fingerprint(AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32))


def _max_diff(a: Path, b: Path) -> float:
    from .conftest import load_state

    x, y = load_state(a), load_state(b)
    return max((x[k] - y[k]).abs().max().item() for k in x)


@pytest.fixture(scope="module")
def varied_prompts(tmp_path_factory) -> Path:
    """RL prompts from tests/varied.py: one, two or three images of odd sizes, text-only records, 20-1,500 chars."""
    from tests.varied import write_jsonl

    return write_jsonl(tmp_path_factory.mktemp("dpo-varied"), n=10, completions=False)


@pytest.mark.slow
def test_an_iteration_makes_well_formed_pairs_and_moves_the_weights(tmp_path, tiny_model_dir, varied_prompts):
    from visionr1.training.runner import main

    recipe = load_recipe(DPO_RECIPE, [
        f"model.path={tiny_model_dir}", f"stages.dpo.dataset.path={varied_prompts}", "stages.dpo.iterations=1",
        "stages.dpo.prompts_per_iteration=null", "stages.dpo.samples_per_prompt=3", "stages.dpo.dpo.max_steps=3",
        "stages.dpo.dpo.per_device_train_batch_size=4", "stages.dpo.dpo.learning_rate=1e-3", "model.max_pixels=40000",
    ])
    out = main(recipe, tmp_path / "run")
    it = tmp_path / "run" / "dpo" / "iter-1"

    # --- pairs: best vs worst of K, images carried, every kind of prompt ------------------------------------------
    pairs = read_jsonl(it / "pairs.jsonl")
    sampling = json.loads((it / "sampling.json").read_text())
    assert sampling["prompts"] == 10 and sampling["pairs"] == len(pairs) and sampling["pairs"] + sampling["no_pair_prompts"] == 10
    assert len(pairs) >= 8  # the toy reward separates almost every pair of random texts
    source = {r["id"]: r for r in read_jsonl(varied_prompts)}
    for p in pairs:
        assert len(p["rewards"]) == 3 and p["chosen_reward"] == max(p["rewards"]) > p["rejected_reward"] == min(p["rewards"])
        assert p["chosen"][0]["content"] != p["rejected"][0]["content"]
        assert len(p["images"]) == len(source[p["id"]]["images"])  # 0 for text-only prompts
        assert sum(part.get("type") == "image" for m in p["prompt"] for part in m["content"]) == len(p["images"])
        assert all((it / im).is_file() for im in p["images"])
    assert {len(p["images"]) for p in pairs} >= {0, 1, 2}  # text-only, one and several images
    assert len({len(json.dumps(p["prompt"])) for p in pairs}) >= 5  # prompts of varied lengths
    reloaded = load_pairs(it / "pairs.jsonl")  # the file is a valid pairs_file
    assert len(reloaded) == len(pairs) and sum(len(r["images"]) for r in reloaded) == sum(len(p["images"]) for p in pairs)

    # --- training: the weights moved; the stage's final is the iteration's --------------------------------------
    assert out["stages"] == {"dpo": "done"}
    assert _max_diff(tiny_model_dir, it / "final") > 1e-4
    assert (it / "final" / "model.safetensors").stat().st_ino == (tmp_path / "run" / "dpo" / "final" / "model.safetensors").stat().st_ino
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    (rec,) = manifest["stages"][0]["iterations"]
    assert rec["pairs"] == len(pairs) and rec["global_step"] == 3 and rec["dpo_accuracy"] is not None
    assert rec["mean_reward"] == pytest.approx(sampling["mean_reward"]) and rec["margin"] > 0
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in metrics if r["kind"] == "train"] == [1, 2, 3]
    assert all("rewards/accuracies" in r and r["iteration"] == 1 for r in metrics if r["kind"] == "train")


@pytest.mark.slow
def test_two_iterations_the_second_from_the_first_ones_weights(tmp_path, tiny_model_dir, tiny_data):
    from visionr1.training.runner import main

    recipe = load_recipe(DPO_RECIPE, [f"model.path={tiny_model_dir}", f"stages.dpo.dataset.path={tiny_data['grpo']}",
                                      "stages.dpo.dpo.learning_rate=1e-3"])
    main(recipe, tmp_path / "run")
    stage = tmp_path / "run" / "dpo"
    it1, it2 = (json.loads((stage / f"iter-{i}" / "final" / "stage.json").read_text()) for i in (1, 2))

    # the weights iteration 2 trained from (fingerprinted as loaded) are iteration 1's final weights
    assert it2["start_weights"] == _fingerprint(stage / "iter-1" / "final") != _fingerprint(tiny_model_dir)
    assert it1["start_weights"] == _fingerprint(tiny_model_dir)
    assert _max_diff(stage / "iter-1" / "final", stage / "iter-2" / "final") > 1e-4  # and moved them again
    assert _fingerprint(stage / "final") == _fingerprint(stage / "iter-2" / "final")  # the stage ends with the last

    # each iteration sampled a fresh slice of the prompt stream
    ids = [{p["id"] for p in read_jsonl(stage / f"iter-{i}" / "pairs.jsonl")} for i in (1, 2)]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert [r["iteration"] for r in manifest["iterations"]] == [1, 2] and manifest["global_step"] == 4
    assert manifest["data_order"]["count"] == 8
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [(r["iteration"], r["run_step"]) for r in metrics if r["kind"] == "pairs"] == [(1, 0), (2, 2)]
    assert [(r["iteration"], r["step"], r["run_step"]) for r in metrics if r["kind"] == "train"] == [
        (1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4)]
    assert (tmp_path / "run" / "ptst.png").is_file()


@pytest.mark.slow
def test_pairs_from_a_file_train_the_stage(tmp_path, tiny_model_dir):
    from visionr1.training.runner import main

    pairs = _pairs_file(tmp_path / "data")
    recipe = load_recipe(DPO_RECIPE, [f"model.path={tiny_model_dir}", "stages.dpo.dataset=null", f"stages.dpo.pairs_file={pairs}",
                                      "stages.dpo.iterations=1", "stages.dpo.dpo.learning_rate=1e-3"])
    main(recipe, tmp_path / "run")
    stage = tmp_path / "run" / "dpo"
    assert not (stage / "iter-1" / "pairs.jsonl").exists()  # nothing sampled
    rec = json.loads((stage / "final" / "stage.json").read_text())
    assert rec["iterations"][0]["pairs"] == 4 and rec["global_step"] == 2
    assert _max_diff(tiny_model_dir, stage / "final") > 1e-4


@pytest.mark.slow
def test_a_broken_pairs_file_stops_the_run_before_training(tmp_path, tiny_model_dir):
    from visionr1.training.plan import PlanError
    from visionr1.training.runner import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a"}\n')
    recipe = load_recipe(DPO_RECIPE, [f"model.path={tiny_model_dir}", "stages.dpo.dataset=null", f"stages.dpo.pairs_file={bad}",
                                      "stages.dpo.iterations=1"])
    with pytest.raises(PlanError, match=r"stage dpo: pairs_file: .*bad.jsonl: line 1: missing field\(s\) \['rejected'\]"):
        main(recipe, tmp_path / "run")
    assert not (tmp_path / "run" / "dpo").exists()


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), log.read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_resumes_inside_an_iteration_and_then_at_the_next_one(tmp_path, tiny_model_dir, tiny_data):
    env = subprocess_env()
    run = tmp_path / "run"
    cmd = visionr1_cmd("train", str(DPO_RECIPE), f"model.path={tiny_model_dir}", f"stages.dpo.dataset.path={tiny_data['grpo']}",
                       "stages.dpo.dpo.learning_rate=1e-3", "--output-dir", str(run))
    it1 = run / "dpo" / "iter-1"

    # --- kill 1: inside iteration 1's training, after its first checkpoint ------------------------------------------
    log = tmp_path / "first.log"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(it1 / "checkpoint-1" / "visionr1-checkpoint.json", proc, log)  # complete
    pairs_made = (it1 / "pairs.jsonl").stat()

    # --- kill 2: between the iterations (iteration 1 finished), in the run that resumed it ------------------------
    log = tmp_path / "second.log"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(it1 / "final", proc, log)
    assert (it1 / "pairs.jsonl").stat().st_mtime_ns == pairs_made.st_mtime_ns  # the pairs were not sampled again
    first_final = (it1 / "final" / "model.safetensors").stat()
    assert json.loads((run / "manifest.json").read_text())["stages"][0]["status"] == "running"

    # --- run 3: starts at iteration 2, iteration 1 untouched ----------------------------------------------------------
    third = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "iteration 1 is finished" in third.stdout + third.stderr
    after = (it1 / "final" / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (first_final.st_ino, first_final.st_mtime_ns)
    manifest = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert manifest["status"] == "done" and [r["iteration"] for r in manifest["iterations"]] == [1, 2]
    assert manifest["iterations"][0]["resumed_from"].endswith("iter-1/checkpoint-1")  # kill 1: resumed in the iteration
    assert manifest["iterations"][1]["start_weights"] == _fingerprint(it1 / "final")
    # every step logged once, the pairs of each iteration once
    metrics = read_jsonl(run / "metrics.jsonl")
    assert sorted((r["iteration"], r["step"]) for r in metrics if r["kind"] == "train") == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert sorted(r["iteration"] for r in metrics if r["kind"] == "pairs") == [1, 2]
