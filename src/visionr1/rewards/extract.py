"""Reading the final answer out of a completion -- never from inside ``<think>``.

Order (docs/CONTRACTS.md, issue 3):
1. Drop the thinking: everything up to the last ``</think>``. An opened but unclosed ``<think>`` means the
   model never finished thinking, so there is no answer. A completion without tags is read as a whole.
2. The last ``<answer>`` block (to ``</answer>``, or to the end when the closing tag is missing -- the format
   reward punishes that, accuracy need not). Inside it a leading ``Final Answer:`` (Vision-R1-cold data),
   ``Answer:`` or ``The answer is``, and a ``\\boxed{}``, are unwrapped.
3. Without a block: the last ``\\boxed{}``; then the last "answer is X" / "Final Answer: X"; then, for
   numeric tasks (math, count), the last number (count also accepts number words); for grounding, the last
   box; for other tasks the remaining text itself.

Every step is a linear scan, so a 100,000-character completion costs milliseconds.
"""

from __future__ import annotations

import re
from typing import Any

NUMERIC_TASKS = ("math", "count")
MAX_FALLBACK_CHARS = 2000  # a tag-less completion longer than this is prose, not an answer

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
_INLINE_MATH_RE = re.compile(r"\$([^$]{1,200})\$")
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


def strip_thinking(text: str, think_prefilled: bool = False) -> str | None:
    """The part after the thinking; None when a ``<think>`` is never closed (or, when the prompt pre-filled
    ``<think>``, when there is no ``</think>`` at all).

    >>> strip_thinking("<think>x=3</think><answer>4</answer>")
    '<answer>4</answer>'
    >>> strip_thinking("<think>still going") is None
    True
    """
    end = text.rfind("</think>")
    if end >= 0:
        return text[end + len("</think>") :]
    if think_prefilled or "<think>" in text:
        return None
    return text


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox``), braces balanced; None if there is none.

    >>> last_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    """
    start = max(text.rfind(r"\boxed"), text.rfind(r"\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or text[start:brace].strip() not in (r"\boxed", r"\fbox"):
        return None
    depth = 0
    for j in range(brace, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : j].strip()
    return None


def _after_answer_is(text: str) -> str | None:
    """X in the last "answer is X" / "Final Answer: X" (up to the end of that line)."""
    last = None
    for m in _ANSWER_IS_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :]
    line = rest.split("\n", 1)[0].strip()
    if not line and rest.strip():  # "Final Answer:\n\n42"
        line = rest.strip().split("\n", 1)[0].strip()
    return _tidy(line) or None


def _tidy(s: str) -> str:
    """Trim markdown emphasis, a trailing full stop and whole-answer $...$ wrappers."""
    s = s.strip().strip("*_").strip()
    if s.endswith("."):
        s = s[:-1].rstrip()
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$").strip()
    return s


def _clean_block(block: str) -> str:
    """Unwrap an <answer> block: "Final Answer:", \\boxed{}, "the answer is X" inside prose."""
    s = block.strip()
    boxed = last_boxed(s)
    if boxed is not None:
        return boxed
    m = _PREFIX_RE.match(s)
    if m and m.end() > 0:
        s = s[m.end() :]
    else:
        inner = _after_answer_is(s)
        if inner is not None:
            return inner
    return _tidy(s)


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


def extract_answer(text: Any, task: str | None = None, think_prefilled: bool = False) -> str | None:
    """The final answer of a completion (string or conversational), or None when there is none.
    ``think_prefilled``: the prompt ended with ``<think>``, so the completion starts inside the thinking.

    >>> extract_answer("<think>maybe 5</think><answer> Final Answer: $\\\\frac{1}{2}$ </answer>")
    '\\\\frac{1}{2}'
    >>> extract_answer("<think>I get 5</think> so the total is 7 apples", task="count")
    '7'
    >>> extract_answer("<think>The answer is 5, no wait") is None
    True
    """
    text = completion_text(text)
    rest = strip_thinking(text, think_prefilled)
    if rest is None:
        return None
    block = answer_block(rest)
    if block is not None:
        ans = _clean_block(block)
        return ans or None
    boxed = last_boxed(rest)
    if boxed is not None:
        return boxed or None
    said = _after_answer_is(rest)
    if said is not None:
        return said
    if task == "math":
        short = rest.strip()
        if len(short) <= 200 and not _PROSE_RE.search(short):
            return _tidy(short) or None
        last = None
        for m in _INLINE_MATH_RE.finditer(rest):
            last = m
        if last is not None:
            return last.group(1).strip() or None
    if task in NUMERIC_TASKS:
        regex = _COUNT_RE if task == "count" else _NUMBER_RE
        last = None
        for m in regex.finditer(rest):
            last = m
        return last.group().strip() if last else None
    if task == "grounding":
        if "bbox_2d" in rest:
            return rest.strip()
        last = None
        for m in _BOX_RE.finditer(rest):
            last = m
        return last.group() if last else None
    rest = rest.strip()
    if not rest or len(rest) > MAX_FALLBACK_CHARS:
        return None
    return _tidy(rest) or None
