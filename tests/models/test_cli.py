"""Smoke tests of `visionr1 make-tiny-model` and `visionr1 make-synthetic`."""

import json

from typer.testing import CliRunner

from visionr1.cli import app

runner = CliRunner()


def test_make_synthetic_writes_train_test_and_images(tmp_path):
    out = tmp_path / "count"
    result = runner.invoke(app, ["make-synthetic", "--task", "counting", "--n", "5", "--seed", "1",
                                 "--out", str(out), "--difficulty", "medium", "--test-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    assert "4 train + 1 test counting items (medium)" in result.output
    rec = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert rec["task"] == "count" and (out / rec["images"][0]).is_file()


def test_make_synthetic_rejects_unknown_task_and_difficulty(tmp_path):
    result = runner.invoke(app, ["make-synthetic", "--task", "sudoku", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--task 'sudoku' is not one of counting" in result.output
    result = runner.invoke(app, ["make-synthetic", "--task", "choice", "--out", str(tmp_path), "--difficulty", "x"])
    assert result.exit_code == 2 and "easy, medium, hard" in result.output


def test_make_tiny_model_writes_a_loadable_checkpoint(tmp_path):
    from transformers import AutoConfig

    result = runner.invoke(app, ["make-tiny-model", "--family", "qwen3_vl", "--size", "test", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output
    assert AutoConfig.from_pretrained(tmp_path).model_type == "qwen3_vl"
    bad = runner.invoke(app, ["make-tiny-model", "--family", "llava", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "qwen2_5_vl" in bad.output


def test_help_texts_list_the_choices():
    assert "qwen2_vl | qwen2_5_vl | qwen3_vl" in runner.invoke(app, ["make-tiny-model", "--help"]).output
    assert "grounding" in runner.invoke(app, ["make-synthetic", "--help"]).output
