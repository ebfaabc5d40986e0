"""Insight-V's structured reasoning chains: steps, their JSON wire form, their text form, and flaws.

A chain is a list of :class:`Step`: a brief summary of the step, the detailed reasoning, and the next action
(``continue`` or ``summarize``; the summarizing step also carries the answer). The reasoning generator writes
one step per request as a JSON object (Insight-V's generator uses ``title`` / ``content`` / ``next_action`` with
``final_answer``; those spellings are accepted too). The reasoning agent is trained on the chain's text form
(:func:`render_chain`), which ends in our R1 format's ``<answer>`` so the reasoner alone can be scored -- a
departure from Insight-V, whose reasoning agent leaves the answer to the summary agent.

The flaws (:func:`flaw_chain`) make the summary agent's negative examples: a wrong intermediate step, or a
wrong final step (a wrong answer). They are text edits (a number or a relation changed), so they work on
model-written chains as well as on the oracle's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

NEXT_ACTIONS = ("continue", "summarize")
_ACTION_SPELLINGS = {"continue": "continue", "summarize": "summarize", "summarise": "summarize",
                     "final_answer": "summarize", "final answer": "summarize", "answer": "summarize"}
_KEY_SPELLINGS = {"summary": ("summary", "title"), "reasoning": ("reasoning", "content")}


class StepParseError(ValueError):
    """A generator reply that is not one step; ``reason`` is a short code the report counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Step:
    summary: str  # a few words: what this step does
    reasoning: str  # the detailed reasoning of the step
    next_action: str = "continue"  # continue | summarize
    answer: str | None = None  # the final answer, on the summarizing step

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Step:
        return cls(obj["summary"], obj["reasoning"], obj.get("next_action", "continue"), obj.get("answer"))


def parse_step(text: str) -> Step:
    """One step from a generator's reply: the first JSON object in it (code fences and words around it are
    tolerated), with a summary, a reasoning and a next action.

    >>> parse_step('```json\\n{"title": "Read", "content": "The red number is 6.", "next_action": "continue"}\\n```')
    Step(summary='Read', reasoning='The red number is 6.', next_action='continue', answer=None)
    >>> parse_step('{"summary": "Add", "reasoning": "6 + 7 = 13", "next_action": "final_answer", "answer": 13}').answer
    '13'
    >>> parse_step("I think the answer is 4")
    Traceback (most recent call last):
    ...
    visionr1.insight.chain.StepParseError: not_json: no JSON object in the reply: 'I think the answer is 4'
    """
    start = text.find("{")
    if start < 0:
        raise StepParseError("not_json", f"no JSON object in the reply: {text[:120]!r}")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise StepParseError("not_json", f"{exc.msg} at char {exc.pos}: {text[start:start + 120]!r}") from None
    if not isinstance(obj, dict):
        raise StepParseError("not_json", f"expected an object, got {type(obj).__name__}")
    fields: dict[str, str] = {}
    for name, keys in _KEY_SPELLINGS.items():
        value = next((obj[k] for k in keys if k in obj), None)
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise StepParseError("missing_field", f"no non-empty {name!r} (or {keys[1]!r}) in {sorted(obj)}")
        fields[name] = str(value).strip()
    action = _ACTION_SPELLINGS.get(str(obj.get("next_action", "")).strip().lower())
    if action is None:
        raise StepParseError("bad_next_action", f"next_action {obj.get('next_action')!r}; expected continue or summarize")
    answer = obj.get("answer")
    answer = None if answer is None or not str(answer).strip() else str(answer).strip()
    return Step(fields["summary"], fields["reasoning"], action, answer if action == "summarize" else None)


def steps_text(steps: list[Step]) -> str:
    """The steps as the reasoning agent writes them (no answer tag): the text the summary agent reads.

    >>> print(steps_text([Step("Read", "6 and 7."), Step("Add", "6 + 7 = 13.", "summarize", "13")]))
    Step 1: Read
    6 and 7.
    Next action: continue
    <BLANKLINE>
    Step 2: Add
    6 + 7 = 13.
    Next action: summarize
    """
    return "\n\n".join(f"Step {i}: {s.summary}\n{s.reasoning}\nNext action: {s.next_action}"
                       for i, s in enumerate(steps, 1))


