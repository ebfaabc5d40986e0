"""The evaluation schema: how responses are decoded (``visionr1 eval run``'s options) and, around it, the
held-out evaluation section of a pipeline recipe (``eval:``).

One schema for both, so the decoding a pipeline evaluates its stages with is the decoding ``eval run`` takes
on its command line, field for field, with the same defaults: the Vision-R1 paper's (temperature 0.6, top_p
0.95, up to 16,384 new tokens).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from visionr1.config.base import StrictModel
from visionr1.config.loader import RecipePath


class DecodingConfig(StrictModel):
    """How responses are decoded (``eval run --max-new-tokens --temperature --top-p --batch-size --seed``)."""

    max_new_tokens: int = Field(16384, ge=1, description="Most new tokens per response (Vision-R1: 16384).")
    temperature: float = Field(0.6, ge=0, description="Sampling temperature; 0 for greedy (Vision-R1: 0.6).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass (Vision-R1: 0.95).")
    batch_size: int = Field(8, ge=1, description="Prompts per generate call.")
    seed: int = Field(0, description="Sampling seed (pass i of a held-out evaluation uses seed + i).")


class EvalSpec(DecodingConfig):
    """A pipeline's held-out evaluation: the base model and every stage's final weights on the same items,
    decoded the same way (``eval:`` of a pipeline recipe). With ``benchmark``, each checkpoint is evaluated
    as ``visionr1 eval run -b BENCHMARK --data DATA`` evaluates it: the benchmark's records, its prompts and
    its official scoring (``lenient`` / ``strict`` as ``--lenient`` / ``--strict``)."""

    benchmark: str | None = Field(
        None, description="A benchmark (mathvista | mathverse | mmmath | mathvision | dynamath | wemath | synthetic): "
        "eval.data holds its records as published, and each checkpoint is scored by its official rules, as eval run -b "
        "does; null = the held-out canonical items, scored by the rewards' scorer."
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="With benchmark: the benchmark's field names for the data's own columns, "
        "{benchmark field: column in eval.data}, e.g. {answer: gt_answer}."
    )
    lenient: list[str] = Field(default_factory=list, description="With benchmark: named leniencies (eval run --lenient).")
    strict: list[str] = Field(default_factory=list, description="With benchmark: named strict readings (eval run --strict).")

    data: RecipePath | None = Field(
        None, description="Held-out items (canonical JSONL); default: the data section's test split (RUN/data/test.jsonl)."
    )
    split: Literal["heldout", "validation", "both"] = Field(
        "heldout", description="Which items to evaluate on: heldout (the reported numbers), validation (for choosing "
        "settings), or both; each number in a report names its split."
    )
    validation_data: RecipePath | None = Field(
        None, description="Validation items (canonical JSONL); default: the data section's validation split "
        "(RUN/data/val.jsonl, when data.validation_items > 0)."
    )
    samples: int = Field(4, ge=1, description="Sampled passes over the held-out items; accuracy is their mean (pass@1).")
    greedy: bool = Field(True, description="Also decode greedily once and report it beside the sampled accuracy.")
    examples: int = Field(2, ge=0, description="Held-out completions per stage quoted in a report (visionr1 demo).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype of the evaluated checkpoints (eval run --dtype); auto = the checkpoint's."
    )
    device: str | None = Field(None, description="cuda, cuda:1, cpu, ... (eval run --device); null = cuda when available.")

    @model_validator(mode="after")
    def _benchmark_options(self) -> EvalSpec:
        if self.benchmark is None:
            extra = [k for k in ("columns", "lenient", "strict") if getattr(self, k)]
            if extra:
                raise ValueError(f"eval.{extra[0]} applies to a benchmark's scoring: set eval.benchmark (e.g. mathvision)")
            return self
        from visionr1.evaluation.benchmarks import get_benchmark
        from visionr1.evaluation.benchmarks.base import ScoringContext
        from visionr1.evaluation.records import EvalError

        try:
            get_benchmark(self.benchmark)
            ScoringContext(leniencies=frozenset(self.lenient), strict=frozenset(self.strict))
        except EvalError as exc:
            raise ValueError(f"eval: {exc}") from None
        if self.split != "heldout":
            raise ValueError(f"eval.split={self.split}: a benchmark is evaluated on its own records (eval.data); "
                             "the validation split holds canonical items: use split: heldout")
        return self
