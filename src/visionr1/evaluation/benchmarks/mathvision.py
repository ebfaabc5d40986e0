"""MathVision (MATH-V: 3,040 test / 304 testmini), scored as mathllm/MATH-V's ``evaluation/evaluate.py``.

Records (JSONL or the Hugging Face parquet): ``id, question, options (list, empty for free form), image,
decoded_image, answer (a letter for multiple choice), solution, level, subject``. EasyR1's conversion of
MATH-V (geometry3k columns: ``problem`` with ``<image>`` placeholders and the options appended as ``(A) ...``,
``images`` as ``{bytes, path}``, ``answer``, ``choices``) is read too, prompted exactly as training's
``format: geometry3k`` prompts it.

Official rules, ported: the answer is the letter a response starts/ends with, a number after "is", the text
after "the (final|correct) answer is", or the last ``\\boxed{}``; then LaTeX clean-up
(``find_math_answer``), and :func:`is_equal`: case-insensitive string equality, tuples compared element-wise
after evaluation, else both sides evaluated (latex2sympy) and compared rounded to 2 decimals; a multiple-choice
item is also right when the answer equals the correct option's text. Accuracy by subject and level.

Departures: the official script evaluates latex2sympy's output with Python ``eval``; here the sympy
expression is evaluated numerically by sympy itself (model output is never run as code). The official
rules read :func:`~visionr1.evaluation.benchmarks.base.official_response` (the shared truncation policy:
thinking dropped, an ``<answer>`` block standing for the response). By default the result is the official
one: an option text in LaTeX (``$40^{\\circ}$``) does not parse officially, so "40" for it is wrong.
Named leniencies: ``option_latex`` (compare such option texts by value: 49 of 48,640 published outputs
change, all to right) and ``rewards_extraction`` (the rewards' extraction before the official rules).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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

_MAX_EVAL_CHARS = 300  # longer "answers" are not parsed: deeply nested LaTeX can take seconds


def is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def evaluate_numeric(latex: str) -> float | int:
    """The numeric value of a LaTeX expression (raises when it has free symbols or is not a real number);
    an int for an integer, as Python's ``eval`` of the official script would give.

    >>> round(evaluate_numeric("\\\\frac{1}{2}+\\\\sqrt{4}"), 2)
    2.5
    """
    from latex2sympy2_extended import latex2sympy

    if len(latex) > _MAX_EVAL_CHARS:
        raise ValueError("too long")
    expr = latex2sympy(latex)
    if getattr(expr, "free_symbols", None):
        raise ValueError("not a number")
    if getattr(expr, "is_Integer", False):
        return int(expr)
    value = complex(expr.evalf())
    if value.imag != 0:
        raise ValueError("not real")
    return value.real


def eval_tuple(s: str) -> str:
    """``(a,b,...)`` / ``[a,b,...]`` with each element evaluated and rounded to 2 places (official).

    >>> eval_tuple("(1/2,3)")
    '(0.5,3)'
    """
    sl = s[1:-1].split(",")
    try:
        if s[0] in "([" and s[-1] == {"(": ")", "[": "]"}[s[0]] and len(sl) > 1:
            parts = [
                str(round(evaluate_numeric(sub), 2)) if "infty" not in sub and sub not in ["a", "-a"] else sub
                for sub in sl
            ]
            return f"{s[0]}{','.join(parts)}{s[-1]}"
    except Exception:
        return s
    return s


def is_equal(asw: str, gt_asw: str, parse_dollars: bool = False) -> bool:
    """MATH-V's ``is_equal`` (symmetric in practice). Text with ``$`` signs does not parse officially
    (latex2sympy fails on them); ``parse_dollars=True`` is the ``option_latex`` leniency.

    >>> is_equal("B", "b"), is_equal("\\\\frac{1}{2}", "0.5"), is_equal("0.333", "1/3"), is_equal("2", "3")
    (True, True, True, False)
    >>> is_equal("40", "$40^{\\\\circ}$"), is_equal("40", "$40^{\\\\circ}$", parse_dollars=True)
    (False, True)
    """
    asw, gt_asw = asw.lower(), gt_asw.lower()
    if asw.replace(" ", "") == "" or gt_asw.replace(" ", "") == "":
        return False
    if gt_asw.strip() == asw.strip():
        return True
    if not parse_dollars and ("$" in asw or "$" in gt_asw):
        return False
    asw, gt_asw = eval_tuple(asw), eval_tuple(gt_asw)
    if gt_asw == asw:
        return True
    try:
        return round(evaluate_numeric(gt_asw), 2) == round(evaluate_numeric(asw), 2)
    except Exception:
        return False


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr and substr[0] == "{":
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        ia, ib = int(a), int(b)
    except ValueError:
        return string
    return f"\\frac{{{ia}}}{{{ib}}}" if string == f"{ia}/{ib}" else string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split and split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def _strip_string(string: str) -> str:
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "").replace("$", "")
    string = string.split("\\text{ ")[0]  # units on the right
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        string = string.split("=")[-1]
    if len(string.split("\\approx")) == 2:
        string = string.split("\\approx")[-1]
    if "sqrt" in string:
        string = _fix_sqrt(string)
    string = string.replace(" ", "")
    if "sqrt" in string:
        string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def find_math_answer(s: str) -> str:
    """MATH-V's ``find_math_answer``: the last ``\\boxed{}`` (or the text), cleaned of LaTeX decoration."""
    s = s.lower().replace("{}", "")
    found = re.findall(r"oxed{(.*)}", s, flags=re.S)
    ans = found[-1] if found else s
    if ans.find("}") != -1 and (ans.find("{") == -1 or ans.find("}") < ans.find("{")):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1].split("\\approx")[-1]
    for old, new in (
        (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
        ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""),
        ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""), ("{units}", ""), ("units", ""),
        ("{km}", ""), ("km", ""),
    ):
        ans = ans.replace(old, new)
    return _strip_string(ans)


