"""One converter per on-disk format: a raw record in, the fields of a canonical sample out.

Each converter reads only what its format defines, checks it, and raises ``DataError`` through ``where`` (so
the file and the record id are always in the message). The shared finishing (grounding boxes following a
resize, metadata encoding, task check) lives in ``loaders.finish_sample``.

Departures from the peers' loaders, on purpose:
- geometry3k (EasyR1): EasyR1 needs an ``<image>`` in the problem; a record without one gets its images
  before the text here (peers' converted data often lacks the marker), but a *wrong* count is an error.
- ShareGPT (LLaMA-Factory): the same strict placeholder check as LLaMA-Factory; the response's
  ``<answer>`` becomes ``solution`` so cold-start data can be scored and filtered by the one scorer.
- MathVista: ``answer`` is the option *text* for multiple choice; the canonical solution is its letter
  (what a model is asked to answer), the text stays in metadata for the official scoring.
- MATH-V (``mathv``): ``solution`` is a worked solution, not the answer: it goes to metadata
  (``solution_text``); ``answer`` is the solution. ``options`` are the choices. The one image goes first and
  the ``<imageK>`` references are rewritten as ``eval run`` does (``prompts.rewrite_image_references``).

Shared rules: a record with options is a ``choice`` task unless its own ``task`` or the recipe's says
otherwise; a record whose text refers to images (``<image>``, ``<image1>``) but that has none is an error,
never a silent text-only sample; a NaN or infinite answer (an empty float cell) is an error, never the
solution ``"nan"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from visionr1.data.errors import Where
from visionr1.data.images import StoredImage, prepare_image
from visionr1.data.prompts import (
    LETTERS,
    VIDEO_PLACEHOLDER,
    answer_from_response,
    assistant_turn,
    content_parts,
    count_placeholders,
    image_references,
    render_template,
    rewrite_image_references,
    strip_placeholders,
    system_message,
    text_part,
    user_prompt,
)
from visionr1.data.spec import DatasetSpec
from visionr1.data.video import read_video_frames


@dataclass
class Converted:
    """What a converter found; ``loaders.finish_sample`` turns it into a row."""

    task: str
    question: str
    prompt: list[dict]
    images: list[StoredImage]
    solution: str
    choices: list[str] | None = None
    completion: list[dict] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# Field helpers
# ----------------------------------------------------------------------------------------------------------

def _required(raw: dict, key: str, where: Where) -> Any:
    value = raw.get(key)
    if value is None:
        raise where.error(key, "missing" if key not in raw else "is null")
    return value


def _text(raw: dict, key: str, where: Where) -> str:
    value = _required(raw, key, where)
    if not isinstance(value, str):
        raise where.error(key, f"expected text, got {type(value).__name__}")
    return value


def _answer_text(raw: dict, key: str, where: Where) -> str:
    """Answers are text in the canonical sample; numbers in the source (MathVista ints, JSON floats) become text."""
    value = _required(raw, key, where)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        if isinstance(value, list):  # MathVista list answers, e.g. [1, 2]
            return str(value)
        raise where.error(key, f"expected text or a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        # pandas writes an empty answer cell of a float column as NaN; str() would make it the answer "nan"
        raise where.error(key, f"is {value} (an empty cell of a numeric column?); give the record a real answer")
    return str(value)


def _choices(raw: dict, where: Where, key: str = "choices") -> list[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):  # some exports store the list JSON-encoded
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise where.error(key, "expected a list of option texts") from None
    if not isinstance(value, list) or not all(isinstance(c, str | int | float) for c in value):
        raise where.error(key, "expected a list of option texts")
    if len(value) > len(LETTERS):
        raise where.error(key, f"{len(value)} options; at most {len(LETTERS)} can be lettered")
    return [str(c) for c in value] or None


def _task(raw: dict, spec: DatasetSpec, default: str, choices: list[str] | None = None) -> str:
    """The record's own task, else the recipe's ``task``, else ``choice`` when the record has options
    (``D. 12`` scored as math against ``D`` would be wrong), else the format's default."""
    return raw.get("task") or spec.task or ("choice" if choices else default)


