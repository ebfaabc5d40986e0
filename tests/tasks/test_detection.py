"""The synthetic open-vocabulary detection task: every named box inside the image, absent categories asked
for, the gold list scoring 1 with the reward that trains on it, and deterministic by seed."""

import json
import re

import pytest

from visionr1.rewards.detection import score_detection
from visionr1.tasks.scene import DIFFICULTIES
from visionr1.tasks.synthetic import make_synthetic, sample_item


def _asked(question: str) -> list[str]:
    return re.split(r", | and ", re.match(r"Detect every (.+?) in the image\.", question).group(1))


@pytest.mark.parametrize("level", list(DIFFICULTIES))
def test_items_ask_for_present_and_absent_categories_and_boxes_lie_inside(level):
    absent_asked = 0
    for i in range(40):
        item = sample_item("detection", 5, i, level)
        scene, gold = item["scene"], json.loads(item["solution"])
        present = {f"{o['color']} {o['shape']}" for o in scene["objects"]}
        asked = _asked(item["question"])
        assert len(set(asked)) == len(asked) and present & set(asked), item["question"]
        absent_asked += bool(set(asked) - present)
        assert gold and {g["label"] for g in gold} == present & set(asked)
        assert len(gold) == sum(f"{o['color']} {o['shape']}" in asked for o in scene["objects"])
        for g in gold:
            x1, y1, x2, y2 = g["bbox_2d"]
            assert 0 <= x1 < x2 <= scene["width"] and 0 <= y1 < y2 <= scene["height"]
        assert score_detection(item["solution"], item["solution"]) == 1.0
        assert item["reasoning"].endswith(f"So the answer is {item['solution']}.")
    assert absent_asked == 40  # every palette leaves categories out, and every question names one


def test_distractors_are_drawn_and_asked_absent_ones_are_explained():
    items = [sample_item("detection", 0, i, "hard") for i in range(20)]
    assert any(len(it["scene"]["objects"]) > len(json.loads(it["solution"])) for it in items)  # unasked objects
    for it in items:
        present = {f"{o['color']} {o['shape']}" for o in it["scene"]["objects"]}
        for name in set(_asked(it["question"])) - present:
            assert name in it["reasoning"].rsplit("\n", 1)[-1]  # "There is no X ... left out"


def test_same_seed_same_bytes_and_loader_keeps_the_boxes(tmp_path):
    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec

    a = make_synthetic("detection", 4, 9, tmp_path / "a", difficulty="medium", test_fraction=0.25)
    b = make_synthetic("detection", 4, 9, tmp_path / "b", difficulty="medium", test_fraction=0.25)
    for rel in ("train.jsonl", "test.jsonl"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert sample_item("detection", 9, 1, "medium")["solution"] != sample_item("detection", 10, 1, "medium")["solution"]
    rows = load_samples(DatasetSpec(format="jsonl", path=str(a), split="train")).dataset
    recs = [json.loads(line) for line in (a / "train.jsonl").read_text().splitlines()]
    assert [r["task"] for r in rows] == ["detection"] * 3
    assert [r["solution"] for r in rows] == [r["solution"] for r in recs]  # not resized: unchanged


def test_doctests():
    import doctest

    import visionr1.tasks.detection

    result = doctest.testmod(visionr1.tasks.detection)
    assert result.failed == 0 and result.attempted > 0
