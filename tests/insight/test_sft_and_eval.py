"""The two Insight-V agents on the tiny model: both SFT sets train in `visionr1 train` SFT stages, and
`visionr1 eval run --strategy insight-v` runs reasoner -> summary agent end to end, logged and resumable."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from tests.training.conftest import load_state, read_jsonl
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.evaluation.records import EvalError
from visionr1.evaluation.strategies import _insight_summary, parse_strategy, with_user_text
from visionr1.insight import load_insight_recipe, run_insight_data

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_both_sft_sets_train_in_sft_stages(tmp_path, tiny_model_dir):
    from visionr1.recipe import load_recipe
    from visionr1.training.runner import main

    data = tmp_path / "insight"
    run_insight_data(load_insight_recipe(REPO / "recipes" / "insight-v" / "data_oracle.yaml",
                                         ["input.task=spatial", "input.n=6"]), data)
    recipe = tmp_path / "agents.yaml"
    recipe.write_text(textwrap.dedent(f"""
        # test recipe: the reasoning agent's set, then the summary agent's, one SFT stage each
        include: {REPO / 'recipes' / 'insight-v' / 'sft_tiny.yaml'}
        name: insight-agents
        model: {{path: {tiny_model_dir}}}
        stages:
          - name: reasoner
            type: sft
            dataset: {{format: sharegpt, path: {data / 'reasoner_sft.json'}}}
            sft: {{max_steps: 2, learning_rate: 1.0e-3, per_device_train_batch_size: 2, max_length: 2048,
                  bf16: false, gradient_checkpointing: false}}
          - name: summary
            type: sft
            dataset: {{format: sharegpt, path: {data / 'summary_sft.json'}}}
            sft: {{max_steps: 2, learning_rate: 1.0e-3, per_device_train_batch_size: 2, max_length: 2048,
                  bf16: false, gradient_checkpointing: false}}
        """))
    summary = main(load_recipe(recipe), output_dir=tmp_path / "run")
    assert summary["stages"] == {"reasoner": "done", "summary": "done"}
    base, first = load_state(tiny_model_dir), load_state(tmp_path / "run" / "reasoner" / "final")
    second = load_state(tmp_path / "run" / "summary" / "final")
    assert any(not torch.equal(base[n], first[n]) for n in base)
    assert any(not torch.equal(first[n], second[n]) for n in first)
    train = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert [(r["stage"], r["step"]) for r in train] == [("reasoner", 1), ("reasoner", 2), ("summary", 1), ("summary", 2)]
    assert all(r["loss"] > 0 for r in train)


def test_insight_v_strategy_end_to_end_through_the_cli(tmp_path, tiny_model_dir):
    data = tmp_path / "syn"
    assert CliRunner().invoke(app, ["make-synthetic", "--task", "counting", "--n", "20", "--seed", "3",
                                    "--out", str(data)]).exit_code == 0
    out = tmp_path / "eval"
    args = ["eval", "run", "-b", "synthetic", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(out),
            "--strategy", "insight-v:summary_tokens=6", "--max-new-tokens", "10", "--temperature", "0",
            "--batch-size", "2"]
    result = CliRunner().invoke(app, [*args, "--summary-model", "tiny:qwen2_5_vl/test"])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 2
    for r in rows:
        assert r["strategy"] == "insight-v" and r["chain"] and r["chain_tokens"] == 10  # random weights: never stops
        assert r["summary_tokens"] <= 6 and r["num_tokens"] == r["chain_tokens"] + r["summary_tokens"]
        assert set(r) >= {"verdict", "answer", "reasoner_answer", "reasoner_correct", "final_correct", "chain_steps"}
    summary = json.loads((out / "summary.json").read_text())
    s = summary["strategy"]
    assert s["name"] == "insight-v" and s["summary_model"] == "tiny:qwen2_5_vl/test"
    assert s["reasoner_accuracy"] == sum(r["reasoner_correct"] for r in rows) / 2
    assert s["final_accuracy"] == sum(r["final_correct"] for r in rows) / 2 == summary["accuracy"]
    config = json.loads((out / "run_config.json").read_text())
    assert config["summary_model_files"]
    # resume: nothing left to generate; another summary agent is another experiment
    again = CliRunner().invoke(app, [*args, "--summary-model", "tiny:qwen2_5_vl/test"])
    assert again.exit_code == 0 and "resumed: 2 responses" in again.output
    other = CliRunner().invoke(app, args)
    assert other.exit_code != 0 and "summary_model" in other.output
    wrong = CliRunner().invoke(app, [*args[:-8], "--output", str(tmp_path / "x"), "--summary-model", "m"])
    assert wrong.exit_code != 0


def test_insight_v_parsing_prompts_and_summary():
    cfg = parse_strategy("insight-v:summary_tokens=64")
    assert cfg.summary_tokens == 64 and cfg.to_json()["name"] == "insight-v"
    with pytest.raises(EvalError, match="has no option 'n'"):
        parse_strategy("insight-v:n=3")
    prompt = [{"role": "system", "content": [{"type": "text", "text": "sys"}]},
              {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "old\nThink step by step"}]}]
    new = with_user_text(prompt, "How many?")
    assert new[1]["content"] == [{"type": "image"}, {"type": "text", "text": "How many?"}] and prompt[1]["content"][1]["text"].startswith("old")
    rows = [{"reasoner_correct": True, "final_correct": True, "verdict": "correct", "chain_steps": 3},
            {"reasoner_correct": False, "final_correct": True, "verdict": "flawed", "chain_steps": 2},
            {"reasoner_correct": False, "final_correct": False, "verdict": "correct", "chain_steps": 1},
            {"reasoner_correct": True, "final_correct": False, "verdict": None, "chain_steps": 0}]
    assert _insight_summary(rows) == {"reasoner_accuracy": 0.5, "final_accuracy": 0.5, "summary_changed_answer": 2,
                                      "verdicts": {"correct": 2, "flawed": 1, "None": 1},
                                      "verdict_right_rate": 2 / 3, "mean_chain_steps": 1.5}
