"""Scenes of coloured shapes and numbers: sampling (pure, seeded) and drawing (Pillow).

A scene is a plain dict, so it goes into the JSONL metadata unchanged and the tests can recount answers from it:

    {"width": 112, "height": 112, "background": [255, 255, 255],
     "objects": [{"kind": "shape", "shape": "circle", "color": "red", "size": 22,
                  "box": [x1, y1, x2, y2]}, ...],
     "clutter": [{"kind": "line", "xy": [...], "rgb": [...], "width": 1}, ...]}

`box` is in pixels, `x2 = x1 + width` (exclusive right/bottom edge), and always lies inside the image.
Objects never overlap (a 2-pixel gap at least), so every count and relation is unambiguous. Clutter (thin grey
lines and dots) is drawn underneath and is never an object.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
    "cyan": (30, 190, 200),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds"}


@dataclass(frozen=True)
class Difficulty:
    """How hard a synthetic task is. The presets are `DIFFICULTIES`; `dataclasses.replace` makes variants."""

    name: str
    image_size: int  # square images, pixels
    min_objects: int  # objects per scene (shape tasks)
    max_objects: int
    colors: tuple[str, ...]  # palette the objects are drawn from
    shapes: tuple[str, ...]
    min_size: int  # object side, pixels
    max_size: int
    clutter: int  # distractor strokes/dots drawn under the objects
    background_jitter: int  # 0: white background; else a random light tint of up to this much
    max_number: int  # arithmetic: operands drawn from 0..max_number
    operands: int  # arithmetic: how many numbers are drawn
    operations: tuple[str, ...]  # arithmetic: subset of "add", "subtract", "multiply"
    num_choices: int  # multiple choice: options per question

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        name="easy", image_size=112, min_objects=2, max_objects=4, colors=("red", "green", "blue"),
        shapes=("circle", "square"), min_size=22, max_size=30, clutter=0, background_jitter=0,
        max_number=9, operands=2, operations=("add",), num_choices=3,
    ),
    "medium": Difficulty(
        name="medium", image_size=112, min_objects=4, max_objects=7,
        colors=("red", "green", "blue", "yellow", "purple"), shapes=("circle", "square", "triangle"),
        min_size=16, max_size=26, clutter=4, background_jitter=20,
        max_number=20, operands=2, operations=("add", "subtract"), num_choices=4,
    ),
    "hard": Difficulty(
        name="hard", image_size=168, min_objects=8, max_objects=14, colors=tuple(COLORS), shapes=SHAPES,
        min_size=12, max_size=26, clutter=12, background_jitter=40,
        max_number=30, operands=3, operations=("add", "subtract", "multiply"), num_choices=4,
    ),
}


def get_difficulty(difficulty: str | Difficulty) -> Difficulty:
    """A preset by name, or the given `Difficulty` unchanged (errors list the valid names)."""
    if isinstance(difficulty, Difficulty):
        return difficulty
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[difficulty]


# ---------------------------------------------------------------------------------------------- sampling


def _background(rng: random.Random, d: Difficulty) -> list[int]:
    if d.background_jitter == 0:
        return [255, 255, 255]
    return [255 - rng.randint(0, d.background_jitter) for _ in range(3)]


def _clutter(rng: random.Random, d: Difficulty) -> list[dict]:
    items = []
    s = d.image_size
    for _ in range(d.clutter):
        grey = [rng.randint(150, 210)] * 3
        if rng.random() < 0.5:
            xy = [rng.randrange(s), rng.randrange(s), rng.randrange(s), rng.randrange(s)]
            items.append({"kind": "line", "xy": xy, "rgb": grey, "width": 1})
        else:
            x, y = rng.randrange(s - 3), rng.randrange(s - 3)
            items.append({"kind": "dot", "xy": [x, y, x + 3, y + 3], "rgb": grey, "width": 0})
    return items


def _overlaps(box: list[int], others: list[list[int]], gap: int = 2) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] + gap and b[0] < x2 + gap and y1 < b[3] + gap and b[1] < y2 + gap for b in others)


def _place(rng: random.Random, sizes: list[tuple[int, int]], image_size: int, margin: int = 2) -> list[list[int]] | None:
    """Non-overlapping boxes of the given (w, h), or None when rejection sampling gives up."""
    boxes: list[list[int]] = []
    for w, h in sizes:
        for _ in range(200):
            x = rng.randint(margin, image_size - margin - w)
            y = rng.randint(margin, image_size - margin - h)
            box = [x, y, x + w, y + h]
            if not _overlaps(box, boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def sample_shape_scene(rng: random.Random, d: Difficulty, num_objects: int | None = None) -> dict:
    """A scene of `num_objects` (default: uniform in the difficulty's range) non-overlapping shapes."""
    n = num_objects if num_objects is not None else rng.randint(d.min_objects, d.max_objects)
    for _ in range(50):
        objs = [
            {"kind": "shape", "shape": rng.choice(d.shapes), "color": rng.choice(d.colors),
             "size": rng.randint(d.min_size, d.max_size)}
            for _ in range(n)
        ]
        boxes = _place(rng, [(o["size"], o["size"]) for o in objs], d.image_size)
        if boxes is not None:
            for o, b in zip(objs, boxes, strict=True):
                o["box"] = b
            return _scene(rng, d, objs)
    raise ValueError(
        f"cannot place {n} objects of size {d.min_size}..{d.max_size} in a {d.image_size}px image: "
        "lower max_objects / max_size or raise image_size in the Difficulty"
    )


def number_size(value: int, font_size: int) -> tuple[int, int]:
    """Width and height of the drawn number's ink box (what `box` records)."""
    x1, y1, x2, y2 = _font(font_size).getbbox(str(value))
    return x2 - x1, y2 - y1


def sample_number_scene(rng: random.Random, d: Difficulty, values: list[int], colors: list[str]) -> dict:
    """A scene with the given numbers drawn in the given colours, laid out left to right."""
    font_size = max(14, d.image_size // 5)
    n = len(values)
    for _ in range(50):
        sizes = [number_size(v, font_size) for v in values]
        # One column per number keeps the left-to-right reading order the questions refer to.
        col = d.image_size // n
        boxes = []
        for i, (w, h) in enumerate(sizes):
            lo, hi = i * col + 2, (i + 1) * col - 2 - w
            if hi < lo:
                break
            x = rng.randint(lo, hi)
            y = rng.randint(2, d.image_size - 2 - h)
            boxes.append([x, y, x + w, y + h])
        else:
            objs = [
                {"kind": "number", "value": v, "color": c, "font_size": font_size, "box": b}
                for v, c, b in zip(values, colors, boxes, strict=True)
            ]
            return _scene(rng, d, objs)
        font_size -= 2
    raise ValueError(f"cannot fit {n} numbers in a {d.image_size}px image: raise image_size in the Difficulty")


def _scene(rng: random.Random, d: Difficulty, objects: list[dict]) -> dict:
    return {
        "width": d.image_size,
        "height": d.image_size,
        "background": _background(rng, d),
        "objects": objects,
        "clutter": _clutter(rng, d),
    }


# ----------------------------------------------------------------------------------------------- drawing

_FONTS: dict[int, ImageFont.FreeTypeFont] = {}


def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font: the same glyphs on every machine with the same Pillow, nothing to download.
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def render(scene: dict) -> Image.Image:
    """Draw a scene. Deterministic: the same scene gives the same pixels."""
    img = Image.new("RGB", (scene["width"], scene["height"]), tuple(scene["background"]))
    draw = ImageDraw.Draw(img)
    for c in scene.get("clutter", []):
        if c["kind"] == "line":
            draw.line(c["xy"], fill=tuple(c["rgb"]), width=c["width"])
        else:
            draw.ellipse(c["xy"], fill=tuple(c["rgb"]))
    for o in scene["objects"]:
        rgb = COLORS[o["color"]]
        x1, y1, x2, y2 = o["box"]
        # Pillow's boxes include their right/bottom pixel; ours exclude it.
        r, b = x2 - 1, y2 - 1
        if o["kind"] == "number":
            left, top, _, _ = _font(o["font_size"]).getbbox(str(o["value"]))
            draw.text((x1 - left, y1 - top), str(o["value"]), fill=rgb, font=_font(o["font_size"]))
        elif o["shape"] == "circle":
            draw.ellipse([x1, y1, r, b], fill=rgb)
        elif o["shape"] == "square":
            draw.rectangle([x1, y1, r, b], fill=rgb)
        elif o["shape"] == "triangle":
            draw.polygon([((x1 + r) / 2, y1), (x1, b), (r, b)], fill=rgb)
        elif o["shape"] == "diamond":
            cx, cy = (x1 + r) / 2, (y1 + b) / 2
            draw.polygon([(cx, y1), (r, cy), (cx, b), (x1, cy)], fill=rgb)
        else:
            raise ValueError(f"unknown shape {o['shape']!r}")
    return img


# --------------------------------------------------------------------------------------------- geometry


def center(box: list[int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def region(box: list[int], width: int, height: int) -> str:
    """Coarse position words ('top left', 'center', 'bottom') of a box, on a 3x3 grid.

    >>> region([0, 0, 10, 10], 90, 90), region([40, 40, 50, 50], 90, 90), region([40, 80, 50, 90], 90, 90)
    ('top left', 'center', 'bottom')
    """
    cx, cy = center(box)
    col = ("left", "", "right")[min(2, int(3 * cx / width))]
    row = ("top", "", "bottom")[min(2, int(3 * cy / height))]
    return " ".join(w for w in (row, col) if w) or "center"


def where(box: list[int], width: int, height: int) -> str:
    """`region` as a phrase: 'at the top left', 'on the left', 'in the center'.

    >>> where([0, 40, 10, 50], 90, 90), where([40, 40, 50, 50], 90, 90), where([0, 0, 9, 9], 90, 90)
    ('on the left', 'in the center', 'at the top left')
    """
    r = region(box, width, height)
    if r == "center":
        return "in the center"
    return f"on the {r}" if r in ("left", "right") else f"at the {r}"


def article(phrase: str) -> str:
    """'a red circle', 'an orange square'.

    >>> article("orange square"), article("red circle")
    ('an orange square', 'a red circle')
    """
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def name(o: dict) -> str:
    """'red circle', or 'red 7' for a number."""
    return f"{o['color']} {o['shape']}" if o["kind"] == "shape" else f"{o['color']} number {o['value']}"


# ------------------------------------------------------------------------------------------ descriptions


def left_to_right(scene: dict) -> list[dict]:
    """The scene's objects in reading order (descriptions and reasoning walk them the same way)."""
    return sorted(scene["objects"], key=lambda o: center(o["box"]))


def describe(scene: dict, boxes: bool = False, sizes: bool = False) -> str:
    """Ground-truth description of a scene: every object, left to right, with position (and box / size)."""
    objs = left_to_right(scene)
    w, h = scene["width"], scene["height"]
    bg = "a white background" if scene["background"] == [255, 255, 255] else "a light, slightly tinted background"
    parts = []
    for o in objs:
        text = article(name(o)) if o["kind"] == "shape" else f"the {name(o)}"
        if sizes and o["kind"] == "shape":
            text += f" {o['size']} pixels wide"
        text += f" {where(o['box'], w, h)}"
        if boxes:
            text += f" (box {box_text(o['box'])})"
        parts.append(text)
    kind = "objects" if objs[0]["kind"] == "shape" else "numbers"
    text = f"The image is {w}x{h} pixels and shows {len(objs)} {kind} on {bg}, from left to right: "
    text += "; ".join(parts) + "."
    if scene.get("clutter"):
        text += " Some thin grey lines and dots are scattered in the background; they are not objects."
    return text


def box_text(box: list[int]) -> str:
    """A box as the answers and descriptions write it: ``[x1, y1, x2, y2]``."""
    return "[" + ", ".join(str(v) for v in box) + "]"
