"""Vision-R1-cold: modality bridging, from (image, question, answer) records to long-CoT SFT data.

    1. pseudo-CoT     MLLM(image, question, answer)      -> caption + step-by-step reasoning
    2. description    MLLM(image, question, pseudo-CoT)  -> every visual detail needed to answer
    3. reasoning      text LLM(description, question)    -> long R1-style thinking + final answer
    4. filters        answer == ground truth (visionr1.rewards), tags, loops, language, length; rewrite wording
    5. output         ShareGPT JSON + canonical JSONL + report

Where we depart from the paper (which released no code): the reasoner gets no answer by default (a template
may add ``{answer}``); the rule filters and rewrites are ours (filters.py); step 2 has R1-Onevision's formal
and R1-Vision's caption-first variants.

Every record flows through the steps as its own task; each step's result is appended to
``steps/<step>.jsonl`` and each record's verdict to ``records.jsonl`` as soon as it exists. A re-run reads
them back: finished records are skipped, and a record interrupted after step 2 resumes at step 3. Cache
entries carry a fingerprint of everything that shaped them (backend model, template, sampling, upstream
steps), so changing a prompt regenerates exactly what it affects.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionr1.coldstart import report as reporting
from visionr1.coldstart.backends import GenerationError, GenRequest, build_backend
from visionr1.coldstart.config import (
    RUNTIME_FIELDS,
    STEPS,
    ColdstartRecipe,
    SyntheticInput,
    resolve_templates,
)
from visionr1.coldstart.filters import judge
from visionr1.coldstart.store import JsonlLog, write_atomic
from visionr1.coldstart.templates import choices_block, render
from visionr1.config.base import RecipeError


class StepFailed(Exception):
    def __init__(self, step: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{step}: {reason}: {detail}")
        self.step, self.reason, self.detail = step, reason, detail


def run_coldstart(recipe: ColdstartRecipe, output_dir: str | Path | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; return the report (also written to ``report.json``)."""
    console = console or Console()
    out = Path(output_dir or recipe.output_dir or Path("runs/coldstart") / recipe.name)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)  # noqa: F841 - held until this function returns

    # ---- recipe, templates, provenance ------------------------------------------------------------------
    templates = resolve_templates(recipe)
    _write_run_info(out, recipe, templates)
    fps = step_fingerprints(recipe, templates)
    record_fp = _fp({"reasoning": fps["reasoning"], "filters": recipe.filters.model_dump(),
                     "caption_prefix": recipe.description.caption_prefix})

    # ---- input records -----------------------------------------------------------------------------------
    dataset, load_skipped = load_input(recipe, out)
    ids = list(dataset["id"])
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise RecipeError(f"input: record id {dup!r} appears more than once; cold-start results are keyed by id "
                          "(give the records unique ids)")

    # ---- what is already done ----------------------------------------------------------------------------
    records_log = JsonlLog(out / "records.jsonl")
    step_logs = {s: JsonlLog(out / "steps" / f"{s}.jsonl") for s in STEPS}
    done = records_log.index(keep=lambda e: e.get("fp") == record_fp, fields=("status",))

    def finished(rid: str) -> bool:
        e = done.get(rid)
        return e is not None and (e["status"] != "failed" or not recipe.retry_failed)

    todo = [i for i, rid in enumerate(ids) if not finished(rid)]
    console.print(f"cold start [bold]{recipe.name}[/]: {len(ids)} records, {len(ids) - len(todo)} already finished, "
                  f"{len(todo)} to do -> {out}")

    # ---- generate ----------------------------------------------------------------------------------------
    runner = Runner(recipe, templates, fps, record_fp, dataset, ids, out, step_logs, records_log, {ids[i] for i in todo})
    start = time.monotonic()
    interrupted = False
    try:
        asyncio.run(runner.run(todo, console))
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: every finished result is saved; run the same command again to resume")
    finally:
        records_log.close()
        for log in step_logs.values():
            log.close()
    elapsed = time.monotonic() - start

    # ---- output + report ---------------------------------------------------------------------------------
    # streamed: a 200K-record run's logs hold gigabytes of text; only offsets and small fields are kept
    final_log = JsonlLog(out / "records.jsonl")
    index = final_log.index(keep=lambda e: e.get("fp") == record_fp, fields=("status", "reason", "step"))
    records = [index[r] for r in ids if r in index]
    kept = (final_log.read_at(index[r]["offset"]) for r in ids if r in index and index[r]["status"] == "kept")
    files, kept_stats = reporting.write_outputs(out, kept, recipe.output)
    id_set = set(ids)
    stat_fields = ("ok", "prompt_tokens", "completion_tokens", "attempts", "latency_s")
    step_entries = {
        s: list(JsonlLog(out / "steps" / f"{s}.jsonl").index(
            keep=lambda e, s=s: e.get("fp") == fps[s] and e["id"] in id_set, fields=stat_fields).values())
        for s in STEPS
    }
    backends = {s: {"backend": recipe.step(s).backend, "label": runner.backends[recipe.step(s).backend].label,
                    "oracle": runner.backends[recipe.step(s).backend].is_oracle} for s in STEPS}
    this_run = {"processed": runner.processed, "skipped_finished": len(ids) - len(todo), "elapsed_s": round(elapsed, 3),
                "records_per_s": round(runner.processed / elapsed, 4) if elapsed > 0 else 0.0}
    report = reporting.build_report(
        name=recipe.name, records=records, n_input=len(ids), load_skipped=load_skipped, step_entries=step_entries,
        backends=backends, kept_stats=kept_stats, this_run=this_run, files=files,
        complete=not interrupted and len(records) == len(ids),
    )
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    reporting.print_report(report, console)
    if interrupted:
        raise KeyboardInterrupt
    return report


