"""Synthetic fixtures as varied as real data, in every published format visionr1 reads.

Why: the synthetic tasks give every prompt the same length (79-80 tokens) and every image the same size
(112x112), so padding, mRoPE positions, image budgets and placeholder handling were never exercised the way
real data exercises them (MATH-V: images 54x40 to 2520x8526, prompts 15 to 1,500 characters). Every writer
here puts, in one small file:

- prompts from ~20 to ~1,500 characters (LaTeX braces, unicode, newlines);
- images from 28x28 to 2000x8000, aspect ratios up to 1:150 (solid colours with one rectangle, PNG: a few KB
  each, the 2000x8000 one included);
- multiple choice with option text, multiple choice with bare letters, free-form answers;
- multi-image records (2-3 images) and one text-only record in an image dataset.

The same items (:func:`varied_items`) are written in each format, deterministically by seed, so a test can
load one format and compare with another. Formats: EasyR1/geometry3k parquet, MATH-V JSONL + images/,
Vision-R1-cold ShareGPT in its three flavours, MathVista testmini-style JSON, and the project's own jsonl.

Use: ``from tests.varied import write_geometry3k`` (the root conftest puts the repository on ``sys.path``), or
the ``varied`` fixture of tests/conftest.py, which returns this module.
"""

from __future__ import annotations

import functools
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

# Image sizes (width, height), smallest to largest; the extremes are what real benchmarks contain.
SIZES: tuple[tuple[int, int], ...] = (
    (28, 28),  # the smallest a Qwen-VL patch grid takes without upscaling
    (54, 40),  # MATH-V's smallest
    (4200, 28),  # aspect 150:1 (a wide strip: a number line, a row of digits)
    (112, 112),
    (640, 480),
    (28, 4200),  # aspect 1:150
    (1024, 256),
    (300, 2000),
    (2000, 8000),  # 16 M pixels: far above any budget, must be resized
)
# Prompt lengths in characters, short to long (MATH-V: 15 to ~1,500).
PROMPT_LENGTHS: tuple[int, ...] = (20, 45, 90, 160, 300, 600, 1000, 1500)

PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)

_PHRASES = (
    "In triangle ABC, ∠ABC = 40° and AB = AC.",
    "Let $f(x) = \\frac{1}{2}x^{2} + 3x - 7$.",
    "The figure shows a circle with centre O and radius 5 cm.",
    "A rectangle has width w and length 2w + 3.",
    "Each small square in the grid has side length 1.",
    "The bar chart shows the number of books read by five students.",
    "Points P and Q lie on the line y = 2x + 1.",
    "The shaded region is bounded by the curve and the x-axis.",
    "Kangaroo Ana jumps {3, 5, 8} steps in turn.",
    "The sum of the interior angles is $(n-2)\\cdot 180^{\\circ}$.",
    "A cube is painted red on all faces and cut into 27 equal cubes.",
    "Note: the diagram is not drawn to scale.\n",
)


@dataclass
class VariedImage:
    size: tuple[int, int]
    color: tuple[int, int, int]

    @property
    def name(self) -> str:
        return f"{self.size[0]}x{self.size[1]}_{self.color[0]:02x}{self.color[1]:02x}{self.color[2]:02x}.png"


@dataclass
class VariedItem:
    """One question in format-neutral form; the writers turn it into each format's record."""

    id: str
    kind: str  # free | choice_text | choice_letters | multi | text_only
    question: str  # no image markers; writers add their own
    images: list[VariedImage] = field(default_factory=list)
    choices: list[str] | None = None  # option texts (choice_letters: ["A", "B", ...])
    answer: str = ""  # the letter for multiple choice, else the value
    answer_text: str = ""  # the correct option's text (MathVista stores this)
    reasoning: str = ""

    @property
    def task(self) -> str:
        return "choice" if self.choices else "math"

    @property
    def response(self) -> str:
        """A Vision-R1-cold style assistant turn."""
        return f"<think>\n{self.reasoning}\n</think><answer> Final Answer:{self.answer} </answer>"


