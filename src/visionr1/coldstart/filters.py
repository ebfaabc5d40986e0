"""Step 4: turn a reasoner's output into an SFT response, or say why it is dropped.

Vision-R1 keeps only samples whose final answer matches the ground truth and applies rule filters that remove
inconsistent samples and "rewrite words for coherence": the reasoner read a *description*, but the SFT model
will see the *image*, so "the description says" must become "the image shows". The paper gives no rules;
ours are below, each a small pure function, and the answer check is the reward library's ``is_correct`` (the
same scorer as the RL reward and the evaluation).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from visionr1.coldstart.config import FilterSpec

REFLECTION_WORDS = ("Wait", "Hmm", "Alternatively")

# Drop reasons, in the order they are checked (the first one is *the* reason; all are recorded).
REASONS = (
    "truncated", "missing_think", "unbalanced_think_tags", "no_answer", "wrong_answer",
    "repetition_loop", "language_mixing", "too_short", "too_long", "description_reference",
)

# ----------------------------------------------------------------------------------------------------------
# Think tags
# ----------------------------------------------------------------------------------------------------------


def split_thinking(content: str, reasoning: str | None = None) -> tuple[str | None, str, str | None]:
    """Split a reasoner's output into ``(thinking, rest, problem)``; ``problem`` is a drop reason or None.

    Servers deliver R1's thinking either separately (``reasoning_content``) or inline as ``<think>…</think>``;
    R1's chat template opens ``<think>`` itself, so inline output often has only the closing tag.

    >>> split_thinking("<think>a</think> B")
    ('a', ' B', None)
    >>> split_thinking("a</think>B")
    ('a', 'B', None)
    >>> split_thinking("no tags")[2]
    'missing_think'
    >>> split_thinking("<think>a</think><think>b</think>")[2]
    'unbalanced_think_tags'
    >>> split_thinking("Final Answer: 3", reasoning="I count...")
    ('I count...', 'Final Answer: 3', None)
    """
    if reasoning is not None and reasoning.strip():
        if "<think>" in content or "</think>" in content or "<think>" in reasoning or "</think>" in reasoning:
            return None, content, "unbalanced_think_tags"
        return reasoning.strip(), content, None
    opens, closes = content.count("<think>"), content.count("</think>")
    if opens == 0 and closes == 0:
        return None, content, "missing_think"
    if closes != 1 or opens > 1:
        return None, content, "unbalanced_think_tags"
    head, rest = content.split("</think>", 1)
    if opens == 1:
        before, head = head.split("<think>", 1)
        if before.strip():
            return None, content, "unbalanced_think_tags"
    if "<think>" in rest:
        return None, content, "unbalanced_think_tags"
    return head.strip(), rest, None


# ----------------------------------------------------------------------------------------------------------
# Repetition loops and language mixing
# ----------------------------------------------------------------------------------------------------------


def repeated_ngram_fraction(text: str, n: int = 8) -> float:
    """Share of word n-grams that already occurred earlier in ``text`` (0: none; near 1: a loop).

    Long R1 reasoning re-reads and re-checks, so some repetition is normal; a generation stuck in a loop
    repeats almost everything.

    >>> repeated_ngram_fraction("one two three four five six seven eight nine ten", n=3)
    0.0
    >>> round(repeated_ngram_fraction("so we get x. " * 50, n=4), 2)
    0.98
    """
    words = text.split()
    if len(words) < n + 1:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    total = len(words) - n + 1
    for i in range(total):
        g = tuple(words[i : i + n])
        if g in seen:
            repeated += 1
        else:
            seen.add(g)
    return repeated / total


def has_repetition_loop(text: str, n: int = 8, max_fraction: float = 0.5) -> bool:
    """A loop anywhere: the whole text, or its last quarter (a loop at the end of an otherwise good text),
    repeats more than ``max_fraction`` of its n-grams.

    >>> good = " ".join(f"step {i} adds {i} to the total" for i in range(40))
    >>> has_repetition_loop(good)
    False
    >>> has_repetition_loop(good + " and then we check again" * 80)
    True
    """
    if repeated_ngram_fraction(text, n) > max_fraction:
        return True
    words = text.split()
    tail = words[-max(len(words) // 4, 1) :]
    return len(tail) >= 8 * n and repeated_ngram_fraction(" ".join(tail), n) > max(max_fraction, 0.8)


def script_of(ch: str) -> str | None:
    """The writing system of a letter; None for digits, symbols, and Greek (maths uses θ, π, α)."""
    if not ch.isalpha():
        return None
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "other"
    for prefix, script in (
        ("LATIN", "latin"), ("CJK", "cjk"), ("HIRAGANA", "cjk"), ("KATAKANA", "cjk"), ("HANGUL", "cjk"),
        ("CYRILLIC", "cyrillic"), ("ARABIC", "arabic"), ("DEVANAGARI", "devanagari"), ("THAI", "thai"),
        ("HEBREW", "hebrew"), ("GREEK", None), ("MATHEMATICAL", None),
    ):
        if name.startswith(prefix):
            return script
    return "other"


def scripts_in(text: str) -> Counter:
    """Letters per script.

    >>> dict(scripts_in("Area = 3 平方"))
    {'latin': 4, 'cjk': 2}
    """
    c: Counter = Counter()
    for ch in text:
        s = script_of(ch)
        if s is not None:
            c[s] += 1
    return c


def foreign_script_fraction(text: str, allowed: set[str]) -> float:
    """Share of letters in scripts outside ``allowed`` (R1 drifting into Chinese mid-English, say).

    >>> round(foreign_script_fraction("so the answer 是 5", {"latin"}), 3)
    0.083
    """
    counts = scripts_in(text)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return sum(v for k, v in counts.items() if k not in allowed) / total


# ----------------------------------------------------------------------------------------------------------
# Rewriting references to the description
# ----------------------------------------------------------------------------------------------------------

# (pattern, replacement): longest phrases first. Matching is case-insensitive; a capitalised match gets a
# capitalised replacement.
_NOUN = r"(?:(?:image|detailed|provided|given|above|formal|text|textual|visual)\s+)?(?:description|caption)"
DEFAULT_REWRITES: tuple[tuple[str, str], ...] = (
    (rf"\b(?:according to|based on|from|per) the {_NOUN}\b", "from the image"),
    (rf"\bthe {_NOUN} (?:says|states|mentions|notes|tells us|indicates|shows|specifies|gives|describes)\b", "the image shows"),
    (rf"\bthe {_NOUN} (?:said|stated|mentioned|noted|indicated|showed|specified|gave)\b", "the image showed"),
    (rf"\b(?:as )?(?:described|mentioned|stated|given|noted) in the {_NOUN}\b", "as shown in the image"),
    (rf"\b(?:in|within) the {_NOUN}\b", "in the image"),
    (r"\bas (?:previously |already )?described\b", "as shown"),
    (rf"\bthe {_NOUN}\b", "the image"),
)

_LEFTOVER_RE = re.compile(r"\b(?:description|caption|described)\b", re.IGNORECASE)


def _match_case(replacement: str, matched: str) -> str:
    return replacement[:1].upper() + replacement[1:] if matched[:1].isupper() else replacement


def rewrite_references(text: str, extra: list[tuple[str, str]] = ()) -> tuple[str, int]:
    """Rewrite wording that betrays the description; return the text and how many rewrites were made.

    >>> rewrite_references("According to the description, the triangle is right-angled.")
    ('From the image, the triangle is right-angled.', 1)
    >>> rewrite_references("As described, there are 3 cubes; the image description says they are red.")
    ('As shown, there are 3 cubes; the image shows they are red.', 2)
    >>> rewrite_references("Mentioned in the caption: AB = 5.")[0]
    'As shown in the image: AB = 5.'
    """
    n = 0
    for _ in range(100):  # until nothing changes ("the description description" needs two passes)
        before = n
        for pattern, repl in (*DEFAULT_REWRITES, *extra):
            rx = re.compile(pattern, re.IGNORECASE)

            def sub(m: re.Match, repl: str = repl) -> str:
                return _match_case(repl, m.group(0))

            text, k = rx.subn(sub, text)
            n += k
        if n == before:
            break
    return text, n


def leftover_references(text: str, question: str) -> list[str]:
    """Words that still betray the description (ignoring those the question itself uses).

    >>> leftover_references("the image, as described above", "How many?")
    ['described']
    >>> leftover_references("the caption under the figure", "What does the caption say?")
    []
    """
    q = question.lower()
    return [w for w in _LEFTOVER_RE.findall(text) if w.lower() not in q]


# ----------------------------------------------------------------------------------------------------------
# The verdict
# ----------------------------------------------------------------------------------------------------------


def format_response(thinking: str, answer: str) -> str:
    """Vision-R1-cold's response format.

    >>> format_response("3 cubes.", "3")
    '<think>\\n3 cubes.\\n</think><answer> Final Answer:3 </answer>'
    """
    return f"<think>\n{thinking}\n</think><answer> Final Answer:{answer} </answer>"


def count_reflections(text: str) -> dict[str, int]:
    """Occurrences of the paper's reflection words (whole words, case-sensitive as the paper counts them).

    >>> count_reflections("Wait, no. Hmm. Wait again; alternatively Alternatively")
    {'Wait': 2, 'Hmm': 1, 'Alternatively': 1}
    """
    return {w: len(re.findall(rf"\b{w}\b", text)) for w in REFLECTION_WORDS}


@dataclass
class Verdict:
    kept: bool
    reason: str | None = None  # the first failing check
    reasons: list[str] = field(default_factory=list)  # every failing check
    response: str | None = None  # the formatted SFT response (also for dropped samples, when it could be built)
    answer: str | None = None
    rewrites: int = 0


def judge(
    content: str,
    reasoning: str | None,
    finish_reason: str | None,
    *,
    question: str,
    solution: str,
    task: str,
    choices: list[str] | None,
    spec: FilterSpec,
    thinking_prefix: str = "",
) -> Verdict:
    """Apply every filter to one reasoner output. ``thinking_prefix`` (caption-first variant) is put at the
    start of the thinking before the filters run."""
    from visionr1.rewards.extract import extract_answer
    from visionr1.rewards.scoring import is_correct

    reasons: list[str] = []
    if finish_reason == "length":
        reasons.append("truncated")
    thinking, rest, problem = split_thinking(content, reasoning)
    if problem:
        return Verdict(False, reasons[0] if reasons else problem, reasons + [problem])
    thinking = thinking_prefix + thinking
    answer = extract_answer(rest, task)
    if answer is None:
        reasons.append("no_answer")
        return Verdict(False, reasons[0], reasons)
    answer = answer.strip()
    rewrites = 0
    if spec.rewrite_description_references:
        thinking, rewrites = rewrite_references(thinking, [(r.pattern, r.replacement) for r in spec.extra_rewrites])
    response = format_response(thinking, answer)
    if spec.check_answer and not is_correct(response, solution, task, choices):
        reasons.append("wrong_answer")
    if has_repetition_loop(thinking, spec.repetition_ngram, spec.max_repeated_ngram_fraction):
        reasons.append("repetition_loop")
    allowed = set(spec.allowed_scripts) | set(scripts_in(question))
    if foreign_script_fraction(thinking + " " + answer, allowed) > spec.max_foreign_script_fraction:
        reasons.append("language_mixing")
    if len(thinking) < spec.min_think_chars:
        reasons.append("too_short")
    if len(response) > spec.max_response_chars:
        reasons.append("too_long")
    if spec.drop_unrewritten_references and leftover_references(thinking, question):
        reasons.append("description_reference")
    return Verdict(not reasons, reasons[0] if reasons else None, reasons, response, answer, rewrites)
