"""Insight-V's structured long-chain data: reasoning generator -> multi-granularity assessment -> two SFT sets.

    1. generate   per question, ``reasoner.chains`` chains; each is built one step per request (a JSON step:
                  summary, reasoning, next action) with the earlier steps in the prompt, until a step says
                  ``summarize`` (or ``max_steps``: dropped as unfinished)
    2. assess     coarse: drop chains whose final answer is wrong (``visionr1.rewards.scoring.is_correct``, the
                  reward library's scorer); fine: the scoring agent rates each remaining chain 1-100
                  (knowing the right answer), and the best-rated chain is kept
    3. output     ``reasoner_sft.json`` and ``summary_sft.json`` (visionr1.insight.sft) + ``report.json``

Backends are the cold start's (``visionr1.coldstart.backends``: OpenAI-compatible HTTP, local transformers);
the oracle here writes chains from a synthetic scene's rule-derived reasoning, in four variants (full,
terse, a wrong intermediate step, a wrong answer) so that both filters have something to drop, and rates
them against that reasoning. Labelled ``oracle`` in every record and in the report.

Resumable and lossless like the cold start: every request's reply goes to ``calls.jsonl`` the moment it
arrives (keyed by record, chain and step, with a fingerprint of what shaped it), every finished record to
``records.jsonl``. A re-run skips finished records and replays the cached replies of unfinished ones, so a
record killed at step 5 of chain 3 asks only for what is missing. A request that fails (HTTP error after
retries, a malformed completion) fails its record, recorded with the reason and retried on the next run; a
reply that is not a step (not JSON, a missing field) is a fact about the model: that chain is dropped as
``invalid`` and counted.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from visionr1.coldstart.backends import ChatReply, GenerationError, GenRequest, build_backend
from visionr1.coldstart.config import RUNTIME_FIELDS, OracleBackendSpec
from visionr1.coldstart.pipeline import (
    _answer_text,
    _fp,
    _lock,
    _metadata,
    _write_run_info,
    load_input,
    save_images,
)
from visionr1.coldstart.report import ORACLE_NOTE
from visionr1.coldstart.store import JsonlLog, write_atomic
from visionr1.config.base import RecipeError
from visionr1.insight import prompts
from visionr1.insight.chain import (
    Step,
    StepParseError,
    oracle_chain,
    oracle_score,
    oracle_variant,
    parse_step,
    render_chain,
    steps_text,
)
from visionr1.insight.config import InsightDataRecipe
from visionr1.insight.sft import write_sft_sets

__all__ = ["run_insight_data", "InsightOracle", "parse_score"]


class CallFailed(Exception):
    def __init__(self, kind: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {reason}: {detail}")
        self.kind, self.reason, self.detail = kind, reason, detail


def parse_score(text: str) -> int | None:
    """The scoring agent's rating: the first integer of the reply when it lies in 1..100, else None.

    >>> parse_score("85"), parse_score("Score: 7/100"), parse_score("great"), parse_score("250")
    (85, 7, None, None)
    """
    m = re.search(r"-?\d+", text or "")
    return int(m.group()) if m and 1 <= int(m.group()) <= 100 else None


class InsightOracle:
    """Synthetic records only: step ``j`` of the record's ``k``-th oracle chain (as the JSON a generator would
    write), and ratings computed against the rule-derived reasoning (:func:`visionr1.insight.chain.oracle_score`)."""

    is_oracle = True
    label = "oracle"

    def __init__(self, name: str, spec: OracleBackendSpec) -> None:
        self.name, self.spec = name, spec

    async def generate(self, req: GenRequest) -> ChatReply:
        md = req.metadata or {}
        reasoning, ask = md.get("reasoning"), md.get("_insight") or {}
        if not reasoning:
            raise GenerationError("oracle_missing_metadata", f"record {req.record_id} has no metadata.reasoning: the "
                                  "oracle backend works only on visionr1.tasks.synthetic records")
        if req.step == "score":
            return ChatReply(text=str(oracle_score([Step.from_json(s) for s in ask["steps"]], reasoning)))
        k = ask["chain"]
        steps, _ = oracle_chain(reasoning, req.solution, ask["task"], ask["choices"],
                                oracle_variant(req.record_id, k), salt=f"{req.record_id}/{k}")
        return ChatReply(text=json.dumps(steps[min(ask["step"], len(steps) - 1)].to_json()), finish_reason="stop")

    async def aclose(self) -> None:
        return None


def _backend(name: str, spec):
    return InsightOracle(name, spec) if isinstance(spec, OracleBackendSpec) else build_backend(name, spec)


def fingerprints(recipe: InsightDataRecipe) -> dict[str, str]:
    """What shapes the replies: the backend's model, the prompt, the sampling (not how it is driven)."""
    def backend(name: str) -> dict:
        return {k: v for k, v in recipe.backends[name].model_dump().items() if k not in RUNTIME_FIELDS}

    step = _fp({"backend": backend(recipe.reasoner.backend), "spec": recipe.reasoner.model_dump(exclude={"backend", "chains"}),
                "prompt": prompts.STEP_PROMPT})
    score = _fp({"backend": backend(recipe.scorer.backend), "spec": recipe.scorer.model_dump(exclude={"backend"}),
                 "prompt": prompts.SCORE_PROMPT}) if recipe.scorer else None
    return {"step": step, "score": score, "record": _fp({"step": step, "score": score, "chains": recipe.reasoner.chains})}


