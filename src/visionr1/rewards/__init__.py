"""Verifiable rewards: answer extraction, per-task scoring, TRL reward functions and their registry.

Modules: ``extract`` (the final answer of a completion), ``mathcheck`` / ``latexnum`` / ``symbolic`` (math
equivalence: pure-python fast path, then math-verify in killable workers), ``scoring`` (the one scorer shared
by RL, evaluation and cold-start filters), ``functions`` (TRL reward functions), ``registry`` (names, weights,
``file.py:function`` plugins), ``judge`` (optional LLM judge), ``cli`` (``visionr1 score-rewards``).

Nothing is imported eagerly (the symbolic worker starts as ``python -m visionr1.rewards.symbolic``); the most
used names are available lazily from here.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "extract_answer": "extract",
    "score_answer": "scoring",
    "is_correct": "scoring",
    "correct_many": "scoring",
    "get_reward_function": "registry",
    "build_reward_funcs": "registry",
    "format_reward": "functions",
    "accuracy_reward": "functions",
    "hard_format_result_reward": "functions",
    "iou_reward": "functions",
    "length_reward": "functions",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"visionr1.rewards.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'visionr1.rewards' has no attribute {name!r}")


__all__ = list(_LAZY)
