"""Scoring predictions against a benchmark's records: ``visionr1 eval score``.

Every record is scored: a record without a prediction counts as wrong and is listed in the summary
(``missing_predictions``), never silently dropped, because a 3% gap in a 1,000-item benchmark is the size of
the improvements people report. A prediction whose id is not in the data is an error (``unknown="warn"`` to
only warn): it usually means the wrong data file or split.

Writes ``DIR/items.jsonl`` (``pid, extracted, normalized, correct, source, judge``) and ``DIR/summary.json``
(``benchmark, n, correct, accuracy`` as a fraction, ``missing_predictions``, ``scoring`` -- how answers were
found and judged, with counts -- ``metrics`` and ``breakdowns``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from visionr1.evaluation.benchmarks import Benchmark, Item, ItemResult, ScoringContext, get_benchmark
from visionr1.evaluation.benchmarks.base import SOURCES
from visionr1.evaluation.judge import EvalJudge
from visionr1.evaluation.records import EvalError, read_predictions

MAX_LISTED_IDS = 20


def collect_predictions(
    bench: Benchmark, predictions: Path | Iterable[dict[str, Any]], known: set[str], unknown: str = "error"
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{pid: prediction}`` and the ids not in ``known``. Duplicate ids with different responses are errors."""
    if isinstance(predictions, (str, Path)):
        where, rows = str(predictions), read_predictions(Path(predictions))
    else:
        where, rows = "predictions", list(enumerate(predictions, 1))
    by_id: dict[str, dict[str, Any]] = {}
    line_of: dict[str, int] = {}
    for lineno, pred in rows:
        pid = bench.prediction_id(pred)
        if pid is None:
            raise EvalError(
                f"{where}: line {lineno}: no id; give \"pid\" (or {bench.id_field!r}) with each response"
            )
        if pid in by_id and by_id[pid].get("response") != pred.get("response"):
            raise EvalError(f"{where}: lines {line_of[pid]} and {lineno}: two different responses for id {pid!r}")
        by_id[pid], line_of[pid] = pred, lineno
    strangers = [pid for pid in by_id if pid not in known]
    if strangers and unknown == "error":
        raise EvalError(
            f"{where}: {len(strangers)} predictions have ids that are not in the {bench.name} data, e.g. "
            f"{strangers[:5]}; wrong --data file or split? (--allow-unknown-ids to score the rest anyway)"
        )
    return by_id, strangers


def score_items(
    bench: Benchmark, items: Sequence[Item], by_id: dict[str, dict[str, Any]], ctx: ScoringContext
) -> list[ItemResult]:
    results = []
    for item in items:
        pred = by_id.get(item.pid)
        if pred is None:
            results.append(ItemResult(item.pid, None, None, False, "missing"))
        else:
            results.append(bench.score_prediction(item, pred, ctx))
    return results


def summarize(
    bench: Benchmark, items: Sequence[Item], results: Sequence[ItemResult], strangers: Sequence[str],
    ctx: ScoringContext,
) -> dict[str, Any]:
    n = len(results)
    correct = sum(r.correct for r in results)
    missing = [r.pid for r in results if r.source == "missing"]
    sources = Counter(r.source for r in results)
    judged_by_llm = sum(r.judge == "llm" for r in results)
    llm_items = sum(1 for r in results if r.source == "llm" or r.judge == "llm")
    method = "rules" if llm_items == 0 else ("llm" if ctx.mode == "official" else "rules + llm fallback")
    summary: dict[str, Any] = {
        "benchmark": bench.name,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "missing_predictions": {"count": len(missing), "ids": missing[:MAX_LISTED_IDS]},
        "unknown_prediction_ids": {"count": len(strangers), "ids": list(strangers[:MAX_LISTED_IDS])},
        "scoring": {
            "method": method,
            "extraction": {s: sources.get(s, 0) for s in SOURCES},
            "judged_by": {"rules": n - judged_by_llm, "llm": judged_by_llm},
            "items_needing_llm": llm_items,
            # answers only a last-resort rule found (the last number, the whole text): kept by the rules, or
            # handed to the LLM in --judge-mode fallback
            "last_resorts": {
                "kept": sum(1 for r in results if r.source != "llm" and r.info.get("last_resort")),
                "sent_to_llm": sum(1 for r in results if r.source == "llm" and r.info.get("last_resort")),
            },
            "llm": ctx.judge.describe() if ctx.judge is not None else None,
            "official_llm_use": bench.llm_use,
            "leniencies": sorted(ctx.leniencies),
            "strict": sorted(ctx.strict),
        },
    }
    summary.update({"metrics": {}, "breakdowns": {}})
    summary.update(bench.summarize(items, results))
    return summary


