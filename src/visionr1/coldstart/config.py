"""The cold-start recipe: input data, named backends, the three generation steps, filters, output.

Read like every recipe (``visionr1.config.loader``): strict keys with suggestions, ``include:``, dotted
overrides, paths relative to the recipe file by the type of their field. Backends are declared once by name and each step names
the one it uses, so a local model shared by steps 1 and 2 is loaded once.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from visionr1.coldstart import templates
from visionr1.config.base import RecipeError, StrictModel, SubPathError
from visionr1.config.loader import ModelRef, RecipeFile, load
from visionr1.data.spec import DataFormat, DatasetSpec
from visionr1.runtime import CPU_THREADS_HELP, CpuThreads

# ----------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------


class OpenAIBackendSpec(StrictModel):
    type: Literal["openai"] = Field("openai", description="Any OpenAI-compatible /chat/completions endpoint (vLLM, SGLang, transformers serve, hosted APIs).")
    base_url: str = Field(..., description="Endpoint root including /v1, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(..., description="Model name sent in every request (as the server knows it).")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the API key (sent as Bearer); null: no key.")
    concurrency: int = Field(16, ge=1, description="Requests in flight at once to this endpoint.")
    max_retries: int = Field(5, ge=0, description="Retries after 429 / 5xx / connection errors / timeouts, with exponential backoff.")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay in seconds; doubles each retry (jittered, Retry-After honoured).")
    backoff_max_s: float = Field(60.0, gt=0, description="Upper bound of one retry delay.")
    timeout_s: float = Field(600.0, gt=0, description="Total deadline of one request in seconds, however slowly the server sends (long R1 reasoning takes minutes).")
    max_response_mb: float = Field(16.0, gt=0, description="Largest response body accepted, in MiB; a bigger one fails the request as response_too_large.")
    image_format: Literal["png", "jpeg"] = Field("png", description="Encoding of the images sent as data URLs.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra JSON fields of every request (e.g. top_k, chat_template_kwargs).")


class LocalBackendSpec(StrictModel):
    type: Literal["local"] = Field("local", description="In-process transformers model (visionr1.inference, batched generate).")
    model: ModelRef = Field(..., description="Local model directory (a saved checkpoint; relative to the recipe), or tiny:FAMILY/SIZE.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights dtype.")
    device: str | None = Field(None, description="cuda, cuda:1, cpu ...; null = cuda when available.")
    batch_size: int = Field(8, ge=1, description="Prompts per generate call.")
    batch_wait_s: float = Field(0.05, ge=0, description="How long a batch waits for more prompts before generating.")


class OracleBackendSpec(StrictModel):
    type: Literal["oracle"] = Field("oracle", description="Synthetic tasks only: returns the record's ground-truth description/reasoning (metadata). Labelled oracle in every output.")
    max_reflections: int = Field(
        0, ge=0, le=8,
        description="Step 3 appends 0..N R1-style re-checks ('Wait, let me check again...'), N drawn per record from its id: long, reflective thinking like Vision-R1-cold's.",
    )


Backend = Annotated[OpenAIBackendSpec | LocalBackendSpec | OracleBackendSpec, Field(discriminator="type")]
BACKEND_TYPES = {"openai": OpenAIBackendSpec, "local": LocalBackendSpec, "oracle": OracleBackendSpec}

# Fields that change how a backend is driven but not what it generates: excluded from cache fingerprints, so
# raising concurrency or moving the server to another host does not invalidate finished work.
RUNTIME_FIELDS = {"base_url", "api_key_env", "concurrency", "max_retries", "backoff_s", "backoff_max_s",
                  "timeout_s", "max_response_mb", "batch_size", "batch_wait_s", "device"}

# ----------------------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------------------


class StepSpec(StrictModel):
    backend: str = Field(..., description="Name of a backend declared under `backends`.")
    prompt_file: RecipeFile | None = Field(None, description="Template file replacing the shipped one (relative to the recipe).")
    prompt: str | None = Field(None, description="Inline template replacing the shipped one (exclusive with prompt_file).")
    system: str | None = Field(None, description="System prompt; null for none.")
    max_tokens: int = Field(2048, ge=1, description="Maximum new tokens per generation.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")

    @model_validator(mode="after")
    def _one_prompt_source(self) -> StepSpec:
        if self.prompt is not None and self.prompt_file is not None:
            raise ValueError("set either prompt (inline) or prompt_file, not both")
        return self


class DescriptionStepSpec(StepSpec):
    variant: Literal["detailed", "formal", "caption_first"] = Field(
        "detailed",
        description="detailed (Vision-R1) | formal (R1-Onevision: objects, text, numbers, relations) | "
        "caption_first (R1-Vision: the caption also opens the thinking).",
    )
    caption_prefix: str = Field(
        "Let me first look at the image: ", description="caption_first only: words that introduce the caption in the thinking."
    )


# ----------------------------------------------------------------------------------------------------------
# Filters and output
# ----------------------------------------------------------------------------------------------------------

Script = Literal["latin", "cjk", "cyrillic", "arabic", "devanagari", "thai", "hebrew"]


class RewriteRule(StrictModel):
    pattern: str = Field(..., description="Regular expression (case-insensitive) to replace.")
    replacement: str = Field(..., description="Replacement text (capitalised when the match was).")


class FilterSpec(StrictModel):
    check_answer: bool = Field(True, description="Drop samples whose final answer is not correct (visionr1.rewards.scoring.is_correct).")
    min_think_chars: int = Field(20, ge=0, description="Drop thinking shorter than this many characters.")
    max_response_chars: int = Field(64000, ge=1, description="Drop responses longer than this (~16K tokens at 4 chars/token).")
    repetition_ngram: int = Field(8, ge=2, description="Word n-gram size used to detect repetition loops.")
    max_repeated_ngram_fraction: float = Field(
        0.5, gt=0, le=1, description="Drop when more than this share of the thinking's n-grams repeat earlier ones (a loop)."
    )
    allowed_scripts: list[Script] = Field(
        default_factory=lambda: ["latin"], description="Scripts the response may use besides those of the question."
    )
    max_foreign_script_fraction: float = Field(
        0.01, ge=0, le=1, description="Drop when more than this share of letters are in another script (language mixing)."
    )
    rewrite_description_references: bool = Field(
        True, description="Rewrite 'the description says', 'as described', ... so the reasoning reads as looking at the image."
    )
    extra_rewrites: list[RewriteRule] = Field(default_factory=list, description="Rewrites applied after the built-in ones.")
    drop_unrewritten_references: bool = Field(
        True, description="Drop samples still mentioning a description/caption after rewriting."
    )


class OutputSpec(StrictModel):
    sharegpt: bool = Field(True, description="Write sharegpt.json (LLaMA-Factory) + dataset_info.json.")
    canonical: bool = Field(True, description="Write cold_start.jsonl (canonical schema: prompt, completion, image paths).")
    user_template: str = Field("{question}{choices}", description="User turn of the SFT data; <image> placeholders are prepended.")
    system: str | None = Field(None, description="System prompt written into the SFT data; null for none.")


class SyntheticInput(StrictModel):
    format: Literal["synthetic"] = Field("synthetic", description="Generate records with visionr1.tasks.synthetic first (demo).")
    task: Literal["counting", "arithmetic", "choice", "grounding", "spatial"] = Field(
        "counting", description="Synthetic task: counting | arithmetic | choice | grounding | spatial."
    )
    n: int = Field(32, ge=1, description="Number of records to generate.")
    seed: int = Field(0, description="Generator seed.")
    difficulty: Literal["easy", "medium", "hard"] | None = Field(
        None, description="make_synthetic's difficulty preset: easy | medium | hard; null = its default."
    )


Input = Annotated[DatasetSpec | SyntheticInput, Field(discriminator="format")]
INPUT_TYPES = {**{f: DatasetSpec for f in typing.get_args(DataFormat)}, "synthetic": SyntheticInput}

def _validate_tagged(raw: Any, types: dict[str, type[StrictModel]], tag: str, prefix: str,
                     context: dict[str, Any] | None) -> Any:
    """Validate a tagged section with the model its tag names, so an error reads ``backends.mllm.concurency:
    unknown key; did you mean concurrency?`` (pydantic would put the tag value into the path)."""
    if not isinstance(raw, dict):
        return raw
    kind = raw.get(tag)
    model = types.get(kind)
    if model is None:
        if kind is None:
            raise SubPathError(f"{prefix}{tag}", f"missing; one of {', '.join(types)}")
        close = difflib.get_close_matches(str(kind), list(types), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else f"one of {', '.join(types)}"
        raise SubPathError(f"{prefix}{tag}", f"unknown {tag} {kind!r}; {hint}")
    try:
        return model.model_validate(raw, context=context)  # the loader's context: paths resolve in here too
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden":
            parent: Any = model
            for part in loc[:-1]:  # the model that holds the unknown key
                field = parent.model_fields.get(part) if isinstance(parent, type) else None
                parent = field.annotation if field is not None else None
            valid = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, StrictModel) else []
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
            msg = f"unknown key; did you mean {close[0]}?" if close else f"unknown key; valid keys: {', '.join(valid)}"
        else:
            got = err.get("input")
            msg = err["msg"].removeprefix("Value error, ") + ("" if isinstance(got, dict | list) else f" (got {got!r})")
        raise SubPathError(prefix + ".".join(loc), msg) from None


# ----------------------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------------------

STEPS = ("pseudo_cot", "description", "reasoning")


class BackendRunRecipe(StrictModel):
    """What a run of records through named generation backends shares (the cold start, Insight-V's data):
    name, output directory, input records, the backends and how many records are in flight."""

    name: str = Field(..., description="Run name; default output directory runs/<command>/<name>.")
    output_dir: str | None = Field(None, description="Output directory; `--output-dir` overrides.")
    input: Input = Field(..., description="(image, question, answer) records: any DatasetSpec, or format: synthetic.")
    backends: dict[str, Backend] = Field(..., min_length=1, description="Named generation backends the steps refer to.")
    max_in_flight: int = Field(64, ge=1, description="Records being processed at once (bounds memory; backends bound requests).")
    retry_failed: bool = Field(True, description="On a re-run, retry records whose generation failed (finished records are always skipped).")
    cpu_threads: CpuThreads = Field("auto", description=CPU_THREADS_HELP + " (local backends only); `--cpu-threads` overrides.")

    @field_validator("input", mode="before")
    @classmethod
    def _validate_input(cls, value: Any, info: ValidationInfo) -> Any:
        return _validate_tagged(value, INPUT_TYPES, "format", "", info.context)

    @field_validator("backends", mode="before")
    @classmethod
    def _validate_backends(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: _validate_tagged(raw, BACKEND_TYPES, "type", f"{name}.", info.context)
                for name, raw in value.items()}


class ColdstartRecipe(BackendRunRecipe):
    name: str = Field(..., description="Run name; default output directory runs/coldstart/<name>.")
    pseudo_cot: StepSpec = Field(..., description="Step 1: MLLM writes caption + reasoning from image, question and answer.")
    description: DescriptionStepSpec = Field(..., description="Step 2: MLLM writes a detailed description from image, question and pseudo-CoT.")
    reasoning: StepSpec = Field(..., description="Step 3: text-only reasoner answers from description + question, thinking at length.")
    filters: FilterSpec = Field(default_factory=FilterSpec, description="Step 4: which samples are kept.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="Step 5: what is written.")

    @field_validator("pseudo_cot", "description", "reasoning")
    @classmethod
    def _backend_declared(cls, step: StepSpec, info: ValidationInfo) -> StepSpec:
        if "backends" not in info.data:
            return step  # the backends section itself is invalid: that error is reported
        backends = info.data["backends"]
        if step.backend not in backends:
            close = difflib.get_close_matches(step.backend, list(backends), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else f"; declared backends: {', '.join(backends) or 'none'}"
            raise SubPathError("backend", f"unknown backend {step.backend!r}{hint}")
        return step

    @model_validator(mode="after")
    def _oracle_needs_synthetic_records(self) -> ColdstartRecipe:
        for step in STEPS:
            spec = getattr(self, step)
            if spec.backend in self.backends and self.backends[spec.backend].type == "oracle":
                if not isinstance(self.input, SyntheticInput) and self.input.format != "jsonl":
                    raise ValueError(f"{step}.backend: the oracle backend needs synthetic records (input.format synthetic or jsonl)")
        return self

    def step(self, name: str) -> StepSpec:
        return getattr(self, name)

    def after_load(self, source: str) -> None:
        """Called by the loader: the prompt templates exist and hold their placeholders (fail now, not after
        the first 1000 requests)."""
        resolve_templates(self, source=source)


def load_coldstart_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ColdstartRecipe:
    """Load, include, override and validate a cold-start recipe (``visionr1.config.loader``): paths resolve
    against the file, prompt templates are checked."""
    return load(ColdstartRecipe, path, overrides)


def resolve_templates(recipe: ColdstartRecipe, source: str = "<recipe>") -> dict[str, str]:
    """The template text of each step (recipe override or shipped file), checked for required placeholders."""
    out = {}
    for step in STEPS:
        spec = recipe.step(step)
        where = f"{source}: {step}"
        if spec.prompt is not None:
            text, origin = spec.prompt, f"{step}.prompt"
        elif spec.prompt_file is not None:
            f = Path(spec.prompt_file)
            if not f.is_file():
                raise RecipeError(f"{where}.prompt_file: file not found: {f}")
            text, origin = f.read_text(encoding="utf-8"), str(f)
        else:
            variant = spec.variant if isinstance(spec, DescriptionStepSpec) else None
            text, origin = templates.default_template(step, variant), "shipped template"
        missing = templates.missing_placeholders(step, text)
        if missing:
            names = ", ".join("{" + m + "}" for m in missing)
            raise RecipeError(
                f"{where}: template ({origin}) lacks {names}; available placeholders: "
                + ", ".join("{" + p + "}" for p in templates.PLACEHOLDERS)
            )
        out[step] = text
    return out
