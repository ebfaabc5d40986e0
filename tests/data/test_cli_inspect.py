"""Smoke test of `visionr1 data inspect`: from a data path with options, and from a dataset-spec YAML."""

from __future__ import annotations

from typer.testing import CliRunner

from visionr1.cli import app


def test_inspect_data_path_and_spec_yaml(tmp_path, fx):
    fx.write_png(tmp_path / "images" / "a.png", (255, 0, 0), size=(300, 200))
    fx.write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": "box", "task": "grounding", "question": "Box it.", "images": ["images/a.png"], "solution": "[30, 20, 150, 100]"},
            {"id": "lost", "task": "count", "question": "How many?", "images": ["images/none.png"], "solution": "2"},
        ],
    )
    runner = CliRunner()
    res = runner.invoke(app, ["data", "inspect", str(tmp_path), "--format", "jsonl", "--split", "train", "--skip-bad", "max_pixels=10000"])
    assert res.exit_code == 0, res.output
    assert "samples" in res.output and "skipped lost: field images[0]: image file not found" in res.output
    assert "user: [image]Box it." in res.output and "'[12, 8, 60, 41]'" in res.output

    (tmp_path / "ds.yaml").write_text("format: jsonl\npath: train.jsonl\n")
    res = runner.invoke(app, ["data", "inspect", str(tmp_path / "ds.yaml")])
    assert res.exit_code == 2 and "record lost: field images[0]" in res.output

    res = runner.invoke(app, ["data", "inspect", str(tmp_path / "ds.yaml"), "limt=3"])
    assert res.exit_code == 2 and "limt: unknown key; did you mean limit?" in res.output

    res = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert res.exit_code == 2 and "--format is required" in res.output
