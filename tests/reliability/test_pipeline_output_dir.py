"""`--output-dir X` with a pipeline recipe moves the whole pipeline to X, as `visionr1 run -o X` does: the stages
read the model and data the earlier sections make under X, never another run's (`runs/<name>`)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from visionr1.cli import app

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "recipes" / "demo.yaml"


def test_train_of_a_pipeline_reads_and_writes_under_its_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/<name> would be here
    out = tmp_path / "elsewhere"
    res = CliRunner().invoke(app, ["train", str(PIPELINE), "-o", str(out), "--dry-run", "--plan-only"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output[res.output.index("{"):])
    assert plan["run_dir"] == str(out / "train")
    assert plan["model"]["path"] == str(out / "model")
    paths = [s["dataset"]["path"] for s in plan["stages"]]
    assert paths and all(p.startswith(str(out) + "/") for p in paths), paths
    assert "runs" not in json.dumps(plan["stages"]) + json.dumps(plan["model"])


def test_coldstart_of_a_pipeline_writes_under_its_output_dir(tmp_path, monkeypatch):
    from visionr1.pipeline.load import load_coldstart_section, output_dir_overrides

    monkeypatch.chdir(tmp_path)
    overrides, left = output_dir_overrides(PIPELINE, [], tmp_path / "elsewhere")
    cfg = load_coldstart_section(PIPELINE, overrides)
    assert left is None and Path(cfg.output_dir) == tmp_path / "elsewhere" / "coldstart"
    assert str(tmp_path / "elsewhere") in json.dumps(cfg.input.model_dump(mode="json"))
    # a plain (non-pipeline) recipe keeps its --output-dir as the command's own
    plain = REPO / "recipes" / "tiny" / "sft.yaml"
    assert output_dir_overrides(plain, ["a=1"], tmp_path / "x") == (["a=1"], tmp_path / "x")
