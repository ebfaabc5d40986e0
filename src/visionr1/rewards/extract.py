"""Reading the final answer out of a completion -- never from inside ``<think>`` for the reward.

Order (docs/CONTRACTS.md, issue 3):
1. Drop the thinking: everything up to the last ``</think>``. An opened but unclosed ``<think>`` (a truncated
   completion) has, for the RL reward, no answer: hard formatting is what suppresses over-long thinking.
   Evaluation reads it instead (``truncated="read"``): the official pipelines hand the whole response to an
   LLM extractor, which would take "...so the answer is 5" from a truncated response. A completion without
   tags is read as a whole.
2. The ``<answer>`` block (to ``</answer>``, or to the end when the closing tag is missing -- the format
   reward punishes that, accuracy need not). Two blocks are no answer (``<answer>12</answer><answer>13</answer>``
   hedges), and so are two different values stated in one block ("The answer is 12. The answer is 13." reads
   ``12, 13``: right only where a list is asked for). Inside it a leading ``Final Answer:`` (Vision-R1-cold data),
   ``Answer:`` or ``The answer is``, and ``\\boxed{}``, are unwrapped; for math and count, a sentence is
   reduced to its answer: its last math span ("Therefore $x \\geq 5$ is the solution."), else what follows
   its last "is" / "=" ("The area is 12 cm.").
3. Without a block: ``\\boxed{}``; then the last "answer is X" / "Final Answer: X" (Minerva's "The final answer
   is $X$. I hope it is correct." gives X); then the *last resorts* (``LAST_RESORTS``): for math a short
   tag-less reply read whole, else its last math span; for numeric tasks (math, count) the last number (count
   also accepts number words); for grounding the last box; for other tasks the remaining text itself.
   Evaluation sends last resorts to an LLM judge when one is configured (``--judge-mode fallback``).

Details that decide reward hacking and equivalence: several boxes written together (``\\boxed{2}`` and
``\\boxed{3}``) are read together as ``2, 3`` -- a list of roots is then right and a hedge between two values
for one gold is wrong (only the last was read before, which credited hedges); ``$18 ... $25`` are dollars,
not one inline-math span.

Every step is a linear scan, so a 100,000-character completion costs milliseconds.
"""

from __future__ import annotations

import re
from typing import Any

NUMERIC_TASKS = ("math", "count")
MAX_FALLBACK_CHARS = 2000  # a tag-less completion longer than this is prose, not an answer
TRUNCATION_POLICIES = ("no_answer", "read")
# How an answer was found (``extract_with_source``); the last ones are guesses an LLM extractor would do better.
SOURCES = ("answer_tag", "boxed", "answer_is", "short_text", "math_span", "last_number", "last_box", "whole_text")
LAST_RESORTS = frozenset({"math_span", "last_number", "last_box", "whole_text"})
# The answer format, one definition each: option letters A, B, C, ... and a closed <answer> block.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)

