"""The Insight-V data recipe: input records, named backends (the cold start's), the reasoning generator, the
scoring agent, and what the two SFT sets hold. Same machinery as every recipe: strict keys with suggestions,
``include:``, dotted overrides, paths relative to the recipe file."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from visionr1.coldstart.config import Backend, BackendRunRecipe, SyntheticInput
from visionr1.config.base import StrictModel, SubPathError
from visionr1.config.loader import load

SUMMARY_KINDS = ("correct", "wrong_step", "wrong_final", "generated_wrong")


class ReasonerSpec(StrictModel):
    backend: str = Field(..., description="Backend (under `backends`) that writes the reasoning steps.")
    chains: int = Field(4, ge=1, le=64, description="Chains sampled per question (Insight-V samples several and keeps the best).")
    max_steps: int = Field(12, ge=1, le=64, description="Most steps per chain; a chain that has not summarized by then is dropped as unfinished.")
    system: str | None = Field(None, description="System prompt of every step request; null for none.")
    max_tokens: int = Field(1024, ge=1, description="Most new tokens per step (Insight-V's generator: 300 per step).")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature (Insight-V: 0.7); chains differ only by sampling, so 0 makes them equal (oracle aside).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")


class ScorerSpec(StrictModel):
    backend: str = Field(..., description="Backend of the scoring agent that rates each chain with the right answer 1-100.")
    system: str | None = Field(None, description="System prompt; null for none.")
    max_tokens: int = Field(16, ge=1, description="Most new tokens of a rating (the reply is one integer).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0 = greedy).")


class SummarySetSpec(StrictModel):
    kinds: list[Literal["correct", "wrong_step", "wrong_final", "generated_wrong"]] = Field(
        default_factory=lambda: list(SUMMARY_KINDS),
        description="Examples per kept record: correct (the best chain, trusted) | wrong_step (one intermediate "
        "step changed) | wrong_final (a wrong final answer) | generated_wrong (a sampled chain the answer filter "
        "dropped); the flawed ones are answered from the ground truth.",
    )

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"list each kind once, at least one (got {v})")
        return v


class InsightDataRecipe(BackendRunRecipe):
    name: str = Field(..., description="Run name; default output directory runs/insight/<name>.")
    backends: dict[str, Backend] = Field(..., min_length=1, description="Named backends (openai | local | oracle), as in the cold start.")
    reasoner: ReasonerSpec = Field(..., description="The reasoning generator: structured steps until it summarizes.")
    scorer: ScorerSpec | None = Field(None, description="The scoring agent; null: no rating, the first chain with the right answer is kept.")
    summary: SummarySetSpec = Field(default_factory=SummarySetSpec, description="What the summary agent's SFT set holds.")
    max_in_flight: int = Field(16, ge=1, description="Records being processed at once (backends bound requests).")

    @model_validator(mode="after")
    def _backends_declared(self) -> InsightDataRecipe:
        for section in ("reasoner", "scorer"):
            spec = getattr(self, section)
            if spec is None:
                continue
            if spec.backend not in self.backends:
                close = difflib.get_close_matches(spec.backend, list(self.backends), n=1, cutoff=0.5)
                hint = f"did you mean {close[0]}?" if close else f"declared backends: {', '.join(self.backends)}"
                raise SubPathError(f"{section}.backend", f"unknown backend {spec.backend!r}; {hint}")
            if self.backends[spec.backend].type == "oracle" and not (
                    isinstance(self.input, SyntheticInput) or self.input.format == "jsonl"):
                raise SubPathError(f"{section}.backend", "the oracle backend needs synthetic records "
                                   "(input.format synthetic, or the jsonl that make-synthetic writes)")
        return self

    def backend_of(self, section: str) -> str:
        return getattr(self, section).backend


def load_insight_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> InsightDataRecipe:
    """Load, include, override and validate an Insight-V data recipe (``visionr1.config.loader``); paths
    resolve against the file."""
    return load(InsightDataRecipe, path, overrides)
