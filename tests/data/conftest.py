"""Fixture writers for the data tests: small files in each real on-disk format, written per test.

Images are solid colours so a test can tell which image ended up where; the video is 30 grey frames of
rising brightness (plus colour blocks) so sampled frames can be identified.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def png_bytes(color=RED, size=(8, 6), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, color=RED, size=(8, 6), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color, size, mode))
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def write_geometry3k(path: Path, rows: list[dict]) -> Path:
    """EasyR1's geometry3k layout: images as a list of {bytes, path} structs, written the way the hub's
    files are (via datasets' Image feature, so the Arrow type is the real one)."""
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    features = {"images": List(ImageFeature()), "problem": Value("string"), "answer": Value("string")}
    extra = [k for k in rows[0] if k not in features]
    for k in extra:
        features[k] = Value("string")
    cols = {k: [r.get(k) for r in rows] for k in features}
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(cols, features=Features(features)).to_parquet(str(path))
    return path


def geo_row(problem="<image>Find x.", answer="3", colors=(RED,), **extra) -> dict:
    return {"images": [{"bytes": png_bytes(c), "path": None} for c in colors], "problem": problem, "answer": answer, **extra}


def write_video(path: Path, n_frames=30, size=(64, 48), rate=10, codec="mpeg4") -> Path:
    """A tiny video: frame i is grey level 8*i (identifiable after decoding) in the top half and a colour
    block (red for frames 0-9, green 10-19, blue 20-29) in the bottom half."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n_frames):
            arr = np.zeros((h, w, 3), np.uint8)
            arr[: h // 2] = 8 * i
            arr[h // 2 :] = (RED, GREEN, BLUE)[min(2, i * 3 // n_frames)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mean_color(img: Image.Image, box=None) -> tuple[int, ...]:
    import numpy as np

    arr = np.asarray(img.convert("RGB").crop(box) if box else img.convert("RGB"), dtype=float)
    return tuple(int(round(v)) for v in arr.reshape(-1, 3).mean(0))


@pytest.fixture
def spec():
    """Build a DatasetSpec from keyword arguments (validated, as a recipe would be)."""
    from visionr1.data.spec import DatasetSpec

    def make(**kw):
        return DatasetSpec.model_validate(kw)

    return make


@pytest.fixture
def fx():
    """These writers, for tests (with --import-mode=importlib, conftest helpers cannot be imported)."""
    import sys

    return sys.modules[__name__]