def _choice_solution(solution: str, choices: list[str] | None, task: str) -> str:
    """A choice answer given as the option's text becomes its letter (what the model is asked to answer)."""
    if task != "choice" or not choices or solution.strip().upper() in LETTERS[: len(choices)]:
        return solution
    for norm in (lambda t: t, lambda t: t.strip().casefold()):
        hits = [i for i, c in enumerate(choices) if norm(c) == norm(solution)]
        if hits:
            return LETTERS[hits[0]]
    return solution


def _media_list(raw: dict, key: str, where: Where) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str | bytes | dict):
        return [value]
    if not isinstance(value, list):
        raise where.error(key, f"expected a list of images, got {type(value).__name__}")
    return value


def _image_key(raw: dict, keys: tuple[str, ...] = ("images", "image")) -> str:
    """The first of ``keys`` the record fills (``images`` and ``image`` are both common), else the first."""
    return next((k for k in keys if raw.get(k) not in (None, "", [])), keys[0])


def _images(raw: dict, key: str, where: Where, spec: DatasetSpec) -> list[StoredImage]:
    return [
        prepare_image(item, where, f"{key}[{k}]", spec.image_max_pixels, spec.verify_images, spec.max_decoded_pixels)
        for k, item in enumerate(_media_list(raw, key, where))
    ]


def _check_references(text: str, num_images: int, where: Where, field_name: str, image_key: str) -> None:
    """Text that refers to images (``<image>``, MATH-V's ``<image1>``) but a record without any: an error,
    never a silent text-only sample (the model would be asked about a picture it never sees)."""
    if num_images:
        return
    refs = count_placeholders(text) + len(image_references(text))
    if refs:
        raise where.error(
            image_key,
            f"the {field_name} refers to {refs} image(s) (<image> / <imageN>) but the record has none; add them "
            f"under `{image_key}`, or map the column that holds them (columns: {{{image_key}: YOUR_COLUMN}})",
        )


def _check_placeholders(text: str, num_images: int, where: Where, field_name: str, strict: bool) -> None:
    """``<image>`` count == image count. Non-strict formats may have no placeholder at all (images first)."""
    n = count_placeholders(text)
    if n == num_images or (n == 0 and not strict):
        return
    raise where.error(
        field_name,
        f"{n} <image> placeholder(s) in the text but {num_images} image(s); they must match one to one",
    )


def _metadata(raw: dict, where: Where, key: str = "metadata") -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise where.error(key, "expected an object (or its JSON text)") from None
    if not isinstance(value, dict):
        raise where.error(key, f"expected an object, got {type(value).__name__}")
    return dict(value)


def _extra_columns(raw: dict, used: set[str]) -> dict[str, Any]:
    """Source columns the format does not define ride along in metadata (ids of the upstream dataset,
    difficulty, source names) instead of being dropped."""
    return {k: v for k, v in raw.items() if k not in used and not isinstance(v, bytes | bytearray)}


# ----------------------------------------------------------------------------------------------------------
# geometry3k: EasyR1 / Vision-R1 RL data (images, problem, answer)
# ----------------------------------------------------------------------------------------------------------

GEOMETRY3K_USED = {"id", "images", "image", "problem", "answer", "choices", "task"}


