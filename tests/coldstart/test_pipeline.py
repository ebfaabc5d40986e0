"""End to end on synthetic records: oracle backend -> ShareGPT / canonical files the SFT stage loads; the CLI;
resume and torn logs; the local transformers backend with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.coldstart import load_coldstart_recipe, run_coldstart
from visionr1.coldstart.store import JsonlLog
from visionr1.data.loaders import load_samples
from visionr1.data.spec import DatasetSpec
from visionr1.rewards.scoring import is_correct

DEMO = str(Path(__file__).resolve().parents[2] / "recipes" / "coldstart" / "synthetic_oracle.yaml")
ORACLE = """
name: demo
input: {{format: synthetic, task: {task}, n: {n}, seed: 0}}
backends: {{oracle: {{type: oracle}}}}
pseudo_cot: {{backend: oracle}}
description: {{backend: oracle, variant: {variant}}}
reasoning: {{backend: oracle}}
"""


def oracle_recipe(tmp_path, task="counting", n=6, variant="caption_first", overrides=()):
    p = tmp_path / f"{task}-{variant}.yaml"
    p.write_text(ORACLE.format(task=task, n=n, variant=variant))
    return load_coldstart_recipe(p, list(overrides))


def test_synthetic_to_sharegpt_that_sft_loads(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["coldstart", DEMO, "input.n=12", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "ORACLE" in result.output  # the printed report says the data is not a model's

    loaded = load_samples(DatasetSpec(format="sharegpt", path=str(out / "sharegpt.json")))
    ds = loaded.dataset
    assert len(ds) == 12 and not loaded.skipped
    row = ds[0]
    assert row["prompt"][-1]["role"] == "user" and row["prompt"][-1]["content"][0]["type"] == "image"
    text = row["completion"][0]["content"][0]["text"]
    assert text.startswith("<think>\nLet me first look at the image: ")
    assert text.endswith(f"</think><answer> Final Answer:{row['solution']} </answer>")
    assert row["images"][0].size == (112, 112)
    assert json.loads(row["metadata"])["oracle"] is True  # the label travels with the data

    canon = load_samples(DatasetSpec(format="jsonl", path=str(out / "cold_start.jsonl"))).dataset
    assert canon["id"] == ds["id"] and canon[0]["completion"][0]["content"][0]["text"] == text

    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["kept"] == 12 and report["oracle_steps"] == ["pseudo_cot", "description", "reasoning"]
    assert "ORACLE" in report["oracle_note"]
    assert all(r["oracle"] and r["generators"]["reasoning"] == "oracle" for r in JsonlLog(out / "records.jsonl"))
    info = json.loads((out / "run_info.json").read_text())
    assert {"recipe", "templates", "versions", "git"} <= set(info)
    assert (out / "dataset_info.json").is_file()

    # the same command again: nothing to do, nothing appended, same outputs
    lines = (out / "records.jsonl").read_text()
    again = CliRunner().invoke(app, ["coldstart", DEMO, "input.n=12", "--output-dir", str(out)])
    assert again.exit_code == 0 and "12 already finished, 0 to do" in again.output
    assert (out / "records.jsonl").read_text() == lines


@pytest.mark.parametrize("task", ["counting", "arithmetic", "choice", "grounding", "spatial"])
def test_every_synthetic_task_passes_the_filters_with_the_oracle(tmp_path, task):
    """The oracle's answers are right by construction: all kept, and the reward library agrees."""
    report = run_coldstart(oracle_recipe(tmp_path, task, variant="detailed"), output_dir=tmp_path / "out")
    assert report["kept"] == 6, report["dropped"]
    for item in json.loads((tmp_path / "out" / "sharegpt.json").read_text()):
        response = item["messages"][-1]["content"]
        assert not response.startswith("<think>\nLet me first look")  # detailed: no caption in the thinking
        assert is_correct(response, item["solution"], item["task"])


def test_filter_changes_rejudge_from_cache_without_generating(tmp_path):
    out = tmp_path / "out"
    run_coldstart(oracle_recipe(tmp_path), output_dir=out)
    steps_before = (out / "steps" / "reasoning.jsonl").read_text()
    report = run_coldstart(oracle_recipe(tmp_path, overrides=["filters.min_think_chars=100000"]), output_dir=out)
    assert report["dropped"] == {"too_short": 6} and report["this_run"]["processed"] == 6
    assert (out / "steps" / "reasoning.jsonl").read_text() == steps_before  # no step was asked again


