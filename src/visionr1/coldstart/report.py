"""Step 5: write the kept samples (LLaMA-Factory ShareGPT JSON + canonical JSONL) and the stats report."""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from visionr1.coldstart.config import OutputSpec
from visionr1.coldstart.filters import REFLECTION_WORDS, count_reflections
from visionr1.coldstart.store import write_atomic
from visionr1.coldstart.templates import choices_block, render
from visionr1.utils.io import dumps_json, output_error

SHAREGPT_FILE = "sharegpt.json"
CANONICAL_FILE = "cold_start.jsonl"
ORACLE_NOTE = (
    "ORACLE: these steps returned the synthetic scene's ground truth instead of a model's generation; "
    "the data demonstrates the pipeline, it is not distilled reasoning."
)


def user_text(rec: dict[str, Any], spec: OutputSpec) -> str:
    return render(spec.user_template, question=rec["question"], choices=choices_block(rec.get("choices")))


def sharegpt_item(rec: dict[str, Any], spec: OutputSpec) -> dict[str, Any]:
    """One LLaMA-Factory ShareGPT entry: ``<image>`` placeholders in the user turn, images by relative path."""
    messages = [{"role": "system", "content": spec.system}] if spec.system else []
    messages.append({"role": "user", "content": "<image>" * len(rec["images"]) + user_text(rec, spec)})
    messages.append({"role": "assistant", "content": rec["response"]})
    # task and solution ride along (LLaMA-Factory ignores them; visionr1's loader keeps the ground truth)
    item = {"id": rec["id"], "messages": messages, "images": rec["images"], "task": rec["task"], "solution": rec["solution"],
            "generators": rec["generators"]}
    if rec.get("oracle"):
        item["oracle"] = True  # ground truth of a synthetic scene, not a model's generation
    return item


def canonical_item(rec: dict[str, Any], spec: OutputSpec) -> dict[str, Any]:
    """The on-disk canonical ``jsonl`` record plus the SFT ``prompt`` / ``completion`` turns."""
    prompt = [{"role": "system", "content": [{"type": "text", "text": spec.system}]}] if spec.system else []
    prompt.append(
        {"role": "user", "content": [{"type": "image"} for _ in rec["images"]] + [{"type": "text", "text": user_text(rec, spec)}]}
    )
    metadata = dict(rec.get("metadata") or {})
    metadata["coldstart"] = {"generators": rec["generators"], "oracle": bool(rec.get("oracle")), "rewrites": rec.get("rewrites", 0)}
    return {
        "id": rec["id"], "task": rec["task"], "question": rec["question"], "images": rec["images"],
        "solution": rec["solution"], "choices": rec.get("choices"), "metadata": metadata,
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": rec["response"]}]}],
    }


def write_outputs(out_dir: Path, kept: Iterable[dict[str, Any]], spec: OutputSpec) -> tuple[dict[str, str], dict[str, Any]]:
    """Stream the kept samples into the output files (atomically: a temp file renamed at the end); return the
    files written and the statistics of the kept responses (reflection-word counts, lengths)."""
    files: dict[str, str] = {}
    stats = {"n": 0, "chars": 0, "counts": Counter()}
    tmps = [out_dir / (name + ".tmp") for name, on in ((SHAREGPT_FILE, spec.sharegpt), (CANONICAL_FILE, spec.canonical)) if on]
    share = canon = None
    try:
        share = (out_dir / (SHAREGPT_FILE + ".tmp")).open("w", encoding="utf-8") if spec.sharegpt else None
        canon = (out_dir / (CANONICAL_FILE + ".tmp")).open("w", encoding="utf-8") if spec.canonical else None
        if share:
            share.write("[")
        for rec in kept:  # dumps_json: lone surrogates in model text escaped (UTF-8 cannot hold them), keys redacted
            if share:
                share.write(("\n" if stats["n"] == 0 else ",\n") + dumps_json(sharegpt_item(rec, spec)))
            if canon:
                canon.write(dumps_json(canonical_item(rec, spec)) + "\n")
            stats["n"] += 1
            stats["chars"] += len(rec["response"])
            stats["counts"].update(count_reflections(rec["response"]))
        if share:
            share.write("\n]\n")
        for f in (share, canon):
            if f:
                f.close()
    except OSError as exc:  # a full disk: no half-written temp files left behind, one line naming the file
        for f in (share, canon):
            if f:
                with contextlib.suppress(OSError):
                    f.close()
        for t in tmps:
            t.unlink(missing_ok=True)
        raise output_error(exc, exc.filename or out_dir, "the cold-start dataset files") from None
    if share:
        os.replace(out_dir / (SHAREGPT_FILE + ".tmp"), out_dir / SHAREGPT_FILE)
        info = {
            "visionr1_coldstart": {
                "file_name": SHAREGPT_FILE,
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"},
            }
        }
        write_atomic(out_dir / "dataset_info.json", json.dumps(info, indent=2))
        files["sharegpt"] = str(out_dir / SHAREGPT_FILE)
        files["llamafactory_dataset_info"] = str(out_dir / "dataset_info.json")
    if canon:
        os.replace(out_dir / (CANONICAL_FILE + ".tmp"), out_dir / CANONICAL_FILE)
        files["canonical"] = str(out_dir / CANONICAL_FILE)
    return files, stats


