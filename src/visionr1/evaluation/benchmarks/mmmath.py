"""MM-Math (5,929 open-ended middle-school problems), scored as kge-sun/MM-Math's ``eval.py`` rule judge.

Records (the JSON/JSONL metadata of the release, or its parquet): ``question, file_name (the image),
solution (a worked solution whose final answer is in \\boxed{}), year (grade, e.g. 七年级上学期), difficult
(容易 | 普通 | 困难), knowledge`` (list of knowledge points). Ids: the key of a JSON object, else ``id``, else
the image file name.

Official judge (``AutoScoringJudge``), ported: the answer is every ``\\boxed{}`` joined by commas (else the
``$...$`` of the last line); units, degree signs and LaTeX spacing are stripped; answers are split on
top-level commas (and ``\\pm`` into both signs) and matched pairwise, an element matching when it is equal
as text, an equal interval, a number within 1e-2 of the truth or of the truth x100 or /100, an equivalent
expression, or an equivalent equation. Breakdowns by difficulty, grade and knowledge area, as eval.py prints.

What the official judge reads: X when the response is in the project's answer format
(:func:`~visionr1.evaluation.benchmarks.base.project_answer`; ``<answer> Final Answer: 6 </answer>`` is judged
as ``\\boxed{6}``), else the response under the shared truncation policy, which the official script scores
0 unless it has a ``\\boxed{}`` (counted in ``metrics.answers_without_boxed``). Named leniency
``rewards_extraction``: where that is wrong, the rewards' extraction ("the answer is 6", the last number) is
judged too. Departure: expressions are parsed with latex2sympy (the official script uses sympy's
parse_latex) and symbolic ones compared with the rewards' math checker.
"""

from __future__ import annotations

import math
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
from visionr1.evaluation.records import PublishedRecord

PRECISION = 1e-2  # eval.py --precision default
_MAX_CHARS = 300  # longer expressions are not parsed (deeply nested LaTeX can take seconds)

_SPECIAL = {
    "\\left": "", "\\right": "", "厘米": "", "，": ",", "$": "", "（": "(", "）": ")", "\\infty": "oo",
    "\\colon ": ":", "＋": "+", "\\, ": "", "\\,": "", "^\\circ": "", "^{\\circ}": "",
}
DIFFICULTY = {"容易": "easy", "普通": "medium", "困难": "hard"}
GRADE = {"七年级": "seven", "八年级": "eight", "九年级": "nine"}
KNOWLEDGE = {"Transformations of Shapes": "trans", "Properties of Shapes": "shape", "Functions": "func"}


def extract_boxed_content(text: str) -> str:
    """Every ``\\boxed{}`` content followed by a comma; else the ``$...$`` of the last line (each followed by
    a comma); else the text. Raises on unbalanced braces, as the official script does.

    >>> extract_boxed_content("so \\\\boxed{3} and \\\\boxed{\\\\frac{1}{2}}")
    '3,\\\\frac{1}{2},'
    """
    results = ""
    for match in re.finditer(r"\\boxed{", text):
        end, depth = match.end(), 1
        while depth > 0 and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if depth != 0:
            raise ValueError("Mismatched braces in LaTeX string.")
        results += text[match.end() : end - 1] + ","
    if results == "":
        answers = re.findall(r"\$(.*?)\$", text.strip().split("\n")[-1])
        results = "".join(a + "," for a in answers) if answers else text
    return results


def special_symbol_replace(expression: str) -> str:
    for unit in ("\\text{cm}^2", "\\text{cm}", "\\,cm", "\\text{ cm}", "cm", "\\text{分米}^2", "cm^{2}",
                 "60 \\text{ cm}^2", "\\ \\text{m}", "\\text{米}"):
        expression = expression.replace(unit, "")
    expression = re.sub(r"(.+)m$", r"\1", expression.strip())
    if "\\in " in expression:
        expression = expression.split("\\in ")[1]
    for signal, repl in _SPECIAL.items():
        expression = expression.replace(signal, repl)
    expression = re.sub(r"(\\sin|\\cos|\\tan)(\d+)", r"\1((\2/180)\\pi)", expression)
    expression = expression.strip("\n,.:;^_=+`!@#%^&*~，。")  # noqa: B005 - a character set, as the official
    return re.sub(r"\\(?:mathrm|mathbf)\{~?([^}]*)\}", r"\1", expression)


