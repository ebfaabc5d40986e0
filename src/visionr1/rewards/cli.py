"""``visionr1 score-rewards``: score rollouts made elsewhere with the same rewards RL uses.

Input: JSONL, one object per line with ``completion`` (a string or conversational messages), ``solution``,
``task`` (optional: inferred when missing) and optionally ``choices``. Output: every input line, in input order,
plus ``"rewards": {name: value}``. A bad line (invalid JSON or UTF-8, a missing field) stops the run with its
line number before anything is scored; ``--skip-bad`` instead writes it with ``"rewards": null`` and
``"error"`` saying why -- lines are never dropped.

Nothing computed is lost: the output directory is checked writable before scoring, lines are streamed to
``OUTPUT.tmp`` as each batch is scored (``OUTPUT.tmp.json`` records the input's digest and the rewards), and
renamed to ``OUTPUT`` at the end. A killed or failed run leaves the previous ``OUTPUT`` as it was, and the
same command resumes after the last complete line (a different input or reward list starts over). Output is
always valid JSON: NaN/inf become ``null``, lone surrogates are escaped.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
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
    """All records with their 1-based line numbers; a bad line is fatal unless ``skip_bad``.

    Read as bytes and decoded line by line, so a line of invalid UTF-8 is a bad line like any other (named,
    skippable), not a ``UnicodeDecodeError`` that stops everything.
    """
    records = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                obj, error = {"line": lineno, "raw": raw.decode("utf-8", "replace").rstrip("\n")}, \
                    f"not valid UTF-8 (byte {exc.start} of the line)"
            else:
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


def _fingerprint(input: Path, labels: list[str], reward: list[str] | None, skip_bad: bool) -> dict[str, Any]:
    """What a partial output depends on: the input's bytes and the rewards. A resume needs all of it equal."""
    h = hashlib.sha256()
    with input.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return {"input": str(input.resolve()), "input_sha256": h.hexdigest(), "rewards": labels,
            "reward_specs": list(reward or []), "skip_bad": skip_bad}


def _resume_point(tmp: Path, meta_path: Path, fp: dict[str, Any]) -> int:
    """How many output lines a killed run already wrote to ``OUT.tmp`` for this very input and rewards (a torn
    last line is cut off); 0 when there is nothing to resume."""
    if not tmp.exists():
        return 0
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old != fp:
        err_console.print(f"{tmp}: left by a run with another input or rewards; starting over")
        tmp.unlink()
        return 0
    raw = tmp.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with tmp.open("r+b") as fh:
            fh.truncate(end)
    return raw[:end].count(b"\n")


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
    """Score completions from a JSONL file with visionr1's rewards.

    Lines are written to OUTPUT.tmp as they are scored and renamed to OUTPUT at the end: a killed run leaves
    the previous OUTPUT untouched, and the same command resumes after the last line written.
    """
    from visionr1.rewards.registry import DEFAULT_REWARDS, build_reward_funcs
    from visionr1.utils.io import OutputError, check_writable

    if not input.is_file():
        fail(f"--input {input}: no such file")
    names = list(dict.fromkeys(reward or DEFAULT_REWARDS))
    try:
        funcs, _, labels = build_reward_funcs(names)
        check_writable(output.parent, f"the scored output {output}")  # before any work, not after it
    except (ValueError, OutputError) as exc:
        fail(str(exc))
    from visionr1.training.lock import RunLockedError, output_lock

    try:
        with output_lock(output, "visionr1 score-rewards", directory=False):
            _score_locked(input, output, skip_bad, funcs, labels, reward, batch_size)
    except RunLockedError as exc:
        fail(str(exc))


def _score_locked(input: Path, output: Path, skip_bad: bool, funcs: list[Any], labels: list[str],
                  reward: list[str] | None, batch_size: int) -> None:
    """``score-rewards`` once it holds OUTPUT's lock (resume point, scoring, the rename)."""
    from visionr1.utils.io import dumps_json, output_error

    records = read_records(input, skip_bad)
    tmp, meta_path = output.with_name(output.name + ".tmp"), output.with_name(output.name + ".tmp.json")
    fp = _fingerprint(input, labels, reward, skip_bad)
    done = _resume_point(tmp, meta_path, fp)
    if done:
        err_console.print(f"resuming: {done} of {len(records)} lines already scored in {tmp}")
    todo = records[done:]
    what = f"scored lines to {tmp}"
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        meta_path.write_text(json.dumps(fp), encoding="utf-8")
        with tmp.open("a", encoding="utf-8") as fh, Progress(*columns, console=err_console, transient=False) as progress:
            bar = progress.add_task("score", total=len(todo))
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                good = [r for r in chunk if not r["error"]]
                try:
                    scores = score_records([r["obj"] for r in good], funcs, labels) if good else []
                except Exception as exc:  # noqa: BLE001 - a bad column value, a judge that gave up, a plugin's bug
                    fail(f"{input}: lines {good[0]['lineno']}-{good[-1]['lineno']}: {type(exc).__name__}: {exc} "
                         f"({done + start} lines saved in {tmp}; the same command resumes)")
                for r, sc in zip(good, scores, strict=True):
                    r["rewards"] = sc
                for r in chunk:
                    obj = dict(r["obj"]) if isinstance(r["obj"], dict) else {"value": r["obj"]}
                    obj["rewards"] = r.get("rewards")
                    if r["error"]:
                        obj["error"] = f"line {r['lineno']}: {r['error']}"
                    fh.write(dumps_json(obj) + "\n")  # NaN -> null, lone surrogates escaped, secrets redacted
                fh.flush()
                progress.advance(bar, len(chunk))
            os.fsync(fh.fileno())
        os.replace(tmp, output)
        meta_path.unlink(missing_ok=True)
    except OSError as exc:
        fail(str(output_error(exc, exc.filename or tmp, what)) + f" (lines written so far stay in {tmp}; rerun to resume)")
    except KeyboardInterrupt:
        fail(f"interrupted: the lines scored so far are in {tmp}; run the same command again to resume", code=130)
    bad = sum(1 for r in records if r["error"])
    err_console.print(f"wrote {len(records)} lines to {output}" + (f" ({bad} bad, recorded with their error)" if bad else ""))