def official_model_answer(response: str) -> str:
    """evaluate.py's derivation of ``model_answer`` from a response, step for step."""
    model_answer = response.strip()
    for c in "ABCDE":
        if (
            model_answer.endswith(f" {c}.") or model_answer.endswith(f" ({c}).") or model_answer.startswith(f"{c}\n")
            or model_answer.startswith(f"({c})\n") or model_answer.startswith(f"({c}) {c}\n")
        ):
            model_answer = c
    if is_number(model_answer.split("is ")[-1].rstrip(".")):
        model_answer = model_answer.split("is ")[-1].rstrip(".")
    if "oxed{" not in model_answer:
        for flag in ["the final answer is", "the answer is", "the correct answer is", "the answer should be"]:
            for f in (flag, flag.replace("the", "The")):
                raw = model_answer
                model_answer = model_answer.split(f)[-1].strip()
                if f in raw:
                    model_answer = model_answer.split("\n")[0].split(". ")[0]
    elif model_answer.count("oxed{") > 1:
        model_answer = "\\boxed{" + model_answer.split("oxed{")[-1]
    model_answer = find_math_answer(model_answer)
    for letter in "abcde":
        model_answer = model_answer.replace(f"({letter})", letter).replace(f"{{{letter}}}", letter)
    return model_answer.rstrip(".").lstrip(":").strip()


def _options(record: dict[str, Any]) -> list[str]:
    """The options: MATH-V's ``options``, or EasyR1's ``choices``."""
    return [str(o) for o in (record.get("options") or record.get("choices") or [])]


class MathVision(Benchmark):
    name = "mathvision"
    id_field = "id"
    image_fields = ("decoded_image", "image", "images")  # images: EasyR1's layout
    binary_fields = ("decoded_image", "images")

    def question(self, item: Item) -> str:
        # the same rewriting of <image1>..<imageN> as training's `format: mathv` / `geometry3k` (one scheme);
        # EasyR1's `problem` keeps its <image> placeholders, which place the images as training places them
        from visionr1.data.prompts import rewrite_image_references

        r = item.record
        text = r["problem"] if "question" not in r and "problem" in r else r.get("question", "")
        return rewrite_image_references(str(text or ""))

    def choices(self, item: Item) -> list[str] | None:
        return _options(item.record) or None

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        self.require(item, "answer")
        options = _options(r)
        gt = str(r["answer"])
        gt_value = options[ord(gt) - ord("A")] if options and len(gt) == 1 and 0 <= ord(gt) - 65 < len(options) else ""
        found, source = None, "benchmark_rules"
        if ctx.lenient("rewards_extraction"):
            found, source = rules_extract(response, "choice" if options else "math"), "answer_rules"
        if found is None:
            found, source = official_response(response), "benchmark_rules"
        model_answer = official_model_answer(found)
        lenient = ctx.lenient("option_latex")
        correct = is_equal(gt, model_answer) or is_equal(gt_value, model_answer, parse_dollars=lenient)
        extracted = found if source == "answer_rules" else model_answer
        return ItemResult(item.pid, extracted, model_answer, correct, source)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        pairs = list(zip(items, results, strict=True))
        return {
            "breakdowns": {
                "subject": accuracy_table((i.record.get("subject"), r.correct) for i, r in pairs),
                "level": accuracy_table((i.record.get("level"), r.correct) for i, r in pairs),
            }
        }