def split_by_comma(expr: str) -> list[str]:
    """Split on commas outside brackets.

    >>> split_by_comma("(1,2),3")
    ['(1,2)', '3']
    """
    depth, out, start = 0, [], 0
    for i, ch in enumerate(expr):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(expr[start:i].strip())
            start = i + 1
    if start < len(expr):
        out.append(expr[start:].strip())
    return out


def _sympy(latex: str):
    from latex2sympy2_extended import latex2sympy

    if len(latex) > _MAX_CHARS:
        raise ValueError("too long to parse")
    return latex2sympy(latex)


def numerical_equal(gt: str, pred: str, precision: float) -> bool:
    """The truth, or the truth x100 or /100 (percentages), within ``precision`` (x1.01) of the prediction."""
    reference, prediction = float(gt), float(pred)
    return any(abs(item - prediction) <= precision * 1.01 for item in (reference / 100, reference, reference * 100))


def expression_equal(gt: str, pred: str, precision: float) -> bool:
    gt = gt.split("=")[1].strip() if "=" in gt else gt.strip()
    pred = pred.split("=")[1].strip() if "=" in pred else pred.strip()
    e1, e2 = _sympy(gt), _sympy(pred)
    if e1 == e2:
        return True
    import sympy

    e1, e2 = e1.subs(sympy.Symbol("pi"), math.pi), e2.subs(sympy.Symbol("pi"), math.pi)
    s1, s2 = bool(e1.free_symbols), bool(e2.free_symbols)
    if s1 != s2:
        return False
    if not s1:
        return abs(complex(e1.evalf()) - complex(e2.evalf())) <= precision * 1.01
    from visionr1.rewards.scoring import score_answer

    return score_answer(pred, gt, "math") >= 1.0


def equation_equal(gt: str, pred: str) -> bool:
    """Equations equal up to a non-zero integer factor: (l1-r1)/(l2-r2) or its inverse is an integer."""
    import sympy

    def side_difference(eq: str):
        lhs, rhs = eq.split("=")
        return sympy.simplify(_sympy(lhs) - _sympy(rhs))

    d1, d2 = side_difference(gt), side_difference(pred)
    r1, r2 = sympy.simplify(d1 / d2), sympy.simplify(d2 / d1)
    return bool((r1.is_Integer and r1 != 0) or (r2.is_Integer and r2 != 0))


def _is_interval(expr: str) -> bool:
    return expr.startswith(("(", "[")) and expr.endswith((")", "]"))


def interval_equal(gt: str, pred: str, precision: float) -> bool:
    if gt == pred:
        return True
    parts1, parts2 = gt.split("\\cup"), pred.split("\\cup")
    if len(parts1) != len(parts2):
        return False
    for a, b in zip(parts1, parts2, strict=True):
        if a[0] != b[0] or a[-1] != b[-1]:
            return False
        for x, y in zip(a.strip("[]()").split(","), b.strip("[]()").split(","), strict=False):
            if not expression_equal(x, y, precision):
                return False
    return True


def is_equal(gt: str, pred: str, precision: float) -> bool:
    if gt == pred and gt != "":
        return True
    if _is_interval(gt) and _is_interval(pred):
        try:
            if interval_equal(gt, pred, precision):
                return True
        except Exception:
            return False
    for check in (
        lambda: numerical_equal(gt, pred, precision),
        lambda: expression_equal(gt, pred, precision) and not ("=" in gt and "=" in pred),
        lambda: equation_equal(gt, pred),
    ):
        try:
            if check():
                return True
        except Exception:
            pass
    return False