def png_bytes(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG with one darker rectangle in the middle (so it is not trivially constant)."""
    return _png(tuple(size), tuple(color))


@functools.lru_cache(maxsize=64)
def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    w, h = size
    dark = tuple(c // 2 for c in color)
    ImageDraw.Draw(img).rectangle([w // 4, h // 4, max(w // 4, 3 * w // 4 - 1), max(h // 4, 3 * h // 4 - 1)], fill=dark)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def text_of_length(n: int, rng: random.Random) -> str:
    """About ``n`` characters of math-problem prose (whole phrases, cut at a word boundary)."""
    out = ""
    while len(out) < n:
        out += rng.choice(_PHRASES) + " "
    out = out[:n]
    if " " in out[n // 2 :]:
        out = out[: out.rfind(" ")]
    return out.strip() or "Find x."


def varied_items(n: int = 8, seed: int = 0) -> list[VariedItem]:
    """``n`` items (n >= 5 covers every kind; n >= 8 every prompt length, and every image size appears).

    Kinds cycle free -> choice_text -> multi -> choice_letters -> text_only; prompt lengths and image
    sizes are dealt in order after a seeded rotation, so each file mixes short and long, tiny and huge.
    """
    rng = random.Random(seed)
    kinds = ("free", "choice_text", "multi", "choice_letters", "text_only")
    lengths = list(PROMPT_LENGTHS)
    r = rng.randrange(len(lengths))
    lengths = lengths[r:] + lengths[:r]
    sizes = list(SIZES)
    s = rng.randrange(len(sizes))
    sizes = sizes[s:] + sizes[:s]
    size_i = 0
    items: list[VariedItem] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        question = text_of_length(lengths[i % len(lengths)], rng)
        n_images = {"text_only": 0, "multi": 2 + i % 2}.get(kind, 1)
        images = []
        for k in range(n_images):
            images.append(VariedImage(sizes[size_i % len(sizes)], PALETTE[(i * 3 + k) % len(PALETTE)]))
            size_i += 1
        item = VariedItem(id=f"v{seed}-{i}", kind=kind, question=question, images=images)
        value = rng.randint(2, 99)
        if kind == "choice_text":
            options = [f"{value + d} cm" for d in (-2, 0, 3, 7)]
            rng.shuffle(options)
            item.choices = options
            correct = options.index(f"{value} cm")
            item.answer, item.answer_text = "ABCD"[correct], options[correct]
        elif kind == "choice_letters":
            item.choices = ["A", "B", "C", "D", "E"]
            item.answer = item.answer_text = rng.choice(item.choices)
        elif kind == "multi":
            item.answer = item.answer_text = str(value)
        else:
            item.answer = item.answer_text = rng.choice((str(value), f"\\frac{{{value}}}{{7}}", f"{value / 4:g}"))
        item.reasoning = f"Reading the figure, the value is {item.answer_text}." + " Let me check." * (i % 3)
        items.append(item)
    return items


# ----------------------------------------------------------------------------------------------------------
# Writers: one per published format. Each returns the data file it wrote.
# ----------------------------------------------------------------------------------------------------------


def _save_images(item: VariedItem, images_dir: Path) -> list[str]:
    """Write an item's images under ``images_dir``; relative paths (``images/NAME``) as the formats store them."""
    images_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for im in item.images:
        path = images_dir / im.name
        if not path.exists():
            path.write_bytes(png_bytes(im.size, im.color))
        paths.append(f"{images_dir.name}/{im.name}")
    return paths


def _letter_options(choices: list[str]) -> str:
    return "\n".join(f"({'ABCDEFGH'[i]}) {c}" for i, c in enumerate(choices))


def write_geometry3k(out_dir: Path, n: int = 8, seed: int = 0, split: str = "train") -> Path:
    """EasyR1 / geometry3k parquet (``OUT/SPLIT.parquet``): ``images`` as a list of ``{bytes, path}``,
    ``problem`` with one ``<image>`` per image (options with text appended as ``(A) ...``, as the
    MATH-V conversion in EasyR1's data does), ``answer``, plus ``id`` and ``choices``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for item in varied_items(n, seed):
        problem = "<image>" * len(item.images) + item.question
        if item.choices and item.kind != "choice_letters":
            problem += "\n" + _letter_options(item.choices)
        rows.append({
            "images": [{"bytes": png_bytes(im.size, im.color), "path": im.name} for im in item.images],
            "problem": problem,
            "answer": item.answer,
            "id": item.id,
            "choices": item.choices,
        })
    schema = pa.schema([
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("problem", pa.string()), ("answer", pa.string()), ("id", pa.string()), ("choices", pa.list_(pa.string())),
    ])
    out = Path(out_dir) / f"{split}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    return out


def write_mathv(out_dir: Path, n: int = 8, seed: int = 0, split: str = "test") -> Path:
    """MATH-V as published (``OUT/SPLIT.jsonl`` + ``OUT/images/``): ``id``, ``question`` with ``<image1>``..
    ``<imageN>`` references, ``options`` (empty for free form), ``image`` (one path: MATH-V composes all the
    figures a question names into one image, so multi-image items keep their first image and name N
    references, as real records do), ``answer``, ``solution`` (null or a worked solution), ``level``,
    ``subject``."""
    out_dir = Path(out_dir)
    lines = []
    for i, item in enumerate(varied_items(n, seed)):
        paths = _save_images(item, out_dir / "images")
        refs = " ".join(f"<image{k + 1}>" for k in range(len(item.images)))
        question = f"{item.question}\n{refs}" if refs else item.question
        lines.append({
            "id": item.id,
            "question": question,
            "options": [] if item.kind == "choice_letters" and i % 2 else (item.choices or []),
            "image": paths[0] if paths else None,
            "answer": item.answer,
            "solution": None if i % 2 else item.reasoning,
            "level": 1 + i % 5,
            "subject": ("metric geometry - length", "counting", "arithmetic", "logic", "algebra")[i % 5],
        })
    out = out_dir / f"{split}.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    return out


SHAREGPT_FLAVOURS = ("messages", "conversations", "human_gpt")


def write_sharegpt(out_dir: Path, flavour: str = "messages", n: int = 8, seed: int = 0) -> Path:
    """Vision-R1-cold / LLaMA-Factory ShareGPT JSON (``OUT/<flavour>.json`` + ``OUT/images/``):

    - ``messages``: ``messages`` with ``role``/``content`` (user/assistant) + ``images`` (list);
    - ``conversations``: ``conversations`` with ``from``/``value`` user/assistant + ``images`` (Mulberry part);
    - ``human_gpt``: ``conversations`` with ``from``/``value`` human/gpt + ``image`` (a path, a list when
      there are several: the LLaVA-CoT part).

    Prompts carry one ``<image>`` per image; the text-only record has neither. One record has a system turn."""
    if flavour not in SHAREGPT_FLAVOURS:
        raise ValueError(f"flavour must be one of {SHAREGPT_FLAVOURS}")
    out_dir = Path(out_dir)
    records = []
    for i, item in enumerate(varied_items(n, seed)):
        paths = _save_images(item, out_dir / "images")
        prompt = "<image>" * len(paths) + item.question
        if item.choices and item.kind != "choice_letters":
            prompt += "\nChoices:\n" + _letter_options(item.choices)
        if flavour == "messages":
            turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": item.response}]
            if i == 1:
                turns.insert(0, {"role": "system", "content": "You are a careful geometry tutor."})
            rec: dict = {"messages": turns}
        else:
            user, bot = ("human", "gpt") if flavour == "human_gpt" else ("user", "assistant")
            turns = [{"from": user, "value": prompt}, {"from": bot, "value": item.response}]
            if i == 1:
                turns.insert(0, {"from": "system", "value": "You are a careful geometry tutor."})
            rec = {"conversations": turns}
        if paths:
            if flavour == "human_gpt":
                rec["image"] = paths[0] if len(paths) == 1 else paths
            else:
                rec["images"] = paths
        records.append(rec)
    out = out_dir / f"{flavour}.json"
    out.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def write_mathvista(out_dir: Path, n: int = 8, seed: int = 0) -> Path:
    """MathVista testmini-style JSON (``OUT/testmini.json``, ``{pid: record}``): ``question``, ``image``,
    ``choices`` (option texts) or null, ``answer`` (the option *text* for multi_choice), ``question_type``,
    ``answer_type``, ``precision``, ``unit``. MathVista has one image per record: multi-image items keep
    their first, the text-only item gets a 28x28 one."""
    out_dir = Path(out_dir)
    data = {}
    for item in varied_items(n, seed):
        if not item.images:
            item.images = [VariedImage((28, 28), PALETTE[0])]
        item.images = item.images[:1]
        path = _save_images(item, out_dir / "images")[0]
        choice = bool(item.choices)
        data[item.id] = {
            "pid": item.id,
            "question": item.question,
            "image": path,
            "choices": item.choices,
            "answer": item.answer_text,
            "question_type": "multi_choice" if choice else "free_form",
            "answer_type": "text" if choice else ("integer" if item.answer.isdigit() else "float"),
            "precision": None if choice or item.answer.isdigit() else 2,
            "unit": None,
        }
    out = out_dir / "testmini.json"
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def write_jsonl(out_dir: Path, n: int = 8, seed: int = 0, split: str = "train", completions: bool = True) -> Path:
    """The project's own jsonl format (docs/CONTRACTS.md): ``id, task, question, images, solution, choices``
    and, with ``completions``, a Vision-R1-cold style ``completion`` (SFT data)."""
    out_dir = Path(out_dir)
    lines = []
    for item in varied_items(n, seed):
        rec = {
            "id": item.id, "task": item.task, "question": "<image>" * len(item.images) + item.question,
            "images": _save_images(item, out_dir / "images"), "solution": item.answer, "choices": item.choices,
            "metadata": {"kind": item.kind},
        }
        if completions:
            rec["completion"] = item.response
        lines.append(rec)
    out = out_dir / f"{split}.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    return out


def write_all(out_dir: Path, n: int = 8, seed: int = 0) -> dict[str, Path]:
    """Every format under ``out_dir/<name>/``; returns ``{name: data file}``."""
    out_dir = Path(out_dir)
    files = {
        "geometry3k": write_geometry3k(out_dir / "geometry3k", n, seed),
        "mathv": write_mathv(out_dir / "mathv", n, seed),
        "mathvista": write_mathvista(out_dir / "mathvista", n, seed),
        "jsonl": write_jsonl(out_dir / "jsonl", n, seed),
    }
    for flavour in SHAREGPT_FLAVOURS:
        files[f"sharegpt_{flavour}"] = write_sharegpt(out_dir / "sharegpt", flavour, n, seed)
    return files