def test_torn_last_lines_after_a_crash_are_skipped_and_fenced(tmp_path):
    out = tmp_path / "out"
    run_coldstart(oracle_recipe(tmp_path, n=4), output_dir=out)
    # simulate a kill in the middle of writing: a half line at the end of the logs, and a lost verdict
    recs = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join(recs[:3]) + '\n{"id": "counting-s0-easy-000')
    with (out / "steps" / "reasoning.jsonl").open("a") as f:
        f.write('{"id": "x", "step": "reas')
    report = run_coldstart(oracle_recipe(tmp_path, n=4), output_dir=out)
    assert report["complete"] and report["kept"] == 4 and report["this_run"]["processed"] == 1
    log = JsonlLog(out / "records.jsonl")
    assert len(list(log)) == 4 and log.torn_lines == 1


def test_oracle_on_records_without_ground_truth_fails_them_with_a_reason(tmp_path, make_records):
    data = make_records(tmp_path / "data", 2)
    p = tmp_path / "r.yaml"
    p.write_text(ORACLE.format(task="counting", n=1, variant="detailed").replace(
        "{format: synthetic, task: counting, n: 1, seed: 0}", json.dumps({"format": "jsonl", "path": str(data)})))
    report = run_coldstart(load_coldstart_recipe(p), output_dir=tmp_path / "out")
    assert report["failed"] == {"pseudo_cot:oracle_missing_metadata": 2} and report["kept"] == 0
    rec = next(iter(JsonlLog(tmp_path / "out" / "records.jsonl")))
    assert "metadata.description" in rec["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("as_spec", [False, True], ids=["checkpoint-dir", "tiny-spec"])
def test_local_backend_with_the_tiny_model(tmp_path, tiny_model_dir, as_spec):
    """Steps 1-2 by the tiny Qwen2.5-VL in-process (visionr1.inference, batched), step 3 by the oracle; the
    model given as a checkpoint directory or, as recipes and ``eval run`` accept it, ``tiny:FAMILY/SIZE``."""
    model = "tiny:qwen2_5_vl/test" if as_spec else str(tiny_model_dir)
    recipe = oracle_recipe(tmp_path, n=4, overrides=[
        f"backends.mllm={json.dumps({'type': 'local', 'model': model, 'batch_size': 4, 'device': 'cpu'})}",
        "pseudo_cot.backend=mllm", "description.backend=mllm",
        "pseudo_cot.max_tokens=8", "description.max_tokens=8",
    ])
    report = run_coldstart(recipe, output_dir=tmp_path / "out")
    assert report["finished"] == 4 and not report["failed"]
    assert report["backends"]["pseudo_cot"]["label"].startswith("local:") and report["oracle_steps"] == ["reasoning"]
    assert recipe.backends["mllm"].model == model  # a tiny: spec is not made a path relative to the recipe
    tok = report["tokens"]["pseudo_cot"]
    assert tok["requests_ok"] == 4 and 4 <= tok["completion_tokens"] <= 32
    entries = list(JsonlLog(tmp_path / "out" / "steps" / "description.jsonl"))
    assert all(e["ok"] and e["backend"].startswith("local:") for e in entries)


def test_an_unexpected_error_in_one_record_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    import visionr1.coldstart.pipeline as pipeline

    real = pipeline.save_images

    def flaky(out, rid, images):
        if rid.endswith("00002"):
            raise OSError("disk hiccup")
        return real(out, rid, images)

    monkeypatch.setattr(pipeline, "save_images", flaky)
    report = run_coldstart(oracle_recipe(tmp_path, n=4), output_dir=tmp_path / "out")
    assert report["kept"] == 3 and report["failed"] == {"record:error": 1} and not report["pending"]
    bad = JsonlLog(tmp_path / "out" / "records.jsonl").latest()["counting-s0-easy-00002"]
    assert bad["detail"] == "OSError: disk hiccup"


def test_oracle_reflections_make_long_reflective_thinking(tmp_path):
    """max_reflections appends 0..N re-checks per record (fixed by its id), as in Vision-R1-cold's thinking;
    the answers stay right, and the report counts the reflection words."""
    recipe = oracle_recipe(tmp_path, n=24, overrides=["backends.oracle.max_reflections=2"])
    report = run_coldstart(recipe, output_dir=tmp_path / "out")
    assert report["kept"] == 24
    rows = [json.loads(x) for x in (tmp_path / "out" / "cold_start.jsonl").read_text().splitlines()]
    texts = [r["completion"][0]["content"][0]["text"] for r in rows]
    counts = [t.count("Wait, let me check") + t.count("Hmm, let me look") for t in texts]
    assert set(counts) == {0, 1, 2}  # every count from 0 to max occurs in 24 records
    assert all(is_correct(t, r["solution"], r["task"]) for t, r in zip(texts, rows, strict=True))
    again = run_coldstart(oracle_recipe(tmp_path, n=24, overrides=["backends.oracle.max_reflections=2"]),
                          output_dir=tmp_path / "again")
    assert again["kept"] == 24
    assert (tmp_path / "again" / "cold_start.jsonl").read_text() == (tmp_path / "out" / "cold_start.jsonl").read_text()
