"""Synthetic visual-reasoning tasks drawn with Pillow, fully determined by (task, seed, index, difficulty).

One task per peer idea (see docs/research.md):

| task         | record `task` | question                                          | solution             | peer           |
|--------------|---------------|---------------------------------------------------|----------------------|----------------|
| `counting`   | `count`       | how many objects of a colour / shape              | integer              | R1-V (CLEVR)   |
| `arithmetic` | `math`        | combine the coloured numbers drawn in the image   | integer              | visual math    |
| `choice`     | `choice`      | most frequent colour/shape, largest object, count | option letter        | MathVista MC   |
| `grounding`  | `grounding`   | the box of the described object                   | `"[x1, y1, x2, y2]"` | VLM-R1 (REC)   |
| `spatial`    | `choice`      | where is object A relative to object B            | option letter        | VisualThinker  |
| `detection`  | `detection`   | every box of the named categories (some absent)   | JSON box list        | VLM-R1 (OVD)   |

`spatial` is multiple choice (options: to the left / to the right / above / below), so it is scored exactly
and shares the `choice` scorer; the relation asked is always unambiguous (one axis dominates and the boxes do
not overlap along it). Questions never list the options: they are in `choices`, and the prompt template
renders them (contract: `question` is the raw question).

Every record's metadata carries the drawn `scene`, a ground-truth `description` (what a perfect captioner
would say: every object with colour, shape and position, plus boxes or sizes when the question needs them)
and a rule-derived step-by-step `reasoning` that ends with "So the answer is X." — the raw material of
Vision-R1's modality-bridging cold start, with the captioner and the reasoner replaced by rules.
Difficulty (`scene.DIFFICULTIES`) sets object count, palette, object size, clutter, image size and the
arithmetic; `hard` is meant to be out of reach of a tiny model trained by SFT alone.
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from visionr1.tasks import detection
from visionr1.tasks.scene import (
    PLURALS,
    SHAPES,
    Difficulty,
    box_text,
    center,
    describe,
    get_difficulty,
    left_to_right,
    name,
    render,
    sample_number_scene,
    sample_shape_scene,
    where,
)

SYNTHETIC_TASKS = ("counting", "arithmetic", "choice", "grounding", "spatial", "detection")
# The tiny tokenizer's corpus keeps the first five: adding a task must not change the tiny models' vocabulary.
_CORPUS_TASKS = SYNTHETIC_TASKS[:5]
GENERATOR_VERSION = 1  # bump when the same seed would draw different items


class _Resample(Exception):
    """The drawn scene cannot carry this question (e.g. a tie); draw another from the same stream."""


def _plural(shape: str, n: int) -> str:
    return shape if n == 1 else PLURALS[shape]


def _options(rng: random.Random, correct: str, pool: list[str], k: int) -> tuple[list[str], str]:
    """`k` options (correct + distractors from pool, shuffled) and the correct letter."""
    distractors = [p for p in pool if p != correct]
    rng.shuffle(distractors)
    options = [correct] + distractors[: k - 1]
    rng.shuffle(options)
    return options, string.ascii_uppercase[options.index(correct)]


def _unique_objects(scene: dict) -> list[dict]:
    """Objects whose colour + shape no other object shares (they can be named without ambiguity)."""
    counts = Counter(name(o) for o in scene["objects"])
    return [o for o in scene["objects"] if counts[name(o)] == 1]


# ----------------------------------------------------------------------------------------------- tasks


def _counting(rng: random.Random, d: Difficulty) -> dict:
    scene = sample_shape_scene(rng, d)
    ref = rng.choice(scene["objects"])
    kind = rng.choice(["color_shape", "shape", "color", "all"])
    if kind == "color_shape":
        match = lambda o: o["color"] == ref["color"] and o["shape"] == ref["shape"]  # noqa: E731
        one, many = f"{ref['color']} {ref['shape']}", f"{ref['color']} {PLURALS[ref['shape']]}"
    elif kind == "shape":
        match = lambda o: o["shape"] == ref["shape"]  # noqa: E731
        one, many = ref["shape"], PLURALS[ref["shape"]]
    elif kind == "color":
        match = lambda o: o["color"] == ref["color"]  # noqa: E731
        one, many = f"{ref['color']} object", f"{ref['color']} objects"
    else:
        match, one, many = (lambda o: True), "object", "objects"
    answer = sum(1 for o in scene["objects"] if match(o))
    steps, count = [], 0
    w, h = scene["width"], scene["height"]
    for i, o in enumerate(left_to_right(scene), 1):
        if match(o):
            count += 1
            steps.append(f"{i}. The {name(o)} {where(o['box'], w, h)} counts; that makes {count}.")
        else:
            steps.append(f"{i}. The {name(o)} {where(o['box'], w, h)} does not count.")
    reasoning = (
        f"I need to count the {many} in the image. Going through the objects from left to right:\n"
        + "\n".join(steps)
        + f"\nIn total there {'is' if answer == 1 else 'are'} {answer} {one if answer == 1 else many}. "
        f"So the answer is {answer}."
    )
    return {
        "task": "count",
        "question": f"How many {many} are there in the image?",
        "solution": str(answer),
        "choices": None,
        "scene": scene,
        "description": describe(scene),
        "reasoning": reasoning,
    }


_OP_WORDS = {"add": ("add", "+"), "subtract": ("subtract", "-"), "multiply": ("multiply by", "×")}


def _arithmetic(rng: random.Random, d: Difficulty) -> dict:
    n = d.operands
    ops = [rng.choice(d.operations) for _ in range(n - 1)]
    # Multipliers stay single-digit so answers stay short.
    values = [rng.randint(0, d.max_number)] + [
        rng.randint(0, 9 if op == "multiply" else d.max_number) for op in ops
    ]
    colors = rng.sample(d.colors, n)
    scene = sample_number_scene(rng, d, values, colors)
    result, lines = values[0], []
    if n == 2:
        a, b = colors
        question = {
            "add": f"What is the sum of the {a} number and the {b} number?",
            "subtract": f"What is the {a} number minus the {b} number?",
            "multiply": f"What is the product of the {a} number and the {b} number?",
        }[ops[0]]
    else:
        steps = [f"{_OP_WORDS[op][0]} the {c} number" for op, c in zip(ops, colors[1:], strict=True)]
        question = f"Start with the {colors[0]} number, then " + ", then ".join(steps) + ". What is the result?"
    for op, v in zip(ops, values[1:], strict=True):
        new = {"add": result + v, "subtract": result - v, "multiply": result * v}[op]
        lines.append(f"{result} {_OP_WORDS[op][1]} {v} = {new}.")
        result = new
    read = "; ".join(f"the {c} number is {v}" for c, v in zip(colors, values, strict=True))
    reasoning = (
        f"First I read the numbers in the image: {read}.\n"
        f"Now I compute step by step as the question says:\n" + "\n".join(lines) + f"\nSo the answer is {result}."
    )
    return {
        "task": "math",
        "question": question,
        "solution": str(result),
        "choices": None,
        "scene": scene,
        "description": describe(scene),
        "reasoning": reasoning,
    }


def _choice(rng: random.Random, d: Difficulty) -> dict:
    scene = sample_shape_scene(rng, d)
    objs = scene["objects"]
    kind = rng.choice(["most_color", "most_shape", "largest_color", "largest_shape", "count"])
    sizes = False
    if kind in ("most_color", "most_shape"):
        attr = "color" if kind == "most_color" else "shape"
        counts = Counter(o[attr] for o in objs)
        (top, c1), *rest = counts.most_common()
        if rest and rest[0][1] == c1:
            raise _Resample
        pool = list(d.colors) if attr == "color" else list(SHAPES)
        word = "colour" if attr == "color" else "shape"
        question = f"Which {word} appears most often in the image?"
        tally = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        why = f"Counting the objects by {word}: {tally}. The most frequent {word} is {top}"
        correct = top
    elif kind in ("largest_color", "largest_shape"):
        ranked = sorted(objs, key=lambda o: -o["size"])
        if len(ranked) > 1 and ranked[0]["size"] - ranked[1]["size"] < 3:
            raise _Resample  # too close to call by eye
        big = ranked[0]
        attr = "color" if kind == "largest_color" else "shape"
        pool = list(d.colors) if attr == "color" else list(SHAPES)
        word = "colour" if attr == "color" else "shape"
        question = f"What is the {word} of the largest object in the image?"
        listing = ", ".join(f"the {name(o)} is {o['size']} pixels wide" for o in ranked)
        why = f"Comparing the sizes: {listing}. The largest object is the {name(big)}, so its {word} is {big[attr]}"
        correct, sizes = big[attr], True
    else:
        shape = rng.choice(list(d.shapes))
        n = sum(o["shape"] == shape for o in objs)
        question = f"How many {PLURALS[shape]} are there in the image?"
        pool = [str(v) for v in range(max(0, n - 3), n + 4)]
        why = f"Counting the {PLURALS[shape]}: there {'is' if n == 1 else 'are'} {n} {_plural(shape, n)}"
        correct = str(n)
    choices, letter = _options(rng, correct, pool, d.num_choices)
    listed = ", ".join(f"({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices))
    reasoning = (
        f"{why}.\nThe options are {listed}. The matching option is ({letter}) {correct}.\nSo the answer is {letter}."
    )
    return {
        "task": "choice",
        "question": question,
        "solution": letter,
        "choices": choices,
        "scene": scene,
        "description": describe(scene, sizes=sizes),
        "reasoning": reasoning,
    }


def _grounding(rng: random.Random, d: Difficulty) -> dict:
    scene = sample_shape_scene(rng, d)
    candidates = _unique_objects(scene)
    if not candidates:
        raise _Resample
    o = rng.choice(candidates)
    x1, y1, x2, y2 = o["box"]
    at = where(o["box"], scene["width"], scene["height"])
    answer = box_text(o["box"])
    reasoning = (
        f"I look for the {name(o)}; it is the only {name(o)} in the image, {at}.\n"
        f"Its left edge is at x = {x1} and its right edge at x = {x2}.\n"
        f"Its top edge is at y = {y1} and its bottom edge at y = {y2}.\n"
        f"So the answer is {answer}."
    )
    return {
        "task": "grounding",
        "question": (
            f"What is the bounding box of the {name(o)} in the image? "
            "Give it as [x1, y1, x2, y2] in pixel coordinates."
        ),
        "solution": answer,
        "choices": None,
        "scene": scene,
        "description": describe(scene, boxes=True),
        "reasoning": reasoning,
    }


_RELATIONS = ("to the left", "to the right", "above", "below")


def relation(a: list[int], b: list[int]) -> str | None:
    """Where box `a` is relative to box `b`, when unambiguous: one axis dominates (1.5x) and the boxes are
    apart along it; else None.

    >>> relation([0, 0, 10, 10], [50, 5, 60, 15]), relation([0, 50, 10, 60], [0, 0, 10, 10])
    ('to the left', 'below')
    >>> relation([0, 0, 10, 10], [12, 12, 22, 22]) is None
    True
    """
    (ax, ay), (bx, by) = center(a), center(b)
    dx, dy = ax - bx, ay - by
    if abs(dx) >= 1.5 * abs(dy):
        if a[2] <= b[0]:
            return "to the left"
        if b[2] <= a[0]:
            return "to the right"
    elif abs(dy) >= 1.5 * abs(dx):
        if a[3] <= b[1]:
            return "above"
        if b[3] <= a[1]:
            return "below"
    return None


def _spatial(rng: random.Random, d: Difficulty) -> dict:
    scene = sample_shape_scene(rng, d, num_objects=max(2, rng.randint(d.min_objects, d.max_objects)))
    named = _unique_objects(scene)
    pairs = [(a, b) for a in named for b in named if a is not b and relation(a["box"], b["box"])]
    if not pairs:
        raise _Resample
    a, b = rng.choice(pairs)
    rel = relation(a["box"], b["box"])
    choices, letter = _options(rng, rel, list(_RELATIONS), min(d.num_choices, len(_RELATIONS)))
    (ax, ay), (bx, by) = center(a["box"]), center(b["box"])
    axis = "horizontal" if rel in ("to the left", "to the right") else "vertical"
    listed = ", ".join(f"({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices))
    w, h = scene["width"], scene["height"]
    phrase = f"{rel} of the {name(b)}" if rel.startswith("to the") else f"{rel} the {name(b)}"
    reasoning = (
        f"The {name(a)} is {where(a['box'], w, h)}, centred near x = {ax:g}, y = {ay:g}. "
        f"The {name(b)} is {where(b['box'], w, h)}, centred near x = {bx:g}, y = {by:g}.\n"
        f"The {axis} offset is the larger one, and the two do not overlap along it, "
        f"so the {name(a)} is {phrase}.\n"
        f"The options are {listed}. The matching option is ({letter}) {rel}.\nSo the answer is {letter}."
    )
    return {
        "task": "choice",
        "question": f"Where is the {name(a)} relative to the {name(b)}?",
        "solution": letter,
        "choices": choices,
        "scene": scene,
        "description": describe(scene),
        "reasoning": reasoning,
    }


_GENERATORS: dict[str, Callable[[random.Random, Difficulty], dict]] = {
    "counting": _counting,
    "arithmetic": _arithmetic,
    "choice": _choice,
    "grounding": _grounding,
    "spatial": _spatial,
    "detection": detection.generate,  # tasks/detection.py
}


# ------------------------------------------------------------------------------------------ public API


def sample_item(task: str, seed: int, index: int, difficulty: str | Difficulty = "easy") -> dict:
    """The `index`-th item of a (task, seed, difficulty) stream, without its image (see `render`).

    Each item has its own random stream, so item i is the same whatever `n` is.
    """
    if task not in _GENERATORS:
        raise ValueError(f"unknown synthetic task {task!r}; choose one of {', '.join(SYNTHETIC_TASKS)}")
    d = get_difficulty(difficulty)
    rng = random.Random(f"visionr1-synthetic/v{GENERATOR_VERSION}/{task}/{d.name}/{seed}/{index}")
    for _ in range(100):
        try:
            item = _GENERATORS[task](rng, d)
            break
        except _Resample:
            continue
    else:
        raise ValueError(f"task {task!r} found no valid scene in 100 draws at difficulty {d.name!r}: widen it")
    item["difficulty"] = d
    return item


def make_synthetic(
    task: str,
    n: int,
    seed: int,
    out_dir: str | Path,
    difficulty: str | Difficulty = "easy",
    test_fraction: float = 0.1,
) -> Path:
    """Write `n` items of `task` to `out_dir` as train.jsonl / test.jsonl / images/ (CONTRACTS.md "jsonl").

    The last `round(n * test_fraction)` items form the test split. Same arguments, byte-identical output.
    Returns `out_dir`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    d = get_difficulty(difficulty)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_test = int(round(n * test_fraction))
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for i in range(n):
        item = sample_item(task, seed, i, d)
        rid = f"{task}-s{seed}-{d.name}-{i:05d}"
        image = f"images/{rid}.png"
        render(item["scene"]).save(out / image, format="PNG")
        record = {
            "id": rid,
            "task": item["task"],
            "question": item["question"],
            "images": [image],
            "solution": item["solution"],
            "choices": item["choices"],
            "metadata": {
                "source": "visionr1-synthetic",
                "synthetic_task": task,
                "seed": seed,
                "index": i,
                "difficulty": d.name,
                "difficulty_params": d.to_dict(),
                "scene": item["scene"],
                "description": item["description"],
                "reasoning": item["reasoning"],
            },
        }
        splits["test" if i >= n - n_test else "train"].append(json.dumps(record, ensure_ascii=False))
    for split, lines in splits.items():
        (out / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def corpus_texts(per_task: int = 24) -> list[str]:
    """Texts of items of every task and difficulty (the tiny tokenizer's training corpus); deterministic."""
    texts = []
    for task in _CORPUS_TASKS:
        for level in ("easy", "medium", "hard"):
            for i in range(per_task):
                item = sample_item(task, seed=1234, index=i, difficulty=level)
                texts += [item["question"], item["description"], *(item["choices"] or [])]
                texts.append(
                    f"<think>\n{item['reasoning']}\n</think>\n<answer> Final Answer:{item['solution']} </answer>"
                )
    return texts