def render_chain(steps: list[Step], answer: str | None) -> str:
    """The reasoning agent's response: the steps inside ``<think>``, then the answer in ``<answer>``."""
    tail = f"\n<answer>{answer}</answer>" if answer is not None else ""
    return f"<think>\n{steps_text(steps)}\n</think>{tail}"


_STEP_RE = re.compile(r"^Step (\d+): (.*)$", re.M)
VERDICT_RE = re.compile(r"verdict\s*:\s*\**\s*(correct|flawed)", re.I)


def count_steps(text: str) -> int:
    """Steps in a chain's text form (what the eval log records about a model's chain).

    >>> count_steps(render_chain([Step("a", "b"), Step("c", "d", "summarize", "1")], "1"))
    2
    """
    return len(_STEP_RE.findall(text))


def parse_verdict(text: str) -> str | None:
    """The summary agent's verdict on the chain: ``correct``, ``flawed``, or None when it gave none.

    >>> parse_verdict("<think>Verdict: flawed. Step 2 is wrong.</think><answer>3</answer>"), parse_verdict("3")
    ('flawed', None)
    """
    m = VERDICT_RE.search(text or "")
    return m.group(1).lower() if m else None


# ----------------------------------------------------------------------------------------------------------
# Flaws: a wrong intermediate step, a wrong final step
# ----------------------------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]\d)")
_ENUM_RE = re.compile(r"^\s*\d+[.)]\s+")
_SWAPS = (("left", "right"), ("above", "below"), ("larger", "smaller"), ("more", "fewer"), ("counts", "does not count"))


def wrong_answer(answer: str, task: str, choices: list[str] | None) -> str:
    """A definitely different answer of the same kind (the wrong final step's).

    >>> wrong_answer("3", "count", None), wrong_answer("C", "choice", ["a", "b", "c"]), wrong_answer("[1, 2, 11, 12]", "grounding", None)
    ('4', 'A', '[11, 2, 21, 12]')
    """
    a = answer.strip()
    if task == "choice" and choices and len(a) == 1 and a.isalpha():
        return chr(ord("A") + (ord(a.upper()) - ord("A") + 1) % len(choices))
    if task == "grounding":
        nums = [float(x) for x in _NUMBER_RE.findall(a)]
        if len(nums) == 4:
            w = max(nums[2] - nums[0], 1.0)  # shifted by its own width: IoU 0
            box = [nums[0] + w, nums[1], nums[2] + w, nums[3]]
            return "[" + ", ".join(f"{v:g}" for v in box) + "]"
    m = list(_NUMBER_RE.finditer(a))
    if m:
        last = m[-1]
        value = float(last.group())
        new = f"{value + 1:g}" if "." not in last.group() else f"{value + 0.5:g}"
        return a[: last.start()] + new + a[last.end():]
    return f"not {a}"


def _perturb_text(text: str, salt: str) -> str | None:
    """The text with one number changed (+2), else one relation word swapped; None when neither is there."""
    lead = _ENUM_RE.match(text)  # "3. The blue circle ...": the enumerator is no claim to falsify
    nums = [m for m in _NUMBER_RE.finditer(text) if not (lead and m.start() < lead.end())]
    if nums:
        m = nums[int(hashlib.sha256(salt.encode()).hexdigest(), 16) % len(nums)]
        value = float(m.group())
        return text[: m.start()] + f"{value + 2:g}" + text[m.end():]
    for a, b in _SWAPS:
        for x, y in ((a, b), (b, a)):
            if re.search(rf"\b{x}\b", text):
                return re.sub(rf"\b{x}\b", y, text, count=1)
    return None


def flaw_chain(steps: list[Step], answer: str, kind: str, task: str, choices: list[str] | None,
               salt: str = "") -> tuple[list[Step], str, int] | None:
    """A flawed copy of a (correct) chain: ``(steps, answer, index of the wrong step)``, or None when the chain
    offers no place for this flaw (a one-step chain has no intermediate step).

    ``wrong_step``: one intermediate step's reasoning is changed (a number, else a relation), the answer kept;
    ``wrong_final``: the final step concludes a wrong answer.
    """
    out = [Step(s.summary, s.reasoning, s.next_action, s.answer) for s in steps]
    if kind == "wrong_step":
        for j in _order(len(steps) - 1, salt):
            changed = _perturb_text(out[j].reasoning, f"{salt}/{j}")
            if changed is not None and changed != out[j].reasoning:
                out[j].reasoning = changed
                return out, answer, j
        return None
    if kind == "wrong_final":
        bad = wrong_answer(answer, task, choices)
        last = out[-1]
        pattern = re.compile(rf"(?<![\w.]){re.escape(answer)}(?!\w)")
        last.reasoning = (pattern.sub(bad, last.reasoning) if pattern.search(last.reasoning)
                          else f"{last.reasoning} So the answer is {bad}.")
        last.answer, last.next_action = bad, "summarize"
        return out, bad, len(out) - 1
    raise ValueError(f"unknown flaw {kind!r}: wrong_step | wrong_final")


