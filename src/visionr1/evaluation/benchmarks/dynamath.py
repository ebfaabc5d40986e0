"""DynaMath (501 seed questions x 10 generated variants), scored as DynaMath/DynaMath's evaluation scripts.

Records: the Hugging Face ``DynaMath_Sample`` parquet (one split per variant, files ``sample_variant{k}-*`` or
``sample{k}-*``; columns ``id, question, image, decoded_image, ground_truth, answer_type (float | multiple
choice | free form), subject, knowledge_level``), a generated ``dataset.json`` (keyed by seed id; ``answer``,
``level``), or VLMEvalKit-style records with ``qid`` and ``varid``. The variant comes from ``varid`` /
``variant``, else from the file name, else it is 1 (a single file). An item's id is ``"{seed id}:{variant}"``;
predictions may give that as ``pid``, or ``id`` (or ``qid``) with ``variant`` (or ``varid``).

Official rules (``opensource_json_eval.py``), ported: the response is a JSON object whose "short answer" is
the answer (the prompt asks for that); if it does not parse, the last line is. Float answers are right
within 1e-3 of the truth (the first word of the answer, with ``π`` as a factor); a multiple-choice answer is
right when it is the letter, or the letter is in its first three characters; a text answer when the truth is
a substring of it. Reported: average accuracy over all variants and **worst-case** accuracy (a seed counts
only when every one of its variants is right), each by subject and knowledge level.

The official rules read :func:`~visionr1.evaluation.benchmarks.base.official_response` (the shared
truncation policy; an ``<answer>`` block stands for the response), so by default the result is the official
one ("...is D.\\nD." reads D from the last line; departure: the official rule drops the last line's final
character unconditionally, meant for the full stop its prompt's answers end with, and an answer block has
none, so only punctuation is dropped). Named leniency ``rewards_extraction``: between the JSON
"short answer" and the last-line rule the rewards' extraction is tried.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionr1.evaluation.benchmarks.base import (
    Benchmark,
    Item,
    ItemResult,
    ScoringContext,
    accuracy_table,
    official_response,
    rules_extract,
)
from visionr1.evaluation.records import EvalError, PublishedRecord, data_files

TOLERANCE = 0.001
_VARIANT_FILE_RE = re.compile(r"(?:sample_variant|variant|sample)[_-]?(\d+)", re.IGNORECASE)


def json_short_answer(response: str) -> str | None:
    """The "short answer" of the JSON object in a response (official ``preprocess`` + ``json.loads``).

    >>> json_short_answer('Sure. {"solution": "...", "short answer": "3.142"}')
    '3.142'
    """
    text = response
    if 0 <= text.find("{") < text.rfind("}"):
        text = text[text.find("{") : text.rfind("}") + 1]
    text = text.replace("\\", "").replace("\\n", "\n")
    try:
        obj = json.loads(text, strict=False)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("short answer") is None:
        return None
    return str(obj["short answer"])


def transfer(text: str) -> float:
    """A number, ``π`` allowed as a trailing factor ("2π" -> 6.283...); raises ValueError otherwise."""
    if "\u03c0" in text:
        return float(text.split("\u03c0")[0]) * math.pi
    return float(text)


def judge(answer: str, truth: str, answer_type: str) -> bool:
    """The official comparison of a short answer with the ground truth.

    >>> judge("2.0946", "2.0944", "float"), judge("B", "B", "multiple choice"), judge("(B) no", "B", "multiple choice")
    (True, True, True)
    >>> judge("2π", "6.2832", "float"), judge("May", "May", "free form"), judge("3", "4", "float")
    (True, True, False)
    """
    try:
        if answer_type == "float":
            value = float(answer) if answer.isdigit() else transfer(answer.split(" ")[0])
            return abs(value - float(truth)) <= TOLERANCE
        if answer_type == "multiple choice":
            return answer == truth if len(answer) == 1 else truth in answer[0:3]
        return truth in answer
    except (ValueError, TypeError):
        return False


class DynaMath(Benchmark):
    name = "dynamath"
    id_field = "id"

    def load(self, path: Path, for_generation: bool = False) -> list[Item]:
        self._several_files = len(data_files(Path(path))) > 1
        return super().load(path, for_generation)

    def record_id(self, raw: PublishedRecord) -> str:
        d = raw.data
        seed = d.get("qid", d.get("id", raw.key))
        if seed is None:
            raise EvalError(f"{raw.file}: record {raw.index}: no seed id (id / qid); is this DynaMath data?")
        variant = d.get("varid", d.get("variant"))
        if variant is None:
            m = _VARIANT_FILE_RE.search(raw.file.name)
            variant = m.group(1) if m else None
        if variant is None and getattr(self, "_several_files", False):
            raise EvalError(
                f"{raw.file}: which variant is this file? Name variant files sample_variant<k>-*.parquet (as on the "
                f"hub), give records a 'varid' column, or pass a single file (a merged 'sample_all' split has neither)"
            )
        if variant is None:
            variant = 1
        raw.data["_seed"], raw.data["_variant"] = str(seed), int(variant)
        return f"{seed}:{int(variant)}"

    def prediction_id(self, pred: dict[str, Any]) -> str | None:
        if pred.get("pid") is not None:
            return str(pred["pid"])
        seed, variant = pred.get("id", pred.get("qid")), pred.get("variant", pred.get("varid"))
        if seed is None:
            return None
        return f"{seed}:{int(variant) if variant is not None else 1}"

    def question(self, item: Item) -> str:
        return str(item.record.get("question", ""))

    @staticmethod
    def truth(record: dict[str, Any]) -> str:
        return str(record.get("ground_truth", record.get("answer", ""))).strip()

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        if "ground_truth" not in r and "answer" not in r:
            self.require(item, "ground_truth")
        answer_type = str(r.get("answer_type", "")).strip()
        text = official_response(response)
        found, source = json_short_answer(text), "benchmark_rules"
        if found is None and ctx.lenient("rewards_extraction"):
            task = "choice" if answer_type == "multiple choice" else "math"
            found, source = rules_extract(response, task), "answer_rules"
        if found is None:
            last = text.split("\n")[-1]
            # the official rule drops the last character, the full stop its prompt's answers end with; an
            # answer block's content has none, so only punctuation is dropped
            last = last[:-1] if last[-1:] in ".。!;," else last
            found, source = (last, "benchmark_rules") if text.strip() else (None, "none")
        correct = found is not None and judge(found, self.truth(r), answer_type)
        return ItemResult(item.pid, found, found, correct, source)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        pairs = list(zip(items, results, strict=True))
        seeds: dict[str, list[bool]] = defaultdict(list)
        seed_item: dict[str, Item] = {}
        for item, res in pairs:
            seed = item.record["_seed"]
            seeds[seed].append(res.correct)
            seed_item.setdefault(seed, item)
        worst = {s: all(v) for s, v in seeds.items()}
        variants = [len(v) for v in seeds.values()]

        def level(item: Item) -> Any:
            return item.record.get("knowledge_level", item.record.get("level"))

        return {
            "metrics": {
                "average_accuracy": sum(r.correct for r in results) / len(results) if results else 0.0,
                "worst_case_accuracy": sum(worst.values()) / len(worst) if worst else 0.0,
                "seeds": len(seeds),
                "variants_per_seed": {"min": min(variants, default=0), "max": max(variants, default=0)},
            },
            "breakdowns": {
                "subject": accuracy_table((i.record.get("subject"), r.correct) for i, r in pairs),
                "knowledge_level": accuracy_table((level(i), r.correct) for i, r in pairs),
                "worst_case_subject": accuracy_table((seed_item[s].record.get("subject"), ok) for s, ok in worst.items()),
                "worst_case_knowledge_level": accuracy_table((level(seed_item[s]), ok) for s, ok in worst.items()),
            },
        }
