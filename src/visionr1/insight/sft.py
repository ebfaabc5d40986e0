"""The two SFT sets of Insight-V, as LLaMA-Factory ShareGPT JSON (``format: sharegpt`` in a recipe):

- ``reasoner_sft.json``: question -> the best structured chain (:func:`visionr1.insight.chain.render_chain`);
- ``summary_sft.json``: question + a chain -> the summary agent's verdict and answer. Per kept record, the
  kinds the recipe lists: the best chain (``Verdict: correct``, its answer summarized), the best chain with one
  intermediate step changed and with a wrong final step (deliberate flaws), and a sampled chain the answer
  filter dropped (a real mistake). For a flawed chain the target says so and answers from the ground truth,
  re-deriving it with the best chain's reasoning (in oracle mode: the scene's rule-derived reasoning).

Insight-V's summary agent answers without stating its judgement; ours begins with the verdict so it can be
logged and measured (``eval run --strategy insight-v``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from visionr1.coldstart.store import write_atomic
from visionr1.insight.chain import Step, flaw_chain, render_chain, steps_text
from visionr1.insight.config import SummarySetSpec
from visionr1.insight.prompts import reasoner_text, summary_text
from visionr1.utils.io import dumps_json, output_error

REASONER_FILE = "reasoner_sft.json"
SUMMARY_FILE = "summary_sft.json"


def _user(rec: dict[str, Any], text: str) -> dict[str, str]:
    return {"role": "user", "content": "<image>" * len(rec["images"]) + text}


def _item(rec: dict[str, Any], suffix: str, user: str, response: str, **extra: Any) -> dict[str, Any]:
    item = {"id": f"{rec['id']}#{suffix}", "messages": [_user(rec, user), {"role": "assistant", "content": response}],
            "images": rec["images"], "task": rec["task"], "solution": rec["solution"], **extra}
    if rec.get("oracle"):
        item["oracle"] = True  # built from a synthetic scene's ground truth, not a model's generation
    return item


def reasoner_item(rec: dict[str, Any]) -> dict[str, Any]:
    best = rec["chains"][rec["best"]]
    steps = [Step.from_json(s) for s in best["steps"]]
    return _item(rec, "reasoner", reasoner_text(rec["question"], rec.get("choices")),
                 render_chain(steps, best["answer"]), score=best.get("score"))


def summary_response(verdict: str, note: str, answer: str) -> str:
    """The summary agent's target: the verdict and why inside ``<think>``, the answer in ``<answer>``."""
    return f"<think>Verdict: {verdict}. {note}</think>\n<answer>{answer}</answer>"


def summary_items(rec: dict[str, Any], spec: SummarySetSpec) -> tuple[list[dict[str, Any]], Counter]:
    """The summary agent's examples of one kept record, and per kind how many could not be made."""
    best = rec["chains"][rec["best"]]
    steps = [Step.from_json(s) for s in best["steps"]]
    gold, task, choices = rec["solution"], rec["task"], rec.get("choices")
    rederive = " ".join(s.reasoning for s in steps)
    user = lambda chain: summary_text(rec["question"], choices, steps_text(chain))  # noqa: E731
    items, missing = [], Counter()
    for kind in spec.kinds:
        if kind == "correct":
            route = "; ".join(s.summary for s in steps)
            note = f"The reasoning holds step by step ({route}) and reaches {best['answer']}."
            items.append(_item(rec, "summary-correct", user(steps), summary_response("correct", note, gold),
                               kind=kind, verdict="correct"))
            continue
        if kind == "generated_wrong":
            wrong = next((c for c in rec["chains"] if c["status"] == "ok" and not c["correct"]), None)
            if wrong is None:
                missing[kind] += 1
                continue
            chain = [Step.from_json(s) for s in wrong["steps"]]
            note = (f"Its conclusion, {wrong['answer']}, does not match the image, so I do not rely on it. "
                    f"Solving it again: {rederive}")
        else:
            flawed = flaw_chain(steps, best["answer"], kind, task, choices, salt=rec["id"])
            if flawed is None:
                missing[kind] += 1
                continue
            chain, bad, j = flawed
            what = (f"Step {j + 1} ({chain[j].summary}) is wrong" if kind == "wrong_step"
                    else f"The final step concludes {bad}, which does not follow")
            note = f"{what}, so I do not rely on the reasoning. Solving it again: {rederive}"
        items.append(_item(rec, f"summary-{kind}", user(chain), summary_response("flawed", note, gold),
                           kind=kind, verdict="flawed"))
    return items, missing


def write_sft_sets(out_dir: Path, kept: Iterable[dict[str, Any]], spec: SummarySetSpec) -> tuple[dict[str, str], dict[str, Any]]:
    """Stream the kept records into both sets (temp files renamed at the end); return the files and counts."""
    stats: dict[str, Any] = {"reasoner": 0, "summary": Counter(), "summary_not_made": Counter()}
    paths = {name: out_dir / name for name in (REASONER_FILE, SUMMARY_FILE)}
    handles: dict[str, Any] = {}
    try:
        for name, path in paths.items():
            handles[name] = path.with_name(path.name + ".tmp").open("w", encoding="utf-8")
            handles[name].write("[")
        first = {name: True for name in paths}

        def put(name: str, item: dict[str, Any]) -> None:
            handles[name].write(("\n" if first[name] else ",\n") + dumps_json(item))
            first[name] = False

        for rec in kept:
            put(REASONER_FILE, reasoner_item(rec))
            stats["reasoner"] += 1
            items, missing = summary_items(rec, spec)
            for item in items:
                put(SUMMARY_FILE, item)
                stats["summary"][item["kind"]] += 1
            stats["summary_not_made"].update(missing)
        for f in handles.values():
            f.write("\n]\n")
            f.close()
    except OSError as exc:
        for name, f in handles.items():
            f.close()
            paths[name].with_name(paths[name].name + ".tmp").unlink(missing_ok=True)
        raise output_error(exc, exc.filename or out_dir, "the Insight-V SFT sets") from None
    for path in paths.values():
        os.replace(path.with_name(path.name + ".tmp"), path)
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    info = {f"insight_{key}": {"file_name": name, "formatting": "sharegpt",
                               "columns": {"messages": "messages", "images": "images"}, "tags": tags}
            for key, name in (("reasoner", REASONER_FILE), ("summary", SUMMARY_FILE))}
    write_atomic(out_dir / "dataset_info.json", json.dumps(info, indent=2))
    files = {"reasoner_sft": str(paths[REASONER_FILE]), "summary_sft": str(paths[SUMMARY_FILE]),
             "llamafactory_dataset_info": str(out_dir / "dataset_info.json")}
    stats["summary"] = dict(stats["summary"])
    stats["summary_not_made"] = dict(stats["summary_not_made"])
    return files, stats
