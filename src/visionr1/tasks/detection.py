"""Open-vocabulary detection, VLM-R1's second task, on the synthetic scenes.

A scene of coloured shapes; the question names a few categories ("red circle", "blue square", ...), some of
them drawn (possibly several times) and some *absent*; the answer lists every box of the named categories as
Qwen2.5-VL's JSON, ``[{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}, ...]`` in pixel coordinates, and
``[]`` when none of them is there. Objects of categories the question does not name are distractors and must
not be listed. The absent categories are the point: VLM-R1 found that an RL-trained model which lists every
category it is asked about is rewarded by mAP alone (a box of an absent category is never a false positive
there), so its reward adds a penalty for listing more boxes than exist; see ``rewards/detection.py``, which
scores this task both as the RL reward and in ``eval run -b synthetic``.

The record's ``task`` is ``detection``; boxes follow the scene convention (``x2 = x1 + width``, inside the
image). Entries are listed left to right (the order the reasoning walks through them); the scorer ranks a
prediction list by its order, so a model that lists what it is surest of first scores best.
"""

from __future__ import annotations

import json
import random

from visionr1.tasks.scene import Difficulty, describe, name, sample_shape_scene, where

# Categories named per question: how many are drawn in the scene and how many are not (upper bounds).
MAX_PRESENT = 3
MAX_ABSENT = 2


def detection_answer(objects: list[dict]) -> str:
    """The JSON answer for the given objects, left to right, one entry per object.

    >>> detection_answer([{"kind": "shape", "shape": "circle", "color": "red", "box": [1, 2, 11, 12]}])
    '[{"bbox_2d": [1, 2, 11, 12], "label": "red circle"}]'
    """
    ordered = sorted(objects, key=lambda o: (o["box"][0], o["box"][1]))
    return json.dumps([{"bbox_2d": list(o["box"]), "label": name(o)} for o in ordered])


def _named_list(names: list[str], conj: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'.

    >>> _named_list(["red circle"]), _named_list(["red circle", "blue square", "green diamond"])
    ('red circle', 'red circle, blue square and green diamond')
    """
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {conj} {names[-1]}"


def generate(rng: random.Random, d: Difficulty) -> dict:
    """One detection item (the synthetic task registry calls this with the item's own random stream)."""
    scene = sample_shape_scene(rng, d, num_objects=max(3, rng.randint(d.min_objects, d.max_objects)))
    present = sorted({name(o) for o in scene["objects"]})
    every = [f"{c} {s}" for c in d.colors for s in d.shapes]
    absent_pool = [c for c in every if c not in present]
    asked_present = rng.sample(present, rng.randint(1, min(MAX_PRESENT, len(present))))
    asked_absent = rng.sample(absent_pool, min(len(absent_pool), rng.randint(1, MAX_ABSENT)))
    asked = asked_present + asked_absent
    rng.shuffle(asked)

    targets = [o for o in scene["objects"] if name(o) in asked]
    answer = detection_answer(targets)
    w, h = scene["width"], scene["height"]
    steps = []
    ordered = sorted(scene["objects"], key=lambda o: (o["box"][0], o["box"][1]))
    for i, o in enumerate(ordered, 1):
        box = "[" + ", ".join(str(v) for v in o["box"]) + "]"
        if name(o) in asked:
            steps.append(f"{i}. The {name(o)} {where(o['box'], w, h)} is asked for; its box is {box}.")
        else:
            steps.append(f"{i}. The {name(o)} {where(o['box'], w, h)} is not asked for.")
    missing = [c for c in asked if c not in present]
    found = len(targets)
    summary = f"I found {found} {'box' if found == 1 else 'boxes'}."
    if missing:
        summary += f" There is no {_named_list(missing, 'or')} in the image, so {'it is' if len(missing) == 1 else 'they are'} left out."
    reasoning = (
        f"I need the box of every {_named_list(asked)} in the image. Going through the objects from left to right:\n"
        + "\n".join(steps)
        + f"\n{summary} So the answer is {answer}."
    )
    question = (
        f"Detect every {_named_list(asked)} in the image. Answer with a JSON list of "
        '{"bbox_2d": [x1, y1, x2, y2], "label": "..."} entries in pixel coordinates, one per object; '
        "leave out the categories that are not in the image."
    )
    return {
        "task": "detection",
        "question": question,
        "solution": answer,
        "choices": None,
        "scene": scene,
        "description": describe(scene, boxes=True),
        "reasoning": reasoning,
    }