# ----------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------


def build_report(
    *,
    name: str,
    records: list[dict[str, Any]],
    n_input: int,
    load_skipped: list[tuple[str, str]],
    step_entries: dict[str, list[dict[str, Any]]],
    backends: dict[str, dict[str, Any]],
    kept_stats: dict[str, Any],
    this_run: dict[str, Any],
    files: dict[str, str],
    complete: bool,
) -> dict[str, Any]:
    """``records``: status / reason / step of each finished record; ``step_entries``: ok / tokens / attempts /
    latency of each step result; ``kept_stats``: what :func:`write_outputs` measured."""
    dropped = Counter(r["reason"] for r in records if r["status"] == "dropped")
    failed = Counter(f"{r.get('step')}:{r['reason']}" for r in records if r["status"] == "failed")
    tokens = {}
    for step, entries in step_entries.items():
        ok = [e for e in entries if e.get("ok")]
        counted = [e for e in ok if e.get("completion_tokens") is not None]  # the oracle counts none
        tokens[step] = {
            "requests_ok": len(ok),
            "requests_failed": len(entries) - len(ok),
            "prompt_tokens": sum(e["prompt_tokens"] for e in counted if e.get("prompt_tokens") is not None)
            if any(e.get("prompt_tokens") is not None for e in counted) else None,
            "completion_tokens": sum(e["completion_tokens"] for e in counted) if counted else None,
            "mean_latency_s": round(sum(e.get("latency_s") or 0 for e in ok) / len(ok), 4) if ok else None,
            "retries": sum(max((e.get("attempts") or 1) - 1, 0) for e in entries),
        }
    n_kept, counts = kept_stats["n"], kept_stats["counts"]
    oracle_steps = [s for s, b in backends.items() if b["oracle"]]
    report = {
        "name": name,
        "complete": complete,
        "input_records": n_input,
        "load_skipped": [{"id": i, "reason": why} for i, why in load_skipped],
        "finished": len(records),
        "pending": n_input - len(records),
        "kept": n_kept,
        "dropped": dict(dropped.most_common()),
        "failed": dict(failed.most_common()),
        "backends": backends,
        "oracle_steps": oracle_steps,
        "tokens": tokens,
        "reflection": {
            "samples": n_kept,
            "counts": {w: counts[w] for w in REFLECTION_WORDS},
            "per_1k_samples": {w: round(1000 * counts[w] / n_kept, 1) if n_kept else 0.0 for w in REFLECTION_WORDS},
        },
        "mean_response_chars": round(kept_stats["chars"] / n_kept, 1) if n_kept else 0.0,
        "this_run": this_run,
        "files": files,
    }
    if oracle_steps:
        report["oracle_note"] = ORACLE_NOTE
    return report


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=f"cold start: {report['name']}" + ("" if report["complete"] else " (INCOMPLETE)"))
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("input records", str(report["input_records"]))
    if report["load_skipped"]:
        t.add_row("skipped while loading", str(len(report["load_skipped"])))
    t.add_row("[green]kept", str(report["kept"]))
    for reason, n in report["dropped"].items():
        t.add_row(f"dropped: {reason}", str(n))
    for reason, n in report["failed"].items():
        t.add_row(f"[red]failed: {reason}", str(n))
    if report["pending"]:
        t.add_row("[yellow]not finished (re-run to resume)", str(report["pending"]))
    for step, tok in report["tokens"].items():
        label = report["backends"][step]["label"]
        tin = "?" if tok["prompt_tokens"] is None else f"{tok['prompt_tokens']:,}"
        io = "no token counts" if tok["completion_tokens"] is None else f"{tin} in / {tok['completion_tokens']:,} out"
        t.add_row(f"tokens {step} ({label})", f"{io}, {tok['requests_ok']} req, {tok['retries']} retries")
    for w, v in report["reflection"]["per_1k_samples"].items():
        t.add_row(f"'{w}' per 1k samples", f"{v:,.1f}")
    run = report["this_run"]
    t.add_row("this run", f"{run['processed']} processed, {run['skipped_finished']} already done, "
              f"{run['elapsed_s']:.1f}s, {run['records_per_s']:.3f} rec/s")
    console.print(t)
    if report["oracle_steps"]:
        console.print(f"[bold yellow]{', '.join(report['oracle_steps'])}: {ORACLE_NOTE}")