def write_outputs(output_dir: Path, results: Sequence[ItemResult], summary: dict[str, Any]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "items.jsonl").open("w", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(r.to_json(), ensure_ascii=False, default=str) + "\n")
    (output_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )


def score_predictions(
    benchmark: str | Benchmark,
    data: Path,
    predictions: Path | Iterable[dict[str, Any]],
    output_dir: Path | None = None,
    *,
    judge: EvalJudge | None = None,
    unknown: str = "error",
    items: Sequence[Item] | None = None,
    only_ids: Iterable[str] | None = None,
    extra: dict[str, Any] | None = None,
    leniencies: Iterable[str] = (),
    strict: Iterable[str] = (),
) -> dict[str, Any]:
    """Score ``predictions`` (a JSONL path or dicts) on ``data``; write items/summary to ``output_dir``.

    ``items``: already loaded records (skips reading ``data``); ``only_ids``: score only these records
    (``eval run --limit``); ``extra``: keys merged into the summary (generation statistics); ``leniencies``:
    named departures from the official result (``benchmarks.base.LENIENCIES``), recorded in the summary;
    ``strict``: named readings stricter than the official result (``benchmarks.base.STRICT``), recorded too.
    """
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    items = list(items) if items is not None else bench.load(Path(data))
    known = {i.pid for i in items}
    if only_ids is not None:
        wanted = set(only_ids)
        items = [i for i in items if i.pid in wanted]
    by_id, strangers = collect_predictions(bench, predictions, known, unknown)
    ctx = ScoringContext(judge, frozenset(leniencies), frozenset(strict))
    results = score_items(bench, items, by_id, ctx)
    summary = {"data": str(data), **summarize(bench, items, results, strangers, ctx), **(extra or {})}
    if output_dir is not None:
        write_outputs(Path(output_dir), results, summary)
    return summary


def print_summary(summary: dict[str, Any], console: Any = None) -> None:
    """A rich table: the headline numbers, how answers were scored, then each breakdown."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{summary['benchmark']}: {summary['accuracy'] * 100:.2f}% ({summary['correct']}/{summary['n']})")
    table.add_column("", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("accuracy", f"{summary['accuracy']:.4f}")
    for key, value in summary.get("metrics", {}).items():
        table.add_row(key, _fmt(value))
    for key in ("mean_completion_tokens", "truncated_rate", "tokens_per_second"):
        if summary.get(key) is not None:
            table.add_row(key, _fmt(summary[key]))
    miss = summary["missing_predictions"]
    table.add_row("missing predictions", f"{miss['count']}" + (f" (e.g. {', '.join(miss['ids'][:5])})" if miss["count"] else ""))
    scoring = summary["scoring"]
    table.add_row("scored by", f"{scoring['method']}; answers found by " + ", ".join(
        f"{k}={v}" for k, v in scoring["extraction"].items() if v))
    if scoring["items_needing_llm"]:
        table.add_row("items needing the LLM", str(scoring["items_needing_llm"]))
    console.print(table)
    for name, groups in summary.get("breakdowns", {}).items():
        if not groups or len(groups) > 40:
            continue
        t = Table(title=f"by {name}")
        for col in (name, "accuracy", "correct/total"):
            t.add_column(col)
        for value, g in groups.items():
            t.add_row(value, f"{g['accuracy'] * 100:.2f}%", f"{g['correct']}/{g['total']}")
        console.print(t)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)