def convert_geometry3k(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    problem = _text(raw, "problem", where)
    solution = _answer_text(raw, "answer", where)
    choices = _choices(raw, where)
    key = _image_key(raw)
    images = _images(raw, key, where, spec)
    _check_references(problem, len(images), where, "problem", key)
    text = render_template(spec.prompt.template, rewrite_image_references(problem), choices)
    _check_placeholders(text, len(images), where, "problem", strict=False)
    task = _task(raw, spec, "math", choices)
    return Converted(
        task=task,
        question=strip_placeholders(rewrite_image_references(problem)),
        prompt=user_prompt(text, len(images), spec.prompt.system),
        images=images,
        solution=_choice_solution(solution, choices, task),
        choices=choices,
        metadata=_extra_columns(raw, GEOMETRY3K_USED),
    )


# ----------------------------------------------------------------------------------------------------------
# ShareGPT: LLaMA-Factory / Vision-R1-cold SFT data
# ----------------------------------------------------------------------------------------------------------

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
SHAREGPT_USED = {"id", "messages", "conversations", "images", "image", "system", "task", "solution"}


def _turns(raw: dict, where: Where) -> tuple[str, list[tuple[str, str]]]:
    """The conversation as (role, text) pairs, whichever flavour the record uses."""
    if "messages" in raw:
        key, role_key, text_key = "messages", "role", "content"
    elif "conversations" in raw:
        key, role_key, text_key = "conversations", "from", "value"
    else:
        raise where.error("messages", "missing (expected `messages` with role/content or `conversations` with from/value)")
    turns = raw[key]
    if not isinstance(turns, list) or not turns:
        raise where.error(key, "expected a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise where.error(f"{key}[{i}]", f"expected an object, got {type(turn).__name__}")
        role = _ROLES.get(str(turn.get(role_key)))
        if role is None:
            raise where.error(
                f"{key}[{i}].{role_key}", f"unknown role {turn.get(role_key)!r}; expected one of {sorted(_ROLES)}"
            )
        text = turn.get(text_key)
        if not isinstance(text, str):
            raise where.error(f"{key}[{i}].{text_key}", f"expected text, got {type(text).__name__}")
        out.append((role, text))
    return key, out


def convert_sharegpt(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    for media in ("videos", "audios"):
        if raw.get(media):  # would otherwise ride along in metadata, unseen by the model
            raise where.error(media, f"ShareGPT {media} are not supported; use format: video (JSONL with a `video` path)")
    key, turns = _turns(raw, where)
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None or last != len(turns) - 1:
        raise where.error(key, "the conversation must end with an assistant turn (it becomes the completion)")
    response = turns[last][1]
    if count_placeholders(response):
        raise where.error(f"{key}[{last}]", "<image> in the final assistant turn; images belong to the prompt")
    key = _image_key(raw)  # LLaMA-Factory `images`; the LLaVA-CoT part of Vision-R1-cold has `image`
    images = _images(raw, key, where, spec)
    _check_placeholders("".join(t for _, t in turns[:last]), len(images), where, key, strict=True)

    users = [i for i, (role, _) in enumerate(turns[:last]) if role == "user"]
    if not users:
        raise where.error(key, "no user turn before the final assistant turn")
    question = turns[users[-1]][1]
    messages: list[dict] = []
    if raw.get("system") and not any(role == "system" for role, _ in turns):
        messages += system_message(str(raw["system"]))  # LLaMA-Factory's `system` column
    elif spec.prompt.system and not any(role == "system" for role, _ in turns):
        messages += system_message(spec.prompt.system)
    for i, (role, text) in enumerate(turns[:last]):
        if role == "user":
            if i == users[-1] and spec.prompt.apply_to_sharegpt:
                text = render_template(spec.prompt.template, text, None)
            messages.append({"role": "user", "content": content_parts(text)})
        else:
            messages.append({"role": role, "content": [text_part(text)]})

    solution = raw.get("solution")
    return Converted(
        task=_task(raw, spec, "free"),
        question=strip_placeholders(question),
        prompt=messages,
        images=images,
        solution=str(solution) if solution not in (None, "") else answer_from_response(response),
        completion=assistant_turn(response),
        metadata=_extra_columns(raw, SHAREGPT_USED),
    )


# ----------------------------------------------------------------------------------------------------------
# MathVista-style records
# ----------------------------------------------------------------------------------------------------------

MATHVISTA_KEYS = ("answer_type", "precision", "unit", "question_type")


def _letter_of(answer: str, choices: list[str], where: Where) -> str:
    """The letter of the option whose text is ``answer`` (exact, then ignoring case and outer spaces)."""
    for norm in (lambda s: s, lambda s: s.strip().casefold()):
        hits = [i for i, c in enumerate(choices) if norm(c) == norm(answer)]
        if hits:
            return LETTERS[hits[0]]
    raise where.error("answer", f"{answer!r} is not one of the choices {choices}")


def convert_mathvista(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    question = _text(raw, "question", where)
    answer = _answer_text(raw, "answer", where)
    qtype = raw.get("question_type")
    if qtype not in ("multi_choice", "free_form"):
        raise where.error("question_type", f"expected multi_choice or free_form, got {qtype!r}")
    choices = _choices(raw, where)
    # the hub's parquet carries the pixels in `decoded_image`; the JSON release a path in `image`
    key = "decoded_image" if raw.get("decoded_image") is not None else "image"
    if raw.get(key) is None:
        raise where.error("image", "missing (a MathVista record has one image)")
    images = _images(raw, key, where, spec)
    _check_references(question, len(images), where, "question", key)
    if qtype == "multi_choice":
        if not choices:
            raise where.error("choices", "a multi_choice record needs its options")
        task, solution = "choice", _letter_of(answer, choices, where)
    else:
        task, solution = spec.task or "math", answer
    meta = _metadata(raw, where)
    meta.update({k: raw.get(k) for k in MATHVISTA_KEYS})
    meta["answer"] = answer
    if raw.get("pid") is not None:
        meta["pid"] = str(raw["pid"])
    text = render_template(spec.prompt.template, question, choices)
    _check_placeholders(text, len(images), where, "question", strict=False)
    return Converted(
        task=task,
        question=strip_placeholders(question),
        prompt=user_prompt(text, len(images), spec.prompt.system),
        images=images,
        solution=solution,
        choices=choices,
        metadata=meta,
    )


# ----------------------------------------------------------------------------------------------------------
# jsonl: the CONTRACTS format (what make-synthetic and cold start write)
# ----------------------------------------------------------------------------------------------------------

def _completion(raw: dict, where: Where) -> list[dict] | None:
    value = raw.get("completion")
    if value is None:
        return None
    if isinstance(value, str):
        return assistant_turn(value)
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        out = []
        for m in value:
            content = m.get("content")
            if isinstance(content, str):
                content = [text_part(content)]
            elif isinstance(content, list):
                content = [text_part(str(p.get("text", ""))) for p in content if isinstance(p, dict)]
            else:
                raise where.error("completion", "each message needs a text content")
            out.append({"role": str(m.get("role", "assistant")), "content": content})
        return out
    raise where.error("completion", "expected the assistant's text or a list of messages")


def convert_jsonl(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    question = _text(raw, "question", where)
    solution = _answer_text(raw, "solution", where)
    choices = _choices(raw, where)
    if choices is None and raw.get("options"):  # MATH-V's field: never drop the options silently
        raise where.error(
            "options", "the jsonl format reads `choices`; for MATH-V data use format: mathv, or map the column "
            "(columns: {choices: options})",
        )
    task = _task(raw, spec, "", choices)
    if not task:
        raise where.error("task", "missing: set it in the record, or `task` in the recipe's dataset section")
    key = _image_key(raw)
    images = _images(raw, key, where, spec)
    _check_references(question, len(images), where, "question", key)
    text = render_template(spec.prompt.template, rewrite_image_references(question), choices)
    _check_placeholders(text, len(images), where, "question", strict=False)
    return Converted(
        task=task,
        question=strip_placeholders(rewrite_image_references(question)),
        prompt=user_prompt(text, len(images), spec.prompt.system),
        images=images,
        solution=_choice_solution(solution, choices, task),
        choices=choices,
        completion=_completion(raw, where),
        metadata=_metadata(raw, where),
    )


# ----------------------------------------------------------------------------------------------------------
# mathv: MATH-V as published (test.jsonl + images/, or the hub's parquet with decoded_image)
# ----------------------------------------------------------------------------------------------------------

MATHV_USED = {"id", "question", "options", "image", "images", "decoded_image", "answer", "solution", "task"}


def convert_mathv(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    question = _text(raw, "question", where)
    answer = _answer_text(raw, "answer", where)
    choices = _choices(raw, where, "options")
    key = _image_key(raw, ("decoded_image", "image", "images"))  # the hub's parquet: pixels in decoded_image
    images = _images(raw, key, where, spec)
    _check_references(question, len(images), where, "question", "image")
    if count_placeholders(question):
        raise where.error("question", "MATH-V questions name images as <image1>..<imageN>, not <image>")
    text = render_template(spec.prompt.template, rewrite_image_references(question), choices)
    task = _task(raw, spec, "math", choices)
    meta = _extra_columns(raw, MATHV_USED)
    if raw.get("solution") not in (None, ""):
        meta["solution_text"] = str(raw["solution"])  # the worked solution: SFT material, not the answer
    return Converted(
        task=task,
        question=strip_placeholders(rewrite_image_references(question)),
        prompt=user_prompt(text, len(images), spec.prompt.system),  # the image first, as MATH-V shows it
        images=images,
        solution=_choice_solution(answer, choices, task),
        choices=choices,
        metadata=meta,
    )


# ----------------------------------------------------------------------------------------------------------
# video: JSONL records with a video path; frames become a multi-image prompt (see video.py for why)
# ----------------------------------------------------------------------------------------------------------

def convert_video(raw: dict, where: Where, spec: DatasetSpec) -> Converted:
    path = _text(raw, "video", where)
    question = _text(raw, "question", where).replace(VIDEO_PLACEHOLDER, "").strip()
    solution = _answer_text(raw, "solution", where)
    choices = _choices(raw, where)
    v = spec.video
    frames, info = read_video_frames(where.resolve(path, "video"), where, "video", v.num_frames, v.fps, v.max_pixels)
    text = render_template(spec.prompt.template, question, choices)
    if count_placeholders(text):
        raise where.error("question", "<image> in a video question; the frames are placed by the loader")
    meta = _metadata(raw, where)
    meta.update(info)
    return Converted(
        task=_task(raw, spec, "choice" if choices else "free"),
        question=strip_placeholders(question),
        prompt=user_prompt(text, len(frames), spec.prompt.system, prefix=v.intro),
        images=frames,
        solution=solution,
        choices=choices,
        metadata=meta,
    )


@dataclass(frozen=True)
class Format:
    """How to find (extensions), check (required columns: any one of each group) and convert a format."""

    exts: tuple[str, ...]
    required: tuple[tuple[str, ...], ...]
    convert: Any
    id_keys: tuple[str, ...] = ("id",)


FORMATS: dict[str, Format] = {
    "geometry3k": Format(("parquet",), (("problem",), ("answer",), ("images", "image")), convert_geometry3k),
    "sharegpt": Format(("json", "jsonl"), (("messages", "conversations"),), convert_sharegpt),
    "mathvista": Format(
        ("json", "jsonl", "parquet"),
        (("question",), ("answer",), ("question_type",), ("image", "decoded_image")),
        convert_mathvista,
        id_keys=("pid", "id"),
    ),
    "jsonl": Format(("jsonl",), (("question",), ("solution",)), convert_jsonl),
    "mathv": Format(("jsonl", "json", "parquet"), (("question",), ("answer",)), convert_mathv),
    "video": Format(("jsonl", "json"), (("video",), ("question",), ("solution",)), convert_video),
}
