"""Questions rendered as images, LaTeX included: R1-Vision's augmentation (``render_question: true``).

Why: R1-Vision turned text math problems into visual ones by rendering the question, so a vision-language
model must *read* it (formulas included) from pixels. Here any record's question can be drawn to an image
that takes the question's place in the prompt: a text-only record becomes a one-image record, a record with
a figure gets the figure and then the question image. The raw text stays in the sample's ``question`` field
(docs/CONTRACTS.md); the metadata says ``"rendered_question": true`` and which image it is
(``rendered_question_image``, an index into ``images``).

How: matplotlib's *mathtext* (its own TeX-subset parser and layout with the DejaVu fonts matplotlib ships),
so no TeX installation is needed and the same matplotlib version gives the same pixels on every machine.
``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` are math; display math gets a line of its own. A text
with an odd number of unescaped ``$`` has no math (a price, "$5"), as in matplotlib itself. Lines are wrapped
by measured width at word boundaries, never inside a formula; a formula wider than the line is scaled to
fit. LaTeX mathtext cannot lay out (unknown command, unbalanced braces) is a ``DataError`` naming the file,
the record, the field ``question`` and the formula; with ``skip_bad_records`` such records are skipped.

Departures from R1-Vision: mathtext is a subset of LaTeX (no ``\\begin{array}``, ``\\text`` with nested
math, or packages), so some questions a real TeX renders fail here and are named, not silently mangled.
"""

from __future__ import annotations

import io
import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import Field

from visionr1.config.base import StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from visionr1.data.errors import Where


class RenderSpec(StrictModel):
    width: int = Field(560, ge=112, le=4096, description="Image width in pixels (text wraps to it).")
    font_size: float = Field(14.0, gt=4, le=72, description="Font size in points at 100 dpi (14 pt ~ 19 px).")
    margin: int = Field(12, ge=0, le=200, description="White border in pixels.")
    intro: str | None = Field(
        None, description="Text placed before the question image in the prompt (null: the image alone)."
    )


class RenderError(ValueError):
    """LaTeX that mathtext cannot lay out; ``formula`` is the offending piece."""

    def __init__(self, message: str, formula: str) -> None:
        super().__init__(message)
        self.formula = formula


_DPI = 100
_RC = {
    "text.usetex": False,
    "mathtext.fontset": "dejavusans",
    "font.family": "DejaVu Sans",
    "font.size": 10.0,
    "text.antialiased": True,
}
_DISPLAY_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
_INLINE_PAREN_RE = re.compile(r"\\\((.+?)\\\)", re.S)
_UNESCAPED_DOLLAR_RE = re.compile(r"(?<!\\)\$")


def _words(question: str) -> list[list[str]]:
    """Paragraphs as lists of *words*: mathtext strings that wrapping never splits. A formula is glued to
    the text it touches ("$x$-axis" is one word, so no space appears); display math is a paragraph alone.
    An empty paragraph is a blank line."""
    text = _INLINE_PAREN_RE.sub(lambda m: "$" + m.group(1) + "$", question)
    text = _DISPLAY_RE.sub(lambda m: "\n\x00" + " ".join((m.group(1) or m.group(2)).split()) + "\x00\n", text)
    paragraphs: list[list[str]] = []
    for para in text.split("\n"):
        if para.startswith("\x00") and para.endswith("\x00") and len(para) > 1:
            paragraphs.append(["$" + para.strip("\x00") + "$"])
            continue
        if not para.strip():
            if paragraphs and paragraphs[-1]:
                paragraphs.append([])  # a blank line between paragraphs, kept once
            continue
        if len(_UNESCAPED_DOLLAR_RE.findall(para)) % 2:  # no math: every $ literal (escaped for mathtext)
            paragraphs.append(_UNESCAPED_DOLLAR_RE.sub(r"\\$", para).split())
            continue
        words: list[str] = []
        glue = False  # the next token continues the last word (no whitespace between them)
        for i, chunk in enumerate(_UNESCAPED_DOLLAR_RE.split(para)):
            if i % 2:  # a formula, atomic
                formula = "$" + " ".join(chunk.split()) + "$"
                if formula == "$$":
                    continue
                if glue and words:
                    words[-1] += formula
                else:
                    words.append(formula)
                glue = True
                continue
            if not chunk:
                continue
            tokens = chunk.split()
            if tokens and glue and words and not chunk[0].isspace():
                words[-1] += tokens.pop(0)
            words += tokens
            glue = not chunk[-1].isspace()
        paragraphs.append(words)
    while paragraphs and not paragraphs[-1]:
        paragraphs.pop()
    return paragraphs


class _Measure:
    """Widths and heights (pixels) of mathtext strings at the spec's font size."""

    def __init__(self, font_size: float) -> None:
        from matplotlib.font_manager import FontProperties
        from matplotlib.mathtext import MathTextParser

        self.prop = FontProperties(family="DejaVu Sans", size=font_size)
        self.parser = MathTextParser("path")
        self.scale = _DPI / 72

    def size(self, s: str) -> tuple[float, float, float]:
        """(width, height, descent) in pixels; raises RenderError for LaTeX mathtext cannot parse."""
        try:
            parsed = self.parser.parse(s, dpi=72, prop=self.prop)
        except (ValueError, RuntimeError, KeyError, IndexError) as exc:
            reason = " ".join(str(exc).split())
            raise RenderError(f"mathtext cannot lay out {s!r}: {reason}", s) from None
        return parsed.width * self.scale, parsed.height * self.scale, parsed.depth * self.scale


