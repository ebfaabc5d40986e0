"""``eval run`` end to end on the tiny model and a synthetic task: generation, scoring, resuming after a kill."""

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
from visionr1.evaluation.run import DecodingConfig, evaluate_samples, run_benchmark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    from visionr1.tasks.synthetic import make_synthetic

    return make_synthetic("counting", 24, 0, tmp_path_factory.mktemp("syn"), test_fraction=0.5)  # 12 test items


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_run_generates_scores_and_skips_done_ids(tiny_model_dir, synthetic_dir, tmp_path):
    out = tmp_path / "run"
    decoding = DecodingConfig(max_new_tokens=8, temperature=0.6, top_p=0.95, batch_size=3)
    summary = run_benchmark("synthetic", tiny_model_dir, synthetic_dir, out, decoding, limit=6)
    assert summary["benchmark"] == "synthetic" and summary["n"] == 6
    assert summary["generated_this_run"] == 6 and summary["resumed_from"] == 0
    for key in ("accuracy", "format", "mean_completion_tokens", "truncated_rate", "tokens_per_second"):
        assert summary[key] is not None, key
    assert 1 <= summary["mean_completion_tokens"] <= 8
    preds = _lines(out / "predictions.jsonl")
    assert len(preds) == 6 and {"pid", "response", "num_tokens", "truncated"} <= set(preds[0])
    assert len(_lines(out / "items.jsonl")) == 6
    config = json.loads((out / "run_config.json").read_text())
    assert config["decoding"]["max_new_tokens"] == 8 and "versions" in config

    again = run_benchmark("synthetic", tiny_model_dir, synthetic_dir, out, decoding, limit=6)
    assert again["generated_this_run"] == 0 and again["resumed_from"] == 6
    assert _lines(out / "predictions.jsonl") == preds

    from visionr1.evaluation.records import EvalError

    with pytest.raises(EvalError, match="max_new_tokens"):
        run_benchmark("synthetic", tiny_model_dir, synthetic_dir, out, DecodingConfig(max_new_tokens=9), limit=6)


def test_evaluate_samples_in_process(tiny_model_dir, synthetic_dir, tmp_path):
    from visionr1.inference import load_model_and_processor

    result = evaluate_samples(tiny_model_dir, synthetic_dir, max_new_tokens=6, limit=3, output_dir=tmp_path / "e")
    assert result["n"] == 3
    assert {"accuracy", "format", "mean_completion_tokens", "truncated_rate", "per_task"} <= set(result)
    assert len(_lines(tmp_path / "e" / "predictions.jsonl")) == 3

    model, processor = load_model_and_processor(tiny_model_dir)
    model.train()  # a training callback hands over a model in train mode; it gets it back that way
    greedy = evaluate_samples(model, synthetic_dir, processor=processor, max_new_tokens=6, limit=3)
    assert model.training and greedy["mean_completion_tokens"] == result["mean_completion_tokens"]


def test_killed_run_resumes_without_regenerating(tiny_model_dir, synthetic_dir, tmp_path):
    """A real process is SIGKILLed mid-run; the rerun keeps every written line and generates only the rest."""
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-c", "from visionr1.cli import app; app()", "eval", "run", "--benchmark", "synthetic",
        "--model", str(tiny_model_dir), "--data", str(synthetic_dir), "--output", str(out),
        "--max-new-tokens", "32", "--batch-size", "1", "--limit", "6",
    ]
    preds = out / "predictions.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if preds.exists() and preds.read_text(encoding="utf-8").count("\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = _lines(preds)
    assert 2 <= len(before) < 6
    with preds.open("a", encoding="utf-8") as fh:  # as if the kill had landed in the middle of a write
        fh.write('{"pid": "counting-s0-easy-99999", "resp')

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _lines(preds)
    assert after[: len(before)] == before  # kept, byte for byte
    assert len(after) == 6 and len({p["pid"] for p in after}) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == len(before) and summary["generated_this_run"] == 6 - len(before)
    assert summary["missing_predictions"]["count"] == 0
    assert f"resumed: {len(before)} responses" in done.stdout


def test_run_on_benchmark_records_with_image_paths_and_embedded_images(tiny_model_dir, tmp_path, fixtures):
    """MathVista's JSON release (images on disk, relative paths) and its parquet copy (images embedded)."""
    from PIL import Image

    (tmp_path / "mv" / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / "mv" / "images" / "1.jpg")
    record = {"pid": "1", "question": "How many?", "image": "images/1.jpg", "choices": None, "unit": None,
              "precision": None, "answer": "3", "question_type": "free_form", "answer_type": "integer",
              "metadata": {"category": "math-targeted-vqa", "skills": []}}
    mc = dict(record, pid="2", question="Which?", choices=["Yes", "No"], answer="No", question_type="multi_choice",
              answer_type="text")
    data = fixtures.json(tmp_path / "mv" / "testmini.json", {"1": record, "2": mc})
    decoding = DecodingConfig(max_new_tokens=4, batch_size=2)
    summary = run_benchmark("mathvista", tiny_model_dir, data, tmp_path / "out1", decoding)
    assert summary["n"] == 2 and summary["generated_this_run"] == 2 and summary["missing_predictions"]["count"] == 0

    rows = [dict(r, image=f"images/{r['pid']}.jpg", decoded_image={"bytes": fixtures.png(), "path": None},
                 query=f"Hint: ...\nQuestion: {r['question']}") for r in (record, mc)]
    parquet = fixtures.parquet(tmp_path / "hf" / "testmini-00000-of-00001.parquet", rows)
    summary = run_benchmark("mathvista", tiny_model_dir, parquet, tmp_path / "out2", decoding)
    assert summary["n"] == 2 and summary["generated_this_run"] == 2


