"""Mathematical equivalence of an extracted answer and a gold answer: fast path first, symbolic when needed.

Order of work for each (pred, gold) pair:
1. ``clean_math``: strip math delimiters, ``\\boxed``, spacing commands, degrees, percent signs, units,
   thousands separators, unicode look-alikes (``−``, ``√``, ``π``, ``°``) -- identical for gold and pred.
2. ``parse_math``: a pure-python reading into a number, a set ``\\{1, 2\\}``, an ordered tuple / interval
   ``(1, 2]``, a union of intervals, or a bare list ``2, 3`` (unordered, as math-verify treats it); each element
   may carry a ``x =`` prefix, which is dropped. Numbers are evaluated by ``latexnum`` (exact rationals,
   radicals, pi). When both sides parse, the verdict is final: no sympy at all.
3. Textual golds (no digits, no LaTeX commands: ``yes``, ``east``) compare as normalised text.
4. Everything else (variables, functions, matrices) goes to math-verify in killable worker processes
   (``symbolic.py``), gold first and both wrapped in ``$...$`` -- the pitfalls in docs/research.md.

Deliberate leniencies (each a departure from math-verify, with its reason):

- a decimal with >= 2 places matches an exact value it rounds to (``1.41`` for ``\\sqrt{2}``): MathVista and
  MM-Math accept rounded answers; one decimal is too coarse to tell answers apart, so it is not accepted;
- percent answers match with or without the ``/100`` (``50\\%`` = ``0.5`` = ``50``): golds mix the forms;
- ``30°`` equals ``30``; a trailing unit word from ``_UNITS`` (``5 cm``, ``12 square units``) or one plural
  noun after the number (``12 apples``) is dropped: the unit is the question's, not the answer's;
- ``x = 4`` equals ``4`` (one variable or angle name on the left);
- an integer followed by a proper fraction of integers is a mixed number (``3\\frac{1}{2}`` = 7/2), as MATH
  writes them; math-verify reads it the same way; any other product stays a product (``2\\frac{\\pi}{3}``).

Never credited, on purpose (reward hacking): a number inside other text (``AZYUK2A``, ``\\frac{garbage}{7}``,
``\\sin 3``, ``f(1)``), hedges that list several values for one gold (``3 or 4``), a leading-dot decimal read as
an integer (``.5`` is 0.5, never 5). A sentence is reduced to its answer by extraction (extract.py), not here.

Bounds (time, so a policy cannot stall GRPO with heavy answers): answers over ``MAX_ANSWER_CHARS`` score 0;
before any symbolic work cheap structural guards refuse an item (score 0) when it is longer than
``MAX_SYMBOLIC_CHARS``, nested deeper than ``MAX_SYMBOLIC_DEPTH``, has exponents nested ``MAX_TOWER`` deep, a
huge factorial or exponent, or plain arithmetic whose value is astronomically large; what remains runs in the
workers under a CPU-time budget (symbolic.py), and every verdict is cached (``VERDICTS``), so a repeated
stalling answer costs once.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from visionr1.rewards.latexnum import (
    FuncValue,
    NumValue,
    is_too_large,
    numbers_equal,
    try_evaluate,
    try_evaluate_function,
)
from visionr1.rewards.symbolic import DEFAULT_TIMEOUT_S, symbolic_equal_many

MAX_ANSWER_CHARS = 4096
MAX_SYMBOLIC_CHARS = 400
MAX_SYMBOLIC_DEPTH = 12  # real answers nest 2-6 deep; 25 nested \frac or parentheses cost sympy seconds
MAX_TOWER = 3  # a^{b^{c}}: three levels of exponents is where sympy's numbers explode
MAX_FACTORIAL = 200
MAX_EXPONENT_LITERAL = 1000
VERDICT_CACHE_SIZE = 65536

_UNICODE = {
    "−": "-", "–": "-", "×": r"\times ", "÷": r"\div ", "·": r"\cdot ", "√": r"\sqrt", "π": r"\pi ",
    "∞": r"\infty ", "°": r"^\circ", "²": "^2", "³": "^3", "，": ",", "∪": r"\cup ", "≈": "=", "：": ":",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
_DELIMS_RE = re.compile(
    r"\\left\.|\\right\.|\\left|\\right|\$|\\\(|\\\)|\\\[|\\\]|\\displaystyle|(?<!\\)\\[,;:! ]|\\q?quad|~"
)
# explicit digit-group separators: MATH's ``16,\!386``, ``1{,}000``, thin spaces ``1\,000``
_EXPLICIT_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\{,\}|,\\!|,\s*\\,|\\,|\\!|\\ |~)(?=\d{3}(?!\d))")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textrm|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\b(?:degrees?|deg)\b", re.I)
_PERCENT_RE = re.compile(r"\\%|%|\bpercent(?:age)?\b|\bpct\b", re.I)
_CURRENCY_SIGNS_RE = re.compile(r"\\\$|[€£¥₹]|\\(?:euro|pounds|yen)\b")
# a mixed number, MATH's convention: 3\frac{1}{2} is 3 + 1/2 (a proper fraction of integers after an integer)
_MIXED_RE = re.compile(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")
_UNITS = {
    "mm", "cm", "dm", "m", "km", "in", "inch", "inches", "ft", "feet", "foot", "yd", "yards", "mi", "miles",
    "meter", "meters", "metre", "metres", "centimeter", "centimeters", "kilometer", "kilometers", "millimeters",
    "g", "kg", "mg", "gram", "grams", "kilograms", "lb", "lbs", "pounds", "oz", "s", "sec", "secs", "second",
    "seconds", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour", "hours", "day", "days", "l", "ml",
    "liter", "liters", "litre", "litres", "units", "unit", "square", "sq", "cubic", "dollars", "dollar",
    "cents", "yuan", "euros", "mph", "kmh", "rad", "radians", "years", "year", "people", "students", "items",
}
_UNIT_TOKEN_RE = re.compile(r"([A-Za-z]+)?(?:\^\{?[23]\}?)?(?:/([A-Za-z]+))?")
_GLUED_UNIT_RE = re.compile(r"(.*\d)([A-Za-z]+(?:\^\{?[23]\}?)?)")
_EQ_PREFIX_RE = re.compile(r"^\s*(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\angle\s*[A-Za-z]+|[A-Z]{2,3}|m\\angle\s*[A-Za-z]+)\s*=\s*")
_PROSE_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_PLURAL_NOUN_RE = re.compile(r"[a-z]{2,14}s")
_NOT_NOUNS = {"is", "was", "has", "yes", "this", "its", "thus", "less", "plus", "minus", "times", "cos", "sis"}
_MATRIX_RE = re.compile(r"\\begin\{([pbBvV]?matrix|smallmatrix)\}(.*)\\end\{\1\}", re.S)


def clean_math(text: str) -> tuple[str, bool]:
    """Normalise an answer for comparison; returns (text, had_percent).

    >>> clean_math(r"$\\boxed{30^{\\circ}}$")
    ('30', False)
    >>> clean_math(r"1{,}234.5 \\text{ cm}^2")
    ('1234.5', False)
    >>> clean_math(r"\\left( 1, \\frac{1}{2} \\right]")
    ('( 1, \\\\frac{1}{2} ]', False)
    """
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group()], text)
    s = _CURRENCY_SIGNS_RE.sub("", unbox(s))
    s = _MIXED_RE.sub(lambda m: _mixed(m) or m.group(), s)
    s = _EXPLICIT_THOUSANDS_RE.sub("", s)
    s = _DELIMS_RE.sub(" ", s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = s.replace("{,}", "")
    s = _TEXT_CMD_RE.sub(lambda m: f" {m.group(1)} ", s)
    s = _DEGREE_RE.sub(" ", s)
    had_percent = bool(_PERCENT_RE.search(s))
    if had_percent:
        s = _PERCENT_RE.sub(" ", s)
    if not re.search(r"[()\[\]{}]|\\cup", s):  # "1,234" is a number; "(2,12) \cup (12,102)" holds lists
        s = _THOUSANDS_RE.sub(lambda m: m.group().replace(",", ""), s)
    s = " ".join(s.split()).lstrip(" ;,").rstrip(" .;,")  # a leading "." is a decimal point (".5")
    return _strip_units(s), had_percent


def _mixed(m: re.Match) -> str | None:
    whole, num, den = (int(g[:18]) for g in m.groups())
    return f"({whole}+\\frac{{{num}}}{{{den}}})" if 0 < num < den else None


def _strip_units(s: str) -> str:
    """Drop trailing unit words (``12 cm^2``, ``5km/h``, ``3 square units``) after a number. Token by token, no
    backtracking regex: a trailing-words regex is exponential on long letter runs."""
    toks = s.split(" ")
    glued = _GLUED_UNIT_RE.fullmatch(toks[-1]) if len(toks[-1]) <= 64 else None
    if glued:
        toks[-1:] = [glued.group(1), glued.group(2)]
    k = len(toks)
    while k > 1:
        m = _UNIT_TOKEN_RE.fullmatch(toks[k - 1])
        if not toks[k - 1] or not m or any(w is not None and w.lower() not in _UNITS for w in m.groups()):
            break
        k -= 1
    if k == len(toks) and len(toks) == 2 and _PLURAL_NOUN_RE.fullmatch(toks[1]) and toks[1] not in _NOT_NOUNS:
        k = 1  # "12 apples": one plural noun after the number names what was counted
    if k < len(toks) and re.search(r"\d", " ".join(toks[:k])):
        return " ".join(toks[:k]).rstrip(" ./")
    return s


def unbox(s: str) -> str:
    """Replace every ``\\boxed{X}`` / ``\\fbox{X}`` by X (braces balanced, linear time).

    >>> unbox(r"x = \\boxed{\\frac{1}{2}}.")
    'x = \\\\frac{1}{2}.'
    """
    out, i = [], 0
    while True:
        m = re.compile(r"\\(?:boxed|fbox)\s*\{").search(s, i)
        if m is None:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i : m.start()])
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            j += 1
        out.append(s[m.end() : j - 1] if depth == 0 else s[m.end() :])
        i = j


@dataclass(frozen=True)
class MathObj:
    """A parsed answer: ``kind`` is scalar | set | seq | union; ``brackets`` the seq's (open, close)."""

    kind: str
    items: tuple
    brackets: tuple[str, str] = ("", "")


