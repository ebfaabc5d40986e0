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

What the official rules read: X when the response is in the project's answer format
(:func:`~visionr1.evaluation.benchmarks.base.project_answer`; X is the short answer, or the JSON object's
"short answer" when X is one), else the response under the shared truncation policy
(:func:`~visionr1.evaluation.benchmarks.base.official_response`) read exactly as officially, quirks
included: the preprocessing keeps the text from the first ``{`` to the last ``}`` and removes every
backslash, and a reply that is no JSON is read from its last line *minus its last character*, whatever it
is (the full stop the official prompt's answers end with): "...is D.\\nD." reads D, a reply ending in a bare
"D" reads "" and is wrong. Named leniency ``rewards_extraction``: where that reading is wrong, the rewards'
extraction is tried too (so it never scores lower than the default).
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
    answer_region,
    official_response,
    project_answer,
    rules_extract,
)
from visionr1.evaluation.records import EvalError, PublishedRecord, data_files

TOLERANCE = 0.001
_VARIANT_FILE_RE = re.compile(r"(?:sample_variant|variant|sample)[_-]?(\d+)", re.IGNORECASE)


def official_description(response: str) -> str:
    """The official ``preprocess``: from the first ``{`` to the last ``}`` with every backslash removed, when
    the response has both in that order (else the response as it is).

    >>> official_description('Sure. {"short answer": "\\\\frac{1}{2}"} Done.'), official_description("so D.")
    ('{"short answer": "frac{1}{2}"}', 'so D.')
    """
    start, end = response.find("{"), response.rfind("}")
    if start < 0 or end <= start:
        return response
    return response[start : end + 1].replace("\\", "")


def official_short_answer(response: str) -> tuple[str | None, bool]:
    """(the official "short answer", whether it came from JSON): the JSON object's "short answer" (its
    ``str``, "None" when the key is missing; None when the JSON is not an object, which the official script
    scores wrong), else the last line of the preprocessed response minus its last character, whatever that
    character is (``description.split('\\n')[-1][:-1]``: "...is D.\\nD." reads D, "...\\nD" reads "").

    >>> official_short_answer('{"solution": "...", "short answer": "3.142"}'), official_short_answer("so\\nD.")
    (('3.142', True), ('D', False))
    >>> official_short_answer("so the answer is\\nD")
    ('', False)
    """
    description = official_description(response)
    try:
        obj = json.loads(description, strict=False)
    except (json.JSONDecodeError, ValueError):
        return description.split("\n")[-1][:-1], False
    if not isinstance(obj, dict):
        return None, True
    return str(obj.get("short answer")), True


def json_short_answer(response: str) -> str | None:
    """The "short answer" of the JSON object in a response, None when there is no such object.

    >>> json_short_answer('Sure. {"solution": "...", "short answer": "3.142"}')
    '3.142'
    """
    found, from_json = official_short_answer(response)
    return found if from_json else None


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

    def load(self, path: Path, for_generation: bool = False, columns: dict[str, str] | None = None) -> list[Item]:
        self._several_files = len(data_files(Path(path))) > 1
        return super().load(path, for_generation, columns)

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
        truth = self.truth(r)
        task = "choice" if answer_type == "multiple choice" else "math"
        block = project_answer(response, task)
        if block is not None:  # the project's answer: the short answer itself (a JSON object in it is read)
            found, source = json_short_answer(answer_region(response)) or block, "answer_format"
        else:
            text = official_response(response)
            found, source = official_short_answer(text)[0], "benchmark_rules"
            if not text.strip():
                found, source = None, "none"
        correct = found is not None and judge(found, truth, answer_type)
        if not correct and ctx.lenient("rewards_extraction"):
            lenient = rules_extract(response, task)
            if lenient is not None and judge(lenient, truth, answer_type):
                found, correct, source = lenient, True, "answer_rules"
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
