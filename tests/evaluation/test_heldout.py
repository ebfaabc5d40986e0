"""The pipeline's held-out evaluation (``evaluation.heldout``) resumes per batch: a run cut short redoes only the
unfinished batches, and the resumed run's predictions are those of an uninterrupted one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from visionr1.evaluation import heldout, run
from visionr1.evaluation.spec import EvalSpec

QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115


@pytest.fixture
def items(tmp_path: Path) -> Path:
    from visionr1.tasks.synthetic import make_synthetic

    return make_synthetic("arithmetic", 10, 7, tmp_path / "data", test_fraction=0.5) / "test.jsonl"


class Killed(Exception):
    pass


def _rows(path: Path) -> list[tuple[str, str]]:
    return [(r["pid"], r["response"]) for r in map(json.loads, path.read_text().splitlines())]


def test_an_evaluation_cut_short_resumes_at_the_unfinished_batch(tiny_model_dir, items, tmp_path, monkeypatch):
    spec = EvalSpec(samples=2, greedy=True, max_new_tokens=5, batch_size=2, seed=11, temperature=1.0)
    n = len(items.read_text().splitlines())
    assert n == 5  # three batches per pass
    whole = heldout.evaluate_checkpoint(tiny_model_dir, items, tmp_path / "whole", spec, 12544, QUIET, "whole")

    real, calls, dies = run.evaluate_samples, [], [True]

    def dies_on_the_fifth_batch(*args, **kwargs):
        calls.append(kwargs["output_dir"])
        if len(calls) == 5 and dies[0]:  # pass sample-1, its second batch
            raise Killed  # the process dies mid-evaluation
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "evaluate_samples", dies_on_the_fifth_batch)
    with pytest.raises(Killed):
        heldout.evaluate_checkpoint(tiny_model_dir, items, tmp_path / "cut", spec, 12544, QUIET, "cut")
    finished = calls[:4]
    calls.clear()
    dies[0] = False
    import torch

    torch.manual_seed(12345)  # a new process: the random state the cut run left is gone
    resumed = heldout.evaluate_checkpoint(tiny_model_dir, items, tmp_path / "cut", spec, 12544, QUIET, "cut")
    batches = 3 * -(-n // 2)  # passes x batches per pass
    assert len(calls) == batches - 4 and not set(calls) & set(finished)  # the finished batches were not redone
    for decoding in ("sample-0", "sample-1", "greedy"):
        assert _rows(tmp_path / "cut" / decoding / "predictions.jsonl") == _rows(tmp_path / "whole" / decoding / "predictions.jsonl")
    assert {k: resumed[k] for k in ("accuracy", "format", "n")} == {k: whole[k] for k in ("accuracy", "format", "n")}

    # finished with these settings: not evaluated again; other settings: evaluated afresh
    calls.clear()
    heldout.evaluate_checkpoint(tiny_model_dir, items, tmp_path / "cut", spec, 12544, QUIET, "cut")
    assert calls == []
    heldout.evaluate_checkpoint(tiny_model_dir, items, tmp_path / "cut", spec.model_copy(update={"samples": 1}),
                                12544, QUIET, "cut")
    assert len(calls) == 2 * -(-n // 2)
    assert not (tmp_path / "cut" / "sample-1").exists()


def test_a_retrained_checkpoint_is_evaluated_again(tiny_model_dir, items, tmp_path, monkeypatch):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    spec = EvalSpec(samples=1, greedy=False, max_new_tokens=3, batch_size=8)
    heldout.evaluate_checkpoint(model, items, tmp_path / "e", spec, 12544, QUIET, "m")
    real, calls = run.evaluate_samples, []
    monkeypatch.setattr(run, "evaluate_samples", lambda *a, **k: calls.append(1) or real(*a, **k))
    heldout.evaluate_checkpoint(model, items, tmp_path / "e", spec, 12544, QUIET, "m")
    assert calls == []  # the same weights: read back
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # the stage was trained again: new weight files
    heldout.evaluate_checkpoint(model, items, tmp_path / "e", spec, 12544, QUIET, "m")
    assert calls == [1]