def _order(n: int, salt: str) -> list[int]:
    """0..n-1 rotated by a hash of ``salt``: which intermediate step is tried first is fixed per record."""
    if n <= 0:
        return []
    k = int(hashlib.sha256(salt.encode()).hexdigest(), 16) % n
    return list(range(k, n)) + list(range(k))


# ----------------------------------------------------------------------------------------------------------
# The oracle's chains (synthetic tasks only)
# ----------------------------------------------------------------------------------------------------------

ORACLE_VARIANTS = ("full", "terse", "wrong_step", "wrong_final")


def brief(line: str, words: int = 8) -> str:
    """A step's summary from its reasoning: the first clause, at most ``words`` words.

    >>> brief("First I read the numbers in the image: the green number is 6; the red number is 7.")
    'First I read the numbers in the image'
    >>> brief("2. The blue square on the left does not count.")
    'The blue square on the left does not...'
    """
    clause = re.split(r"[.:;]\s", _ENUM_RE.sub("", line).strip() + " ", maxsplit=1)[0].strip().rstrip(".")
    parts = clause.split()
    return " ".join(parts[:words]) + ("..." if len(parts) > words else "")


def oracle_chain(reasoning: str, solution: str, task: str, choices: list[str] | None, variant: str,
                 salt: str) -> tuple[list[Step], str]:
    """A chain built from a synthetic record's rule-derived reasoning (one line per step):

    ``full`` every line a step (what a perfect reasoner writes); ``terse`` only the first and last lines (right
    answer, little reasoning: the scoring agent should rate it low); ``wrong_step`` a wrong intermediate line
    with the right answer; ``wrong_final`` a wrong answer (the answer filter drops it).
    """
    lines = [ln.strip() for ln in reasoning.strip().splitlines() if ln.strip()]
    steps = [Step(brief(ln), ln) for ln in lines]
    steps[-1].next_action, steps[-1].answer = "summarize", solution
    if variant == "terse" and len(steps) > 2:
        steps = [steps[0], steps[-1]]
    elif variant in ("wrong_step", "wrong_final"):
        flawed = flaw_chain(steps, solution, variant, task, choices, salt)
        if flawed is not None:
            steps, answer, _ = flawed
            return steps, answer
    elif variant not in ORACLE_VARIANTS:
        raise ValueError(f"unknown oracle variant {variant!r}; one of {', '.join(ORACLE_VARIANTS)}")
    return steps, solution


def oracle_variant(record_id: str, chain: int) -> str:
    """The variant of a record's ``chain``-th oracle chain: every 4 consecutive chains are the 4 variants,
    in an order fixed by the record id (so 2 chains per record give a varied mix over the data)."""
    offset = hashlib.sha256(record_id.encode()).digest()[0]
    return ORACLE_VARIANTS[(offset + chain) % len(ORACLE_VARIANTS)]


def oracle_score(steps: list[Step], reasoning: str) -> int:
    """1-100 from the ground truth: the share of the chain's lines that are lines of the rule-derived reasoning,
    over the longer of the two (a wrong line and a missing line both cost).

    >>> gold = "a is 1.\\nb is 2.\\nSo the answer is 3."
    >>> oracle_score([Step("x", "a is 1."), Step("y", "b is 2."), Step("z", "So the answer is 3.")], gold)
    100
    >>> oracle_score([Step("x", "a is 1."), Step("z", "So the answer is 3.")], gold)
    67
    """
    gold = {ln.strip() for ln in reasoning.splitlines() if ln.strip()}
    lines = [ln.strip() for s in steps for ln in s.reasoning.splitlines() if ln.strip()]
    hits = sum(1 for ln in lines if ln in gold)
    return max(1, min(100, round(100 * hits / max(len(lines), len(gold), 1))))
