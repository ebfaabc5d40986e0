"""The shared varied fixtures (tests/varied.py) really are as varied as they promise, and deterministic."""

from __future__ import annotations

import json

from PIL import Image
from tests.varied import SHAREGPT_FLAVOURS, varied_items, write_all


def test_items_cover_lengths_sizes_and_kinds():
    items = varied_items(8, seed=0)
    lengths = [len(it.question) for it in items]
    assert min(lengths) <= 30 and max(lengths) >= 1400
    sizes = {im.size for it in items for im in it.images}
    assert (28, 28) in sizes and (2000, 8000) in sizes
    assert max(max(w / h, h / w) for w, h in sizes) >= 150
    assert {it.kind for it in items} == {"free", "choice_text", "multi", "choice_letters", "text_only"}
    assert any(len(it.images) >= 2 for it in items) and any(not it.images for it in items)
    assert varied_items(8, 0)[3].question == items[3].question
    assert [it.question for it in varied_items(8, 1)] != [it.question for it in items]


def test_every_format_written(tmp_path):
    files = write_all(tmp_path, 8, seed=0)
    assert set(files) == {"geometry3k", "mathv", "mathvista", "jsonl", *(f"sharegpt_{f}" for f in SHAREGPT_FLAVOURS)}
    mathv = [json.loads(line) for line in files["mathv"].read_text().splitlines()]
    assert any("<image2>" in r["question"] for r in mathv) and any(r["image"] is None for r in mathv)
    big = Image.open(tmp_path / "mathv" / "images" / next(
        p.name for p in (tmp_path / "mathv" / "images").iterdir() if p.name.startswith("2000x8000")))
    assert big.size == (2000, 8000)
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 2_000_000  # small on disk
    human = json.loads(files["sharegpt_human_gpt"].read_text())
    assert {t["from"] for r in human for t in r["conversations"]} == {"human", "gpt", "system"}
    assert any(isinstance(r.get("image"), str) for r in human) and any(isinstance(r.get("image"), list) for r in human)
