"""The published formats load as published (tests/varied.py writes them with real data's variety):
EasyR1/geometry3k parquet, MATH-V JSONL, the three ShareGPT flavours of Vision-R1-cold, MathVista, jsonl."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from tests.varied import (
    SHAREGPT_FLAVOURS,
    varied_items,
    write_geometry3k,
    write_jsonl,
    write_mathv,
    write_sharegpt,
)

from visionr1.data import DataError, DatasetSpec, load_samples

N, SEED = 8, 0
ITEMS = {it.id: it for it in varied_items(N, SEED)}


def image_parts(row) -> int:
    return sum(p["type"] == "image" for m in row["prompt"] for p in m["content"])


def prompt_text(row) -> str:
    return "".join(p["text"] or "" for m in row["prompt"] for p in m["content"] if p["type"] == "text")


def check_common(ds, by_id=None):
    """Every item loaded with its images (none lost, none invented), within the budget, the right task."""
    assert len(ds) == N
    for row in ds:
        item = ITEMS[by_id(row) if by_id else row["id"]]
        assert len(row["images"]) == len(item.images) == image_parts(row), row["id"]
        for im, want in zip(row["images"], item.images, strict=True):
            assert im.width * im.height <= 512 * 28 * 28
            assert abs(im.width / im.height - want.size[0] / want.size[1]) / (want.size[0] / want.size[1]) < 0.1


def test_geometry3k_choices_are_choice_tasks(tmp_path):
    path = write_geometry3k(tmp_path, N, SEED)
    ds = load_samples(DatasetSpec(format="geometry3k", path=str(path))).dataset
    check_common(ds)
    for row in ds:
        item = ITEMS[row["id"]]
        assert row["task"] == ("choice" if item.choices else "math"), row["id"]
        assert row["solution"] == item.answer
        if item.kind == "choice_letters":  # options drawn in the image: "A. A" is not listed
            assert "A. A" not in prompt_text(row)
        elif item.choices:  # the problem text carries "(A) ...": listed once, not again under "Choices:"
            text = prompt_text(row)
            assert "Choices:" not in text, text
            assert all(text.count(c) == 1 for c in item.choices), text
    # told otherwise: the recipe's task wins
    assert set(load_samples(DatasetSpec(format="geometry3k", path=str(path), task="math")).dataset["task"]) == {"math"}


def test_mathv_as_published(tmp_path):
    path = write_mathv(tmp_path, N, SEED)
    records = {json.loads(line)["id"]: json.loads(line) for line in path.read_text().splitlines()}
    ds = load_samples(DatasetSpec(format="mathv", path=str(path))).dataset
    assert len(ds) == N
    for row in ds:
        rec, item = records[row["id"]], ITEMS[row["id"]]
        assert len(row["images"]) == (1 if rec["image"] else 0) == image_parts(row)
        meta = json.loads(row["metadata"])
        assert row["solution"] == rec["answer"]  # never the worked solution
        if rec["solution"]:
            assert meta["solution_text"] == rec["solution"]
        assert meta["level"] == rec["level"] and meta["subject"] == rec["subject"]
        text = prompt_text(row)
        assert "<image" not in text
        if len(item.images) > 1:
            assert "(image 2)" in text
        if rec["options"] and item.kind == "choice_text":
            assert row["task"] == "choice" and row["choices"] == rec["options"]
            assert f"A. {rec['options'][0]}" in text
        if row["prompt"][0]["content"][0]["type"] == "image":
            assert image_parts(row) == 1


def test_mathv_record_with_image_reference_but_no_image_is_an_error(tmp_path):
    path = write_mathv(tmp_path, N, SEED)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["image"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(DataError, match=r"record v0-0: field image: the question refers to 1 image"):
        load_samples(DatasetSpec(format="mathv", path=str(path)))


@pytest.mark.parametrize("flavour", SHAREGPT_FLAVOURS)
def test_sharegpt_flavours_load_their_images(tmp_path, flavour):
    path = write_sharegpt(tmp_path, flavour, N, SEED)
    ds = load_samples(DatasetSpec(format="sharegpt", path=str(path))).dataset
    order = list(ITEMS)
    ids = {row["id"]: order[i] for i, row in enumerate(ds)}
    check_common(ds, by_id=lambda row: ids[row["id"]])
    for i, row in enumerate(ds):
        assert row["solution"] == ITEMS[order[i]].answer and row["completion"]
    assert ds[1]["prompt"][0]["role"] == "system"


def test_column_mapping(tmp_path):
    """EasyR1's prompt_key / answer_key / image_key: a parquet with other column names loads by mapping."""
    path = write_geometry3k(tmp_path, N, SEED)
    table = pq.read_table(path).rename_columns(["img", "question", "label", "id", "choices"])
    pq.write_table(table, tmp_path / "renamed.parquet")
    spec = {"format": "geometry3k", "path": str(tmp_path / "renamed.parquet")}
    with pytest.raises(DataError, match=r"missing column 'problem'.*columns: \{problem: YOUR_COLUMN\}"):
        load_samples(DatasetSpec.model_validate(spec))
    mapped = {**spec, "columns": {"problem": "question", "answer": "label", "images": "img"}}
    ds = load_samples(DatasetSpec.model_validate(mapped)).dataset
    check_common(ds)
    assert "question" not in json.loads(ds[0]["metadata"])  # renamed, not duplicated
    with pytest.raises(DataError, match=r"columns.answer: no column 'lable'"):
        load_samples(DatasetSpec.model_validate({**mapped, "columns": {**mapped["columns"], "answer": "lable"}}))


def test_jsonl_accepts_image_and_infers_choice(tmp_path):
    path = write_jsonl(tmp_path, N, SEED)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:  # MATH-V-like single `image` field, no task column
        del r["task"]
        if len(r["images"]) == 1:
            r["image"] = r.pop("images")[0]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_samples(DatasetSpec(format="jsonl", path=str(path), task="math")).dataset
    check_common(ds)
    assert [r["task"] for r in ds] == ["math"] * N  # the recipe said math
    rows_no_task = load_samples(DatasetSpec(format="jsonl", path=str(path), skip_bad_records=True))
    choice_ids = {i for i, it in ITEMS.items() if it.choices}
    assert {r["id"] for r in rows_no_task.dataset if r["task"] == "choice"} == choice_ids