def run_insight_data(recipe: InsightDataRecipe, output_dir: str | Path | None = None,
                     console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the data generation; return the report (also written to ``report.json``)."""
    console = console or Console()
    out = Path(output_dir or recipe.output_dir or Path("runs/insight") / recipe.name)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)  # noqa: F841 - one writer per directory, held until this function returns

    # ---- recipe, provenance, input -------------------------------------------------------------------
    _write_run_info(out, recipe, {"step": prompts.STEP_PROMPT, "score": prompts.SCORE_PROMPT,
                                  "reasoner": prompts.REASONER_INSTRUCTION, "summary": prompts.SUMMARY_PROMPT})
    fps = fingerprints(recipe)
    dataset, load_skipped = load_input(recipe, out)
    ids = list(dataset["id"])
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise RecipeError(f"input: record id {dup!r} appears more than once; results are keyed by id (make them unique)")

    # ---- what is already done ------------------------------------------------------------------------
    records_log, calls_log = JsonlLog(out / "records.jsonl"), JsonlLog(out / "calls.jsonl")
    done = records_log.index(keep=lambda e: e.get("fp") == fps["record"], fields=("status",))
    todo = [i for i, rid in enumerate(ids)
            if rid not in done or (done[rid]["status"] == "failed" and recipe.retry_failed)]
    console.print(f"insight-v data [bold]{recipe.name}[/]: {len(ids)} records, {len(ids) - len(todo)} already "
                  f"finished, {len(todo)} to do -> {out}")

    # ---- generate and assess -------------------------------------------------------------------------
    runner = Runner(recipe, fps, dataset, ids, out, calls_log, records_log, {ids[i] for i in todo})
    start, interrupted = time.monotonic(), False
    try:
        asyncio.run(runner.run(todo))
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: every finished reply is saved; run the same command again to resume")
    finally:
        records_log.close()
        calls_log.close()
    elapsed = time.monotonic() - start

    # ---- the SFT sets and the report -----------------------------------------------------------------
    final = JsonlLog(out / "records.jsonl")
    index = final.index(keep=lambda e: e.get("fp") == fps["record"], fields=("status", "reason", "chain_stats"))
    finished = [index[r] for r in ids if r in index]
    kept = (final.read_at(index[r]["offset"]) for r in ids if r in index and index[r]["status"] == "kept")
    files, sets = write_sft_sets(out, kept, recipe.summary)
    chain_stats: Counter = Counter()
    for r in finished:
        chain_stats.update(r.get("chain_stats") or {})
    report = {
        "name": recipe.name,
        "complete": not interrupted and len(finished) == len(ids),
        "input_records": len(ids),
        "load_skipped": [{"id": i, "reason": why} for i, why in load_skipped],
        "finished": len(finished),
        "pending": len(ids) - len(finished),
        "kept": sum(r["status"] == "kept" for r in finished),
        "dropped": dict(Counter(r["reason"] for r in finished if r["status"] == "dropped").most_common()),
        "failed": dict(Counter(r["reason"] for r in finished if r["status"] == "failed").most_common()),
        "chains": dict(sorted(chain_stats.items())),
        "sft_sets": sets,
        "backends": {s: {"backend": recipe.backend_of(s), "label": runner.backends[recipe.backend_of(s)].label,
                         "oracle": runner.backends[recipe.backend_of(s)].is_oracle}
                     for s in ("reasoner", "scorer") if getattr(recipe, s) is not None},
        "this_run": {"processed": runner.processed, "requests": runner.requests, "elapsed_s": round(elapsed, 3)},
        "files": files,
    }
    if any(b["oracle"] for b in report["backends"].values()):
        report["oracle_note"] = ORACLE_NOTE
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    console.print(f"kept {report['kept']} / {len(ids)}; dropped {report['dropped'] or 0}; failed {report['failed'] or 0}; "
                  f"chains {report['chains']}; summary set {sets['summary']} -> {out}", highlight=False)
    if "oracle_note" in report:
        console.print(f"[bold yellow]{ORACLE_NOTE}")
    if interrupted:
        raise KeyboardInterrupt
    return report


class Runner:
    def __init__(self, recipe, fps, dataset, ids, out, calls_log, records_log, todo_ids) -> None:
        self.recipe, self.fps, self.dataset, self.ids, self.out = recipe, fps, dataset, ids, out
        self.calls_log, self.records_log = calls_log, records_log
        used = {recipe.reasoner.backend} | ({recipe.scorer.backend} if recipe.scorer else set())
        self.backends = {n: _backend(n, spec) for n, spec in recipe.backends.items() if n in used}
        # finished replies of the records still to do: offsets into calls.jsonl, read when needed
        self.cache = calls_log.index(
            keep=lambda e: e.get("record") in todo_ids and e.get("fp") == fps.get(e.get("kind")), fields=("ok",))
        self.processed = self.requests = 0

    async def run(self, todo: list[int]) -> None:
        it = iter(todo)

        async def worker() -> None:
            for idx in it:  # one shared iterator: a worker takes the next record when it is free
                await self.process(idx)

        try:
            await asyncio.gather(*(worker() for _ in range(min(self.recipe.max_in_flight, len(todo)))))
        finally:
            for b in self.backends.values():
                await b.aclose()

    async def process(self, idx: int) -> None:
        rid = self.ids[idx]
        entry: dict[str, Any] = {"id": rid, "fp": self.fps["record"]}
        try:
            sample = await asyncio.to_thread(self.dataset.__getitem__, idx)  # decodes the images
            entry.update(task=sample["task"], question=sample["question"], solution=sample["solution"],
                         choices=sample.get("choices"), metadata=_metadata(sample.get("metadata")))
            entry["images"] = await asyncio.to_thread(save_images, self.out, rid, sample["images"])
            results = await asyncio.gather(*(self.chain(sample, entry, k) for k in range(self.recipe.reasoner.chains)),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            entry["chains"] = chains = list(results)
            await self.assess(sample, entry, chains)
        except CallFailed as exc:
            entry.update(status="failed", reason=f"{exc.kind}:{exc.reason}", detail=exc.detail)
        except Exception as exc:  # noqa: BLE001 - a broken record (corrupt image, ...) is recorded, not fatal
            entry.update(status="failed", reason="error", detail=f"{type(exc).__name__}: {exc}")
        entry["chain_stats"] = dict(Counter(
            ("correct" if c["correct"] else "wrong_answer") if c["status"] == "ok" else c["status"]
            for c in entry.get("chains", [])))
        entry["generators"] = {s: self.backends[self.recipe.backend_of(s)].label for s in ("reasoner", "scorer")
                               if getattr(self.recipe, s) is not None}
        entry["oracle"] = any(b.is_oracle for b in self.backends.values())
        self.records_log.append(entry)
        self.processed += 1

    async def chain(self, sample: dict, entry: dict, k: int) -> dict[str, Any]:
        """One chain, step by step; ``status`` ok | invalid (a reply that is no step) | unfinished."""
        from visionr1.rewards.extract import extract_answer
        from visionr1.rewards.scoring import is_correct

        spec, rid = self.recipe.reasoner, sample["id"]
        steps: list[Step] = []
        out: dict[str, Any] = {"k": k, "steps": []}
        if self.backends[spec.backend].is_oracle:
            out["oracle_variant"] = oracle_variant(rid, k)
        for j in range(spec.max_steps):
            text = prompts.step_prompt(sample["question"], sample.get("choices"), steps_text(steps))
            ask = {"chain": k, "step": j, "task": sample["task"], "choices": sample.get("choices")}
            reply = await self.call(f"{rid}#c{k}#s{j}", "step", sample, entry, text, spec, ask)
            try:
                step = parse_step(reply["text"])
            except StepParseError as exc:
                out.update(status="invalid", reason=exc.reason, detail=exc.detail, at_step=j)
                return out
            steps.append(step)
            out["steps"].append(step.to_json())
            if step.next_action == "summarize":
                break
        else:
            out.update(status="unfinished", reason=f"no summarize step in {spec.max_steps} steps")
            return out
        answer = steps[-1].answer or extract_answer(steps[-1].reasoning, sample["task"])
        correct = answer is not None and await asyncio.to_thread(
            is_correct, render_chain(steps, answer), sample["solution"], sample["task"], sample.get("choices"))
        out.update(status="ok", answer=answer, correct=bool(correct))
        return out

    async def assess(self, sample: dict, entry: dict, chains: list[dict]) -> None:
        """Coarse: the answer filter; fine: the scoring agent's 1-100; the best chain is kept."""
        valid = [c for c in chains if c["status"] == "ok"]
        right = [c for c in valid if c["correct"]]
        if not right:
            entry.update(status="dropped", reason="no_valid_chain" if not valid else "no_correct_chain")
            return
        if self.recipe.scorer is None:
            entry.update(status="kept", reason="first_correct", best=right[0]["k"])
            return
        answer = _answer_text(sample["solution"], sample.get("choices"))
        for c in right:
            steps = [Step.from_json(s) for s in c["steps"]]
            text = prompts.score_prompt(sample["question"], sample.get("choices"), answer, steps_text(steps))
            reply = await self.call(f"{sample['id']}#c{c['k']}#score", "score", sample, entry, text, self.recipe.scorer,
                                    {"steps": c["steps"]})
            c["score"] = parse_score(reply["text"])
            if c["score"] is None:
                c["score_reason"] = f"bad_score: {reply['text'][:80]!r}"
        rated = [c for c in right if c["score"] is not None]
        if not rated:
            entry.update(status="dropped", reason="no_rated_chain")
            return
        best = max(rated, key=lambda c: (c["score"], -c["k"]))
        entry.update(status="kept", reason="best_rated", best=best["k"])

    async def call(self, key: str, kind: str, sample: dict, entry: dict, text: str, spec: Any,
                   ask: dict[str, Any]) -> dict[str, Any]:
        """One request, or its cached reply; a failed request raises :class:`CallFailed` after being logged."""
        hit = self.cache.pop(key, None)
        if hit is not None and (hit["ok"] or not self.recipe.retry_failed):
            cached = self.calls_log.read_at(hit["offset"])
            if not cached["ok"]:
                raise CallFailed(kind, cached["reason"], cached.get("detail", ""))
            return cached
        backend = self.backends[spec.backend]
        req = GenRequest(record_id=sample["id"], step=kind, text=text, images=list(sample["images"]), system=spec.system,
                         max_tokens=spec.max_tokens, temperature=spec.temperature, top_p=getattr(spec, "top_p", 1.0),
                         metadata={**entry["metadata"], "_insight": ask}, solution=sample["solution"])
        log: dict[str, Any] = {"id": key, "record": sample["id"], "kind": kind, "fp": self.fps[kind],
                               "backend": backend.label, "oracle": backend.is_oracle}
        self.requests += 1
        try:
            gen = await backend.generate(req)
            if not gen.text.strip():
                raise GenerationError("empty_output", f"finish_reason={gen.finish_reason}", gen.attempts)
            log.update(ok=True, text=gen.text, finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
                       completion_tokens=gen.completion_tokens, attempts=gen.attempts, latency_s=round(gen.latency_s, 4))
        except GenerationError as exc:
            log.update(ok=False, reason=exc.reason, detail=exc.detail, attempts=exc.attempts)
        self.calls_log.append(log)
        if not log["ok"]:
            raise CallFailed(kind, log["reason"], log["detail"])
        return log
