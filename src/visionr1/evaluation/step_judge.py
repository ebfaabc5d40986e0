"""Step-level evaluation in the spirit of VRC-Bench (LlamaV-o1): an LLM judge scores every reasoning step.

Final-answer accuracy says nothing about *how* an answer was reached; VRC-Bench scores the steps themselves.
For each kept response the reasoning (the ``<REASONING>`` stage of a staged answer, else the ``<think>`` block,
else the text before the answer) is cut into steps -- numbered lines or "Step k" markers when the model wrote
them, else lines, else sentences -- and the judge, through any OpenAI-compatible endpoint (the ``eval run
--judge-url`` one), rates each step 0-10 for **faithfulness** to the image description and **logic** (does it
follow from the question and the earlier steps). Scores are stored per item in ``predictions.jsonl`` (so a
resumed run does not pay for them twice) and averaged in ``summary.json["step_judge"]`` beside the accuracy.

Where we depart from VRC-Bench: its judge (GPT-4o) sees the image and a reference reasoning chain; ours is
text-only, so faithfulness is judged against a ground-truth description where the data has one (synthetic
tasks: ``metadata.description``), else against the model's own caption (staged ``<CAPTION>``), else not at
all (``faithfulness: null``, counted in ``reference``). The judge answers one compact line per step, which
small local judges follow more reliably than JSON.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

MAX_STEPS = 30  # steps sent to the judge; the rest are merged into the last one (recorded as "merged")

_TAG = r"<{0}>(.*?)(?:</{0}>|$)"
_NUMBERED = re.compile(r"^\s*(?:step\s*\d+\s*[:.)-]|\d+\s*[.)]|[-*]\s)", re.IGNORECASE | re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_REPLY_LINE = re.compile(r"^\s*(?:step\s*)?(\d+)\s*[:.)-]?\s*(-?\d+(?:\.\d+)?|n/?a|null|none)[\s,;/]+(-?\d+(?:\.\d+)?)",
                         re.IGNORECASE | re.MULTILINE)


def reasoning_text(response: str) -> str:
    """Where the steps are: the staged REASONING section, else the thinking, else what precedes the answer.

    >>> reasoning_text("<think>a. b.</think><answer>3</answer>")
    'a. b.'
    """
    for tag in ("REASONING", "think"):
        m = re.search(_TAG.format(tag), response, re.DOTALL | re.IGNORECASE)
        if m and m.group(1).strip():
            inner = re.search(_TAG.format("REASONING"), m.group(1), re.DOTALL)  # staged inside <think>
            return (inner.group(1) if inner else m.group(1)).strip()
    return re.split(r"<answer>", response, maxsplit=1, flags=re.IGNORECASE)[0].strip()


def split_steps(text: str) -> list[str]:
    """Reasoning -> steps: numbered/bulleted items, else non-empty lines, else sentences.

    >>> split_steps("I count.\\n1. red: no\\n2. green: yes, 1\\nSo 1.")
    ['I count.', '1. red: no', '2. green: yes, 1\\nSo 1.']
    >>> split_steps("First x. Then y.")
    ['First x.', 'Then y.']
    """
    text = text.strip()
    if not text:
        return []
    starts = [m.start() for m in _NUMBERED.finditer(text)]
    if len(starts) >= 2:
        cuts = ([0] if starts[0] > 0 else []) + starts + [len(text)]
        return [s for s in (text[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False)) if s]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) >= 2:
        return lines
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _caption(response: str) -> str | None:
    m = re.search(_TAG.format("CAPTION"), response, re.DOTALL)
    return m.group(1).strip() or None if m else None


_PROMPT = """You grade the reasoning steps of an answer to a question about an image.
Question: {question}
{reference}
Reasoning steps:
{steps}
Final answer given: {answer}

