"""Reward functions, usable directly as TRL ``reward_funcs``.

TRL 1.16's GRPOTrainer calls each one as
``fn(prompts=..., completions=..., completion_ids=..., **dataset_columns, trainer_state=..., log_extra=...,
log_metric=...)`` with one list entry per completion, and logs the result under ``fn.__name__``. So every
function takes ``completions`` (strings, or conversational lists of message dicts), the dataset columns it
needs (``solution``, ``task``, ``choices``) as lists, swallows the rest through ``**kwargs``, and returns one
float per completion. A scalar ``task`` (a single string) is broadcast, for callers outside TRL.

- ``format_reward``: 1 iff the completion is exactly ``<think>...</think>`` then one non-empty
  ``<answer>...</answer>``, only whitespace around; ``think_prefilled=True`` for prompts that end with
  ``<think>`` (base-model RL, VisualThinker-R1-Zero), where the completion starts inside the thinking.
- ``accuracy_reward``: the scorer of scoring.py (0/1; for grounding the IoU when >= 0.5, else 0).
- ``hard_format_result_reward``: Vision-R1's reward, 1 iff format and correct (grounding: IoU >= 0.5). A
  truncated completion has no ``</answer>`` and scores 0, which is what suppresses over-long thinking.
- ``iou_reward``: the continuous IoU for grounding rows (VLM-R1's shaping reward), 0 for other tasks.
- ``length_reward``: VisualThinker-R1-Zero's +0.001 per token (an ablation: it raised length, not accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visionr1.rewards.extract import completion_text, extract_answer
from visionr1.rewards.scoring import answer_iou, completion_scores, passes, resolve_task
from visionr1.rewards.symbolic import DEFAULT_TIMEOUT_S

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def check_format(text: str, think_prefilled: bool = False) -> bool:
    """Exactly one think block, then one non-empty answer block, only whitespace around. Linear time.

    >>> check_format("<think>\\nlet me see\\n</think>\\n<answer> 42 </answer>\\n")
    True
    >>> check_format("<think>a</think><answer>1</answer><answer>2</answer>")
    False
    >>> check_format("some thinking</think><answer>4</answer>", think_prefilled=True)
    True
    """
    if not isinstance(text, str):
        return False
    counts = {t: text.count(t) for t in _TAGS}
    if counts["</think>"] != 1 or counts["<answer>"] != 1 or counts["</answer>"] != 1:
        return False
    if counts["<think>"] != (0 if think_prefilled else 1):
        return False
    think_close = text.index("</think>")
    if not think_prefilled:
        think_open = text.index("<think>")
        if text[:think_open].strip() or think_open > think_close:
            return False
    ans_open, ans_close = text.index("<answer>"), text.index("</answer>")
    if not think_close < ans_open < ans_close:
        return False
    if text[think_close + len("</think>") : ans_open].strip() or text[ans_close + len("</answer>") :].strip():
        return False
    return bool(text[ans_open + len("<answer>") : ans_close].strip())


def _texts(completions: Sequence[Any]) -> list[str]:
    return [completion_text(c) for c in completions]


def _column(value: Any, n: int, name: str) -> list:
    """A per-row list from a dataset column (list) or a scalar broadcast to all rows."""
    if value is None or isinstance(value, (str, int, float)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"reward column {name!r} has {len(value)} values for {n} completions")
    return value


def _choices_column(choices: Any, n: int) -> list:
    # a single list of option strings is one row's choices broadcast, not a column
    if isinstance(choices, (list, tuple)) and choices and all(isinstance(c, str) for c in choices) and len(choices) != n:
        return [list(choices)] * n
    return _column(choices, n, "choices")


def format_reward(completions: Sequence[Any], think_prefilled: bool = False, **kwargs: Any) -> list[float]:
    """1.0 when the completion has the <think>...</think><answer>...</answer> format, else 0.0."""
    return [float(check_format(t, think_prefilled)) for t in _texts(completions)]


def accuracy_reward(
    completions: Sequence[Any],
    solution: Sequence[Any],
    task: Sequence[str | None] | str | None = None,
    choices: Sequence[Any] | None = None,
    think_prefilled: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> list[float]:
    """Correctness of the final answer: 0/1, or for grounding the IoU when >= 0.5 (else 0). ``timeout`` bounds each symbolic check;
    ``think_prefilled`` as in ``format_reward`` (then nothing before ``</think>`` is read as the answer)."""
    n = len(completions)
    return completion_scores(
        _texts(completions), _column(solution, n, "solution"), _column(task, n, "task"), _choices_column(choices, n),
        timeout=timeout, think_prefilled=think_prefilled,
    )


def hard_format_result_reward(
    completions: Sequence[Any],
    solution: Sequence[Any],
    task: Sequence[str | None] | str | None = None,
    choices: Sequence[Any] | None = None,
    think_prefilled: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> list[float]:
    """Vision-R1: 1.0 iff the format is right AND the answer is correct (grounding: IoU >= 0.5), else 0.0."""
    n = len(completions)
    texts = _texts(completions)
    tasks = _column(task, n, "task")
    fmt = [check_format(t, think_prefilled) for t in texts]
    rows = [i for i in range(n) if fmt[i]]  # only well-formed completions need scoring
    sols, chs = _column(solution, n, "solution"), _choices_column(choices, n)
    scores = completion_scores(
        [texts[i] for i in rows], [sols[i] for i in rows], [tasks[i] for i in rows], [chs[i] for i in rows],
        timeout=timeout, think_prefilled=think_prefilled,
    )
    out = [0.0] * n
    for i, s in zip(rows, scores, strict=True):
        out[i] = float(passes(s, resolve_task(tasks[i], sols[i], chs[i])))
    return out


def iou_reward(
    completions: Sequence[Any], solution: Sequence[Any], task: Sequence[str | None] | str | None = None, **kwargs: Any
) -> list[float]:
    """IoU of the answer box with the gold box (VLM-R1's grounding reward); 0.0 for non-grounding rows."""
    n = len(completions)
    tasks, sols = _column(task, n, "task"), _column(solution, n, "solution")
    out = []
    for text, sol, t in zip(_texts(completions), sols, tasks, strict=True):
        if resolve_task(t, sol, None) != "grounding":
            out.append(0.0)
            continue
        ans = extract_answer(text, "grounding")
        out.append(answer_iou(ans, sol) if ans is not None else 0.0)
    return out


def length_reward(
    completions: Sequence[Any],
    per_token: float = 0.001,
    tokenizer: Any = None,
    completion_ids: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> list[float]:
    """``per_token`` x the completion's length. Length is counted, in order of preference, from
    ``completion_ids`` (the exact generated tokens, which TRL passes), else with ``tokenizer`` (anything with
    ``encode``, bound through the registry's kwargs), else as whitespace-separated words -- a proxy that
    undercounts tokens by roughly 1.3x for English and far more for LaTeX."""
    texts = _texts(completions)
    if completion_ids is not None and len(completion_ids) == len(texts):
        lengths = [len(ids) for ids in completion_ids]
    elif tokenizer is not None:
        lengths = [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    else:
        lengths = [len(t.split()) for t in texts]
    return [per_token * n for n in lengths]
