"""Fixture writers: small files in each benchmark's real published format (no downloads)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest


def png_bytes(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_predictions(path: Path, responses: dict, id_field: str = "pid") -> Path:
    return write_jsonl(path, [{id_field: k, "response": v} for k, v in responses.items()])


@pytest.fixture
def fixtures():
    """The writers, as one object: ``fixtures.json(path, obj)`` etc."""

    class F:
        json = staticmethod(write_json)
        jsonl = staticmethod(write_jsonl)
        parquet = staticmethod(write_parquet)
        predictions = staticmethod(write_predictions)
        png = staticmethod(png_bytes)

    return F
