"""We-Math (testmini: 1,740 items), scored as We-Math/We-Math's ``evaluation/four_dimensional_metrics.py``
and ``accuracy.py``.

Records: ``ID, split, knowledge concept, question, option, answer (a letter), image_path, key`` where ``key``
places the item in a multi-step problem: ``2steps_1, 2steps_2, 2steps_multi`` (the two one-step
sub-problems and the composite problem, all sharing one ``ID``), ``3steps_1..3, 3steps_multi``. An item's
id is ``"{ID}@{key}"``; predictions may give that as ``pid``, or ``ID`` with ``key``.

Official rules, ported: the answer is the first character after the last "Answer" in the response (after
removing ``<>:.`` and spaces), when it is one of A-H; right when it equals ``answer``. Each multi-step
problem then falls into one of four classes, from its sub-problems (one-step) and the composite:

- IK, insufficient knowledge: some sub-problem wrong and the composite wrong;
- IG, inadequate generalisation: every sub-problem right but the composite wrong;
- CM, complete mastery: composite right and every sub-problem right (strict) / any right (loose);
- RM, rote memorisation: composite right but some sub-problem wrong (strict) / all wrong (loose).

IK, IG and CM are reported as a share of all multi-step problems, RM as a share of RM + CM; the score is
``(N - 0.5 IG - RM - IK) / N``, strict and loose. Also S1/S2/S3: accuracy on one-step sub-problems and on
two- and three-step composites. ``accuracy`` in the summary is the plain per-item accuracy.

The official rule reads X when the response is in the project's answer format
(:func:`~visionr1.evaluation.benchmarks.base.project_answer`: ``<answer> Final Answer: B </answer>`` hands it
"B"), else the response under the shared truncation policy
(:func:`~visionr1.evaluation.benchmarks.base.official_response`). Named leniency ``rewards_extraction``: where
the official letter is wrong, the letter the rewards' extraction starts with is tried too.
Departures: N is the number of multi-step problems in the data (525 on testmini; the official script hard-codes
525). The official per-domain table needs the knowledge-tree file shipped with the evaluation code, so it
is not reproduced; a breakdown by the records' ``knowledge concept`` is given instead.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from visionr1.evaluation.benchmarks.base import (
    Benchmark,
    Item,
    ItemResult,
    ScoringContext,
    accuracy_table,
    leading_letter,
    official_response,
    project_answer,
    rules_extract,
)
from visionr1.evaluation.records import EvalError, PublishedRecord

OPTION_LETTERS = "ABCDEFGH"


def official_letter(response: str) -> str | None:
    """The first character after the last "Answer" (``<>:.`` removed), if it is one of A-H.

    >>> official_letter("... so the Final Answer: B."), official_letter("<answer> Final Answer: C </answer>")
    ('B', 'C')
    >>> official_letter("I think it is B") is None  # no "Answer": the response's first character is read
    True
    """
    text = re.sub(r"[><:.]", "", response.split("Answer")[-1].strip()).strip()
    return text[0] if text and text[0] in OPTION_LETTERS else None


def _rate(count: int, total: int) -> float:
    return count / total if total else 0.0


def four_dimensional_metrics(jokers: dict[tuple[str, str], bool | None]) -> dict[str, Any]:
    """IK/IG/CM/RM counts, rates and scores from ``{(ID, key): right?}`` (None: no such item).

    A multi-step problem is counted from its ``_1`` item (the official left-join), and a missing member is
    neither right nor wrong (pandas NaN compares unequal to both), as in the official script.
    """
    by_id: dict[str, dict[str, bool | None]] = defaultdict(dict)
    for (pid, key), ok in jokers.items():
        by_id[pid][key] = ok
    counts = {k: 0 for k in ("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose")}
    step_accuracy: dict[str, list[bool]] = {"S1": [], "S2": [], "S3": []}
    groups = 0
    for steps in (2, 3):
        for keys in by_id.values():
            if f"{steps}steps_1" not in keys:
                continue
            groups += 1
            subs = [keys.get(f"{steps}steps_{i}") for i in range(1, steps + 1)]
            multi = keys.get(f"{steps}steps_multi")
            any_false, all_true = any(s is False for s in subs), all(s is True for s in subs)
            any_true, all_false = any(s is True for s in subs), all(s is False for s in subs)
            counts["IK"] += any_false and multi is False
            counts["IG"] += all_true and multi is False
            counts["CM_strict"] += all_true and multi is True
            counts["CM_loose"] += any_true and multi is True
            counts["RM_strict"] += any_false and multi is True
            counts["RM_loose"] += all_false and multi is True
            step_accuracy["S1"] += [s for s in subs if s is not None]
            if multi is not None:
                step_accuracy[f"S{steps}"].append(multi)
    n = groups
    out: dict[str, Any] = {"multi_step_problems": n}
    for mode in ("strict", "loose"):
        ik, ig, cm, rm = counts["IK"], counts["IG"], counts[f"CM_{mode}"], counts[f"RM_{mode}"]
        out[mode] = {
            "score": _rate(n - 0.5 * ig - rm - ik, n),
            "IK": {"count": ik, "rate": _rate(ik, n)},
            "IG": {"count": ig, "rate": _rate(ig, n)},
            "CM": {"count": cm, "rate": _rate(cm, n)},
            "RM": {"count": rm, "rate": _rate(rm, cm + rm)},
        }
    for name, values in step_accuracy.items():
        out[name] = _rate(sum(values), len(values))
    return out


class WeMath(Benchmark):
    name = "wemath"
    id_field = "ID"
    image_fields = ("image_path", "image", "decoded_image")
    binary_fields = ("image_path", "image", "decoded_image")  # the HF parquet stores pixels under image_path

    def record_id(self, raw: PublishedRecord) -> str:
        d = raw.data
        if d.get("ID") is None or d.get("key") is None:
            raise EvalError(f"{raw.file}: record {raw.index}: needs both 'ID' and 'key'; is this We-Math data?")
        return f"{d['ID']}@{d['key']}"

    def prediction_id(self, pred: dict[str, Any]) -> str | None:
        if pred.get("pid") is not None:
            return str(pred["pid"])
        if pred.get("ID") is not None and pred.get("key") is not None:
            return f"{pred['ID']}@{pred['key']}"
        return None

    def question(self, item: Item) -> str:
        r = item.record
        return f"{r.get('question', '')}\n{r.get('option', '')}".strip()

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        self.require(item, "answer")
        truth = str(item.record["answer"]).strip()
        block = project_answer(response, "choice")
        if block is not None:  # the project's answer, handed to the official rule as the response
            found, source = block, "answer_format"
        else:
            found, source = official_response(response), "benchmark_rules"
        letter = official_letter(found)
        if letter is None:
            source = "none" if block is None else source
        if letter != truth and ctx.lenient("rewards_extraction"):
            lenient = rules_extract(response, "choice")
            other = leading_letter(lenient, len(OPTION_LETTERS)) if lenient is not None else None
            if other == truth:
                found, letter, source = lenient, other, "answer_rules"
        extracted = found if source in ("answer_rules", "answer_format") else letter
        return ItemResult(item.pid, extracted, letter, letter == truth, source)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        jokers = {(str(i.record["ID"]), str(i.record["key"])): r.correct for i, r in zip(items, results, strict=True)}
        pairs = list(zip(items, results, strict=True))
        return {
            "metrics": four_dimensional_metrics(jokers),
            "breakdowns": {
                "key": accuracy_table((i.record.get("key"), r.correct) for i, r in pairs),
                "knowledge_concept": accuracy_table((i.record.get("knowledge concept"), r.correct) for i, r in pairs),
            },
        }
