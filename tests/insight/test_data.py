"""`visionr1 insight data`: the oracle on synthetic tasks, a scripted model over real HTTP behind the fault proxy,
resume per record, and the two SFT sets as our loaders read them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.coldstart.store import JsonlLog
from visionr1.config.base import RecipeError
from visionr1.data.loaders import load_samples
from visionr1.data.spec import DatasetSpec
from visionr1.insight import load_insight_recipe, run_insight_data
from visionr1.insight.chain import Step, parse_verdict
from visionr1.rewards.scoring import is_correct

REPO = Path(__file__).resolve().parents[2]
ORACLE = REPO / "recipes" / "insight-v" / "data_oracle.yaml"


def records(out: Path) -> dict[str, dict]:
    return JsonlLog(out / "records.jsonl").latest()


def oracle(*overrides: str):
    return load_insight_recipe(ORACLE, list(overrides))


@pytest.mark.parametrize("task", ["counting", "arithmetic", "choice", "grounding", "spatial"])
def test_oracle_filters_drop_wrong_answers_and_keep_the_best_rated_chain(tmp_path, task):
    report = run_insight_data(oracle(f"input.task={task}", "input.n=10", "reasoner.chains=4"), tmp_path)
    recs = records(tmp_path)
    assert report["complete"] and report["kept"] == 10 and report["oracle_note"]
    for rec in recs.values():
        variants = {c["oracle_variant"]: c for c in rec["chains"]}
        assert set(variants) == {"full", "terse", "wrong_step", "wrong_final"}  # 4 chains: one of each
        # coarse filter: the wrong answer fails the reward library's scorer; the other three pass it
        assert not variants["wrong_final"]["correct"] and "score" not in variants["wrong_final"]
        assert all(variants[v]["correct"] for v in ("full", "terse", "wrong_step"))
        # fine filter: the scoring agent ranks full > wrong step, and full > terse; the full chain is kept
        assert variants["full"]["score"] == 100 > max(variants["wrong_step"]["score"], variants["terse"]["score"])
        assert rec["status"] == "kept" and rec["chains"][rec["best"]]["oracle_variant"] == "full"
        assert rec["oracle"] and rec["generators"] == {"reasoner": "oracle", "scorer": "oracle"}
        steps = [Step.from_json(s) for s in rec["chains"][rec["best"]]["steps"]]
        assert steps[-1].next_action == "summarize" and all(s.next_action == "continue" for s in steps[:-1])
        assert all(s.summary and s.reasoning for s in steps)
    assert report["chains"] == {"correct": 30, "wrong_answer": 10}


def test_one_chain_per_question_drops_the_questions_whose_chain_is_wrong(tmp_path):
    report = run_insight_data(oracle("input.n=24", "reasoner.chains=1"), tmp_path)
    recs = list(records(tmp_path).values())
    variants = Counter(r["chains"][0]["oracle_variant"] for r in recs)
    assert len(variants) == 4  # the variants vary over the records
    assert report["dropped"] == {"no_correct_chain": variants["wrong_final"]}
    assert report["kept"] == 24 - variants["wrong_final"]
    for r in recs:
        assert (r["status"] == "dropped") == (r["chains"][0]["oracle_variant"] == "wrong_final")
    # a kept record without a generated wrong chain gets no generated_wrong example (counted, not invented)
    assert report["sft_sets"]["summary_not_made"] == {"generated_wrong": report["kept"]}


def test_sft_sets_are_well_formed_and_load_with_our_sharegpt_loader(tmp_path):
    report = run_insight_data(oracle("input.task=arithmetic", "input.n=8"), tmp_path)
    files = report["files"]
    reasoner = load_samples(DatasetSpec(format="sharegpt", path=files["reasoner_sft"])).dataset
    summary = load_samples(DatasetSpec(format="sharegpt", path=files["summary_sft"])).dataset
    assert len(reasoner) == 8 and len(summary) == 32
    assert report["sft_sets"]["summary"] == {"correct": 8, "wrong_step": 8, "wrong_final": 8, "generated_wrong": 8}
    raw = {it["id"]: it for it in json.loads(Path(files["summary_sft"]).read_text())}
    for i in range(len(reasoner)):
        row = reasoner[i]
        text = row["completion"][0]["content"][0]["text"]
        assert len(row["images"]) == 1 and row["prompt"][0]["content"][0]["type"] == "image"
        assert "Next action: summarize" in text and is_correct(text, row["solution"], "math")  # the chain is right
    for i in range(len(summary)):
        row = summary[i]
        target = row["completion"][0]["content"][0]["text"]
        kind = raw[row["id"]]["kind"]
        user = row["prompt"][0]["content"][-1]["text"]
        assert "REASONING PROCESS:" in user and "Step 1:" in user and "<answer>" not in user.split("REASONING PROCESS:")[1]
        # the summary agent answers right whatever the chain says, and says whether it trusts it
        assert is_correct(target, row["solution"], "math")
        assert parse_verdict(target) == ("correct" if kind == "correct" else "flawed")
    # the deliberately flawed chains really differ from the kept one: one step changed / a wrong final answer
    for rid in {r.rsplit("#", 1)[0] for r in raw}:
        good = raw[f"{rid}#summary-correct"]["messages"][0]["content"]
        for kind in ("wrong_step", "wrong_final"):
            bad = raw[f"{rid}#summary-{kind}"]["messages"][0]["content"]
            changed = [a for a, b in zip(good.splitlines(), bad.splitlines(), strict=True) if a != b]
            assert 1 <= len(changed) <= 2, (kind, changed)  # one step's line (wrong_final: also its summary line)


def test_resume_replays_cached_replies_and_asks_only_for_what_is_missing(tmp_path):
    recipe = oracle("input.n=6")
    first = run_insight_data(recipe, tmp_path)
    assert first["this_run"]["processed"] == 6
    calls = (tmp_path / "calls.jsonl").read_text().splitlines(keepends=True)
    # a killed run: the last two records unfinished, one of them mid-chain (its last 3 replies lost, a torn line)
    recs = (tmp_path / "records.jsonl").read_text().splitlines(keepends=True)
    last = json.loads(recs[-1])["id"]
    keep = [ln for ln in calls if json.loads(ln)["record"] != last] + [
        ln for ln in calls if json.loads(ln)["record"] == last][:-3]
    (tmp_path / "records.jsonl").write_text("".join(recs[:-2]))
    (tmp_path / "calls.jsonl").write_text("".join(keep) + '{"id": "torn')
    again = run_insight_data(recipe, tmp_path)
    assert again["this_run"] == {**again["this_run"], "processed": 2, "requests": 3}
    assert again["kept"] == first["kept"]
    before = json.loads(recs[-1])
    after = records(tmp_path)[last]
    assert after["chains"] == before["chains"] and after["best"] == before["best"]
    # finished: a third run does nothing
    third = run_insight_data(recipe, tmp_path)
    assert third["this_run"]["processed"] == 0 and third["this_run"]["requests"] == 0


def test_cli_and_recipe_errors(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["insight", "data", str(ORACLE), "input.n=3", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["kept"] == 3
    with pytest.raises(RecipeError, match="reasoner.chians: unknown key; did you mean chains"):
        oracle("reasoner.chians=2")
    with pytest.raises(RecipeError, match="unknown backend 'orcale'; did you mean oracle"):
        oracle("reasoner.backend=orcale")
    bad = CliRunner().invoke(app, ["insight", "data", str(ORACLE), "scorer.backend=nope"])
    assert bad.exit_code != 0 and "unknown backend 'nope'" in bad.output


def test_shipped_recipes_load():
    from visionr1.recipe import load_recipe

    for path in sorted((REPO / "recipes" / "insight-v").glob("data_*.yaml")):
        load_insight_recipe(path)
    recipe = load_recipe(REPO / "recipes" / "insight-v" / "sft_tiny.yaml")
    assert recipe.stages[0].dataset.format == "sharegpt"


def test_eval_prompts_are_the_prompts_the_agents_were_trained_on(tmp_path):
    """``eval run --strategy insight-v`` builds the summary agent's turn from the reasoner's response: it must be
    the very turn the summary set was written with for that chain (and the reasoner's turn likewise)."""
    from visionr1.insight.prompts import chain_for_summary, reasoner_text, summary_text

    report = run_insight_data(oracle("input.task=choice", "input.n=4"), tmp_path)
    reasoner = {it["id"].split("#")[0]: it for it in json.loads(Path(report["files"]["reasoner_sft"]).read_text())}
    summary = {it["id"]: it for it in json.loads(Path(report["files"]["summary_sft"]).read_text())}
    recs = records(tmp_path)
    for rid, item in reasoner.items():
        rec = recs[rid]
        user, response = (m["content"] for m in item["messages"])
        assert user == "<image>" + reasoner_text(rec["question"], rec["choices"])
        expected = "<image>" + summary_text(rec["question"], rec["choices"], chain_for_summary(response))
        assert summary[f"{rid}#summary-correct"]["messages"][0]["content"] == expected
