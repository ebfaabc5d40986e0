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

What the official rules read: X when the response is in the project's answer format
(:func:`~visionr1.evaluation.benchmarks.base.project_answer`: ``<answer> Final Answer:6 </answer>`` hands
``6`` to the ``model_answer`` derivation), else the response under the shared truncation policy
(:func:`~visionr1.evaluation.benchmarks.base.official_response`), quirks included: "Final Answer:6" outside a
block reads ``finalanswer:6`` officially, and is wrong.

The official parser is latex2sympy2 (whose ANTLR runtime cannot live beside math-verify's); its readings are
reproduced on latex2sympy2_extended (:func:`latex2sympy2_reading`): dollar signs blanked (an option text
``$\\frac{1}{6}$`` is a value), the longest expression the text starts with, and no value for what its
lexer does not know (degree signs, ``\\boxed``, ``\\!``, non-ASCII). Checked against latex2sympy2 1.9.1 on the
23,489 distinct (truth, model answer) pairs of the 16 published output files: 1 differs (``(e)`` vs ``e``).
Departure: latex2sympy's output is evaluated by sympy, never by Python ``eval`` (model output is never run
as code). Named leniencies: ``option_latex`` (an option text with a degree sign, ``$40^{\\circ}$``, compared
by value: officially "40" for it is wrong) and ``rewards_extraction`` (where the official reading is wrong,
the rewards' extraction is tried too).
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
    project_answer,
    rules_extract,
)

_MAX_EVAL_CHARS = 300  # longer "answers" are not parsed: deeply nested LaTeX can take seconds

# The official script parses with latex2sympy2, we with latex2sympy2_extended (one ANTLR runtime per
# environment: latex2sympy2 needs antlr4 4.7, math-verify 4.13). Where the two read LaTeX differently, the
# official reading is reproduced here (checked on the 23,489 distinct (truth, model answer) pairs of the
# 16 published MATH-V output files against latex2sympy2 1.9.1 itself):
# - latex2sympy2 blanks dollar signs and display spacing before parsing, so an option text "$\frac{1}{6}$"
#   is a value (341 published verdicts depend on it);
# - its grammar has no end-of-input rule: it reads the longest expression the text starts with and ignores
#   the rest ("\frac{7}{32}}.the answer is..." is 7/32, "5.so, even..." is 5);
# - its lexer does not know these, and fails on them where the extended parser reads them: degrees
#   ("$40^{\circ}$" is no value officially, so "40" for it is wrong), "\!", "\boxed", an escaped space or
#   dollar, any non-ASCII character ("2π");
# - a whole answer in braces ("{4}") is a group, not a set.
_L2S2_BLANKED = ("\\displaystyle", "\\qquad", "\\quad", "~", "\\,", "$")
_L2S2_UNKNOWN_RE = re.compile(r"\\(?:circ|boxed|fbox)(?![A-Za-z])|\\[!\s]|[^\x00-\x7f]")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
_L2S2_STOP_RE = re.compile(r"\.(?!\d)")  # a full stop that is no decimal point ends the expression


def latex2sympy2_reading(latex: str) -> str:
    r"""The part of ``latex`` that latex2sympy2 parses, as the extended parser should see it; raises
    ValueError where latex2sympy2 fails.

    >>> latex2sympy2_reading("$\\displaystyle \\dfrac{1}{6}$"), latex2sympy2_reading("\\frac{7}{32}}.so 7/32")
    ('\\frac{1}{6}', '\\frac{7}{32}')
    """
    latex = latex.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for old in _L2S2_BLANKED:
        latex = latex.replace(old, " ")
    depth = 0
    for i, ch in enumerate(latex):  # an unmatched "}" ends the expression
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            latex = latex[:i]
            break
    stop = _L2S2_STOP_RE.search(latex)
    if stop:
        latex = latex[: stop.start()]
    if _L2S2_UNKNOWN_RE.search(latex):
        raise ValueError("latex2sympy2 does not read this")
    body = latex.strip()
    while len(body) >= 2 and body[0] == "{" and body[-1] == "}" and _balanced(body[1:-1]):
        body = body[1:-1].strip()
    return body


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


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
    expr = latex2sympy(latex2sympy2_reading(latex))
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


def is_equal(asw: str, gt_asw: str, degrees: bool = False) -> bool:
    r"""MATH-V's ``is_equal`` (symmetric in practice): string equality ignoring case, tuples element-wise,
    then both sides' values rounded to 2 places, each read as latex2sympy2 reads it
    (:func:`latex2sympy2_reading`). ``degrees=True`` is the ``option_latex`` leniency: a degree sign, on
    which latex2sympy2 fails, is dropped first.

    >>> is_equal("B", "b"), is_equal("\\frac{1}{2}", "0.5"), is_equal("0.333", "1/3"), is_equal("2", "3")
    (True, True, True, False)
    >>> is_equal("\\frac{1}{6}", "$\\frac{1}{6}$"), is_equal("2\\pi", "$2 \\pi$"), is_equal("8:5", "$8: 5$")
    (True, True, True)
    >>> is_equal("40", "$40^{\\circ}$"), is_equal("40", "$40^{\\circ}$", degrees=True)
    (False, True)
    """
    if degrees:
        asw, gt_asw = (_DEGREE_RE.sub("", x) for x in (asw, gt_asw))
    asw, gt_asw = asw.lower(), gt_asw.lower()
    if asw.replace(" ", "") == "" or gt_asw.replace(" ", "") == "":
        return False
    if gt_asw.strip() == asw.strip():
        return True
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
        degrees = ctx.lenient("option_latex")
        task = "choice" if options else "math"

        def judge(text: str) -> tuple[str, bool]:
            model_answer = official_model_answer(text)
            return model_answer, is_equal(gt, model_answer, degrees) or is_equal(gt_value, model_answer, degrees)

        found = project_answer(response, task)
        source = "answer_format" if found is not None else "benchmark_rules"
        text = found if found is not None else official_response(response)
        model_answer, correct = judge(text)
        extracted = model_answer if found is None else found
        if not correct and ctx.lenient("rewards_extraction"):
            lenient = rules_extract(response, task)
            if lenient is not None and judge(lenient)[1]:
                extracted, (model_answer, correct), source = lenient, judge(lenient), "answer_rules"
        return ItemResult(item.pid, extracted, model_answer, correct, source)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        pairs = list(zip(items, results, strict=True))
        return {
            "breakdowns": {
                "subject": accuracy_table((i.record.get("subject"), r.correct) for i, r in pairs),
                "level": accuracy_table((i.record.get("level"), r.correct) for i, r in pairs),
            }
        }
