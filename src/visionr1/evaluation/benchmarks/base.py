"""What every benchmark module provides, and the pieces they share.

A benchmark turns its published records into :class:`Item` s (one id each), builds the prompt for ``eval run``
and scores one response: *extract* an answer, *normalise* it the way the benchmark's official script does,
*judge* it. Each item records which rule found its answer; the summary counts them.

One policy for every benchmark (docs/evaluation.md):

- Truncation: closed ``<think>`` blocks are dropped; an unclosed ``<think>`` (a truncated response) is *read*,
  as the official pipelines' LLM extractors read the whole response ("...so the answer is 5" counts). The RL
  reward keeps hard formatting (a truncated completion has no answer); see rewards/extract.py.
- What the official rules see: X when the response is in the project's own answer format
  (:func:`project_answer`: one closed ``<answer>`` block, unwrapped as the rewards unwrap it), on every
  benchmark; otherwise :func:`official_response` (the response under that policy, the content of its last
  ``<answer>`` block standing for it when it has one) read exactly as the official script reads it, quirks
  included. MathVista and MathVerse officially extract with an LLM; without one, the rewards' extraction
  stands in for it and hands the official normalisation the forms an LLM would write (``0.333`` for
  ``\\frac{1}{3}``, ``5`` for ``5 cm``). A prediction that carries the official pipeline's own
  ``extraction`` is scored from exactly that (:meth:`Benchmark.score_prediction`).
- Leniencies (``LENIENCIES``) are named, off by default, and never score an item lower than the default.
- Last resorts (the last number, the whole text, a math span in prose): with ``--judge-mode fallback`` they
  go to the LLM; without a judge they are kept. Either way they are counted in the summary.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from visionr1.evaluation.judge import EvalJudge
from visionr1.evaluation.records import EvalError, PublishedRecord, read_records
from visionr1.rewards.extract import (
    ANSWER_BLOCK_RE,
    LAST_RESORTS,
    LETTERS,
    extract_with_source,
    strip_thinking,
)

# Where an item's answer came from (items.jsonl "source"; summary "scoring.extraction"): "answer_format" the
# project's own <answer> block (project_answer), "published_extraction" the prediction's own `extraction`
# field (the official pipeline's extraction step, e.g. MathVista's GPT-4 extraction, handed on as it is).
SOURCES = ("answer_format", "published_extraction", "answer_rules", "benchmark_rules", "llm", "none", "missing")


@dataclass
class Item:
    pid: str
    record: dict[str, Any]
    file: Path  # the data file; relative image paths resolve against its folder


@dataclass
class ItemResult:
    pid: str
    extracted: Any  # the answer found in the response (None: nothing found)
    normalized: Any  # after the benchmark's normalisation, what was compared with the ground truth
    correct: bool
    source: str  # one of SOURCES
    judge: str = "rules"  # "rules" or "llm": what decided `correct`
    info: dict[str, Any] = field(default_factory=dict)  # benchmark-specific extras

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["info"]:
            del out["info"]
        return out


# Named departures from the official results, off by default (``ScoringContext.leniencies``).
LENIENCIES = {
    "rewards_extraction": "MATH-V, DynaMath, We-Math, MM-Math: where the official reading scores a reply wrong, "
    "the rewards' extraction (boxed, 'answer is', the last number, ...) is tried too, so a model is read at "
    "evaluation as it was rewarded; never scores lower than the default",
    "option_latex": "MATH-V: an option text with a degree sign ($40^{\\circ}$) is compared by value; the "
    "official parser (latex2sympy2) fails on it, so '40' for that option is officially wrong",
    "partial_choice": "MathVerse: an answer naming several options ('C and D') counts for its first one; the "
    "official judge wants a complete match",
}

# Named strict readings, off by default (``ScoringContext.strict``): the default follows the official pipeline
# as closely as rules can, and these score more harshly than it does.
STRICT = {
    "no_answer": "MathVista: a multiple-choice reply in which the rules find no answer (only a list of options, a "
    "refusal, two options given as one answer, no option named, a program that printed nothing) scores wrong; "
    "by default what the reply offers is mapped onto the nearest option by edit distance, as calculate_score.py "
    "maps GPT-4's extraction of such a reply",
}


@dataclass
class ScoringContext:
    """The optional LLM and when to use it: ``fallback`` = where no rule finds an answer, or only a last
    resort does; ``official`` = wherever the benchmark's official pipeline uses an LLM (MathVista extraction,
    MathVerse both stages). ``leniencies``: names from ``LENIENCIES``; ``strict``: names from ``STRICT``."""

    judge: EvalJudge | None = None
    leniencies: frozenset[str] = frozenset()
    strict: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.leniencies) - set(LENIENCIES)
        if unknown:
            raise EvalError(f"unknown leniency {sorted(unknown)}: choose from {', '.join(LENIENCIES)}")
        unknown = set(self.strict) - set(STRICT)
        if unknown:
            raise EvalError(f"unknown strict option {sorted(unknown)}: choose from {', '.join(STRICT)}")
        self.leniencies = frozenset(self.leniencies)
        self.strict = frozenset(self.strict)

    @property
    def mode(self) -> str:
        return self.judge.mode if self.judge is not None else "off"

    def lenient(self, name: str) -> bool:
        return name in self.leniencies

    def is_strict(self, name: str) -> bool:
        return name in self.strict

    def wants_llm(self, how: str | None) -> bool:
        """Whether an answer found by rule ``how`` (None: nothing found) goes to the LLM in fallback mode."""
        return self.mode == "fallback" and (how is None or how in LAST_RESORTS)

    def llm(self, prompt: str) -> str:
        assert self.judge is not None
        return self.judge.complete(prompt)


@dataclass
class Sample:
    """One prompt to generate from: the canonical ``prompt`` messages and their images (PIL, RGB)."""

    pid: str
    prompt: list[dict[str, Any]]
    images: list[Any]


class Benchmark:
    """Base class; subclasses set the class attributes and implement :meth:`score` and :meth:`question`."""

    name: ClassVar[str]
    id_field: ClassVar[str]  # the benchmark's own id field (accepted in predictions besides "pid")
    image_fields: ClassVar[tuple[str, ...]] = ("decoded_image", "image")  # first present one is used
    binary_fields: ClassVar[tuple[str, ...]] = ("decoded_image",)  # parquet columns scoring does not read
    llm_use: ClassVar[str] = "none"  # what the official pipeline uses an LLM for (reported in the summary)

    # ---- records -> items -------------------------------------------------------------------------------
    def load(self, path: Path, for_generation: bool = False, columns: dict[str, str] | None = None) -> list[Item]:
        """The records of ``path`` as items. ``columns``: ``{benchmark field: the data's column}``, for data
        whose columns are named otherwise (a pipeline's ``eval.columns``)."""
        raws = read_records(Path(path), skip_columns=() if for_generation else self.binary_fields)
        for r in raws:
            rename_columns(r, columns or {})
        items = [Item(self.record_id(r), r.data, r.file) for r in raws]
        dup = [pid for pid, n in Counter(i.pid for i in items).items() if n > 1]
        if dup:
            raise EvalError(
                f"{path}: {len(dup)} ids occur more than once (e.g. {dup[:5]}); is this the {self.name} data, "
                f"and is each record in it once?"
            )
        return items

    def record_id(self, raw: PublishedRecord) -> str:
        value = raw.data.get(self.id_field)
        if value is None:
            value = raw.key
        if value is None:
            raise EvalError(f"{raw.file}: record {raw.index}: no {self.id_field!r} field; is this {self.name} data?")
        return str(value)

    def prediction_id(self, pred: dict[str, Any]) -> str | None:
        value = pred.get("pid", pred.get(self.id_field))
        return None if value is None else str(value)

    def require(self, item: Item, *fields: str) -> None:
        missing = [f for f in fields if f not in item.record]
        if missing:
            raise EvalError(f"{item.file}: record {item.pid}: missing field(s) {missing}; is this {self.name} data?")

    # ---- prompts (eval run) -----------------------------------------------------------------------------
    def question(self, item: Item) -> str:
        raise NotImplementedError

    def choices(self, item: Item) -> list[str] | None:
        """Options the prompt template lists (None when the question text already carries them)."""
        return None

    def samples(self, items: Sequence[Item], template: str, max_pixels: int, image_root: Path | None) -> list[Sample]:
        from visionr1.data.prompts import render_template, user_prompt

        out = []
        for item in items:
            images = load_item_images(item, self.image_fields, max_pixels, image_root)
            question = self.question(item)
            if not question.strip():  # e.g. geometry3k's `problem` column read as this benchmark's data
                raise EvalError(f"{item.file}: record {item.pid}: no question text (fields: {sorted(item.record)[:12]}); "
                                f"is this {self.name} data in its published format?")
            choices = self.choices(item)
            if choices and len(choices) > len(LETTERS):
                raise EvalError(f"{item.file}: record {item.pid}: {len(choices)} options; at most {len(LETTERS)} "
                                "can be lettered")
            text = render_template(template, question, choices)
            out.append(Sample(item.pid, user_prompt(text, len(images)), images))
        return out

    # ---- scoring ----------------------------------------------------------------------------------------
    def score_prediction(self, item: Item, prediction: dict[str, Any], ctx: ScoringContext) -> ItemResult:
        """Score one prediction line. Benchmarks whose official pipeline has an extraction step override this
        to hand a prediction's own ``extraction`` to the official normalisation as it is."""
        return self.score(item, str(prediction.get("response") or ""), ctx)

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        raise NotImplementedError

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        """Benchmark-specific breakdowns and metrics: ``{"breakdowns": ..., "metrics": ...}``."""
        return {}


# ----------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------

def rename_columns(raw: PublishedRecord, columns: dict[str, str]) -> None:
    """Give the record the benchmark's field names: ``columns`` maps a benchmark field to the data's column."""
    for field_name, column in columns.items():
        if column not in raw.data:
            raise EvalError(f"{raw.file}: record {raw.index}: no column {column!r} (eval.columns maps {field_name!r} to "
                            f"it); its columns are {sorted(raw.data)[:12]}")
        raw.data[field_name] = raw.data[column]


def answer_region(text: str) -> str:
    """Where a final answer is written: inside the last ``<answer>`` tag after the thinking, else the text
    after the thinking (:func:`visionr1.rewards.extract.strip_thinking`; an unclosed thought is read), else
    everything.

    >>> answer_region("<think>\\\\boxed{1}</think><answer>\\\\boxed{2}</answer>")
    '\\\\boxed{2}'
    """
    rest = strip_thinking(text, truncated="read") or ""
    found = ANSWER_BLOCK_RE.findall(rest)
    return found[-1] if found else rest


def official_response(text: str) -> str:
    """The response as the official rules read it: thinking dropped (an unclosed ``<think>`` is read), and
    the content of the last ``<answer>`` block standing for the response when there is one.

    >>> official_response("<think>x</think><answer> D </answer>"), official_response("<think>so it is D.\\nD.")
    ('D', 'so it is D.\\nD.')
    """
    rest = strip_thinking(text, truncated="read") or ""
    found = ANSWER_BLOCK_RE.findall(rest)
    if found:
        return found[-1].strip()
    if "<answer>" in rest:  # truncated inside the answer
        return rest[rest.rfind("<answer>") + len("<answer>") :].strip()
    return rest.strip()


def project_answer(response: str, task: str | None) -> str | None:
    """X when the response is written in the project's own answer format, i.e. what the rewards accept as the
    answer of a well-formed completion: exactly one closed ``<answer>`` block after the thinking (an unclosed
    ``<think>`` is read, the shared truncation policy), unwrapped as the rewards unwrap it (``Final Answer:``,
    ``\\boxed{}``, "The answer is"). Every benchmark hands X to its official rules as the model's answer;
    None (no block, two blocks, an unclosed one) leaves the response to the official reading.

    >>> project_answer("<think>so 6</think><answer> Final Answer:6 </answer>", "math")
    '6'
    >>> project_answer("<answer>\\\\boxed{B}</answer>", "choice"), project_answer("<answer>1</answer><answer>2</answer>", "math")
    ('B', None)
    """
    rest = strip_thinking(response, truncated="read") or ""
    if rest.count("<answer>") != 1 or rest.count("</answer>") != 1 or rest.find("</answer>") < rest.find("<answer>"):
        return None
    found, how = extract_with_source(response, task, truncated="read")
    found = None if found is None else str(found).strip()
    return found if how == "answer_tag" and found else None


def rules_extract_with_source(response: str, task: str | None) -> tuple[str | None, str | None]:
    """The rewards' extraction under the evaluation truncation policy: (answer, rule), (None, None) if none."""
    found, how = extract_with_source(response, task, truncated="read")
    found = None if found is None else str(found).strip() or None
    return (found, how) if found is not None else (None, None)


def rules_extract(response: str, task: str | None) -> str | None:
    """The rewards' extraction (one scorer for RL and evaluation); None when it finds no answer."""
    return rules_extract_with_source(response, task)[0]


def accuracy_table(pairs: Iterable[tuple[Any, bool]]) -> dict[str, dict[str, Any]]:
    """``{value: {"accuracy", "correct", "total"}}`` over (group value, correct) pairs, sorted by value."""
    correct: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for value, ok in pairs:
        key = "unknown" if value is None else str(value)
        total[key] += 1
        correct[key] += int(bool(ok))
    return {
        k: {"accuracy": correct[k] / total[k], "correct": correct[k], "total": total[k]} for k in sorted(total)
    }


def load_item_images(item: Item, fields: Sequence[str], max_pixels: int, image_root: Path | None) -> list[Any]:
    """The item's images as RGB PIL images, checked and resized like training images (data.images)."""
    from PIL import Image

    from visionr1.data.errors import DataError, Where
    from visionr1.data.images import prepare_image

    for name in fields:
        value = item.record.get(name)
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list) else [value]
        where = Where(item.file, item.pid, Path(image_root) if image_root else item.file.parent)
        images = []
        for i, v in enumerate(values):
            try:
                stored = prepare_image(v, where, f"{name}[{i}]" if isinstance(value, list) else name, max_pixels)
            except DataError as exc:
                hint = " (use --image-root DIR if images live elsewhere)" if "not found" in exc.reason else ""
                raise EvalError(f"{exc}{hint}") from None
            src = stored.value["bytes"]
            img = Image.open(io.BytesIO(src) if src is not None else stored.value["path"])
            images.append(img.convert("RGB"))
        return images
    return []


_LEAD_LETTER_RE = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?(?=$|[\s.:,)\]])")


def leading_letter(text: str | None, n_options: int) -> str | None:
    """An option letter the text starts with ("B", "(B)", "B. 8/11", "b)"), within the first ``n_options``.

    >>> leading_letter("(B) 8/11", 4), leading_letter("C.", 4), leading_letter("Because", 4)
    ('B', 'C', None)
    """
    if not text:
        return None
    m = _LEAD_LETTER_RE.match(text)
    if not m:
        return None
    letter = m.group(1).upper()
    return letter if letter in LETTERS[:n_options] else None
