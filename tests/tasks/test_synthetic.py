"""Synthetic tasks: deterministic, answers re-derivable from the drawn scene, pixels match the scene."""

import json
import re
import string
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from visionr1.tasks.scene import COLORS, DIFFICULTIES, SHAPES, render
from visionr1.tasks.synthetic import SYNTHETIC_TASKS, make_synthetic, relation, sample_item

CANONICAL_TASK = {"counting": "count", "arithmetic": "math", "choice": "choice", "grounding": "grounding",
                  "spatial": "choice", "detection": "detection"}


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Every task at every difficulty, 12 items each (2 in test)."""
    root = tmp_path_factory.mktemp("synthetic")
    out = {}
    for task in SYNTHETIC_TASKS:
        for level in DIFFICULTIES:
            d = make_synthetic(task, 12, seed=3, out_dir=root / f"{task}-{level}", difficulty=level, test_fraction=1 / 6)
            out[task, level] = (d, _records(d / "train.jsonl") + _records(d / "test.jsonl"))
    return out


# ------------------------------------------------------------------------------------------- re-derivation


def _objects(rec):
    return rec["metadata"]["scene"]["objects"]


def _letter(rec, option_text):
    return string.ascii_uppercase[rec["choices"].index(option_text)]


def _recount(rec):
    q = rec["question"]
    m = re.fullmatch(r"How many (.+) are there in the image\?", q)
    words = m.group(1).split()
    objs = _objects(rec)
    if words == ["objects"]:
        return len(objs)
    if len(words) == 2 and words[1] == "objects":
        return sum(o["color"] == words[0] for o in objs)
    shape = words[-1][:-1]  # plural -> singular
    assert shape in SHAPES
    color = words[0] if len(words) == 2 else None
    return sum(o["shape"] == shape and (color is None or o["color"] == color) for o in objs)


def _recompute_math(rec):
    objs = sorted(_objects(rec), key=lambda o: o["box"][0])
    value = {o["color"]: o["value"] for o in objs}
    q = rec["question"]
    if m := re.fullmatch(r"What is the sum of the (\w+) number and the (\w+) number\?", q):
        return value[m[1]] + value[m[2]]
    if m := re.fullmatch(r"What is the (\w+) number minus the (\w+) number\?", q):
        return value[m[1]] - value[m[2]]
    if m := re.fullmatch(r"What is the product of the (\w+) number and the (\w+) number\?", q):
        return value[m[1]] * value[m[2]]
    m = re.fullmatch(r"Start with the (\w+) number, then (.+)\. What is the result\?", q)
    result = value[m[1]]
    for step in m[2].split(", then "):
        op, color = re.fullmatch(r"(add|subtract|multiply by) the (\w+) number", step).groups()
        result = {"add": result + value[color], "subtract": result - value[color],
                  "multiply by": result * value[color]}[op]
    return result


def _recompute_choice(rec):
    objs, q = _objects(rec), rec["question"]
    if m := re.fullmatch(r"Which (colour|shape) appears most often in the image\?", q):
        attr = "color" if m[1] == "colour" else "shape"
        (top, n), *rest = Counter(o[attr] for o in objs).most_common()
        assert not rest or rest[0][1] < n, "a tie would make two options right"
        return _letter(rec, top)
    if m := re.fullmatch(r"What is the (colour|shape) of the largest object in the image\?", q):
        big = max(objs, key=lambda o: o["size"])
        assert sum(o["size"] >= big["size"] - 2 for o in objs) == 1, "the largest must be clearly largest"
        return _letter(rec, big["color" if m[1] == "colour" else "shape"])
    if m := re.fullmatch(r"How many (\w+)s are there in the image\?", q):
        return _letter(rec, str(sum(o["shape"] == m[1] for o in objs)))
    m = re.fullmatch(r"Where is the (\w+) (\w+) relative to the (\w+) (\w+)\?", q)
    (a,) = [o for o in objs if (o["color"], o["shape"]) == (m[1], m[2])]
    (b,) = [o for o in objs if (o["color"], o["shape"]) == (m[3], m[4])]
    ax, ay = (a["box"][0] + a["box"][2]) / 2, (a["box"][1] + a["box"][3]) / 2
    bx, by = (b["box"][0] + b["box"][2]) / 2, (b["box"][1] + b["box"][3]) / 2
    if abs(ax - bx) > abs(ay - by):
        assert a["box"][2] <= b["box"][0] or b["box"][2] <= a["box"][0]
        return _letter(rec, "to the left" if ax < bx else "to the right")
    assert a["box"][3] <= b["box"][1] or b["box"][3] <= a["box"][1]
    return _letter(rec, "above" if ay < by else "below")


def _recompute_box(rec):
    color, shape = re.match(r"What is the bounding box of the (\w+) (\w+) in the image\?", rec["question"]).groups()
    (o,) = [o for o in _objects(rec) if (o["color"], o["shape"]) == (color, shape)]  # exactly one: unambiguous
    return "[" + ", ".join(map(str, o["box"])) + "]"


def _recompute_detection(rec):
    asked = re.match(r"Detect every (.+?) in the image\.", rec["question"]).group(1)
    names = set(re.split(r", | and ", asked))
    found = sorted((o for o in _objects(rec) if f"{o['color']} {o['shape']}" in names), key=lambda o: o["box"][:2])
    return json.dumps([{"bbox_2d": o["box"], "label": f"{o['color']} {o['shape']}"} for o in found])


RECOMPUTE = {
    "counting": lambda r: str(_recount(r)),
    "arithmetic": lambda r: str(_recompute_math(r)),
    "choice": _recompute_choice,
    "spatial": _recompute_choice,
    "grounding": _recompute_box,
    "detection": _recompute_detection,
}


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
def test_answers_are_consistent_with_the_scene(task, datasets):
    for level in DIFFICULTIES:
        for rec in datasets[task, level][1]:
            assert rec["solution"] == RECOMPUTE[task](rec), rec["id"]
            assert rec["metadata"]["reasoning"].endswith(f"So the answer is {rec['solution']}."), rec["id"]


@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
def test_records_follow_the_jsonl_contract_and_images_match_the_scene(task, datasets):
    for level in DIFFICULTIES:
        root, records = datasets[task, level]
        assert len(_records(root / "train.jsonl")) == 10 and len(_records(root / "test.jsonl")) == 2
        for rec in records:
            assert set(rec) == {"id", "task", "question", "images", "solution", "choices", "metadata"}
            assert rec["task"] == CANONICAL_TASK[task]
            assert rec["images"] == [f"images/{rec['id']}.png"]
            meta = rec["metadata"]
            assert meta["difficulty"] == level and meta["description"] and meta["reasoning"]
            if rec["task"] == "choice":
                assert rec["solution"] in string.ascii_uppercase[: len(rec["choices"])]
                assert len(set(rec["choices"])) == len(rec["choices"]) == DIFFICULTIES[level].num_choices
            else:
                assert rec["choices"] is None
            scene = meta["scene"]
            img = Image.open(root / rec["images"][0])
            assert img.mode == "RGB" and img.size == (scene["width"], scene["height"])
            boxes = [o["box"] for o in scene["objects"]]
            for o in scene["objects"]:
                x1, y1, x2, y2 = o["box"]
                assert 0 <= x1 < x2 <= scene["width"] and 0 <= y1 < y2 <= scene["height"], rec["id"]
                rgb = COLORS[o["color"]]
                if o["kind"] == "shape":  # the centre pixel of every drawn shape has its colour
                    assert img.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == rgb, rec["id"]
                else:  # some ink of each number's colour inside its box
                    assert rgb in {img.getpixel((x, y)) for x in range(x1, x2) for y in range(y1, y2)}
            for i, a in enumerate(boxes):  # no overlaps: counts and relations are unambiguous
                for b in boxes[i + 1 :]:
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    for task in SYNTHETIC_TASKS:
        a = make_synthetic(task, 5, seed=11, out_dir=tmp_path / f"{task}-a", difficulty="medium")
        b = make_synthetic(task, 5, seed=11, out_dir=tmp_path / f"{task}-b", difficulty="medium")
        c = make_synthetic(task, 5, seed=12, out_dir=tmp_path / f"{task}-c", difficulty="medium")
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        for rel in files_a:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
        # Item i does not depend on n: a longer run starts with the same items.
        assert sample_item(task, 11, 3, "medium")["question"] == _records(a / "train.jsonl")[3]["question"]


def test_difficulty_raises_object_count_clutter_and_image_size(datasets):
    def mean_objects(level):
        recs = [r for t in ("counting", "choice", "grounding") for r in datasets[t, level][1]]
        return sum(len(_objects(r)) for r in recs) / len(recs)

    assert mean_objects("easy") < mean_objects("medium") < mean_objects("hard")
    for level, d in DIFFICULTIES.items():
        for rec in datasets["counting", level][1]:
            assert d.min_objects <= len(_objects(rec)) <= d.max_objects
            assert len(rec["metadata"]["scene"]["clutter"]) == d.clutter
    assert {len(_objects(r)) for r in datasets["arithmetic", "hard"][1]} == {DIFFICULTIES["hard"].operands}
    assert DIFFICULTIES["hard"].image_size > DIFFICULTIES["easy"].image_size


def test_render_is_pure_and_descriptions_mention_every_object(datasets):
    _, records = datasets["grounding", "hard"]
    for rec in records[:3]:
        scene = rec["metadata"]["scene"]
        assert render(scene).tobytes() == render(scene).tobytes()
        desc = rec["metadata"]["description"]
        for o in scene["objects"]:
            assert f"{o['color']} {o['shape']}" in desc
            assert "[" + ", ".join(map(str, o["box"])) + "]" in desc  # grounding descriptions carry boxes


def test_bad_arguments_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic task 'sudoku'; choose one of counting"):
        make_synthetic("sudoku", 2, 0, tmp_path)
    with pytest.raises(ValueError, match="unknown difficulty 'insane'; choose one of easy, medium, hard"):
        make_synthetic("counting", 2, 0, tmp_path, difficulty="insane")


box = st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(1, 40), st.integers(1, 40)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)
OPPOSITE = {"to the left": "to the right", "to the right": "to the left", "above": "below", "below": "above"}


@given(box, box)
def test_relation_is_antisymmetric_and_only_for_separated_boxes(a, b):
    r = relation(a, b)
    assert relation(b, a) == (OPPOSITE[r] if r else None)
    if r == "to the left":
        assert a[2] <= b[0]
    if r == "above":
        assert a[3] <= b[1]