def _split_top(s: str, sep: str = ",") -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _wraps_whole(s: str) -> bool:
    """True when the first bracket closes at the very end: ``(1,2]`` yes, ``(1)+(2)`` no."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == len(s) - 1
    return False


def _element(s: str) -> NumValue | FuncValue | None:
    m = _EQ_PREFIX_RE.match(s)
    if m and "=" not in s[m.end() :]:
        s = s[m.end() :]
    return try_evaluate(s, allow_infinity=True) or try_evaluate_function(s)


def parse_math(s: str) -> MathObj | None:
    """Read a cleaned answer into a MathObj, or None when it needs symbolic parsing.

    >>> parse_math(r"\\{3, 1\\}").kind, parse_math("(1, 2]").brackets, parse_math("x = 4").items[0].value
    ('set', ('(', ']'), Fraction(4, 1))
    """
    if not s or len(s) > MAX_ANSWER_CHARS:
        return None
    m = _MATRIX_RE.fullmatch(s)
    if m:
        if m.group(1).lower().startswith("v"):
            return None  # a determinant: symbolic
        rows = [r for r in _split_top(m.group(2), "\\\\") if r]
        cells = [tuple(_element(c) for c in _split_top(r, "&")) for r in rows]
        if not cells or any(e is None for row in cells for e in row):
            return None
        return MathObj("matrix", tuple(cells))
    if r"\cup" in s:
        parts = [parse_math(p.strip()) for p in s.split(r"\cup")]
        if all(p is not None and p.kind == "seq" for p in parts):
            return MathObj("union", tuple(parts))
        return None
    if s.startswith(r"\{") and s.endswith(r"\}"):
        body = s[2:-2]
        elems = [_element(p) for p in _split_top(body)] if body.strip() else []
        return MathObj("set", tuple(elems)) if all(e is not None for e in elems) else None
    if s[0] in "([" and s[-1] in ")]" and _wraps_whole(s) and len(_split_top(s[1:-1])) > 1:
        elems = [_element(p) for p in _split_top(s[1:-1])]
        return MathObj("seq", tuple(elems), (s[0], s[-1])) if all(e is not None for e in elems) else None
    parts = _split_top(s)
    if len(parts) == 1:
        parts = [p for p in re.split(r"\s+(?:or|and)\s+", s) if p]
    if len(parts) > 1:
        elems = [_element(p) for p in parts]
        return MathObj("set", tuple(elems)) if all(e is not None for e in elems) else None
    v = _element(s)
    return MathObj("scalar", (v,)) if v is not None else None


def _nums_equal(a: NumValue | FuncValue, b: NumValue | FuncValue, percent: bool) -> bool:
    if isinstance(a, FuncValue) or isinstance(b, FuncValue):
        return isinstance(a, FuncValue) and isinstance(b, FuncValue) and a.equals(b)
    if numbers_equal(a, b):
        return True
    if percent:  # 50% may be written 50 or 0.5
        for x, y in ((a, b), (b, a)):
            scaled = NumValue(x.value / 100, None)
            if numbers_equal(scaled, y):
                return True
    return False


def _objs_equal(p: MathObj, g: MathObj, percent: bool) -> bool:
    if p.kind != g.kind:
        return False
    if p.kind == "union":
        return _as_sets_equal(p.items, g.items, lambda x, y: _objs_equal(x, y, percent))
    if p.kind == "set":
        return _as_sets_equal(p.items, g.items, lambda x, y: _nums_equal(x, y, percent))
    if p.kind == "matrix":
        return len(p.items) == len(g.items) and all(
            len(r) == len(q) and all(_nums_equal(x, y, percent) for x, y in zip(r, q, strict=True))
            for r, q in zip(p.items, g.items, strict=True)
        )
    if len(p.items) != len(g.items) or p.brackets != g.brackets:
        return False
    return all(_nums_equal(x, y, percent) for x, y in zip(p.items, g.items, strict=True))


def _as_sets_equal(xs: tuple, ys: tuple, eq) -> bool:
    return all(any(eq(x, y) for y in ys) for x in xs) and all(any(eq(x, y) for x in xs) for y in ys)


def _norm_text(s: str) -> str:
    return re.sub(r"[\s{}\\.,;:!?'\"()*]+", " ", s).strip().lower()


def _balanced(s: str) -> bool:
    """Brackets of each kind close as often as they open (``}}{{\\frac{`` is garbage, not math)."""
    return s.count("{") == s.count("}") and s.count("(") + s.count("[") == s.count(")") + s.count("]")


def _depth(s: str) -> int:
    depth = best = 0
    for c in s:
        if c in "([{":
            depth += 1
            best = max(best, depth)
        elif c in ")]}":
            depth -= 1
    return best


@functools.lru_cache(maxsize=65536)
def _analyze(text: str) -> tuple[str, bool, MathObj | None]:
    cleaned, percent = clean_math(text)
    return cleaned, percent, parse_math(cleaned)


def fast_math_equal(pred: str, gold: str) -> bool | None:
    """The pure-python verdict, or None when only symbolic parsing can tell.

    >>> fast_math_equal("x = 4", "4"), fast_math_equal("0.5", r"\\frac{1}{2}"), fast_math_equal("[1,2]", "(1,2)")
    (True, True, False)
    """
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    p_clean, p_pct, p_obj = _analyze(pred)
    g_clean, g_pct, g_obj = _analyze(gold)
    if not p_clean or not _balanced(p_clean):
        return False
    if "".join(p_clean.split()).lower() == "".join(g_clean.split()).lower():
        return True
    percent = p_pct or g_pct
    if g_obj is not None and p_obj is not None:
        return _objs_equal(p_obj, g_obj, percent)
    if not re.search(r"[\d\\]", g_clean):  # textual gold ("yes", "east"): case/punctuation-blind match
        return _norm_text(p_clean) == _norm_text(g_clean)
    if g_obj is not None and p_obj is None:
        if not re.search(r"[\d\\]", p_clean):  # a number was expected, the answer has none
            return False
        if _PROSE_WORD_RE.search(p_clean):  # words around a number ("AZYUK2A", "\frac{garbage}{7}"): no credit
            return False
    return None


def _tower(s: str) -> int:
    """How many exponents are nested inside each other (``2^{3^{4}}``: 2; ``x^2+y^2``: 1). Linear time."""
    best, open_pows, depth, pending = 0, [], 0, False
    for c in s:
        if c == "^":
            best = max(best, len(open_pows) + 1)
            pending = True
            continue
        if c in "{(":
            depth += 1
            if pending:
                open_pows.append(depth)
        elif c in "})":
            if open_pows and open_pows[-1] == depth:
                open_pows.pop()
            depth -= 1
        pending = False
    return best


_FACTORIAL_RE = re.compile(r"(\d+)\s*!")
_EXPONENT_LITERAL_RE = re.compile(r"\^\s*\{?\s*-?(\d+)")


def heavy_reason(text: str) -> str | None:
    """Why a cleaned answer is refused symbolic work (None: it is not). Cheap structural guards, microseconds,
    so a policy cannot stall scoring with answers built to be slow.

    >>> heavy_reason("x^2+2x+1") is None, heavy_reason("9^{9^{9}}"), heavy_reason("(" * 20 + "x" + ")" * 20)
    (True, 'magnitude', 'depth')
    """
    if len(text) > MAX_SYMBOLIC_CHARS:
        return "size"
    if _depth(text) > MAX_SYMBOLIC_DEPTH:
        return "depth"
    if _tower(text) >= MAX_TOWER:
        return "tower"
    if any(int(m.group(1)[:6]) > MAX_FACTORIAL for m in _FACTORIAL_RE.finditer(text)):
        return "factorial"
    if any(int(m.group(1)[:6]) > MAX_EXPONENT_LITERAL for m in _EXPONENT_LITERAL_RE.finditer(text)):
        return "exponent"
    if is_too_large(text):
        return "magnitude"
    return None


# (pred, gold) -> verdict, for fast and symbolic verdicts alike: a GRPO group repeats answers, and an answer
# that timed out once would time out again.
VERDICTS: OrderedDict[tuple[str, str], bool] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()


def _remember(key: tuple[str, str], verdict: bool) -> None:
    with _VERDICTS_LOCK:
        VERDICTS[key] = verdict
        VERDICTS.move_to_end(key)
        while len(VERDICTS) > VERDICT_CACHE_SIZE:
            VERDICTS.popitem(last=False)


def math_equal_many(
    pairs: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT_S, symbolic: bool = True
) -> list[bool]:
    """Verdicts for (pred, gold) pairs; undecided ones go, in parallel, to the symbolic workers (each under a
    ``timeout``-second CPU budget). Cached; repeated undecided pairs in one batch are sent once."""
    verdicts: list[bool | None] = [None] * len(pairs)
    for i, key in enumerate(pairs):
        with _VERDICTS_LOCK:
            verdicts[i] = VERDICTS.get(key)
        if verdicts[i] is None:
            verdicts[i] = fast_math_equal(*key)
    todo: dict[tuple[str, str], list[int]] = {}
    for i, v in enumerate(verdicts):
        if v is not None:
            continue
        p_clean, g_clean = _analyze(pairs[i][0])[0], _analyze(pairs[i][1])[0]
        if symbolic and heavy_reason(p_clean) is None and heavy_reason(g_clean) is None:
            todo.setdefault((g_clean, p_clean), []).append(i)
        else:
            verdicts[i] = False
            if symbolic:
                _remember(pairs[i], False)
    if todo:
        keys = list(todo)
        for key, v in zip(keys, symbolic_equal_many(keys, timeout), strict=True):
            for i in todo[key]:
                verdicts[i] = v
                _remember(pairs[i], bool(v))
    return [bool(v) for v in verdicts]


def math_equal(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT_S, symbolic: bool = True) -> bool:
    """True when ``pred`` is mathematically equivalent to ``gold`` (see the module docstring for the rules).

    >>> math_equal("1,234", "1234"), math_equal(r"2\\sqrt{3}", r"\\sqrt{12}"), math_equal("3", "4")
    (True, True, False)
    """
    return math_equal_many([(pred, gold)], timeout, symbolic)[0]
