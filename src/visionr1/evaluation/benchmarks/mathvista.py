"""MathVista (testmini: 1,000 items), scored as ``evaluation/calculate_score.py`` of lupantech/MathVista does.

Records: ``pid, question, choices, unit, precision, answer, question_type (multi_choice | free_form),
answer_type (text | integer | float | list), metadata{language, source, category, task, context, grade,
skills}`` and, in the Hugging Face copy, ``query`` (the official prompt with its hint) and ``decoded_image``.

Official pipeline: an LLM (GPT-4) extracts the answer (``extract_answer.py``, after quick rules: the whole
response is an option, or parses as the integer/float), then :func:`normalize_extracted_answer` maps it onto
the answer's type and it is compared with ``answer`` by string equality. Departure: by default the answer is
extracted by rules (the rewards' extraction, then the official quick rules); ``--judge-mode official`` uses
the LLM with the official few-shot prompt instead, ``fallback`` only where the rules find nothing. A response
with no extractable answer is normalised from "" as the official script does (for multiple choice that is
the shortest option, by Levenshtein distance).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

from visionr1.evaluation.benchmarks.base import (
    Benchmark,
    Item,
    ItemResult,
    ScoringContext,
    accuracy_table,
    rules_extract,
)

# The official few-shot extraction prompt (MathVista demos, pids 852, 104, 824, 506, 540).
DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\\nChoices:\\n(A) 3/11\\n(B) 8/11\\n(C) 6/11\\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""

# calculate_score.py's breakdown keys ("skills" holds a list: an item counts for each of its skills).
BREAKDOWN_KEYS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills")


def get_most_similar(prediction: str, choices: Sequence[str]) -> str:
    """The choice nearest to ``prediction`` by Levenshtein distance; ties go to the first (official).

    >>> get_most_similar("8/1", ["3/11", "8/11", "6/11"])
    '8/11'
    """
    distances = [Levenshtein.distance(prediction, c) for c in choices]
    return choices[distances.index(min(distances))]


def normalize_extracted_answer(
    extraction: Any, choices: Sequence[str] | None, question_type: str, answer_type: str, precision: int | None
) -> Any:
    """Port of calculate_score.py's ``normalize_extracted_answer``, rule for rule.

    >>> normalize_extracted_answer("(B) 8/11", ["3/11", "8/11"], "multi_choice", "text", None)
    '8/11'
    >>> normalize_extracted_answer("3.9", None, "free_form", "integer", None)  # truncates, does not round
    '3'
    >>> normalize_extracted_answer("1.25", None, "free_form", "float", 1)
    '1.2'
    >>> normalize_extracted_answer("ten", None, "free_form", "integer", None) is None
    True
    """
    if question_type == "multi_choice":
        choices = list(choices or [])
        if isinstance(extraction, str):
            extraction = extraction.strip()
        else:
            try:
                extraction = str(extraction)
            except Exception:
                extraction = ""
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)  # "A" from "(A) text"
        if letter:
            extraction = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            extraction = choices[options.index(extraction)]
        elif choices:
            extraction = get_most_similar(extraction, choices)
    elif answer_type == "integer":
        try:
            extraction = str(int(float(extraction)))
        except Exception:
            extraction = None
    elif answer_type == "float":
        try:
            extraction = str(round(float(extraction), precision))
        except Exception:
            extraction = None
    elif answer_type == "list":
        try:
            extraction = str(extraction)
        except Exception:
            extraction = None
    return extraction


def safe_equal(prediction: Any, answer: Any) -> bool:
    try:
        return bool(prediction == answer)
    except Exception:
        return False


def quick_extract(response: str, record: dict[str, Any]) -> str | None:
    """extract_answer.py's rules before its LLM call: the response *is* an option / integer / float, or
    says ``The answer is "X".``; None when none applies (the official script would ask the LLM)."""
    choices = record.get("choices") or []
    if response == "":
        return ""
    if record.get("question_type") == "multi_choice" and response in choices:
        return response
    if record.get("answer_type") == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if record.get("answer_type") == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    m = re.search(r'The answer is "(.*)"\.', response)
    return m.group(1) if m else None


def precision_of(record: dict[str, Any]) -> int | None:
    """``precision`` as an int (parquet stores it as a float, NaN for none)."""
    p = record.get("precision")
    if p is None:
        return None
    try:
        return int(p)
    except (TypeError, ValueError):
        return None


def build_query(record: dict[str, Any]) -> str:
    """The official prompt when the record has no ``query`` (the JSON release keeps queries apart):
    hint by answer type, question (with its unit), lettered choices."""
    qt, at, precision = record.get("question_type"), record.get("answer_type"), precision_of(record)
    if qt == "multi_choice":
        hint = "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
    elif at == "integer":
        hint = "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end."
    elif at == "float" and precision == 1:
        hint = ("Please answer the question requiring a floating-point number with one decimal place and provide "
                "the final value, e.g., 1.2, 1.3, 1.4, at the end.")
    elif at == "float" and precision == 2:
        hint = ("Please answer the question requiring a floating-point number with two decimal places and provide "
                "the final value, e.g., 1.23, 1.34, 1.45, at the end.")
    elif at == "list":
        hint = ("Please answer the question requiring a Python list as an answer and provide the final list, "
                "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.")
    else:
        hint = "Please answer the question and provide the final answer at the end."
    question = record["question"]
    if record.get("unit"):
        question = f"{question} (Unit: {record['unit']})"
    text = f"Hint: {hint}\nQuestion: {question}"
    if record.get("choices"):
        text += "\nChoices:\n" + "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(record["choices"]))
    return text


class MathVista(Benchmark):
    name = "mathvista"
    id_field = "pid"
    llm_use = "answer extraction (GPT-4, few-shot), then rules"

    def question(self, item: Item) -> str:
        return item.record.get("query") or build_query(item.record)

    def extract(self, response: str, item: Item, ctx: ScoringContext) -> tuple[str, str]:
        record = item.record
        if ctx.mode != "official":
            task = "choice" if record.get("question_type") == "multi_choice" else "math"
            found = rules_extract(response, task)
            if found is not None:
                return found, "answer_rules"
        found = quick_extract(response, record)
        if found is not None:
            return found, "benchmark_rules"
        if ctx.mode in ("fallback", "official"):
            prompt = f"{DEMO_PROMPT.strip()}\n\n{self.question(item)}\n\n{response}\n\nExtracted answer: "
            return ctx.llm(prompt), "llm"
        return "", "none"

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        self.require(item, "answer", "question_type", "answer_type")
        extracted, source = self.extract(response, item, ctx)
        normalized = normalize_extracted_answer(
            extracted, r.get("choices"), r["question_type"], r["answer_type"], precision_of(r)
        )
        return ItemResult(item.pid, extracted, normalized, safe_equal(normalized, r["answer"]), source)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        breakdowns = {}
        for key in BREAKDOWN_KEYS:
            pairs = []
            for item, res in zip(items, results, strict=True):
                value = item.record.get(key, (item.record.get("metadata") or {}).get(key))
                if key == "skills":
                    pairs += [(skill, res.correct) for skill in (value or [])]
                elif value is not None:
                    pairs.append((value, res.correct))
            if pairs:
                breakdowns[key] = accuracy_table(pairs)
        return {"breakdowns": breakdowns}