# ----------------------------------------------------------------------------------------------------------
# tiny: paths, images checked before the model loads, MATH-V references, resume that checks what shapes a response
# ----------------------------------------------------------------------------------------------------------


class FakeGenerator:
    """Stands in for the model where only the bookkeeping around generation is under test."""

    built = 0

    def __init__(self, model_path, decoding, backend, dtype, device):
        type(self).built += 1
        self.processor = None

    def __call__(self, prompts, images):
        from visionr1.inference import Generation

        return [Generation(f"<think>x</think><answer>{len(p)}</answer>", 3, False) for p in prompts]


@pytest.fixture
def fake_generator(monkeypatch):
    import visionr1.evaluation.run as run

    FakeGenerator.built = 0
    monkeypatch.setattr(run, "Generator", FakeGenerator)
    return FakeGenerator


def _mathv_with_strip(tmp_path):
    """Varied MATH-V records plus one whose image (10000x20) the processor would refuse."""
    from PIL import Image
    from tests.varied import write_mathv

    path = write_mathv(tmp_path / "mathv", 5, 0)
    Image.new("RGB", (10000, 20), (9, 9, 9)).save(tmp_path / "mathv" / "images" / "strip.png")
    bad = {"id": "strip", "question": "Read the strip. <image1>", "options": [], "image": "images/strip.png",
           "answer": "4", "solution": None, "level": 1, "subject": "counting"}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(bad) + "\n")
    return path


def test_images_are_checked_before_the_model_loads(tmp_path, fake_generator):
    from visionr1.evaluation.records import EvalError

    data = _mathv_with_strip(tmp_path)
    decoding = DecodingConfig(max_new_tokens=4, batch_size=4)
    with pytest.raises(EvalError, match=r"record strip: field image: image is 10000x20 \(aspect ratio 500:1\)"):
        run_benchmark("mathvision", "tiny:qwen2_5_vl/test", data, tmp_path / "out", decoding)
    assert fake_generator.built == 0  # refused before any model was loaded
    summary = run_benchmark("mathvision", "tiny:qwen2_5_vl/test", data, tmp_path / "out", decoding, skip_bad=True)
    assert [b["pid"] for b in summary["skipped_bad_records"]] == ["strip"]
    assert summary["image_budget"] == {"max_pixels": 50176, "min_pixels": 3136}  # the checkpoint's own budget
    assert summary["generated_this_run"] == 5 and summary["missing_predictions"]["count"] == 1


