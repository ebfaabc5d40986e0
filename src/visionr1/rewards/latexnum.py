"""A small, safe evaluator for *numeric* LaTeX / plain arithmetic: the fast path before symbolic parsing.

Why it exists: most math answers are numbers, fractions, radicals, multiples of pi or short arithmetic
(``2\\sqrt{3}``, ``\\frac{\\pi}{2}``, ``1.2\\times 10^{3}``). math-verify handles them, but each parse + verify
costs milliseconds and runs sympy, whose time is hard to bound. This recursive-descent parser covers them in
microseconds, never calls ``eval``/``sympify``, and gives up (returns ``None``) on anything it does not fully
understand -- variables, functions, matrices -- which then goes to the symbolic path.

Values are exact (``Fraction``) while only rationals are involved, floats once a root or pi appears. The
result remembers whether the text was a bare decimal literal and how many decimals it had, so the caller can
accept ``1.41`` for ``\\sqrt{2}`` (rounded answers) without accepting ``0.46`` for ``0.5``.

Bounds: input length (MAX_CHARS), nesting depth (MAX_DEPTH), digits per literal, exponent size and the bit
length of exact intermediate results are all capped, so evaluation time is bounded by construction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_CHARS = 2000
MAX_DEPTH = 40
MAX_DIGITS = 60
MAX_BITS = 4096
MAX_EXPONENT = 256

Number = Fraction | float


class Unsupported(Exception):
    """The text is not plain numeric arithmetic we can evaluate exactly and cheaply."""


class TooLarge(Unsupported):
    """Plain arithmetic whose value is astronomically large (``9^{9^{9}}``, a 400-digit literal): no answer a
    grader expects, and exactly what stalls sympy, so the caller scores it without symbolic work."""


@dataclass(frozen=True)
class NumValue:
    """An evaluated number. ``decimals`` is set only when the text was one decimal literal (e.g. ``-1.50``)."""

    value: Number
    decimals: int | None = None

    @property
    def is_exact(self) -> bool:
        return isinstance(self.value, Fraction)


_TOKEN_RE = re.compile(
    r"""
    (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+(?![A-Za-z]))?|\.\d+(?:[eE][+-]?\d+(?![A-Za-z]))?)
    |(?P<cmd>\\[A-Za-z]+)
    |(?P<var>[A-Za-z]+)
    |(?P<op>[-+*/^(){}\[\]!])
    |(?P<ws>\s+)
    """,
    re.VERBOSE,
)

# commands that are pure spacing / sizing and carry no meaning for the value
_IGNORED_CMDS = {r"\left", r"\right", r"\displaystyle", r"\big", r"\Big", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr"}
_CMD_ALIASES = {r"\dfrac": r"\frac", r"\tfrac": r"\frac", r"\cfrac": r"\frac", r"\times": "*", r"\cdot": "*", r"\div": "/"}
# `\frac12`, `\frac{1}2`, `\sqrt2`: LaTeX takes a single character as the argument
_SHORT_ARGS = [
    (re.compile(r"\\([dtc]?frac)\s*(\d)\s*(\d)"), r"\\frac{\2}{\3}"),
    (re.compile(r"\\([dtc]?frac)\s*(\{[^{}]*\})\s*(\d)"), r"\\frac\2{\3}"),
    (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),
]


def tokenize(text: str, allow_variables: bool = False) -> list[str]:
    """Split into numbers, commands, operators and (if allowed) one-letter variables; raise Unsupported on
    anything else. Runs of letters (``sin``, ``xy``) and ``e``/``i`` (constants or variables?) are refused.

    >>> tokenize(r"2\\sqrt{3}+1.5")
    ['2', '\\\\sqrt', '{', '3', '}', '+', '1.5']
    """
    if len(text) > MAX_CHARS:
        raise Unsupported("too long")
    for pat, rep in _SHORT_ARGS:
        text = pat.sub(rep, text)
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise Unsupported(f"unexpected {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        tok = m.group()
        if kind == "ws" or tok in _IGNORED_CMDS:
            continue
        if kind == "var" and (not allow_variables or len(tok) > 1 or tok in "ei"):
            raise Unsupported(f"letters {tok!r}")
        tok = _CMD_ALIASES.get(tok, tok)
        tokens.append(tok)
    return tokens


def _check_size(x: Number) -> Number:
    if isinstance(x, Fraction):
        if x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS:
            raise TooLarge("number too large")
        return x
    if not math.isfinite(x):
        raise TooLarge("not finite")
    return x


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|implicit) unary)* ;
    unary := ('-'|'+') unary | power ; power := atom ('^' unary-atom)? ; atom := number | (expr) | {expr} |
    \\frac{a}{b} | \\sqrt[n]{x} | \\pi | \\infty"""

    def __init__(self, tokens: list[str], allow_infinity: bool = False, env: dict[str, float] | None = None):
        self.env = env or {}
        self.toks = tokens
        self.i = 0
        self.depth = 0
        self.allow_infinity = allow_infinity

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise Unsupported(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unsupported("nested too deeply")

    def expr(self) -> Number:
        self.enter()
        val = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            val = _check_size(val + rhs if op == "+" else val - rhs)
        self.depth -= 1
        return val

    def term(self) -> Number:
        val = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                rhs = self.unary()
                if tok == "*":
                    val = val * rhs
                else:
                    if rhs == 0:
                        raise Unsupported("division by zero")
                    val = val / rhs
            elif tok in ("(", "{", r"\frac", r"\sqrt", r"\pi") or tok in self.env:  # implicit: 2\sqrt{3}, 3\pi, 2x
                val = val * self.power()
            else:
                return val
            val = _check_size(val)

    def unary(self) -> Number:
        tok = self.peek()
        if tok in ("-", "+"):
            self.take()
            self.enter()
            val = self.unary()
            self.depth -= 1
            return -val if tok == "-" else val
        return self.power()

    def power(self) -> Number:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            if self.peek() in ("{", "("):
                exp = self.atom()
            elif self.peek() in ("-", "+"):
                exp = self.unary()
            elif self.peek() in self.env:  # 2^x
                exp = self.env[self.take()]
            else:  # x^2: a single digit is the exponent in LaTeX
                tok = self.take()
                if not tok.isdigit():
                    raise Unsupported("exponent")
                exp, rest = Fraction(int(tok[0])), tok[1:]
                if rest:  # 10^23 in LaTeX means 10^2 * 3: too ambiguous to guess
                    raise Unsupported("ambiguous exponent")
            base = _pow(base, exp)
        return base

    def atom(self) -> Number:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            return _literal(tok)
        if tok in ("(", "{", "["):
            self.enter()
            val = self.expr()
            self.take({"(": ")", "{": "}", "[": "]"}[tok])
            self.depth -= 1
            return val
        if tok == r"\frac":
            num = self.group()
            den = self.group()
            if den == 0:
                raise Unsupported("division by zero")
            return _check_size(num / den)
        if tok == r"\sqrt":
            index: Number = Fraction(2)
            if self.peek() == "[":
                self.take("[")
                index = self.expr()
                self.take("]")
            return _root(self.group(), index)
        if tok == r"\pi":
            return math.pi
        if tok == r"\infty" and self.allow_infinity:
            return math.inf
        if tok in self.env:
            return self.env[tok]
        raise Unsupported(f"token {tok!r}")

    def group(self) -> Number:
        self.take("{")
        self.enter()
        val = self.expr()
        self.take("}")
        self.depth -= 1
        return val


def _literal(tok: str) -> Fraction:
    digits = sum(c.isdigit() for c in tok)
    if digits > MAX_DIGITS:
        raise TooLarge("literal too long")
    mant, _, exp = tok.lower().partition("e")
    value = Fraction(mant)
    if exp:
        e = int(exp)
        if abs(e) > 300:
            raise TooLarge("exponent too large")
        value *= Fraction(10) ** e
    return value


def _pow(base: Number, exp: Number) -> Number:
    if isinstance(exp, Fraction) and exp.denominator == 1:
        e = exp.numerator
        if abs(e) > MAX_EXPONENT:
            raise TooLarge("exponent too large")
        if base == 0 and e < 0:
            raise Unsupported("division by zero")
        if isinstance(base, Fraction):
            bits = max(base.numerator.bit_length(), base.denominator.bit_length())
            if bits * abs(e) > MAX_BITS:
                raise TooLarge("number too large")
            return base**e
        return _check_size(float(base) ** e)
    if base < 0:
        raise Unsupported("complex power")
    try:
        return _check_size(float(base) ** float(exp))
    except OverflowError:
        raise TooLarge("overflow") from None


def _root(x: Number, index: Number) -> Number:
    if not (isinstance(index, Fraction) and index.denominator == 1 and 2 <= index <= 64):
        raise Unsupported("root index")
    n = int(index)
    if x < 0:
        if n % 2 == 0:
            raise Unsupported("complex root")
        return -_root(-x, index)
    if isinstance(x, Fraction):
        num, den = _int_root(x.numerator, n), _int_root(x.denominator, n)
        if num is not None and den is not None:
            return Fraction(num, den)
    return float(x) ** (1.0 / n)


def _int_root(v: int, n: int) -> int | None:
    r = round(v ** (1.0 / n)) if v.bit_length() < 1000 else None
    if r is None:
        return None
    for cand in (r - 1, r, r + 1):
        if cand >= 0 and cand**n == v:
            return cand
    return None


_DECIMAL_LITERAL = re.compile(r"^[-+]?(\d+)\.(\d+)$")


def evaluate(text: str, allow_infinity: bool = False) -> NumValue:
    """Evaluate numeric LaTeX; raise Unsupported when it is not plain arithmetic.

    >>> evaluate(r"\\frac{3}{4}").value
    Fraction(3, 4)
    >>> evaluate("-1.50").decimals
    2
    >>> round(evaluate(r"2\\sqrt{3}").value, 4)
    3.4641
    """
    text = text.strip()
    tokens = tokenize(text)
    if not tokens:
        raise Unsupported("empty")
    parser = _Parser(tokens, allow_infinity=allow_infinity)
    value = parser.expr()
    if parser.peek() is not None:
        raise Unsupported(f"trailing {parser.peek()!r}")
    m = _DECIMAL_LITERAL.match(text)
    return NumValue(value, len(m.group(2)) if m else None)


def is_too_large(text: str) -> bool:
    """True when ``text`` is plain arithmetic refused only for its magnitude (a structural guard, microseconds).

    >>> is_too_large("9^{9^{9^{9}}}"), is_too_large("2^{10}"), is_too_large("x^{99}")
    (True, False, False)
    """
    try:
        evaluate(text)
    except TooLarge:
        return True
    except (Unsupported, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return False
    return False


def try_evaluate(text: str, allow_infinity: bool = False) -> NumValue | None:
    """``evaluate`` that returns None instead of raising.

    >>> try_evaluate("x + 1") is None
    True
    """
    try:
        return evaluate(text, allow_infinity=allow_infinity)
    except (Unsupported, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


_POINTS = (0.6180339887, 1.4142135623, 2.7182818284)  # irrational-ish, so cancellations are unlikely


@dataclass(frozen=True)
class FuncValue:
    """An expression in one-letter variables, known by its values at fixed sample points.

    Two polynomials / rational functions that agree at 3 generic points are equal with overwhelming
    probability; this replaces sympy's simplify for ``(x+1)^2`` vs ``x^2+2x+1`` at a microsecond's cost."""

    variables: tuple[str, ...]
    samples: tuple[float, ...]

    def equals(self, other: FuncValue) -> bool:
        return self.variables == other.variables and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(self.samples, other.samples, strict=True)
        )


def evaluate_function(text: str) -> FuncValue:
    """Sample an expression with variables at fixed points; raise Unsupported when it has none or fails.

    >>> evaluate_function("(x+1)^2").equals(evaluate_function("x^2+2x+1"))
    True
    >>> evaluate_function("2x+y").equals(evaluate_function("2y+x"))
    False
    """
    text = text.strip()
    tokens = tokenize(text, allow_variables=True)
    names = tuple(sorted({t for t in tokens if len(t) == 1 and t.isalpha()}))
    if not names:
        raise Unsupported("no variables")
    samples = []
    for k, base in enumerate(_POINTS):
        env = {v: base + 0.0731 * (ord(v) % 32) + 0.011 * k for v in names}
        parser = _Parser(tokens, env=env)
        value = parser.expr()
        if parser.peek() is not None:
            raise Unsupported(f"trailing {parser.peek()!r}")
        if not math.isfinite(float(value)):
            raise Unsupported("not finite")
        samples.append(float(value))
    return FuncValue(names, tuple(samples))


def try_evaluate_function(text: str) -> FuncValue | None:
    try:
        return evaluate_function(text)
    except (Unsupported, ValueError, ZeroDivisionError, OverflowError, RecursionError, TypeError):
        return None


def numbers_equal(a: NumValue, b: NumValue) -> bool:
    """Equality of two evaluated answers, with one deliberate leniency.

    Exact values compare exactly; floats (roots, pi) to 1e-9 relative. When exactly one side is a decimal
    literal with >= 2 decimals and the other is an exact expression, the literal may be the other rounded to
    that many decimals (``1.41`` == ``\\sqrt{2}``, ``0.33`` == ``\\frac{1}{3}``) -- the rounding MathVista and
    MM-Math graders accept and math-verify does not. Two literals must be equal (``0.46`` != ``0.5``).

    >>> numbers_equal(evaluate("0.50"), evaluate(r"\\frac12"))
    True
    >>> numbers_equal(evaluate("1.41"), evaluate(r"\\sqrt{2}"))
    True
    >>> numbers_equal(evaluate("0.46"), evaluate("0.5"))
    False
    """
    x, y = a.value, b.value
    if isinstance(x, float) and isinstance(y, float) and math.isinf(x) and math.isinf(y):
        return x == y
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        if x == y:
            return True
    elif math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
        return True
    if (a.decimals is None) == (b.decimals is None):
        return False
    lit, other = (a, b) if a.decimals is not None else (b, a)
    if lit.decimals < 2 or not math.isfinite(float(other.value)):
        return False
    return abs(float(other.value) - float(lit.value)) <= 0.5 * 10.0 ** (-lit.decimals) * (1 + 1e-9)