def _wrap(paragraphs: list[list[str]], measure: _Measure, width: float) -> list[tuple[str, float, float, float]]:
    """Lines as (mathtext source, width, ascent, descent) in pixels, filled greedily by measured width. Each
    word is parsed once (mathtext parsing is the slow part) and a line's size is composed from its words',
    so every formula is checked before anything is drawn."""
    space = measure.size("a a")[0] - measure.size("aa")[0]
    lines: list[tuple[str, float, float, float]] = []
    for para in paragraphs:
        if not para:
            lines.append(("", 0.0, 0.0, 0.0))
            continue
        current: list[str] = []
        used = ascent = descent = 0.0
        for word in para:
            w, h, d = measure.size(word)
            if current and used + space + w > width:
                lines.append((" ".join(current), used, ascent, descent))
                current, used, ascent, descent = [], 0.0, 0.0, 0.0
            used += (space if current else 0.0) + w
            ascent, descent = max(ascent, h - d), max(descent, d)
            current.append(word)
        if current:
            lines.append((" ".join(current), used, ascent, descent))
    return lines


def render_question(question: str, spec: RenderSpec | None = None) -> Image.Image:
    """The question drawn as an RGB image ``spec.width`` wide (height grows with the text). Deterministic.
    Raises ``RenderError`` for LaTeX that mathtext cannot lay out, ``ValueError`` for an empty question."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    spec = spec or RenderSpec()
    if not question or not question.strip():
        raise ValueError("empty question: nothing to render")
    with matplotlib.rc_context(_RC):
        measure = _Measure(spec.font_size)
        inner = spec.width - 2 * spec.margin
        lines = _wrap(_words(question), measure, inner)
        gap = 0.35 * spec.font_size * measure.scale
        blank = spec.font_size * measure.scale
        layout, y = [], float(spec.margin)
        for line, w, ascent, descent in lines:
            if not line:
                y += blank
                continue
            shrink = min(1.0, inner / w) if w > 0 else 1.0  # a formula wider than the line
            layout.append((line, y + ascent * shrink, shrink))
            y += (ascent + descent) * shrink + gap
        height = max(int(round(y - gap + spec.margin)), 2 * spec.margin + 1)
        fig = Figure(figsize=(spec.width / _DPI, height / _DPI), dpi=_DPI, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        for line, baseline, shrink in layout:
            fig.text(spec.margin / spec.width, 1 - baseline / height, line, fontproperties=measure.prop,
                     fontsize=spec.font_size * shrink, va="baseline", ha="left", color="black")
        canvas.draw()
        buf = io.BytesIO(bytes(canvas.buffer_rgba()))
        img = Image.frombuffer("RGBA", canvas.get_width_height(), buf.getvalue(), "raw", "RGBA", 0, 1)
    return img.convert("RGB")


# ------------------------------------------------------------------------------------- into a sample


def render_into(row: dict[str, Any], spec: RenderSpec, where: Where, max_pixels: int) -> dict[str, Any]:
    """A finished canonical row with its question replaced in the prompt by the rendered question image (the
    loader's hook for ``render_question: true``). The image takes the question's place: the text before the
    question stays before it, the rest of the template (instructions, options) after it. It runs after the
    row is finished, so grounding / detection boxes have already followed the record's own first image."""
    from visionr1.data.images import encode_frame
    from visionr1.data.prompts import image_part, text_part

    question = row["question"].strip()
    try:
        image = render_question(question, spec)
    except RenderError as exc:
        raise where.error("question", f"{exc}; fix the LaTeX or set render_question: false") from None
    except ValueError as exc:
        raise where.error("question", str(exc)) from None
    images_before = 0
    for m_idx, message in enumerate(row["prompt"]):
        for p_idx, part in enumerate(message["content"]):
            if part["type"] == "image":
                images_before += 1
                continue
            text = part.get("text") or ""
            at = text.find(question) if message["role"] == "user" and question else -1
            if at < 0:
                continue
            before, after = text[:at].strip(), text[at + len(question) :].strip()
            new_parts = [text_part(before)] if before else []
            new_parts += [text_part(spec.intro)] if spec.intro else []
            new_parts.append(image_part())
            new_parts += [text_part(after)] if after else []
            content = message["content"][:p_idx] + new_parts + message["content"][p_idx + 1 :]
            prompt = [*row["prompt"][:m_idx], {**message, "content": content}, *row["prompt"][m_idx + 1 :]]
            images = list(row["images"])
            images.insert(images_before, encode_frame(image, max_pixels).value)
            meta = {**json.loads(row["metadata"]), "rendered_question": True, "rendered_question_image": images_before}
            return {**row, "prompt": prompt, "images": images, "metadata": json.dumps(meta, ensure_ascii=False)}
    raise where.error(
        "question",
        "render_question: the question text is not in the prompt as one piece (an <image> placeholder inside "
        "it, or a ShareGPT turn kept as written); set prompt.apply_to_sharegpt: true or render_question: false",
    )