For every step, rate from 0 to 10: faithfulness (does it agree with the image description?{no_ref}) and logic \
(does it follow from the question and the earlier steps, with correct arithmetic?). Reply with exactly one line \
per step, in order, as: <step number> <faithfulness> <logic>"""


def judge_steps(judge: Any, info: Any, response: str) -> dict[str, Any]:
    """The judge's per-step scores for one response (0-1 each), their means, and what faithfulness was
    judged against (``reference``: ground_truth | model_caption | none)."""
    from visionr1.rewards.extract import extract_answer

    steps = split_steps(reasoning_text(response))
    merged = max(0, len(steps) - MAX_STEPS)
    if merged:
        steps = steps[: MAX_STEPS - 1] + ["\n".join(steps[MAX_STEPS - 1 :])]
    if info.description:
        ref, reference = "ground_truth", f"Image description (ground truth): {info.description}\n"
    elif _caption(response):
        ref, reference = "model_caption", f"Image description (the model's own): {_caption(response)}\n"
    else:
        ref, reference = "none", "No image description is available.\n"
    result: dict[str, Any] = {"n_steps": len(steps), "merged": merged, "reference": ref, "steps": [],
                              "faithfulness": None, "logic": None, "parsed": False}
    if not steps:
        return result
    prompt = _PROMPT.format(
        question=info.question, reference=reference, answer=extract_answer(response, info.task) or "(none)",
        steps="\n".join(f"{k}. {s}" for k, s in enumerate(steps, 1)),
        no_ref="" if ref != "none" else " write n/a, there is no description",
    )
    reply = _complete(judge, prompt, 16 * len(steps) + 64)
    scores: dict[int, tuple[float | None, float]] = {}
    for m in _REPLY_LINE.finditer(reply):
        k = int(m.group(1))
        faith = None if not re.match(r"-?\d", m.group(2)) else _unit(float(m.group(2)))
        scores.setdefault(k, (faith, _unit(float(m.group(3)))))
    result["raw"] = reply[:2000]
    if not all(k in scores for k in range(1, len(steps) + 1)):
        return result  # unparsed: recorded, counted in the summary, never guessed
    result["parsed"] = True
    result["steps"] = [{"text": s, "faithfulness": None if ref == "none" else scores[k][0], "logic": scores[k][1]}
                       for k, s in enumerate(steps, 1)]
    faith = [st["faithfulness"] for st in result["steps"] if st["faithfulness"] is not None]
    result["faithfulness"] = sum(faith) / len(faith) if faith else None
    result["logic"] = sum(st["logic"] for st in result["steps"]) / len(steps)
    return result


def _unit(x: float) -> float:
    return min(10.0, max(0.0, x)) / 10.0


def _complete(judge: Any, prompt: str, max_tokens: int) -> str:
    """Ask the judge with room for one line per step (its default budget fits one short verdict)."""
    config = getattr(judge, "config", None)
    if config is None or getattr(config, "max_tokens", max_tokens) >= max_tokens:
        return judge.complete(prompt)
    judge.config = dataclasses.replace(config, max_tokens=max_tokens)
    try:
        return judge.complete(prompt)
    finally:
        judge.config = config


def summarize_steps(results: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """``summary.json["step_judge"]``: means over the items the judge's reply could be read for."""
    done = [r for r in results if r]
    parsed = [r for r in done if r.get("parsed")]
    faith = [r["faithfulness"] for r in parsed if r.get("faithfulness") is not None]
    logic = [r["logic"] for r in parsed if r.get("logic") is not None]
    return {
        "items": len(done),
        "parsed": len(parsed),
        "unparsed": len(done) - len(parsed),
        "mean_steps": sum(r["n_steps"] for r in done) / len(done) if done else None,
        "mean_faithfulness": sum(faith) / len(faith) if faith else None,
        "mean_logic": sum(logic) / len(logic) if logic else None,
        "reference": dict(Counter(r.get("reference") for r in done)),
        "scale": "0-1 (judge's 0-10 / 10), mean over steps then over items",
    }
