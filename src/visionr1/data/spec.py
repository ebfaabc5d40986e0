"""The recipe section that names a dataset and how to turn it into canonical samples.

``visionr1.data.loaders.load_samples(spec)`` reads it; ``visionr1 data inspect`` shows what it yields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from visionr1.config.base import StrictModel
from visionr1.config.loader import RecipePath
from visionr1.data.render import RenderSpec

Task = Literal["math", "choice", "count", "grounding", "detection", "free"]
DataFormat = Literal["geometry3k", "sharegpt", "mathvista", "mathv", "jsonl", "video"]

# The image budget when nothing sets one: 512 image tokens of 28x28 pixels (Qwen2/2.5-VL). In a recipe the
# budget is model.max_pixels, and the datasets follow it (visionr1.recipe resolves it; see data/budget.py).
DEFAULT_MAX_PIXELS = 512 * 28 * 28

# Vision-R1's RL prompts carry no system prompt; the answer format lives in the user turn.
DEFAULT_TEMPLATE = (
    "{question}\n"
    "Think step by step inside <think> </think> tags, then give the final answer inside <answer> </answer> tags."
)


class PromptSpec(StrictModel):
    template: str = Field(
        DEFAULT_TEMPLATE,
        description="User-turn template: {question}, {choices} (lettered options; appended to the question if absent).",
    )
    system: str | None = Field(
        None, description="System prompt; null for none (Vision-R1 uses none in RL). ShareGPT records keep their own."
    )
    apply_to_sharegpt: bool = Field(
        False,
        description="ShareGPT data: also apply the template to the last user turn (default: the turn as written).",
    )

    @field_validator("template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("the template must contain {question} (and may contain {choices})")
        return v


class VideoSpec(StrictModel):
    num_frames: int = Field(16, ge=1, le=256, description="Frames sampled uniformly per video (Open-R1-Video: 16).")
    fps: float | None = Field(
        None, gt=0, description="If set, sample at this rate instead (capped at num_frames frames)."
    )
    max_pixels: int = Field(
        128 * 28 * 28, ge=28 * 28, description="Each frame is resized (aspect kept) to at most this many pixels."
    )
    intro: str = Field(
        "The frames of a video, in order:", description="Text placed before the frames in the user turn."
    )


class DatasetSpec(StrictModel):
    format: DataFormat = Field(
        ..., description="On-disk format: geometry3k | sharegpt | mathvista | mathv (MATH-V) | jsonl | video."
    )
    path: RecipePath = Field(..., description="File or directory to read (parquet, JSON or JSONL; relative to the recipe).")
    split: str | None = Field(None, description="Split to read when the path holds several (e.g. train, test).")
    task: Task | None = Field(
        None,
        description="Task of records that carry none (math | choice | count | grounding | detection | free); "
        "defaults: geometry3k math, sharegpt/video free; mathvista: from question_type.",
    )
    image_root: RecipePath | None = Field(
        None, description="Directory that relative image paths are resolved against (default: the data file's)."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Source column for a field the format reads, e.g. {problem: question, answer: label, images: img} "
        "(EasyR1's prompt_key / answer_key / image_key).",
    )
    max_pixels: int | None = Field(
        None,
        ge=28 * 28,
        description="Images with more pixels are resized down, aspect kept. null = the run's budget "
        "(model.max_pixels; 401408 = 512 tokens on its own); if set, it must equal model.max_pixels.",
    )
    max_decoded_pixels: int = Field(
        40_000_000, ge=28 * 28,
        description="Refuse images that would decode to more pixels (decompression bombs); JPEGs decode reduced.",
    )
    allow_outside_root: bool = Field(
        False,
        description="Allow image/video paths outside the dataset root (../, absolute, ~); off: such paths are errors.",
    )
    limit: int | None = Field(
        None, ge=1, description="Keep at most this many samples, taken after shuffling (skipped records don't count)."
    )
    shuffle_seed: int | None = Field(None, description="Shuffle records with this seed before `limit`.")
    skip_bad_records: bool = Field(
        False,
        description="Skip (count, log) bad records (missing/corrupt media, bad fields) instead of failing; "
        "a missing column or an empty dataset always fails.",
    )
    verify_images: bool = Field(
        True, description="Decode every image at load time so corrupt files fail here; false = headers only (faster)."
    )
    prompt: PromptSpec = Field(default_factory=PromptSpec, description="How questions become user turns.")
    render_question: bool = Field(
        False, description="R1-Vision: draw each question (LaTeX included, matplotlib mathtext) as an image "
        "that takes its place in the prompt; see `visionr1 data render`.",
    )
    render: RenderSpec = Field(default_factory=RenderSpec, description="How questions are drawn (render_question).")
    video: VideoSpec = Field(default_factory=VideoSpec, description="Frame sampling for video records.")

    @property
    def image_max_pixels(self) -> int:
        """The resize budget the loader applies (``max_pixels``, else the default)."""
        return self.max_pixels if self.max_pixels is not None else DEFAULT_MAX_PIXELS
