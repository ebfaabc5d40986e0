"""MathVerse (testmini: 3,940 items = 788 problems x 5 versions), as ZrrSkywalker/MathVerse's evaluation.

Records: ``sample_index, problem_index, problem_version (Text Dominant | Text Lite | Vision Intensive |
Vision Dominant | Vision Only), question, image, answer, question_type (multi-choice | free-form),
metadata{split, source, subject, subfield}, query_wo, query_cot`` (the Hugging Face copy adds
``question_for_eval``). Multiple-choice options live inside the question text ("Choices:\\nA:...").

Official pipeline: an LLM extracts the answer (``extract_answer_s1.py``), a second LLM call judges it 0/1
against the standard answer (``score_answer_s2.py``); accuracy is reported overall, by problem version and by
subject/subfield. The official script's only rule is ``--quick_match`` (exact string equality).

Rule judge (default here): the rewards' extraction; for multiple choice the one option the answer names
(its letter, or its text; options listed in a "Choices" block or inline, "...equation.A. ... B. Can not
determine."), and an answer naming several ("C and D") is wrong, as the official judge wants a complete
match (leniency ``partial_choice``: its first letter counts); for free form exact match, else the rewards'
math equivalence check. It is stricter than the LLM on answers like "0.5 m" vs "50 cm". ``--judge-mode official`` runs both official LLM
stages with the official prompts; ``fallback`` asks the LLM only to extract where the rules find nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from visionr1.evaluation.benchmarks.base import (
    LETTERS,
    Benchmark,
    Item,
    ItemResult,
    ScoringContext,
    accuracy_table,
    leading_letter,
    project_answer,
    rules_extract_with_source,
)
from visionr1.rewards.extract import LAST_RESORTS

# Official prompts (evaluation/prompts.py).
EXTRACT_PROMPT = """
I am providing you a response from a model to a math problem, termed 'Model Response'. You should extract the answer from the response as 'Extracted Answer'. Directly output the extracted answer with no explanation.

1.
Model response: 'Rounded to two decimal places, the perimeter of the sector is approximately:\\n\\n(-2, 1)'
Extracted Answer: (-2, 1)

2.
Model response: 'at those points.\\n\\nTherefore, the correct option that represents the meaning of the intersection points of the graphs is:\\n\\nD. They give the solutions to the equation $f(t)=g(t)$.",'
Extracted Answer: D

3.
Model response: ' at 1 (there's a closed circle at y = 1), the range in interval notation is \\\\((-4, 1]\\\\).\\n\\nFinal values:\\nDomain: \\\\((-3, 3]\\\\)\\nRange: \\\\((-4, 1]\\\\)'
Extracted Answer: Domain: \\\\((-3, 3]\\\\)\\nRange: \\\\((-4, 1]\\\\)

4.
Model response: 'As it stands, I cannot provide the correct option letter because there isn't enough information to solve for 'y'.'
Extracted Answer: null

5.
Model response: 'Given that AB = 17.6 meters, we can now substitute into the equation:\\n\\nd = 17.6 / cos(38\\u00b0)\\n\\nTherefore, to one decimal place, the distance d between Ned and Bart is approximately 22.3 meters.'
Extracted answer: 22.3

6.
Model response:  have all the coefficients for the quadratic function:\\n\\\\( f(x) = ax^2 + bx + c \\\\)\\n\\\\( f(x) = -1x^2 - 2x + 1 \\\\)\\n\\nTherefore, the equation for the graphed function \\\\( f \\\\) is:\\n\\\\( f(x) = -x^2 - 2x + 1 \\\\)"'
Extracted answer: f(x) = -x^2 - 2x + 1

7.
"""

SCORE_PROMPT = """
Below are two answers to a math question. Question is [Question], [Standard Answer] is the standard answer to the question, and [Model_answer] is the answer extracted from a model's output to this question.  Determine whether these two answers are consistent.
Please note that only when the [Model_answer] completely matches the [Standard Answer] means they are consistent. For non-multiple-choice questions, if the meaning is expressed in the same way, it is also considered consistent, for example, 0.5m and 50cm.
If they are consistent, Judement is 1; if they are different, Judement is 0.