# ----------------------------------------------------------------------------------------------------------
# One record through the steps
# ----------------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, recipe, templates, fps, record_fp, dataset, ids, out, step_logs, records_log, todo_ids) -> None:
        self.recipe, self.templates, self.fps, self.record_fp = recipe, templates, fps, record_fp
        self.dataset, self.ids, self.out, self.step_logs, self.records_log = dataset, ids, out, step_logs, records_log
        used = {recipe.step(s).backend for s in STEPS}
        self.backends = {n: build_backend(n, spec) for n, spec in recipe.backends.items() if n in used}
        # finished step results of the records still to do: offsets into the step logs, read when needed
        self.cache = {
            s: step_logs[s].index(keep=lambda e, s=s: e.get("fp") == fps[s] and e["id"] in todo_ids, fields=("ok",))
            for s in STEPS
        }
        self.processed = 0

    async def run(self, todo: list[int], console: Console) -> None:
        it = iter(todo)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            self._bar = progress.add_task("records", total=len(todo))

            async def worker() -> None:
                for idx in it:  # one shared iterator: workers take the next record when they are free
                    await self.process(idx)
                    progress.advance(self._bar)

            try:
                await asyncio.gather(*(worker() for _ in range(min(self.recipe.max_in_flight, len(todo)))))
            finally:
                for b in self.backends.values():
                    await b.aclose()

    async def process(self, idx: int) -> None:
        rid = self.ids[idx]
        entry: dict[str, Any] = {"id": rid, "fp": self.record_fp}
        try:
            sample = await asyncio.to_thread(self.dataset.__getitem__, idx)  # decodes the images
            metadata = _metadata(sample.get("metadata"))
            entry.update(task=sample["task"], question=sample["question"], solution=sample["solution"],
                         choices=sample.get("choices"), metadata=metadata)
            entry["images"] = await asyncio.to_thread(save_images, self.out, rid, sample["images"])
            ctx = {"question": sample["question"], "choices": choices_block(sample.get("choices")),
                   "answer": _answer_text(sample["solution"], sample.get("choices"))}
            results = {}
            for step in STEPS:
                results[step] = res = await self.step(step, sample, metadata, ctx)
                ctx[step] = (res.get("text") or "").strip()
            final = results["reasoning"]
            desc = self.recipe.description
            prefix = f"{desc.caption_prefix}{ctx['description']}\n\n" if desc.variant == "caption_first" else ""
            v = judge(final["text"], final.get("reasoning"), final.get("finish_reason"), question=sample["question"],
                      solution=sample["solution"], task=sample["task"], choices=sample.get("choices"),
                      spec=self.recipe.filters, thinking_prefix=prefix)
            entry.update(status="kept" if v.kept else "dropped", reason=v.reason, reasons=v.reasons,
                         response=v.response, answer=v.answer, rewrites=v.rewrites)
        except StepFailed as exc:
            entry.update(status="failed", step=exc.step, reason=exc.reason, detail=exc.detail)
        except Exception as exc:  # noqa: BLE001 - a broken record (corrupt image, ...) is recorded, not fatal
            entry.update(status="failed", step="record", reason="error", detail=f"{type(exc).__name__}: {exc}")
        entry["generators"] = {s: self.backends[self.recipe.step(s).backend].label for s in STEPS}
        entry["oracle"] = any(self.backends[self.recipe.step(s).backend].is_oracle for s in STEPS)
        self.records_log.append(entry)
        self.processed += 1

    async def step(self, step: str, sample: dict, metadata: dict, ctx: dict[str, str]) -> dict[str, Any]:
        rid = sample["id"]
        hit = self.cache[step].pop(rid, None)
        if hit is not None and (hit["ok"] or not self.recipe.retry_failed):
            cached = self.step_logs[step].read_at(hit["offset"])
            if not cached["ok"]:
                raise StepFailed(step, cached["reason"], cached.get("detail", ""))
            return cached
        spec = self.recipe.step(step)
        backend = self.backends[spec.backend]
        req = GenRequest(
            record_id=rid, step=step, text=render(self.templates[step], **ctx),
            images=list(sample["images"]) if step != "reasoning" else [], system=spec.system,
            max_tokens=spec.max_tokens, temperature=spec.temperature, top_p=spec.top_p,
            metadata=metadata, solution=sample["solution"],
        )
        entry: dict[str, Any] = {"id": rid, "step": step, "fp": self.fps[step], "backend": backend.label, "oracle": backend.is_oracle}
        try:
            gen = await backend.generate(req)
            if not gen.text.strip() and not (gen.reasoning or "").strip():
                raise GenerationError("empty_output", f"finish_reason={gen.finish_reason}", gen.attempts)
            entry.update(ok=True, text=gen.text, reasoning=gen.reasoning, finish_reason=gen.finish_reason,
                         prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                         attempts=gen.attempts, latency_s=round(gen.latency_s, 4))
        except GenerationError as exc:
            entry.update(ok=False, reason=exc.reason, detail=exc.detail, attempts=exc.attempts)
        self.step_logs[step].append(entry)
        if not entry["ok"]:
            raise StepFailed(step, entry["reason"], entry["detail"])
        return entry


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def load_input(recipe: ColdstartRecipe, out: Path):
    """The input as canonical samples (``visionr1.data.loaders``); synthetic records are generated first."""
    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec

    spec = recipe.input
    if isinstance(spec, SyntheticInput):
        from visionr1.tasks.synthetic import make_synthetic

        src = out / "source" / f"{spec.task}-n{spec.n}-seed{spec.seed}-{spec.difficulty}"
        if not (src / "train.jsonl").exists():
            kwargs = {} if spec.difficulty is None else {"difficulty": spec.difficulty}
            make_synthetic(spec.task, spec.n, spec.seed, src, test_fraction=0.0, **kwargs)
        spec = DatasetSpec(format="jsonl", path=str(src / "train.jsonl"))
    result = load_samples(spec)
    return result.dataset, list(result.skipped)