_PREFIX_RE = re.compile(
    r"^(?:\s|\*\*|__|#)*(?:(?:the\s+)?final\s+answer|(?:the\s+)?answer)\s*(?:is\s*)?[:：]?(?:\s|\*\*|__)*",
    re.I,
)
_ANSWER_IS_RE = re.compile(r"(?:final\s+answer|answer)(?:\*\*|__)?\s*(?:is|:|：)(?:\s|\*\*|__)*:?", re.I)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_BOX_RE = re.compile(r"\[\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*\]")
_COUNT_WORDS = (
    "zero|none|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred"
)
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{4,}")
_INLINE_MATH_RE = re.compile(r"\$\$([^$]{1,400})\$\$|\$([^$]{1,200})\$|\\\((.{1,200}?)\\\)|\\\[(.{1,400}?)\\\]", re.S)
# "$18 for apples and $25": a dollar sign before an amount followed by words or punctuation is currency
_CURRENCY_RE = re.compile(r"(?<![\\$\w])\$(?=\d)(\d[\d,]*(?:\.\d+)?)(?=[ \t]*(?:[A-Za-z]{2,}|[.,;:!?)]|\n|$))")
_SENTENCE_END_RE = re.compile(r"\.(?:\s+(?=[A-Z(\d$\\])|\s*$)|\n")
# a sentence rather than a math answer: a word of 3+ letters that is not a LaTeX command ("and"/"or" join lists)
_SENTENCE_WORD_RE = re.compile(r"(?<![\\A-Za-z])(?!(?:and|or)\b)[A-Za-z]{3,}")
_IS_RE = re.compile(r"(?:\bis|\bequals?|\bbe|\bwas|=|:)\s+", re.I)
# what may stand between answers written together: "and", "or", commas, spacing, "x =" before the next one
_GAP_WORD = r"(?:\s|[$,;&()]|\\[,;:! ]|\\q?quad|\\text\{\s*(?:and|or|,)?\s*\}|\band\b|\bor\b)"
_BOX_GAP_RE = re.compile(rf"{_GAP_WORD}*(?:\\?[A-Za-z]{{1,3}}(?:_\{{?\w+\}}?)?\s*=\s*)?{_GAP_WORD}*")
_COUNT_RE = re.compile(rf"-?\d+(?:,\d{{3}})*(?:\.\d+)?|\b(?:{_COUNT_WORDS})(?:[\s-]+(?:{_COUNT_WORDS}))*\b", re.I)


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or TRL's conversational form (a list of message dicts whose
    content is a string or a list of ``{"type": "text", "text": ...}`` parts). Non-assistant messages
    (tool results) are skipped when roles are given. Anything else yields "".

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    texts = []
    for msg in completion:
        if isinstance(msg, str):
            texts.append(msg)
            continue
        if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, (list, tuple)):
            for part in content:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    return "".join(texts)


def strip_thinking(text: str, think_prefilled: bool = False, truncated: str = "no_answer") -> str | None:
    """The part after the thinking. When a ``<think>`` is never closed (or, when the prompt pre-filled
    ``<think>``, when there is no ``</think>`` at all): None under ``truncated="no_answer"`` (the reward), the
    whole text without its ``<think>`` tag under ``truncated="read"`` (evaluation).

    >>> strip_thinking("<think>x=3</think><answer>4</answer>")
    '<answer>4</answer>'
    >>> strip_thinking("<think>still going") is None, strip_thinking("<think>so the answer is 5", truncated="read")
    (True, 'so the answer is 5')
    """
    if truncated not in TRUNCATION_POLICIES:
        raise ValueError(f"truncated={truncated!r}: choose one of {', '.join(TRUNCATION_POLICIES)}")
    end = text.rfind("</think>")
    if end >= 0:
        return text[end + len("</think>") :]
    if think_prefilled or "<think>" in text:
        return None if truncated == "no_answer" else text.replace("<think>", "")
    return text


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced, in order."""
    spans = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        if spans and m.start() < spans[-1][1]:
            continue  # a box inside a box
        depth = 0
        for j in range(m.end() - 1, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    spans.append((m.start(), j + 1, text[m.end() : j].strip()))
                    break
        else:
            break  # unclosed: nothing after it can close either
    return spans


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox``), braces balanced; None if there is none.

    >>> last_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    """
    spans = _boxed_spans(text)
    return spans[-1][2] if spans else None


def _joined(text: str, spans: list[tuple[int, int, str]]) -> str | None:
    """The last span's content together with the spans written right before it (joined by "and", "or",
    commas, ``x =``), repeats once, as ``a, b``; None without spans."""
    if not spans:
        return None
    group = [spans[-1]]
    for prev in reversed(spans[:-1]):
        gap = text[prev[1] : group[0][0]]
        if len(gap) > 40 or not _BOX_GAP_RE.fullmatch(gap):
            break
        group.insert(0, prev)
    contents = list(dict.fromkeys(c for _, _, c in group if c))
    return ", ".join(contents) if contents else ""


def final_boxed(text: str) -> str | None:
    r"""The last box together with the boxes written right before it (joined by "and", "or", commas, ``x =``):
    ``$x=\boxed{2}$ or $x=\boxed{3}$`` -> ``2, 3``. Repeats count once. None without a box.

    >>> final_boxed(r"first \boxed{5}. Then: \boxed{2} and \boxed{3}"), final_boxed(r"\boxed{4}, i.e. \boxed{4}")
    ('2, 3', '4')
    """
    return _joined(text, _boxed_spans(text))


