"""Inference-time strategies: option parsing, the vote's equivalence, selection, and each strategy end to end on
the seeded tiny model (resumable, deterministic, the kept candidate is the one the criterion prefers)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from visionr1.evaluation import strategies as S
from visionr1.evaluation.records import EvalError
from visionr1.evaluation.strategies import ItemInfo, parse_strategy, pick, same_answer, vote
from visionr1.inference import Candidate

# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("spec, match", [
    ("bean", "did you mean 'beam'"),
    ("vote:width=4", "vote has no option 'width'"),
    ("beam:widht=4", "did you mean 'width'"),
    ("beam:width=four", "expected an integer"),
    ("beam:width=0", "must be >= 1"),
    ("beam:select=oracle", "only for best-of-n"),
    ("best-of-n:select=best", "choose one of logprob, judge, oracle"),
    ("staged:stages=cot", "choose one of llamav-o1, think-answer"),
    ("vote:step_judge=maybe", "expected true or false"),
    ("vote:8", "not key=value"),
])
def test_bad_strategy_specs_name_the_option_and_the_fix(spec, match):
    with pytest.raises(EvalError, match=match):
        parse_strategy(spec)


@pytest.mark.parametrize("spec,width,expect", [
    ("single", 8, ("beam", 8)),
    ("", 3, ("beam", 3)),
    ("beam:select=logprob,stages=think-answer", 2, ("beam", 2)),
    ("beam:width=2", 2, ("beam", 2)),
    ("vote:n=4", None, ("vote", 4)),
])
def test_beam_width_flag_sets_the_beam(spec, width, expect):
    plan = S.with_beam_width(parse_strategy(spec or "single"), spec, width)
    assert (plan.name, plan.n) == expect


@pytest.mark.parametrize("spec,width,match", [
    ("vote:n=4", 2, "has no beam"),
    ("best-of-n", 2, "has no beam"),
    ("beam:width=2", 8, "contradicts"),
    ("beam:beam-width=2", 8, "contradicts"),
])
def test_beam_width_flag_refuses_what_it_would_not_change(spec, width, match):
    with pytest.raises(EvalError, match=match):
        S.with_beam_width(parse_strategy(spec), spec, width)


def test_spec_parsing_and_recorded_config():
    beam = parse_strategy("Beam:beam-width=8, select=judge, stages=think-answer, stage_tokens=64")
    assert (beam.name, beam.n, beam.select, beam.stages, beam.stage_tokens) == ("beam", 8, "judge", "think-answer", 64)
    assert beam.to_json() == {"name": "beam", "n": 8, "select": "judge", "stages": "think-answer",
                              "stage_tokens": 64, "step_judge": False}
    assert parse_strategy("caption-first:prefix=<think>\\nJe vois l'écran").prefix == "<think>\nJe vois l'écran"
    with pytest.raises(EvalError, match="need sampling"):
        parse_strategy("vote:n=4").check(0.0, None)
    with pytest.raises(EvalError, match="--judge-url"):
        parse_strategy("best-of-n:select=judge").check(0.6, None)
    parse_strategy("vote:n=1").check(0.0, None)  # one sample may be greedy


# ---------------------------------------------------------------------------------------------- vote


def _info(task, choices=None):
    return ItemInfo("x", "q", task, choices, None)


@pytest.mark.parametrize("task, choices, answers, logprobs, kept, sizes", [
    # 2/4, 0.5 and \frac{1}{2} are one vote; it beats 1/3 even though 1/3 has the best log-prob
    ("math", None, ["2/4", "1/3", "0.5", r"\frac{1}{2}", None], [-3.0, -0.1, -1.0, -2.0, 0.0], 2, [3, 1]),
    # a tie (2 vs 2) goes to the group holding the best log-prob candidate
    ("math", None, ["3", "4", "3.0", "4"], [-2.0, -1.5, -2.5, -0.5], 3, [2, 2]),
    ("count", None, ["two", "2", "3"], [-1.0, -2.0, -0.1], 0, [2, 1]),
    ("choice", ["red", "blue", "green"], ["(B)", "blue", "A", "B. blue"], [-2.0, -1.0, -0.1, -3.0], 1, [3, 1]),
    ("math", None, [None, None], [-2.0, -1.0], 1, []),  # nobody answered: the best log-prob is kept
])
def test_vote_groups_answers_by_the_scorers_equivalence(task, choices, answers, logprobs, kept, sizes):
    info = _info(task, choices)
    chosen, groups = vote(answers, logprobs, lambda a, b: same_answer(a, b, info))
    assert chosen == kept
    assert sorted((len(g["members"]) for g in groups), reverse=True) == sizes


def test_pick_prefers_score_then_logprob():
    assert pick([0.0, 1.0, 1.0], [-0.1, -3.0, -2.0]) == 2
    assert pick([None, 2.0], [0.0, -5.0]) == 1
    assert pick([0.0, 0.0], [None, -9.0]) == 1


# ---------------------------------------------------------------------------------------------- beam, fake model


def _cand(text, lp, n=3):
    return Candidate(text, n, False, lp * n, lp, "stop")


class FakeJudge:
    """Prefers candidates containing "good" (10) over everything else (2)."""

    def __init__(self):
        self.prompts = []

    def complete(self, prompt):
        self.prompts.append(prompt)
        candidate = prompt.split("Candidate")[-1]
        return "10" if "good" in candidate else "2"


@pytest.mark.parametrize("select, kept_first, kept_second", [("logprob", "likely", "sure 4"), ("judge", "good", "good2 3")])
def test_beam_keeps_the_best_candidate_by_the_criterion_and_continues_from_it(monkeypatch, select, kept_first,
                                                                               kept_second):
    calls = []

    def fake_candidates(generator, prompts, images, prefixes, n, max_new_tokens, stop=None):
        calls.append({"prefixes": list(prefixes), "n": n, "stop": stop})
        if len(calls) == 1:  # think stage: the judge's favourite has the worst log-prob
            texts = [("likely</think>", -0.2), ("good</think>", -3.0), ("meh</think>", -1.0)]
        else:
            texts = [("sure 4</answer>", -0.1), ("good2 3</answer>", -2.5), ("x</answer>", -0.9)]
        return [[_cand(t, lp) for t, lp in texts] for _ in prompts]

    monkeypatch.setattr(S, "_candidates", fake_candidates)
    cfg = parse_strategy(f"beam:width=3,select={select},stages=think-answer")
    gen = SimpleNamespace(decoding=SimpleNamespace(max_new_tokens=50), opened="")
    info = _info("count")
    [row] = S._staged(cfg, gen, [[{"role": "user", "content": "q"}]], [[]], [info], FakeJudge())
    assert calls[0]["n"] == 3 and calls[0]["stop"] == ["</think>"] and calls[0]["prefixes"] == ["<think>"]
    assert calls[1]["prefixes"] == [f"<think>{kept_first}</think><answer>"]  # continues from the kept one
    assert row["staged_text"] == f"<think>{kept_first}</think><answer>{kept_second}</answer>"
    assert row["response"] == row["staged_text"] and row["num_tokens"] == 18  # 2 stages x 3 candidates x 3
    assert [s["chosen"] for s in row["stages"]] == ([0, 0] if select == "logprob" else [1, 1])


def test_staged_conclusion_is_what_is_scored(monkeypatch):
    def fake_candidates(generator, prompts, images, prefixes, n, max_new_tokens, stop=None):
        body = {"</SUMMARY>": "count", "</CAPTION>": "1 red, 2 green", "</REASONING>": "1. 5 apples? no\n2. two green",
                "</CONCLUSION>": "2"}[stop[0]]
        # the model closes every stage but the caption (the strategy closes it)
        return [[_cand(body if stop[0] == "</CAPTION>" else body + stop[0], -1.0)] for _ in prompts]

    monkeypatch.setattr(S, "_candidates", fake_candidates)
    gen = SimpleNamespace(decoding=SimpleNamespace(max_new_tokens=50), opened="")
    [row] = S._staged(parse_strategy("staged"), gen, [[{"role": "user", "content": "q"}]], [[]], [_info("count")], None)
    assert row["response"].endswith("</think><answer>2</answer>") and row["answer"] == "2"
    assert "<CAPTION>1 red, 2 green</CAPTION>" in row["staged_text"]
    assert [s["closed"] for s in row["stages"]] == [True, False, True, True]


# ---------------------------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster than two fighting over a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    from visionr1.tasks.synthetic import make_synthetic

    return make_synthetic("counting", 8, 0, tmp_path_factory.mktemp("syn"), test_fraction=0.5)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run(tiny_model_dir, data, out, spec, limit=3, **kw):
    from visionr1.evaluation.run import DecodingConfig, run_benchmark

    decoding = DecodingConfig(max_new_tokens=6, temperature=1.0, top_p=0.95, batch_size=8, seed=3)
    return run_benchmark("synthetic", tiny_model_dir, data, out, decoding, limit=limit, strategy=parse_strategy(spec),
                         **kw)


SPECS = ["staged:stage_tokens=4", "beam:width=3,stage_tokens=4", "best-of-n:n=3", "vote:n=4", "caption-first",
         "best-of-n:n=3,select=oracle"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_strategy_end_to_end_on_the_tiny_model(one_thread, tiny_model_dir, synthetic_dir, tmp_path, spec):
    cfg = parse_strategy(spec)
    summary = _run(tiny_model_dir, synthetic_dir, tmp_path / "a", spec)
    rows = _lines(tmp_path / "a" / "predictions.jsonl")
    assert summary["n"] == 3 and len(rows) == 3 and summary["generated_this_run"] == 3
    assert summary["strategy"]["name"] == cfg.name
    assert summary["strategy"]["tokens_per_item"] == pytest.approx(sum(r["num_tokens"] for r in rows) / 3)
    assert summary["mean_completion_tokens"] == summary["strategy"]["tokens_per_item"]
    assert summary["strategy"]["upper_bound"] == (cfg.select == "oracle" and cfg.name == "best-of-n")
    for r in rows:
        assert r["strategy"] == cfg.name
        if cfg.name in ("staged", "beam"):
            assert [s["stage"] for s in r["stages"]] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
            for s in r["stages"]:
                assert len(s["candidates"]) == cfg.samples
                lps = [c["mean_logprob"] for c in s["candidates"]]
                assert lps[s["chosen"]] == max(lps)  # beam keeps the most likely stage candidate
            assert r["num_tokens"] == sum(c["num_tokens"] for s in r["stages"] for c in s["candidates"])
            assert r["response"].startswith("<think><SUMMARY>") and "<answer>" in r["response"]
        else:
            cands = r["candidates"]
            assert len(cands) == cfg.samples and r["num_tokens"] == sum(c["num_tokens"] for c in cands)
            assert r["response"] == (cfg.prefix if cfg.name == "caption-first" else "") + cands[r["chosen"]]["text"]
            lps = [c["mean_logprob"] for c in cands]
            if cfg.name == "best-of-n" and cfg.select == "logprob":
                assert lps[r["chosen"]] == max(lps)
            if cfg.name == "vote":
                assert sum(g["count"] for g in r["votes"]) == sum(c["answer"] is not None for c in cands)
                if r["votes"]:
                    top = max(g["count"] for g in r["votes"])
                    assert any(r["chosen"] in g["members"] and g["count"] == top for g in r["votes"])
            if cfg.select == "oracle":
                assert all("oracle_correct" in c for c in cands)
                if any(c["oracle_correct"] for c in cands):
                    assert cands[r["chosen"]]["oracle_correct"]

    # deterministic: the same seed gives the same candidates
    _run(tiny_model_dir, synthetic_dir, tmp_path / "b", spec)
    assert _lines(tmp_path / "b" / "predictions.jsonl") == rows


@pytest.mark.slow
def test_strategy_runs_resume_and_refuse_other_options(one_thread, tiny_model_dir, synthetic_dir, tmp_path):
    out = tmp_path / "run"
    _run(tiny_model_dir, synthetic_dir, out, "vote:n=2", limit=2)
    first = _lines(out / "predictions.jsonl")
    summary = _run(tiny_model_dir, synthetic_dir, out, "vote:n=2", limit=3)
    assert summary["resumed_from"] == 2 and summary["generated_this_run"] == 1
    assert _lines(out / "predictions.jsonl")[:2] == first
    assert json.loads((out / "run_config.json").read_text())["strategy"] == {"name": "vote", "n": 2, "step_judge": False}
    with pytest.raises(EvalError, match="strategy: was"):
        _run(tiny_model_dir, synthetic_dir, out, "vote:n=3", limit=3)
    with pytest.raises(EvalError, match="strategy: was"):
        _run(tiny_model_dir, synthetic_dir, out, "single", limit=3)


@pytest.mark.slow
def test_cli_strategy_option(one_thread, tiny_model_dir, synthetic_dir, tmp_path):
    from typer.testing import CliRunner

    from visionr1.cli import app

    base = ["eval", "run", "-b", "synthetic", "--model", str(tiny_model_dir), "--data", str(synthetic_dir),
            "--max-new-tokens", "4", "--limit", "2", "--temperature", "1.0"]
    res = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "o"), "--strategy", "best-of-n:n=2,select=oracle"])
    assert res.exit_code == 0, res.output
    assert "UPPER BOUND" in res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["strategy"]["upper_bound"] and summary["strategy"]["n"] == 2
    bad = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "p"), "--strategy", "beam:widht=2"])
    assert bad.exit_code != 0 and "did you mean 'width'" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "p").exists()
    # --beam-width N (LlamaV-o1's spelling): alone it selects beam; with another strategy it is refused
    res = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "w"), "--beam-width", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "w" / "summary.json").read_text())["strategy"]["n"] == 2
    bad = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "v"), "--strategy", "vote:n=2", "--beam-width", "2"])
    assert bad.exit_code != 0 and "has no beam" in bad.output and not (tmp_path / "v").exists()
