"""One module per benchmark; :func:`get_benchmark` by name.

| name        | official scorer reproduced                                   | official use of an LLM          |
|-------------|--------------------------------------------------------------|---------------------------------|
| mathvista   | lupantech/MathVista ``calculate_score.py``                   | answer extraction               |
| mathverse   | ZrrSkywalker/MathVerse (rule judge; LLM stages optional)     | extraction and 0/1 judging      |
| mmmath      | kge-sun/MM-Math ``eval.py`` (AutoScoringJudge)               | none (outcome evaluation)       |
| mathvision  | mathllm/MATH-V ``evaluation/evaluate.py``                    | none                            |
| dynamath    | DynaMath/DynaMath ``opensource_json_eval.py`` + worst case   | none (VLMEvalKit adds one)      |
| wemath      | We-Math/We-Math ``four_dimensional_metrics.py``              | none                            |
| synthetic   | visionr1.rewards (the RL reward's scorer)                    | none                            |
"""

from __future__ import annotations

import difflib

from visionr1.evaluation.benchmarks.base import Benchmark, Item, ItemResult, Sample, ScoringContext
from visionr1.evaluation.benchmarks.dynamath import DynaMath
from visionr1.evaluation.benchmarks.mathverse import MathVerse
from visionr1.evaluation.benchmarks.mathvision import MathVision
from visionr1.evaluation.benchmarks.mathvista import MathVista
from visionr1.evaluation.benchmarks.mmmath import MMMath
from visionr1.evaluation.benchmarks.synthetic import Synthetic
from visionr1.evaluation.benchmarks.wemath import WeMath
from visionr1.evaluation.records import EvalError

BENCHMARKS: dict[str, type[Benchmark]] = {
    cls.name: cls for cls in (MathVista, MathVerse, MMMath, MathVision, DynaMath, WeMath, Synthetic)
}


def get_benchmark(name: str) -> Benchmark:
    """A fresh benchmark object by name (case and ``-``/``_`` insensitive: ``MM-Math`` -> ``mmmath``)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BENCHMARKS:
        close = difflib.get_close_matches(key, BENCHMARKS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise EvalError(f"unknown benchmark {name!r}: {hint}choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]()


__all__ = ["BENCHMARKS", "Benchmark", "Item", "ItemResult", "Sample", "ScoringContext", "get_benchmark"]