def _cut_sentence(rest: str) -> str:
    """The answer at the start of ``rest``: a whole math span, else the text up to the end of the sentence."""
    rest = rest.lstrip(" \t*_:")
    m = _INLINE_MATH_RE.match(rest)
    if m:
        return next(g for g in m.groups() if g is not None).strip()
    end = _SENTENCE_END_RE.search(rest)
    return rest[: end.start()] if end else rest


def _after_answer_is(text: str) -> str | None:
    """X in the last "answer is X" / "Final Answer: X" (that math span, or to the end of the sentence)."""
    last = None
    for m in _ANSWER_IS_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = _CURRENCY_RE.sub(r"\1", text[last.end() :])
    line = _cut_sentence(rest).strip()
    if not line and rest.strip():  # "Final Answer:\n\n42"
        line = _cut_sentence(rest.strip()).strip()
    return _tidy(line) or None


def _answers_stated(text: str) -> list[str]:
    """Every distinct X of the "answer is X" / "Final Answer: X" statements in ``text``, in order; each X is
    read up to the end of its sentence; a statement whose sentence runs into the next one states nothing of its
    own ("Final Answer: The final answer is 7" states 7 once).

    >>> _answers_stated("The answer is 12. Wait, the answer is 13."), _answers_stated("Answer: 7. The answer is 7.")
    (['12', '13'], ['7'])
    >>> _answers_stated("Final Answer: The final answer is 7. I hope it is correct.")
    ['7']
    """
    matches = list(_ANSWER_IS_RE.finditer(text))
    values: list[str] = []
    for i, m in enumerate(matches):
        nxt = matches[i + 1] if i + 1 < len(matches) else None
        region = _CURRENCY_RE.sub(r"\1", text[m.end() : nxt.start() if nxt else len(text)])
        if nxt is not None and not _SENTENCE_END_RE.search(region.strip()):
            continue
        value = _tidy(_cut_sentence(region).strip() or _cut_sentence(region.strip()).strip())
        if value and value not in values:
            values.append(value)
    return values


def _tidy(s: str) -> str:
    """Trim markdown emphasis, a trailing full stop and whole-answer $...$ wrappers."""
    s = s.strip().strip("*_").strip()
    if s.endswith("."):
        s = s[:-1].rstrip()
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$" and "$" not in s.strip("$"):
        s = s.strip("$").strip()
    return s


def last_math_span(text: str) -> str | None:
    r"""Content of the last inline-math span (``$...$``, ``$$...$$``, ``\(...\)``, ``\[...\]``) with the spans
    written right before it ("$x = 2$ and $x = 3$" -> ``x = 2, x = 3``); dollar amounts are not math. None when
    there is none.

    >>> last_math_span("I paid $18 for apples and $25 for pears, so $x = 43$.")
    'x = 43'
    >>> last_math_span("I paid $18 for apples and $25 for pears.") is None
    True
    """
    text = _CURRENCY_RE.sub(r"\1", text)
    spans = [
        (m.start(), m.end(), next(g for g in m.groups() if g is not None).strip()) for m in _INLINE_MATH_RE.finditer(text)
    ]
    return _joined(text, spans) or None


def reduce_sentence(s: str) -> str:
    r"""The answer a math sentence states: the sentence itself when it is no prose; else its last math span;
    else what follows its last "is" / "=" / ":" up to the end of the sentence.

    >>> reduce_sentence(r"Therefore $x \geq 5$ is the solution."), reduce_sentence("The area is 12 cm.")
    ('x \\geq 5', '12 cm')
    """
    s = _tidy(s)
    if not _SENTENCE_WORD_RE.search(s):
        return s
    span = last_math_span(s)
    if span is not None:
        return span
    last = None
    for m in _IS_RE.finditer(s):
        last = m
    if last is not None:
        tail = _tidy(_cut_sentence(s[last.end() :]))
        if tail:
            return tail
    return s


