"""Evaluation: the multimodal math benchmarks scored as their official scripts do, and the synthetic tasks
scored by the reward library (one scorer for RL and evaluation).

- :func:`score_predictions` -- score responses produced anywhere (``visionr1 eval score``);
- :func:`run_benchmark` -- generate, resumably, then score (``visionr1 eval run``);
- :func:`evaluate_samples` -- accuracy / format / length of a model on canonical samples, in-process (the
  demo and training callbacks);
- :func:`get_benchmark` -- one object per benchmark (records, prompts, per-item scoring, summaries).

Imports are lazy so ``visionr1 --help`` does not pay for torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DecodingConfig", "evaluate_samples", "get_benchmark", "run_benchmark", "score_predictions"]


def __getattr__(name: str) -> Any:
    if name in ("DecodingConfig", "evaluate_samples", "run_benchmark"):
        from visionr1.evaluation import run

        return getattr(run, name)
    if name == "score_predictions":
        from visionr1.evaluation.score import score_predictions

        return score_predictions
    if name == "get_benchmark":
        from visionr1.evaluation.benchmarks import get_benchmark

        return get_benchmark
    raise AttributeError(f"module 'visionr1.evaluation' has no attribute {name!r}")
