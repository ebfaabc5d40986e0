"""``visionr1 score-rewards``: score rollouts made elsewhere with the same rewards RL uses.

Input: JSONL, one object per line with ``completion`` (a string or conversational messages), ``solution``,
``task`` (optional: inferred when missing) and optionally ``choices``. Output: every input line, in input order,
plus ``"rewards": {name: value}``. A bad line stops the run with its line number before anything is written;
``--skip-bad`` instead writes it with ``"rewards": null`` and ``"error"`` saying why -- lines are never dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionr1.cli_common import command_app, err_console, fail
from visionr1.rewards.scoring import TASKS

app = command_app()


def _check_record(obj: Any) -> str | None:
    """Why a parsed line cannot be scored, or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if "completion" not in obj:
        return 'missing "completion"'
    comp = obj["completion"]
    if not isinstance(comp, (str, list)):
        return f'"completion" must be a string or a list of messages, got {type(comp).__name__}'
    if "solution" not in obj or obj["solution"] is None:
        return 'missing "solution"'
    task = obj.get("task")
    if task is not None and task not in TASKS:
        return f'"task" is {task!r}; use one of {", ".join(TASKS)} (or leave it out to infer it)'
    ch = obj.get("choices")
    if ch is not None and not (isinstance(ch, list) and all(isinstance(c, (str, int, float)) for c in ch)):
        return '"choices" must be a list of option texts or null'
    return None


def read_records(path: Path, skip_bad: bool) -> list[dict[str, Any]]:
    """All records with their 1-based line numbers; a bad line is fatal unless ``skip_bad``."""
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                error = _check_record(obj)
            except ValueError as exc:
                obj, error = {"line": lineno, "raw": line.rstrip("\n")}, f"invalid JSON: {exc}"
            if error and not skip_bad:
                fail(f"{path}:{lineno}: {error}. Fix the line, or pass --skip-bad to record the error and go on.")
            records.append({"lineno": lineno, "obj": obj, "error": error})
    return records


def _call(fn: Any, kwargs: dict[str, Any]) -> list:
    out = fn(**kwargs)
    if inspect.isawaitable(out):
        out = asyncio.run(out)
    return list(out)


def score_records(objs: list[dict[str, Any]], funcs: list[Any], names: list[str]) -> list[dict[str, Any]]:
    """Rewards for a batch of valid records, each reward called once on the whole batch (as TRL does)."""
    columns = {k for o in objs for k in o} - {"completion", "rewards", "error"}
    kwargs: dict[str, Any] = {k: [o.get(k) for o in objs] for k in columns}
    kwargs["completions"] = [o["completion"] for o in objs]
    kwargs["prompts"] = kwargs.get("prompt", [None] * len(objs))
    per_reward = {name: _call(fn, kwargs) for name, fn in zip(names, funcs, strict=True)}
    return [{name: vals[i] for name, vals in per_reward.items()} for i in range(len(objs))]


@app.command("score-rewards")
def score_rewards(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL with completion, solution, task[, choices].")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL to write: each input line plus rewards.")],
    reward: Annotated[
        list[str] | None,
        typer.Option("--reward", "-r", help="Reward name or file.py:function; repeat. Default: format, accuracy, hard_format_result."),
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Write bad lines with rewards=null and an error instead of stopping.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Completions per reward call.")] = 512,
) -> None:
    """Score completions from a JSONL file with visionr1's rewards."""
    from visionr1.rewards.registry import DEFAULT_REWARDS, build_reward_funcs

    if not input.is_file():
        fail(f"--input {input}: no such file")
    names = list(dict.fromkeys(reward or DEFAULT_REWARDS))
    try:
        funcs, _, labels = build_reward_funcs(names)
    except ValueError as exc:
        fail(str(exc))
    records = read_records(input, skip_bad)
    good = [r for r in records if not r["error"]]
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        bar = progress.add_task("score", total=len(good))
        for start in range(0, len(good), batch_size):
            batch = good[start : start + batch_size]
            try:
                scores = score_records([r["obj"] for r in batch], funcs, labels)
            except (ValueError, RuntimeError) as exc:  # a bad column value, a judge that gave up
                fail(f"{input}: lines {batch[0]['lineno']}-{batch[-1]['lineno']}: {exc}")
            for r, s in zip(batch, scores, strict=True):
                r["rewards"] = s
            progress.advance(bar, len(batch))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as fh:
        for r in records:
            obj = dict(r["obj"])
            obj["rewards"] = r.get("rewards")
            if r["error"]:
                obj["error"] = f"line {r['lineno']}: {r['error']}"
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    bad = len(records) - len(good)
    err_console.print(f"wrote {len(records)} lines to {output}" + (f" ({bad} bad, recorded with their error)" if bad else ""))