def judge(gt: str, pred: str, precision: float = PRECISION) -> bool:
    """``AutoScoringJudge.judge`` on two already-extracted answers (``gt`` is the truth).

    >>> judge("3", "3.004"), judge("0.25", "25"), judge("1,2", "2, 1"), judge("\\\\pm 2", "2,-2"), judge("5", "6")
    (True, True, True, True, False)
    """
    gt, pred = special_symbol_replace(gt), special_symbol_replace(pred)
    if gt == pred:
        return True
    han = r"[\u4e00-\u9fff]+"
    gt = gt if re.fullmatch(han, gt) else re.sub(han, "", gt)
    pred = pred if re.fullmatch(han, pred) else re.sub(han, "", pred)
    if len(re.findall("<", gt)) == 2:
        gt = "(" + gt.split("<")[0] + ", " + gt.split("<")[-1] + ")"
    if len(re.findall("<", pred)) == 2:
        pred = "(" + pred.split("<")[0] + ", " + pred.split("<")[-1] + ")"

    def expand_pm(items: list[str]) -> list[str]:
        out = []
        for e in items:
            out += [e.replace("\\pm", "+"), e.replace("\\pm", "-")] if "\\pm" in e else [e]
        return out

    list1, list2 = expand_pm(split_by_comma(gt)), expand_pm(split_by_comma(pred))
    if len(list1) != len(list2):
        return False
    idx = -1  # the official visiting order: every truth element needs its own matching prediction element
    while list1:
        idx = (idx + 1) % len(list1)
        item1 = list1[idx]
        for item2 in list2:
            if is_equal(item1, item2, precision):
                list1.remove(item1)
                list2.remove(item2)
                break
        else:
            return False
    return True


class MMMath(Benchmark):
    name = "mmmath"
    id_field = "id"
    image_fields = ("image", "file_name")
    binary_fields = ("image",)

    def record_id(self, raw: PublishedRecord) -> str:
        for value in (raw.key, raw.data.get("id"), raw.data.get("file_name")):
            if value is not None:
                return str(value)
        return super().record_id(raw)

    def prediction_id(self, pred: dict[str, Any]) -> str | None:
        for key in ("pid", "id", "file_name"):
            if pred.get(key) is not None:
                return str(pred[key])
        return None

    def question(self, item: Item) -> str:
        return str(item.record.get("question", ""))

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        self.require(item, "solution")
        solution = str(item.record["solution"])
        info: dict[str, Any] = {}
        block = project_answer(response, "math")
        if block is not None:  # the project's answer, handed to the official judge as the boxed answer
            extracted, source = block, "answer_format"
            region = block if "\\boxed{" in block else f"\\boxed{{{block}}}"
        else:
            region, source = official_response(response), "benchmark_rules"
            extracted = region
            if "\\boxed{" not in region:  # officially scored 0
                info["without_boxed"] = True
                extracted, source = None, "none"
        if "\\boxed{" not in solution:
            info["truth_without_boxed"] = True  # the official script scores such an item 0
            return ItemResult(item.pid, extracted, None, False, source, info=info)
        pred, correct = self._judge(solution, region) if extracted is not None else (None, False)
        if not correct and ctx.lenient("rewards_extraction"):
            lenient = rules_extract(response, "math")
            if lenient is not None:
                other, ok = self._judge(solution, lenient if "\\boxed{" in lenient else f"\\boxed{{{lenient}}}")
                if ok:
                    extracted, pred, correct, source = lenient, other, True, "answer_rules"
        shown = extracted if source in ("answer_rules", "answer_format") else pred
        return ItemResult(item.pid, shown, pred, correct, source, info=info)

    @staticmethod
    def _judge(solution: str, region: str) -> tuple[Any, bool]:
        try:
            gt, pred = extract_boxed_content(solution), extract_boxed_content(region)
            return pred, judge(gt, pred)
        except Exception:
            return None, False

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        pairs = list(zip(items, results, strict=True))

        def grade(year: Any) -> str | None:
            return next((v for k, v in GRADE.items() if k in str(year)), None if year is None else str(year))

        knowledge = [(short, r.correct) for i, r in pairs for k, short in KNOWLEDGE.items()
                     if k in (i.record.get("knowledge") or [])]
        return {
            "breakdowns": {
                "difficulty": accuracy_table((DIFFICULTY.get(i.record.get("difficult"), i.record.get("difficult")), r.correct) for i, r in pairs),
                "grade": accuracy_table((grade(i.record.get("year")), r.correct) for i, r in pairs),
                "knowledge": accuracy_table(knowledge),
            },
            "metrics": {
                "answers_without_boxed": sum(1 for r in results if r.info.get("without_boxed")),
                "truths_without_boxed": sum(1 for r in results if r.info.get("truth_without_boxed")),
            },
        }
