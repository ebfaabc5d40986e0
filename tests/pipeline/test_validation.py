"""The validation split: settings are chosen on it, results reported on the held-out split.

Its items come from a stream of their own (another seed derived from the recipe's) and must never be a training
or a held-out item, by id or by content; adding it changes no training or held-out item; it is evaluated only
when ``eval.split`` asks, into a directory of its own, and every report names the split of each number.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from visionr1.config.base import RecipeError
from visionr1.pipeline import run as pipeline_run
from visionr1.pipeline.config import load_pipeline
from visionr1.pipeline.run import PipelineError, content_key, make_data, validation_seed

DATA_ONLY = """\
name: val-split
seed: 7
data: {name: counting, coldstart_items: 5, rl_items: 4, heldout_items: 3, validation_items: 6}
"""

# data + a test-size random model + an evaluation on both splits: no training, a few tokens per answer
EVAL_BOTH = DATA_ONLY + """\
tiny_model: {family: qwen2_5_vl, size: test}
model: {dtype: float32, max_pixels: 12544}
eval: {split: both, samples: 1, greedy: false, max_new_tokens: 3, batch_size: 6, seed: 1, dtype: float32}
"""


def _recipe(tmp_path: Path, text: str, overrides: list[str] = ()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_pipeline(path, [f"output_dir={tmp_path / 'run'}", *overrides])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_validation_items_are_neither_training_nor_heldout_items(tmp_path):
    p = _recipe(tmp_path, DATA_ONLY)
    result = make_data(p, p.run_dir)
    data = p.run_dir / "data"
    splits = {name: (data / f).read_text().splitlines() for name, f in
              (("train", "train.jsonl"), ("heldout", "test.jsonl"), ("validation", "val.jsonl"))}
    assert [len(v) for v in splits.values()] == [9, 3, 6]
    assert result["validation"] == 6 and result["validation_dropped_duplicates"] == 0
    ids = {name: {json.loads(line)["id"] for line in lines} for name, lines in splits.items()}
    keys = {name: {content_key(data, line) for line in lines} for name, lines in splits.items()}
    for a, b in (("train", "validation"), ("heldout", "validation"), ("train", "heldout")):
        assert not ids[a] & ids[b], (a, b)
        assert not keys[a] & keys[b], (a, b)  # the same question on the same image is the same item
    vseed = validation_seed(7)
    assert vseed != 7 and all(f"-s{vseed}-" in i for i in ids["validation"])
    for r in _records(data / "val.jsonl"):  # each validation item's image is there, and is its own
        assert (data / r["images"][0]).is_file() and r["metadata"]["seed"] == vseed


def test_adding_a_validation_split_changes_no_training_or_heldout_item(tmp_path):
    with_val = _recipe(tmp_path / "a", DATA_ONLY)
    without = _recipe(tmp_path / "b", DATA_ONLY, ["data.validation_items=0"])
    make_data(with_val, with_val.run_dir)
    make_data(without, without.run_dir)
    for f in ("coldstart.jsonl", "rl.jsonl", "test.jsonl"):
        assert (with_val.run_dir / "data" / f).read_bytes() == (without.run_dir / "data" / f).read_bytes(), f
    assert not (without.run_dir / "data" / "val.jsonl").exists()


def test_a_validation_item_equal_to_a_training_item_is_dropped(tmp_path, monkeypatch):
    # the derived seed made equal to the recipe's: the validation stream IS the training stream
    monkeypatch.setattr(pipeline_run, "validation_seed", lambda seed: seed)
    p = _recipe(tmp_path, DATA_ONLY)
    with pytest.raises(PipelineError, match="no validation item is left"):
        make_data(p, p.run_dir)


def test_eval_split_needs_validation_items_and_defaults_to_the_data_sections(tmp_path):
    text = DATA_ONLY + "tiny_model: {family: qwen2_5_vl, size: test}\neval: {samples: 1}\n"
    p = _recipe(tmp_path, text)
    assert p.eval.split == "heldout" and p.eval_splits() == {"heldout": str(p.run_dir / "data" / "test.jsonl")}
    p = _recipe(tmp_path, text, ["eval.split=both"])
    assert p.eval_splits() == {"heldout": str(p.run_dir / "data" / "test.jsonl"),
                               "validation": str(p.run_dir / "data" / "val.jsonl")}
    with pytest.raises(RecipeError, match=r"eval.split=validation needs validation items: set data.validation_items"):
        _recipe(tmp_path, text, ["eval.split=validation", "data.validation_items=0"])
    with pytest.raises(RecipeError, match="eval.split"):
        _recipe(tmp_path, text, ["eval.split=test"])


def test_each_split_is_evaluated_when_asked_into_its_own_directory(tmp_path):
    p = _recipe(tmp_path, EVAL_BOTH)
    quiet = Console(file=io.StringIO())
    out = pipeline_run.main(p, console=quiet)
    assert set(out["eval"]) == {"heldout", "validation"}
    held, val = out["eval"]["heldout"]["base"], out["eval"]["validation"]["base"]
    assert (held["split"], held["n"]) == ("heldout", 3) and (val["split"], val["n"]) == ("validation", 6)
    predicted = {r["pid"] for r in _records(p.run_dir / "eval-validation" / "base" / "sample-0" / "predictions.jsonl")}
    assert predicted == {r["id"] for r in _records(p.run_dir / "data" / "val.jsonl")}
    assert json.loads((p.run_dir / "eval" / "summary.json").read_text())["base"]["n"] == 3

    # heldout only (the default): the validation items are not evaluated
    p = _recipe(tmp_path, EVAL_BOTH, ["eval.split=heldout", f"output_dir={tmp_path / 'run2'}"])
    out = pipeline_run.main(p, console=quiet)
    assert set(out["eval"]) == {"heldout"} and not (p.run_dir / "eval-validation").exists()


def _report(split: str) -> dict:
    scores = {s: {"n": 5, "accuracy": a, "format": 1.0, "mean_completion_tokens": 40.0, "truncated_rate": t,
                  "pass_at_k": a, "samples": 2, "temperature": 0.6, "split": split}
              for s, a, t in (("base", 0.0, 1.0), ("sft", 0.2, 0.6), ("grpo-1", 0.4, 0.0))}
    return {"stages": list(scores), "split": split, split: scores, "wall_seconds": 60.0,
            "gain": {"grpo_over_sft": 20.0, "split": split}}


@pytest.mark.parametrize(("split", "title", "warned"), [("heldout", "held-out results", False),
                                                        ("validation", "validation results", True)])
def test_the_console_table_names_its_split_and_shows_truncation(split, title, warned):
    from visionr1.demo.report import print_table

    buf = io.StringIO()
    print_table(_report(split), Console(file=buf, width=200))
    text = buf.getvalue()
    assert title in text and "truncated" in text and "60.0%" in text  # sft: 60% cut off at the limit
    assert ("not a result to report" in text) is warned
