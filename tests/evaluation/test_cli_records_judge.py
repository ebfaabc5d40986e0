"""The ``eval score`` command, the record/prediction readers, the judge client, and the modules' doctests."""

from __future__ import annotations

import doctest
import importlib
import json

import httpx
import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.evaluation.judge import EvalJudge, JudgeConfig, JudgeError
from visionr1.evaluation.records import EvalError, read_predictions, read_records, read_resumable_jsonl

RECORD = {
    "pid": "1", "question": "How many?", "image": "images/1.jpg", "choices": None, "unit": None, "precision": None,
    "answer": "3", "question_type": "free_form", "answer_type": "integer",
    "metadata": {"category": "math-targeted-vqa", "skills": ["arithmetic reasoning"]},
}


def test_eval_score_command(tmp_path, fixtures):
    data = fixtures.json(tmp_path / "testmini.json", {"1": RECORD, "2": dict(RECORD, pid="2")})
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1": "<answer>3</answer>"})
    result = CliRunner().invoke(app, ["eval", "score", "--benchmark", "mathvista", "--data", str(data),
                                      "--predictions", str(preds), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "mathvista: 50.00% (1/2)" in result.output and "1 records had no prediction" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["accuracy"] == 0.5 and summary["missing_predictions"]["ids"] == ["2"]


def test_eval_score_errors_name_the_fix(tmp_path, fixtures):
    data = fixtures.json(tmp_path / "testmini.json", {"1": RECORD})
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1": "3"})
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "score", "-b", "mathvist", "--data", str(data), "--predictions", str(preds), "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "did you mean 'mathvista'" in bad.output
    half = runner.invoke(app, ["eval", "score", "-b", "mathvista", "--data", str(data), "--predictions", str(preds),
                               "-o", str(tmp_path), "--judge-url", "http://x/v1"])
    assert half.exit_code == 2 and "--judge-model" in half.output


def test_readers_name_file_and_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"pid": "1", "response": "a"}\n{"pid": "2"}\n')
    with pytest.raises(EvalError, match=r"p.jsonl: line 2: no \"response\""):
        read_predictions(bad)
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(EvalError, match="d.jsonl: line 2"):
        read_records(data)
    keyed = tmp_path / "k.json"
    keyed.write_text(json.dumps({"7": {"q": 1}}))
    assert read_records(keyed)[0].key == "7"


def test_resumable_reader_drops_a_half_written_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"pid": "a", "response": "x"}\n{"pid": "b", "resp')
    assert [r["pid"] for r in read_resumable_jsonl(path)] == ["a"]
    assert path.read_text() == '{"pid": "a", "response": "x"}\n'  # cut, so the next append starts clean
    assert read_resumable_jsonl(tmp_path / "none.jsonl") == []


def test_duplicate_predictions_with_different_responses(tmp_path, fixtures):
    from visionr1.evaluation.score import score_predictions

    data = fixtures.json(tmp_path / "testmini.json", {"1": RECORD})
    preds = fixtures.jsonl(tmp_path / "p.jsonl", [{"pid": "1", "response": "3"}, {"pid": "1", "response": "4"}])
    with pytest.raises(EvalError, match="lines 1 and 2"):
        score_predictions("mathvista", data, preds)


def test_judge_retries_server_errors_then_fails_clearly(monkeypatch):
    monkeypatch.setattr("visionr1.evaluation.judge.time.sleep", lambda s: None)
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    calls = []

    def flaky(request):
        calls.append(request.headers.get("authorization"))
        if len(calls) < 3:
            return httpx.Response(503)
        return httpx.Response(200, json={"choices": [{"message": {"content": " B "}}]})

    judge = EvalJudge(JudgeConfig("http://j/v1", "m", api_key_env="MY_JUDGE_KEY"), transport=httpx.MockTransport(flaky))
    assert judge.complete("q") == "B" and judge.calls == 1 and calls[-1] == "Bearer sk-test"

    denied = EvalJudge(JudgeConfig("http://j/v1", "m"), transport=httpx.MockTransport(lambda r: httpx.Response(401, text="no key")))
    with pytest.raises(JudgeError, match="HTTP 401"):
        denied.complete("q")
    down = EvalJudge(JudgeConfig("http://j/v1", "m", max_retries=1), transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with pytest.raises(JudgeError, match="gave up after 2 tries"):
        down.complete("q")


@pytest.mark.parametrize("module", [
    "visionr1.evaluation.benchmarks.base", "visionr1.evaluation.benchmarks.mathvista",
    "visionr1.evaluation.benchmarks.mathverse", "visionr1.evaluation.benchmarks.mathvision",
    "visionr1.evaluation.benchmarks.mmmath", "visionr1.evaluation.benchmarks.dynamath",
    "visionr1.evaluation.benchmarks.wemath",
])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])  # json.dumps escapes the others
def test_resume_reads_responses_holding_line_separators(tmp_path, separator):
    """Before: predictions are written with ensure_ascii=False, and the resume reader split them with
    str.splitlines, which also breaks at U+2028, U+2029 and NEL: a response holding one was "not valid JSON"
    and the run refused to resume."""
    path = tmp_path / "predictions.jsonl"
    rows = [{"pid": "1", "response": f"x = 3{separator}so 4"}, {"pid": "2", "response": "plain"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8", newline="")
    assert read_resumable_jsonl(path) == rows
    assert [obj for _, obj in read_predictions(path)] == rows
