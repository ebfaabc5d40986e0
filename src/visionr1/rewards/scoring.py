"""The one scorer: compare an extracted answer with the solution, per task. RL rewards, evaluation of synthetic
tasks and cold-start filters all call this module, so a model is trained on exactly what it is graded on.

Tasks (docs/CONTRACTS.md): ``math`` (equivalence, see mathcheck.py), ``choice`` (option letter or text, any
usual form; naming two different options scores 0), ``count`` (integers, number words included),
``grounding`` (IoU of ``[x1, y1, x2, y2]`` or Qwen2.5-VL ``{"bbox_2d": [...]}`` boxes when it reaches 0.5,
else 0 -- partial overlap is no credit; malformed or inverted boxes score 0), ``detection`` (COCO mAP of a box
list x VLM-R1's extra-box penalty, see detection.py), ``free`` (normalised, case-insensitive text).
``task=None`` is inferred from the data: choices given -> choice, a box as solution -> grounding, else math.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from visionr1.rewards.detection import score_detection
from visionr1.rewards.extract import LETTERS, completion_text, extract_answer
from visionr1.rewards.mathcheck import MAX_ANSWER_CHARS, math_equal_many
from visionr1.rewards.symbolic import DEFAULT_TIMEOUT_S

TASKS = ("math", "choice", "count", "grounding", "detection", "free")
IOU_THRESHOLD = 0.5

# ----------------------------------------------------------------------------- free text


def normalize_text(s: str) -> str:
    """Lower-case, NFKC, punctuation (except inside numbers) and articles removed, whitespace collapsed.

    >>> normalize_text("  The Red  Cube. ")
    'red cube'
    >>> normalize_text("3.5 kg!")
    '3.5 kg'
    """
    s = unicodedata.normalize("NFKC", s).lower()
    s = re.sub(r"(?<!\d)[^\w\s]|[^\w\s](?!\d)", " ", s)
    s = re.sub(r"\b(?:a|an|the)\b", " ", s)
    return " ".join(s.split())


# ----------------------------------------------------------------------------- choice


def _valid_letters(choices: Sequence[str] | None) -> str:
    return LETTERS[: len(choices)] if choices else LETTERS[:8]


def gold_option(solution: str, choices: Sequence[str] | None) -> tuple[str | None, str | None]:
    """(letter, option text) of the solution; either may be None (text-only gold without choices).

    >>> gold_option("(B)", ["1", "2"]), gold_option("2", ["1", "2"]), gold_option("blue", None)
    (('B', '2'), ('B', '2'), (None, 'blue'))
    """
    s = solution.strip().strip("*").strip()
    valid = _valid_letters(choices)
    m = re.fullmatch(r"\(?([A-Za-z])\)?[.:)]?", s) or re.fullmatch(r"\(?([A-Z])\)?[.:)]\s*(.+)", s)
    if m and m.group(1).upper() in valid:
        letter = m.group(1).upper()
        text = choices[valid.index(letter)] if choices else (m.group(2) if m.lastindex == 2 else None)
        return letter, text
    if choices:
        norm = normalize_text(s)
        for i, c in enumerate(choices):
            if normalize_text(str(c)) == norm:
                return LETTERS[i], str(c)
    return None, s


_CHOICE_PREFIX_RE = re.compile(r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:：]?\s*", re.I)
_LETTER_TEXT_RE = re.compile(r"^\(?([A-Z])\)?\s*[.:)\]]\s*(.+)$|^\(([A-Z])\)\s*(.+)$", re.S)
_NOT_OPTION_NEXT = re.compile(r"\s+[a-z]")
_CONNECTIVES = ("and", "or", "nor", "is", "was", "then")


def named_options(answer: str, choices: Sequence[str] | None = None) -> set[str]:
    """Every option the answer names, as letters. {"B"} for "B", "(B)", "B.", "B. 12 cm", "Option B", "The
    answer is B", or the text of option B. Two letters ("A and C") or a letter whose text is another
    option's text give two options.

    >>> sorted(named_options("B. 12 cm", ["10 cm", "12 cm"])), sorted(named_options("A and C"))
    (['B'], ['A', 'C'])
    >>> sorted(named_options("I think A is wrong, it must be (B)"))
    ['A', 'B']
    """
    valid = _valid_letters(choices)
    s = answer.strip().strip("*").strip().rstrip(".").strip()
    s = _CHOICE_PREFIX_RE.sub("", s).strip().strip("*").strip()
    norm_choices = [normalize_text(str(c)) for c in choices] if choices else []

    def by_text(t: str) -> set[str]:
        n = normalize_text(t)
        return {valid[i] for i, c in enumerate(norm_choices) if c and c == n}

    m = re.fullmatch(r"\(?([A-Za-z])\)?", s)
    if m and m.group(1).upper() in valid:
        return {m.group(1).upper()}
    m = _LETTER_TEXT_RE.match(s)
    if m and (m.group(1) or m.group(3)) in valid:
        letter, text = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return {letter} | by_text(text)
    if norm_choices:
        found = by_text(s)
        if found:
            return found
    found = set()
    for m in re.finditer(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z'’])", s):
        letter = m.group(1)
        if letter not in valid:
            continue
        nxt = _NOT_OPTION_NEXT.match(s, m.end())
        if nxt and not s.startswith(_CONNECTIVES, nxt.end() - 1) and m.group().isalpha():
            continue  # "A triangle ...", "I think ...": an article or pronoun, not an option
        found.add(letter)
    return found


def score_choice(answer: str, solution: str, choices: Sequence[str] | None) -> float:
    """1 when the answer names exactly the gold option (or, without a gold letter, matches its text)."""
    letter, text = gold_option(solution, choices)
    named = named_options(answer, choices)
    if letter is not None:
        return 1.0 if named == {letter} else 0.0
    if text is None or len(named) > 1:
        return 0.0
    stripped = _LETTER_TEXT_RE.match(answer.strip())
    candidates = [answer] + ([stripped.group(2) or stripped.group(4)] if stripped else [])
    return 1.0 if any(normalize_text(c) == normalize_text(text) for c in candidates) else 0.0


# ----------------------------------------------------------------------------- count

_UNITS_WORDS = {
    "zero": 0, "none": 0, "no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS_WORDS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_TENS = "|".join(_TENS_WORDS)
_ONES = "|".join(_UNITS_WORDS)
_WORD_NUM_RE = re.compile(
    rf"\b(?:(?:{_TENS})(?:[\s-]+(?:{_ONES}))?"
    rf"|(?:{_ONES})(?:\s+hundred(?:\s+(?:and\s+)?(?:{_TENS}|{_ONES})(?:[\s-]+(?:{_ONES}))?)?)?)\b",
    re.I,
)


# a count is written as a standalone number: glued to letters ("AZYUK2A", "x2") or part of math it is not one
_COUNT_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_COUNT_MATH_RE = re.compile(r"\\[A-Za-z]|[A-Za-z]\s*\(|[\^_*/]|\d\s*[+-]\s*\d|\d[A-Za-z]|[A-Za-z]\d")


def words_to_int(words: str) -> int | None:
    """'twenty-one' -> 21, 'three hundred and five' -> 305.

    >>> words_to_int("twenty-one"), words_to_int("one hundred and five"), words_to_int("seven")
    (21, 105, 7)
    """
    total = current = 0
    seen = False
    for w in re.split(r"[\s-]+", words.lower().strip()):
        if w == "and":
            continue
        if w in _UNITS_WORDS:
            current += _UNITS_WORDS[w]
        elif w in _TENS_WORDS:
            current += _TENS_WORDS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:
            return None
        seen = True
    return total + current if seen else None


def parse_count(text: str) -> int | None:
    """The count an answer states: digits or number words; None when it states none or several different.

    >>> parse_count("There are 3 cubes."), parse_count("twelve"), parse_count("3 or 4"), parse_count("2.0")
    (3, 12, None, 2)
    """
    if len(text) > MAX_ANSWER_CHARS or _COUNT_MATH_RE.search(text):
        return None  # "\\log(5)", "f(1)", "2^3": a function or expression of a number is not that count
    s = text.replace(",", "") if re.fullmatch(r"\s*\d{1,3}(?:,\d{3})+\s*", text) else text
    values: set[int] = set()
    for m in _COUNT_NUMBER_RE.finditer(s):
        v = Fraction(m.group())  # exact: float() of a 400-digit run is inf
        if v.denominator != 1:
            return None
        values.add(int(v))
    for m in _WORD_NUM_RE.finditer(s):
        if m.group().lower() == "no" and values:
            continue  # "no" only counts when nothing else does ("no cubes")
        v = words_to_int(m.group())
        if v is not None:
            values.add(v)
    return values.pop() if len(values) == 1 else None


# ----------------------------------------------------------------------------- grounding

_NUM = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_BBOX2D_RE = re.compile(r"[\"']?bbox_2d[\"']?\s*:\s*\[([^\[\]]{0,200})\]")
_LIST4_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_BARE4_RE = re.compile(rf"\(?\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)?")


def parse_box(text: Any) -> tuple[float, float, float, float] | None:
    """The first box in the text: ``{"bbox_2d": [...]}`` (Qwen2.5-VL, also inside a list or ```json fence),
    ``[x1, y1, x2, y2]``, or just four numbers. None when malformed, non-finite, inverted or empty.

    The *first* box is used when several are given: taking the best would reward hedging.

    >>> parse_box('```json\\n[{"bbox_2d": [10, 20, 110, 220], "label": "cat"}]\\n```')
    (10.0, 20.0, 110.0, 220.0)
    >>> parse_box("[50, 50, 10, 10]") is None
    True
    """
    if isinstance(text, (list, tuple)):
        text = json.dumps(list(text))
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    m = _BBOX2D_RE.search(text)
    if m:
        nums = [x.strip() for x in m.group(1).split(",")]
        if len(nums) != 4 or not all(re.fullmatch(_NUM, x) for x in nums):
            return None
    else:
        m = _LIST4_RE.search(text) or _BARE4_RE.fullmatch(text.strip())
        if not m:
            return None
        nums = list(m.groups())
    x1, y1, x2, y2 = (float(x) for x in nums)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes.

    >>> box_iou((0, 0, 10, 10), (5, 0, 15, 10))
    0.3333333333333333
    """
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def answer_iou(answer: str, solution: Any) -> float:
    """IoU of the answer's box with the gold box; 0 when either is missing or malformed."""
    pred, gold = parse_box(answer), parse_box(solution)
    return box_iou(pred, gold) if pred and gold else 0.0


def score_grounding(answer: str, solution: Any) -> float:
    """The IoU when it reaches ``IOU_THRESHOLD``, else 0: a box that merely overlaps the object (a box over
    the whole image overlaps every object) is a wrong answer and earns nothing, as in Acc@0.5. The continuous
    IoU (VLM-R1's shaping reward) is ``iou_reward``.

    >>> score_grounding("[0, 0, 100, 100]", "[10, 10, 40, 40]"), score_grounding("[10, 10, 40, 50]", "[10, 10, 40, 40]")
    (0.0, 0.75)
    """
    iou = answer_iou(answer, solution)
    return iou if iou >= IOU_THRESHOLD else 0.0


# ----------------------------------------------------------------------------- dispatch


def infer_task(solution: Any, choices: Sequence[str] | None) -> str:
    """The task of a row without a ``task`` column."""
    if choices:
        return "choice"
    if parse_box(solution) is not None and re.search(r"\[|bbox", str(solution)):
        return "grounding"
    return "math"


def resolve_task(task: str | None, solution: Any, choices: Any = None) -> str:
    """The row's task: as given (checked against TASKS), or inferred when None."""
    choices = _as_choices(choices)
    task = infer_task(solution, choices) if task is None else task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: the task column must be one of {', '.join(TASKS)}")
    return task


def _as_choices(choices: Any) -> list[str] | None:
    """Choices may arrive as a list, None, or a JSON-encoded list (from a CSV / Arrow string column)."""
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except ValueError:
            return None
    if isinstance(choices, (list, tuple)) and choices:
        return [str(c) for c in choices]
    return None


def score_answers(
    answers: Sequence[str | None],
    solutions: Sequence[Any],
    tasks: Sequence[str | None],
    choices: Sequence[Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    symbolic: bool = True,
) -> list[float]:
    """Batched ``score_answer``: the math rows' symbolic checks run in parallel worker processes."""
    n = len(answers)
    choices = list(choices) if choices is not None else [None] * n
    scores = [0.0] * n
    math_rows: list[int] = []
    for i in range(n):
        ans, sol, ch = answers[i], solutions[i], _as_choices(choices[i])
        task = resolve_task(tasks[i], sol, ch)
        if ans is None or not isinstance(ans, str) or len(ans) > MAX_ANSWER_CHARS:
            continue
        if task == "math":
            math_rows.append(i)
        elif task == "choice":
            scores[i] = score_choice(ans, str(sol), ch)
        elif task == "count":
            gold = parse_count(str(sol))
            if gold is None:  # a non-integer count gold: compare as math
                math_rows.append(i)
            else:
                scores[i] = float(parse_count(ans) == gold)
        elif task == "grounding":
            scores[i] = score_grounding(ans, sol)
        elif task == "detection":
            scores[i] = score_detection(ans, sol)
        else:
            scores[i] = float(normalize_text(ans) == normalize_text(str(sol)) and bool(normalize_text(ans)))
    if math_rows:
        pairs = [(answers[i], str(solutions[i])) for i in math_rows]
        for i, ok in zip(math_rows, math_equal_many(pairs, timeout=timeout, symbolic=symbolic), strict=True):
            scores[i] = float(ok)
    return scores


def score_answer(answer: str | None, solution: Any, task: str | None, choices: Sequence[str] | None = None) -> float:
    """0/1 for an extracted answer (IoU in [0, 1] for grounding).

    >>> score_answer("(B)", "B", "choice", ["red", "blue"]), score_answer("0.5", r"\\frac{1}{2}", "math")
    (1.0, 1.0)
    """
    return score_answers([answer], [solution], [task], [choices])[0]


def completion_scores(
    completions: Sequence[Any],
    solutions: Sequence[Any],
    tasks: Sequence[str | None],
    choices: Sequence[Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    think_prefilled: bool = False,
) -> list[float]:
    """Extraction + scoring for a batch of completions (strings or conversational)."""
    answers = [
        extract_answer(completion_text(c), resolve_task(t, s, _as_choices(ch)), think_prefilled)
        for c, s, t, ch in zip(completions, solutions, tasks, choices if choices is not None else [None] * len(tasks), strict=True)
    ]
    return score_answers(answers, solutions, tasks, choices, timeout=timeout)


def passes(score: float, task: str | None) -> bool:
    """Whether a score counts as correct: IoU >= 0.5 for grounding, penalised mAP >= 0.5 for detection, else 1."""
    return score >= IOU_THRESHOLD if task in ("grounding", "detection") else score >= 1.0


def correct_many(
    completions: Sequence[Any],
    solutions: Sequence[Any],
    tasks: Sequence[str | None],
    choices: Sequence[Any] | None = None,
    think_prefilled: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[bool]:
    """Correct or not, for a whole batch in one call (GRPO's logged accuracy): extraction, the fast path, then
    the batch's undecided items in parallel in the symbolic workers, each under a ``timeout`` CPU budget.

    >>> correct_many(["<answer>4</answer>", "<answer>[0, 0, 9, 9]</answer>"], ["4", "[0, 0, 10, 10]"], ["math", None])
    [True, True]
    """
    choices = list(choices) if choices is not None else [None] * len(completions)
    resolved = [resolve_task(t, s, _as_choices(c)) for t, s, c in zip(tasks, solutions, choices, strict=True)]
    scores = completion_scores(completions, solutions, resolved, choices, timeout=timeout, think_prefilled=think_prefilled)
    return [passes(score, task) for score, task in zip(scores, resolved, strict=True)]


def is_correct(completion_text: Any, solution: Any, task: str | None, choices: Sequence[str] | None = None) -> bool:
    """Extraction + scoring of one completion (grounding: IoU >= 0.5); batches: ``correct_many``.

    >>> is_correct("<think>2+2</think><answer>4</answer>", "4", "math")
    True
    """
    return correct_many([completion_text], [solution], [task], [choices])[0]
