"""The step-level judge and judge-selected candidates against a real OpenAI-style HTTP server on loopback."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from visionr1.evaluation.judge import EvalJudge, JudgeConfig
from visionr1.evaluation.step_judge import judge_steps, reasoning_text, split_steps, summarize_steps
from visionr1.evaluation.strategies import ItemInfo


class FakeJudgeServer(BaseHTTPRequestHandler):
    """Step prompts: one line per step, "k 8 <logic>" with logic 9 for steps mentioning "green", else 3
    (or garbage when the question says "garble"). Pick prompts: 10 for a candidate ending in a vowel, else 1."""

    prompts: list[str] = []
    max_tokens: list[int] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        type(self).prompts.append(prompt)
        type(self).max_tokens.append(body["max_tokens"])
        if "Reasoning steps:" in prompt:
            steps = re.findall(r"^(\d+)\. (.*)$", prompt.split("Reasoning steps:\n")[1].split("\nFinal answer")[0],
                               re.MULTILINE)
            if "garble" in prompt:
                reply = "I think they are fine."
            else:
                reply = "\n".join(f"{k} 8 {9 if 'green' in s else 3}" for k, s in steps)
        else:
            cand = prompt.split("Candidate solution:\n")[1].split("\n\nHow likely")[0].strip()
            reply = "10" if cand[-1:].lower() in "aeiou" else "1"
        data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def judge():
    FakeJudgeServer.prompts, FakeJudgeServer.max_tokens = [], []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudgeServer)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    j = EvalJudge(JudgeConfig(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", model="judge", mode="off",
                             max_retries=0))
    yield j
    j.close()
    srv.shutdown()
    srv.server_close()


def test_reasoning_is_cut_into_steps():
    staged = "<think><SUMMARY>s</SUMMARY>\n\n<REASONING>Step 1: red no. Step 2: green yes</REASONING></think><answer>1</answer>"
    assert split_steps(reasoning_text(staged)) == ["Step 1: red no.", "Step 2: green yes"]
    assert split_steps(reasoning_text("<think>a\n\nb\nc</think><answer>x</answer>")) == ["a", "b", "c"]
    assert split_steps(reasoning_text("no tags. Just two sentences. <answer>3</answer>")) == ["no tags.",
                                                                                             "Just two sentences."]
    assert split_steps("") == []


def test_steps_scored_per_step_against_the_ground_truth_description(judge):
    info = ItemInfo("p", "How many green objects?", "count", None, "a red circle; a green square")
    response = "<think>1. the red circle does not count\n2. the green square counts\n3. so 1</think><answer>1</answer>"
    result = judge_steps(judge, info, response)
    assert result["parsed"] and result["reference"] == "ground_truth" and result["n_steps"] == 3
    assert [s["logic"] for s in result["steps"]] == [0.3, 0.9, 0.3]
    assert result["logic"] == pytest.approx(0.5) and result["faithfulness"] == pytest.approx(0.8)
    prompt = FakeJudgeServer.prompts[-1]
    assert "a red circle; a green square" in prompt and "Final answer given: 1" in prompt
    assert FakeJudgeServer.max_tokens[-1] >= 3 * 16 and judge.config.max_tokens == 256  # sized, then restored

    long_steps = "\n".join(f"{k}. green step {k}" for k in range(1, 46))
    many = judge_steps(judge, info, f"<think>{long_steps}</think><answer>1</answer>")
    assert many["n_steps"] == 30 and many["merged"] == 15 and many["parsed"]

    none = judge_steps(judge, ItemInfo("q", "garble", "count", None, None), response)
    assert not none["parsed"] and none["logic"] is None and none["reference"] == "none" and "raw" in none
    summary = summarize_steps([result, many, none, None])
    assert summary["items"] == 3 and summary["parsed"] == 2 and summary["unparsed"] == 1
    assert summary["mean_logic"] == pytest.approx((0.5 + (29 * 0.9 + 0.9) / 30) / 2)


@pytest.mark.slow
def test_judge_selection_and_step_scores_in_an_eval_run(tiny_model_dir, tmp_path, judge):
    import torch

    from visionr1.evaluation.run import DecodingConfig, run_benchmark
    from visionr1.evaluation.strategies import parse_strategy
    from visionr1.tasks.synthetic import make_synthetic

    data = make_synthetic("counting", 4, 1, tmp_path / "syn", test_fraction=0.5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_benchmark(
            "synthetic", tiny_model_dir, data, tmp_path / "out",
            DecodingConfig(max_new_tokens=6, temperature=1.0, seed=2), judge=judge,
            strategy=parse_strategy("best-of-n:n=3,select=judge,step_judge=true"),
        )
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        scores = [c["judge_score"] for c in r["candidates"]]
        assert scores[r["chosen"]] == max(scores)
        assert r["step_judge"]["reference"] == "ground_truth" and "n_steps" in r["step_judge"]
    pick_prompts = [p for p in FakeJudgeServer.prompts if "Candidate solution" in p]
    assert len(pick_prompts) == 6  # 3 candidates x 2 items, over HTTP
    sj = summary["step_judge"]
    assert sj["items"] == 2 and sj["parsed"] + sj["unparsed"] == 2
    assert summary["accuracy"] is not None and summary["strategy"]["select"] == "judge"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["step_judge"] == sj


def test_doctests_of_the_strategy_modules():
    import doctest

    import visionr1.evaluation.step_judge
    import visionr1.evaluation.strategies

    for mod in (visionr1.evaluation.strategies, visionr1.evaluation.step_judge):
        result = doctest.testmod(mod)
        assert result.attempted >= 3 and result.failed == 0, mod.__name__