def _clean_block(block: str, task: str | None) -> tuple[str, str]:
    """Unwrap an <answer> block: "Final Answer:", boxes, "the answer is X" inside prose, math sentences."""
    s = block.strip()
    boxed = final_boxed(s)
    if boxed is not None:
        return boxed, "answer_tag"
    m = _PREFIX_RE.match(s)
    if m and m.end() > 0:
        s = s[m.end() :]
        if _ANSWER_IS_RE.search(s):  # "Final Answer: The final answer is 7. I hope it is correct."
            inner = _after_answer_is(s)
            s = inner if inner is not None else s
        elif task in NUMERIC_TASKS:  # "The answer is 3. 5 is wrong.": the answer is that sentence
            s = _cut_sentence(_CURRENCY_RE.sub(r"\1", s)).strip() or s
    else:
        inner = _after_answer_is(s)
        if inner is not None:
            s = inner
    stated = _answers_stated(block)
    if len(stated) > 1:  # "The answer is 12. The answer is 13.": two final values, read together (a hedge)
        values = [reduce_sentence(v) if task in NUMERIC_TASKS else v for v in stated]
        return ", ".join(dict.fromkeys(values)), "answer_tag"
    if task in NUMERIC_TASKS:
        return reduce_sentence(_CURRENCY_RE.sub(r"\1", s)), "answer_tag"
    return _tidy(s), "answer_tag"


def answer_block(text: str) -> str | None:
    """Raw content of the last ``<answer>`` block (to ``</answer>`` or the end of the text).

    >>> answer_block("<answer> Final Answer: 3 </answer>")
    ' Final Answer: 3 '
    """
    start = text.rfind("<answer>")
    if start < 0:
        return None
    start += len("<answer>")
    end = text.find("</answer>", start)
    return text[start:] if end < 0 else text[start:end]


def extract_with_source(
    text: Any, task: str | None = None, think_prefilled: bool = False, truncated: str = "no_answer"
) -> tuple[str | None, str | None]:
    """(answer, how it was found: one of ``SOURCES``), or (None, None) when there is none. Answers found by
    a ``LAST_RESORTS`` rule are guesses: evaluation hands them to an LLM judge when one is configured.

    >>> extract_with_source("... 3, 4 and 5, so I cannot tell.", "math")
    ('5', 'last_number')
    """
    text = completion_text(text)
    rest = strip_thinking(text, think_prefilled, truncated)
    if rest is None:
        return None, None
    if rest.count("<answer>") > 1:  # two answers are no answer (the format reward refuses them too)
        return None, None
    block = answer_block(rest)
    if block is not None:
        ans, how = _clean_block(block, task)
        return (ans, how) if ans else (None, None)
    boxed = final_boxed(rest)
    if boxed is not None:
        return (boxed, "boxed") if boxed else (None, None)
    said = _after_answer_is(rest)
    if said is not None:
        return (reduce_sentence(said) if task in NUMERIC_TASKS else said), "answer_is"
    if task == "math":
        short = rest.strip()
        if len(short) <= 200 and not _PROSE_RE.search(short):
            return (_tidy(short), "short_text") if _tidy(short) else (None, None)
        span = last_math_span(rest)
        if span is not None:
            return span, "math_span"
    if task in NUMERIC_TASKS:
        regex = _COUNT_RE if task == "count" else _NUMBER_RE
        last = None
        for m in regex.finditer(_CURRENCY_RE.sub(r"\1", rest)):
            last = m
        return (last.group().strip(), "last_number") if last else (None, None)
    if task == "grounding":
        if "bbox_2d" in rest:
            return rest.strip(), "last_box"
        last = None
        for m in _BOX_RE.finditer(rest):
            last = m
        return (last.group(), "last_box") if last else (None, None)
    rest = rest.strip()
    if not rest or len(rest) > MAX_FALLBACK_CHARS:
        return None, None
    return (_tidy(rest), "whole_text") if _tidy(rest) else (None, None)


def extract_answer(
    text: Any, task: str | None = None, think_prefilled: bool = False, truncated: str = "no_answer"
) -> str | None:
    """The final answer of a completion (string or conversational), or None when there is none.
    ``think_prefilled``: the prompt ended with ``<think>``, so the completion starts inside the thinking;
    ``truncated``: what an unclosed thinking means (see ``strip_thinking``).

    >>> extract_answer("<think>maybe 5</think><answer> Final Answer: $\\\\frac{1}{2}$ </answer>")
    '\\\\frac{1}{2}'
    >>> extract_answer("<think>I get 5</think> so the total is 7 apples", task="count")
    '7'
    >>> extract_answer("<think>The answer is 5, no wait") is None
    True
    """
    return extract_with_source(text, task, think_prefilled, truncated)[0]