def step_fingerprints(recipe: ColdstartRecipe, templates: dict[str, str]) -> dict[str, str]:
    """Fingerprint of each step: backend model, template, sampling settings, and the upstream step's."""
    fps, prev = {}, None
    for step in STEPS:
        spec = recipe.step(step)
        backend = {k: v for k, v in recipe.backends[spec.backend].model_dump().items() if k not in RUNTIME_FIELDS}
        fields = spec.model_dump(exclude={"backend", "prompt", "prompt_file", "caption_prefix"})
        fps[step] = prev = _fp({"step": step, "backend": backend, "template": templates[step], "spec": fields, "up": prev})
    return fps


def _fp(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def safe_name(rid: str) -> str:
    """A file name for a record id (ids may hold '/', ':' ...); a hash suffix keeps sanitised ids distinct.

    >>> safe_name("geo/12:a")
    'geo_12_a-72e8bac9'
    """
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", rid)[:80]
    return clean if clean == rid else f"{clean}-{hashlib.sha1(rid.encode()).hexdigest()[:8]}"


def save_images(out: Path, rid: str, images: list) -> list[str]:
    """Write a record's images under ``out/images`` once (atomically); return paths relative to ``out``."""
    (out / "images").mkdir(exist_ok=True)
    rels = []
    for k, im in enumerate(images):
        rel = f"images/{safe_name(rid)}-{k}.png"
        path = out / rel
        if not path.exists():
            tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
            try:
                im.save(tmp, format="PNG")
                os.replace(tmp, path)
            except OSError:
                tmp.unlink(missing_ok=True)  # a full disk leaves no half-written image behind
                raise
        rels.append(rel)
    return rels


def _metadata(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        with contextlib.suppress(json.JSONDecodeError):
            obj = json.loads(raw)
            return obj if isinstance(obj, dict) else {}
    return {}


def _answer_text(solution: str, choices: list[str] | None) -> str:
    """The ground truth as shown to the MLLM; option letters get their text.

    >>> _answer_text("B", ["red", "blue"])
    '(B) blue'
    """
    s = solution.strip()
    if choices and len(s) == 1 and 0 <= ord(s.upper()) - ord("A") < len(choices):
        return f"({s.upper()}) {choices[ord(s.upper()) - ord('A')]}"
    return solution


def _lock(out: Path):
    """One writer per output directory (two would interleave the logs). The OS drops the lock with the process."""
    f = (out / ".lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RecipeError(f"{out}: another `visionr1 coldstart` is writing to this directory; wait for it or use --output-dir") from None
    return f


def _write_run_info(out: Path, recipe: ColdstartRecipe, templates: dict[str, str]) -> None:
    """Guideline 10: the resolved recipe, templates, package versions and git commit of the latest invocation."""
    from visionr1.utils.provenance import git_info, package_versions

    info = {"recipe": recipe.model_dump(mode="json"), "templates": templates, "versions": package_versions(),
            "git": git_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_atomic(out / "run_info.json", json.dumps(info, indent=2, ensure_ascii=False))


__all__ = ["run_coldstart", "step_fingerprints", "load_input", "safe_name"]