[Question]: Write the set of numbers represented on the number line in interval notation.
[Standard Answer]: (-2,1]
[Model_answer] : Extracted Answer: \\\\((-2, 1)\\\\)
Judgement: 0

[Question]: Find the domain and range of the function f using interval notation.
[Standard Answer]: domain: [-4, 0) and range: (-3, 1]
[Model_answer] : Range: \\\\((-4, 1]\\\\)
Judgement: 0


[Question]: Two curves are symmetrical about the x-axis. Use the vertical line test to determine if this relation is a function.\\nChoices:\\nA:This is a function\\nB:This is not a function
[Standard Answer]: B
[Model_answer] : This is not a function
Judgement: 1

[Question]: Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at 3 and -3, determine its equation.A. \\\\frac{{x^2}}{{81}} + \\\\frac{{y^2}}{{9}} = 1 B. Can not determine.\\n
[Standard Answer]: A
[Model_answer] : \\\\frac{{x^2}}{{81}} + \\\\frac{{y^2}}{{9}} = 1
Judgement: 1

[Question]: {question}
[Standard Answer]: {gt}
[Model_answer] : {extraction}
Judgement: """

_OPTION_RE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.：)]\s*(.+?)\s*$")


_INLINE_OPTION_RE = re.compile(r"(?:^|(?<=[\s.:?;)$]))([A-H])\s*[.:：]\s*")


def parse_options(question: str) -> dict[str, str]:
    """The ``{letter: text}`` options of a MathVerse question: the lines after "Choices", else options
    listed inline from "A." on (empty if none).

    >>> parse_options("Find x.\\nChoices:\\nA:4\\nB:6")
    {'A': '4', 'B': '6'}
    >>> parse_options("Determine its equation.A. x^2+y^2=1 B. Can not determine.")
    {'A': 'x^2+y^2=1', 'B': 'Can not determine.'}
    """
    idx = question.lower().rfind("choices")
    options = {}
    if idx >= 0:
        for line in question[idx:].splitlines()[1:]:
            m = _OPTION_RE.match(line)
            if m:
                options[m.group(1)] = m.group(2)
    if options:
        return options
    marks, want = [], "A"
    for m in _INLINE_OPTION_RE.finditer(question):
        if m.group(1) == want:
            marks.append(m)
            want = chr(ord(want) + 1)
    if len(marks) < 2:
        return {}
    for m, nxt in zip(marks, marks[1:] + [None], strict=True):
        options[m.group(1)] = question[m.end() : nxt.start() if nxt else len(question)].strip()
    return options


def _plain(s: str) -> str:
    return re.sub(r"\s+|\$", "", s).rstrip(".").lower()


def choice_letter(extracted: str, options: dict[str, str], partial: bool = False) -> str | None:
    """The one option an extracted answer names (its letter, or the option whose text it is); None when it
    names none or several. ``partial``: the ``partial_choice`` leniency (the first letter counts).

    >>> choice_letter("C and D", {}), choice_letter("C and D", {}, partial=True), choice_letter("(B)", {})
    (None, 'C', 'B')
    """
    for k, text in options.items():
        if _plain(text) == _plain(extracted):
            return k
    if partial:
        letter = leading_letter(extracted, len(LETTERS))
        return letter if letter is not None and (not options or letter in options) else None
    from visionr1.rewards.scoring import named_options

    letters = sorted(options) if options else None
    named = named_options(extracted, [options[k] for k in letters] if letters else None)
    return named.pop() if len(named) == 1 and (not options or next(iter(named)) in options) else None


class MathVerse(Benchmark):
    name = "mathverse"
    id_field = "sample_index"
    image_fields = ("image", "decoded_image")
    binary_fields = ("image", "decoded_image")  # the HF parquet stores the pixels under "image"
    llm_use = "answer extraction and 0/1 judging (GPT-4)"

    def question(self, item: Item) -> str:
        r = item.record
        return r.get("query_cot") or r.get("question") or ""

    def _rule_judge(self, extracted: str | None, record: dict[str, Any], partial: bool = False) -> tuple[Any, bool]:
        if extracted is None:
            return None, False
        answer = str(record.get("answer", "")).strip()
        if record.get("question_type") == "multi-choice" and len(answer) == 1 and answer.upper() in LETTERS:
            letter = choice_letter(extracted, parse_options(str(record.get("question", ""))), partial)
            return letter, letter == answer.upper()
        if extracted.strip() == answer:  # the official --quick_match
            return extracted.strip(), True
        from visionr1.rewards.scoring import score_answer

        return extracted.strip(), score_answer(extracted, answer, "math") >= 1.0

    def score_prediction(self, item: Item, prediction: dict[str, Any], ctx: ScoringContext) -> ItemResult:
        """A prediction with an ``extraction`` (the output of the official ``extract_answer_s1.py``) goes
        straight to the judging stage: the official LLM judge with ``--judge-mode official``, else the rule
        judge on exactly that text; the rules read ``response`` only when there is none."""
        extraction = prediction.get("extraction")
        if extraction is None:
            return super().score_prediction(item, prediction, ctx)
        r = item.record
        self.require(item, "answer")
        extraction = str(extraction).strip()
        if ctx.mode == "official":
            result = self._llm_judge(item, extraction, ctx)
            result.source = "published_extraction"
            return result
        normalized, correct = self._rule_judge(extraction, r, ctx.lenient("partial_choice"))
        return ItemResult(item.pid, extraction, normalized, correct, "published_extraction")

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        self.require(item, "answer")
        if ctx.mode == "official":
            extraction = ctx.llm(f"{EXTRACT_PROMPT.strip()}\n\nModel response: '{response}'\nExtracted Answer: ")
            return self._llm_judge(item, extraction.replace("Extracted Answer: ", "").strip(), ctx)
        task = "choice" if r.get("question_type") == "multi-choice" else "math"
        (extracted, how), source = rules_extract_with_source(response, task), "answer_rules"
        if ctx.wants_llm(how):
            extracted = ctx.llm(f"{EXTRACT_PROMPT.strip()}\n\nModel response: '{response}'\nExtracted Answer: ")
            extracted, source = extracted.replace("Extracted Answer: ", "").strip(), "llm"
        elif extracted is None:
            source = "none"
        elif how == "answer_tag" and project_answer(response, task) is not None:
            source = "answer_format"
        normalized, correct = self._rule_judge(extracted, r, ctx.lenient("partial_choice"))
        info = {"last_resort": how} if how in LAST_RESORTS else {}
        return ItemResult(item.pid, extracted, normalized, correct, source, info=info)

    def _llm_judge(self, item: Item, extraction: str, ctx: ScoringContext) -> ItemResult:
        """The official second stage: the LLM judges ``extraction`` 0/1 against the standard answer."""
        r = item.record
        question = r.get("question_for_eval") or r.get("question", "")
        prompt = SCORE_PROMPT.strip().format(question=question, gt=r["answer"], extraction=extraction)
        judgement = ""
        for _ in range(3):  # the official loop retries until it reads 0 or 1; we give up after 3
            judgement = ctx.llm(prompt).replace("Judgement:", "").strip()
            if judgement in ("0", "1"):
                break
        info = {} if judgement in ("0", "1") else {"unparsable_judgement": judgement[:100]}
        return ItemResult(item.pid, extraction, extraction, judgement == "1", "llm", judge="llm", info=info)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        def meta(item: Item, key: str) -> Any:
            return (item.record.get("metadata") or {}).get(key)

        pairs = list(zip(items, results, strict=True))
        return {
            "breakdowns": {
                "problem_version": accuracy_table((i.record.get("problem_version"), r.correct) for i, r in pairs),
                "question_type": accuracy_table((i.record.get("question_type"), r.correct) for i, r in pairs),
                "subject": accuracy_table((meta(i, "subject"), r.correct) for i, r in pairs),
                "subfield": accuracy_table(
                    (f"{meta(i, 'subject')}/{meta(i, 'subfield')}", r.correct) for i, r in pairs
                ),
            }
        }