def test_tiny_model_path_generates(tmp_path):
    """`eval run --model tiny:qwen2_5_vl/test` as recipes accept it (a real, tiny generation on MATH-V data)."""
    from tests.varied import write_mathv

    data = write_mathv(tmp_path / "mathv", 5, 0)
    res = CliRunner().invoke(app, ["eval", "run", "-b", "mathvision", "--model", "tiny:qwen2_5_vl/test", "--data",
                                   str(data), "-o", str(tmp_path / "out"), "--max-new-tokens", "3", "--max-pixels", "12544"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["generated_this_run"] == 5 and summary["image_budget"]["max_pixels"] == 12544


def test_mathv_references_match_training(tmp_path):
    """eval run's MATH-V prompt is the training loader's (`format: mathv`) prompt: one rewriting of <imageN>."""
    from tests.varied import write_mathv

    from visionr1.data import DatasetSpec, load_samples
    from visionr1.data.spec import DEFAULT_TEMPLATE
    from visionr1.evaluation.benchmarks import get_benchmark

    data = write_mathv(tmp_path / "mathv", 8, 0)
    bench = get_benchmark("mathvision")
    evals = {s.pid: s for s in bench.samples(bench.load(data, for_generation=True), DEFAULT_TEMPLATE, 401408, None)}
    train = {r["id"]: r for r in load_samples(DatasetSpec(format="mathv", path=str(data))).dataset}
    assert set(evals) == set(train)
    multi = [pid for pid in train if "(image 2)" in json.dumps(train[pid]["prompt"])]
    assert multi
    for pid, row in train.items():
        strip = [{**p, "text": p["text"]} for p in row["prompt"][0]["content"]]
        assert evals[pid].prompt[0]["content"] == strip, pid


def test_resume_refuses_what_changes_a_response(tmp_path, fake_generator):
    from tests.varied import write_mathv

    from visionr1.evaluation.records import EvalError

    data = write_mathv(tmp_path / "mathv", 6, 0)
    out = tmp_path / "out"
    decoding = DecodingConfig(max_new_tokens=4, batch_size=3)
    model = "tiny:qwen2_5_vl/test"
    first = run_benchmark("mathvision", model, data, out, decoding)
    assert first["generated_this_run"] == 6
    assert run_benchmark("mathvision", model, data, out, decoding)["resumed_from"] == 6  # same: resumes

    for kwargs, says in (({"max_pixels": 200704}, "max_pixels"), ({"dtype": "float32"}, "dtype"),
                         ({"image_root": str(tmp_path / "mathv")}, "image_root"), ({"template": "{question}"}, "template")):
        with pytest.raises(EvalError, match=says):
            run_benchmark("mathvision", model, data, out, decoding, **kwargs)
    # same ids, another question: refused, naming the record
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[2]["question"] = "Something else entirely?"
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "images").symlink_to(tmp_path / "mathv" / "images")
    with pytest.raises(EvalError, match=rf"1 responses answer records that differ from --data now \(e.g. {rows[2]['id']}\)"):
        run_benchmark("mathvision", model, changed, out, decoding)


def test_records_without_question_text_are_an_error_not_an_empty_prompt(tmp_path):
    """A file with neither MATH-V's ``question`` nor EasyR1's ``problem`` used to give empty prompts."""
    from visionr1.evaluation.benchmarks import get_benchmark
    from visionr1.evaluation.records import EvalError

    data = tmp_path / "test.jsonl"
    data.write_text('{"id": "1", "text": "What is 2+2?", "answer": "4", "options": []}\n')
    bench = get_benchmark("mathvision")
    items = bench.load(data, for_generation=True)
    with pytest.raises(EvalError, match="record 1: no question text"):
        bench.samples(items, "{question}", 50176, None)


def test_mathvision_reads_easyr1_layout_as_training_does(tmp_path):
    """EasyR1's MATH-V parquet (geometry3k columns, options appended to ``problem``, images embedded): the
    prompt is training's (``format: geometry3k``) prompt, images included, and letters and option texts score."""
    from tests.varied import varied_items, write_geometry3k

    from visionr1.data import DatasetSpec, load_samples
    from visionr1.data.spec import DEFAULT_TEMPLATE
    from visionr1.evaluation.benchmarks import get_benchmark
    from visionr1.evaluation.benchmarks.base import ScoringContext

    data = write_geometry3k(tmp_path / "geo", 8, 0, split="test")
    bench = get_benchmark("mathvision")
    evals = {s.pid: s for s in bench.samples(bench.load(data, for_generation=True), DEFAULT_TEMPLATE, 401408, None)}
    train = {r["id"]: r for r in load_samples(DatasetSpec(format="geometry3k", path=str(data))).dataset}
    assert set(evals) == set(train) and len(evals) == 8
    for pid, row in train.items():
        assert evals[pid].prompt[0]["content"] == row["prompt"][0]["content"], pid
        assert len(evals[pid].images) == len(row["images"]), pid
    ctx = ScoringContext()
    items = {i.pid: i for i in bench.load(data)}
    choice = [it for it in varied_items(8, 0) if it.choices and it.kind != "choice_letters"]
    assert choice
    for it in choice:
        assert bench.score(items[it.id], f"<think>x</think><answer>{it.answer}</answer>", ctx).correct
        wrong = "A" if it.answer != "A" else "B"
        assert not bench.score(items[it.id], f"<think>x</think><answer>{wrong}</answer>", ctx).correct
    # an option's text counts as its letter (official), read from EasyR1's `choices`
    from visionr1.evaluation.benchmarks.base import Item

    geo = Item("x", {"id": "x", "problem": "<image>Which? (A) 3 (B) 5", "choices": ["3", "5"], "answer": "B"}, data)
    assert bench.score(geo, "<answer>5</answer>", ctx).correct and not bench.score(geo, "<answer>3</answer>", ctx).correct


def test_a_record_with_more_options_than_letters_is_named(tmp_path, fake_generator):
    from tests.varied import write_mathv

    from visionr1.evaluation.records import EvalError

    data = write_mathv(tmp_path / "mathv", 3, 0)
    with data.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "many", "question": "Which?", "options": [str(i) for i in range(27)],
                             "image": None, "answer": "B", "level": 1, "subject": "logic"}) + "\n")
    decoding = DecodingConfig(max_new_tokens=4, batch_size=4)
    with pytest.raises(EvalError, match="record many: 27 options; at most 26 can be lettered"):
        run_benchmark("mathvision", "tiny:qwen2_5_vl/test", data, tmp_path / "out", decoding)
    summary = run_benchmark("mathvision", "tiny:qwen2_5_vl/test", data, tmp_path / "out", decoding, skip_bad=True)
    assert [b["pid"] for b in summary["skipped_bad_records"]] == ["many"] and summary["generated_this_run"] == 3
