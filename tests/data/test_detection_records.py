"""Detection records in the data loader: gold boxes follow a resized image; a bad gold list is a named error."""

import json

import pytest

from visionr1.data import DataError, load_samples

GOLD = [{"bbox_2d": [0, 0, 80, 40], "label": "bar"}, {"bbox_2d": [7000, 10, 8000, 50], "label": "tick"}]


def test_boxes_follow_a_resized_1_to_150_image(tmp_path, fx, spec):
    fx.write_png(tmp_path / "images" / "wide.png", size=(8400, 56))  # 1:150
    rec = {"id": "d1", "task": "detection", "question": "Detect every bar and tick.", "images": ["images/wide.png"],
           "solution": json.dumps(GOLD)}
    path = fx.write_jsonl(tmp_path / "train.jsonl", [rec])
    row = load_samples(spec(format="jsonl", path=str(path), max_pixels=56 * 28 * 28)).dataset[0]
    w, h = row["images"][0].size
    assert w < 8400 and abs(w / h - 150) < 3
    got = json.loads(row["solution"])
    sx, sy = w / 8400, h / 56
    assert [g["label"] for g in got] == ["bar", "tick"]
    for g, o in zip(got, GOLD, strict=True):
        want = [o["bbox_2d"][0] * sx, o["bbox_2d"][1] * sy, o["bbox_2d"][2] * sx, o["bbox_2d"][3] * sy]
        assert all(abs(a - b) <= 0.5 for a, b in zip(g["bbox_2d"], want, strict=True))
    meta = json.loads(row["metadata"])
    assert json.loads(meta["original_solution"]) == GOLD and meta["original_image_size"] == [8400, 56]


@pytest.mark.parametrize("solution", ["[1, 2, 3, 4]", '[{"bbox_2d": [5, 5, 1, 1], "label": "x"}]', "boxes?"])
def test_bad_gold_list_names_file_record_and_field(tmp_path, fx, spec, solution):
    fx.write_png(tmp_path / "images" / "a.png", size=(40, 30))
    rec = {"id": "bad7", "task": "detection", "question": "Detect every x.", "images": ["images/a.png"],
           "solution": solution}
    path = str(fx.write_jsonl(tmp_path / "train.jsonl", [rec]))
    with pytest.raises(DataError) as err:
        load_samples(spec(format="jsonl", path=path))
    assert err.value.file == path and err.value.record_id == "bad7" and err.value.field == "solution"
    assert "bbox_2d" in str(err.value)
