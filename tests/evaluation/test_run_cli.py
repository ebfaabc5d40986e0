"""``eval run`` takes the scoring options ``eval score`` takes, and a failed attempt does not block the
corrected command (issue 24, item 7). The model is a stand-in: only the bookkeeping is under test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visionr1.cli import app


class _Generator:
    """Answers every prompt with ``\\boxed{4}`` outside an answer block (a reading only the rewards make)."""

    def __init__(self, model_path, decoding, backend, dtype, device):
        if backend == "vllm":
            raise ImportError("vLLM is not installed: pip install 'visionr1[vllm]', or use --backend transformers")
        self.processor = None

    def __call__(self, prompts, images):
        from visionr1.inference import Generation

        return [Generation("<think>so</think> The result: \\boxed{4}\nDone", 3, False) for _ in prompts]


@pytest.fixture
def data(tmp_path, monkeypatch):
    from tests.varied import write_mathv

    import visionr1.evaluation.run as run

    monkeypatch.setattr(run, "Generator", _Generator)
    return write_mathv(tmp_path / "mathv", 4, 0)


def _run(data, out, *extra):
    return CliRunner().invoke(app, ["eval", "run", "-b", "mathvision", "--model", "tiny:qwen2_5_vl/test", "--data",
                                    str(data), "-o", str(out), "--max-new-tokens", "4", *extra])


def test_eval_run_takes_lenient_and_strict(tmp_path, data):
    res = _run(data, tmp_path / "out", "--lenient", "rewards_extraction", "--lenient", "option_latex",
               "--strict", "no_answer")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scoring"]["leniencies"] == ["option_latex", "rewards_extraction"]
    assert summary["scoring"]["strict"] == ["no_answer"]
    # the scoring options change no response: the same output folder resumes with other ones
    again = _run(data, tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["scoring"]["leniencies"] == []


def test_eval_run_refuses_an_unknown_leniency_by_name(tmp_path, data):
    res = _run(data, tmp_path / "out", "--lenient", "everything")
    assert res.exit_code == 2
    assert "unknown leniency ['everything']: choose from rewards_extraction" in " ".join(res.output.split())


def test_a_failed_attempt_does_not_block_the_corrected_command(tmp_path, data):
    failed = _run(data, tmp_path / "out", "--backend", "vllm")
    assert failed.exit_code == 2
    assert "pip install 'visionr1[vllm]'" in " ".join(failed.output.split())  # the brackets are shown
    assert not (tmp_path / "out" / "predictions.jsonl").exists() or not (tmp_path / "out" / "predictions.jsonl").read_text().strip()
    fixed = _run(data, tmp_path / "out")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["generated_this_run"] == 4
    # once responses exist, other settings are still refused
    other = _run(data, tmp_path / "out", "--max-new-tokens", "5")
    assert other.exit_code == 2 and "holds a run with other settings" in " ".join(other.output.split())
