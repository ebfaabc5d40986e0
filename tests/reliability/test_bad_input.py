"""A table of bad inputs the tests write themselves. Each one, loaded strictly, is a ``DataError`` naming the
file, the record and the field (never a raw traceback, never a silent load); with ``skip_bad_records`` it is
skipped and counted while the good record next to it loads.

The rows are what a careless or hostile dataset contains: images the Qwen-VL processor would refuse mid-run
(aspect ratio > 200), decompression bombs, invalid UTF-8, NaN answers, media paths that leave the dataset
folder, text that names images the record does not have.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from visionr1.data import DataError, DatasetSpec, load_samples


def png(size, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A 1-bit PNG that declares ``width`` x ``height`` pixels in a few KB (zlib of zero rows), written by
    hand so the test never holds the decoded image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


GOOD = {"id": "good", "task": "math", "question": "<image>What is x?", "images": ["images/good.png"], "solution": "3"}


def jsonl_with(tmp: Path, bad: dict, files: dict[str, bytes] | None = None, name: str = "train.jsonl") -> Path:
    (tmp / "images").mkdir(parents=True, exist_ok=True)
    (tmp / "images" / "good.png").write_bytes(png((64, 48)))
    for rel, data in (files or {}).items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    path = tmp / name
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "bad", **bad}) + "\n")
    return path


def sharegpt_with(tmp: Path, image_path: str, flavour_key: str = "images") -> Path:
    (tmp / "data" / "images").mkdir(parents=True, exist_ok=True)
    (tmp / "data" / "images" / "good.png").write_bytes(png((64, 48)))
    (tmp / "secret.png").write_bytes(png((30, 30)))  # outside the dataset folder tmp/data
    turns = [{"from": "human", "value": "<image>Describe."}, {"from": "gpt", "value": "<answer>ok</answer>"}]
    recs = [{"id": "good", "conversations": turns, flavour_key: ["images/good.png"]},
            {"id": "bad", "conversations": turns, flavour_key: [image_path]}]
    path = tmp / "data" / "cold.json"
    path.write_text(json.dumps(recs))
    return path


def parquet_with_float_answers(tmp: Path, bad_value: float) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    img = {"bytes": png((40, 40)), "path": None}
    table = pa.table({
        "id": ["good", "bad"],
        "images": [[img], [img]],
        "problem": ["<image>Find x.", "<image>Find y."],
        "answer": pa.array([3.0, bad_value], pa.float64()),  # a numeric answer column with an empty cell
    })
    path = tmp / "train.parquet"
    pq.write_table(table, path)
    return path


@dataclass
class Case:
    name: str
    write: Callable[[Path], Path]  # writes the data, returns the data file
    fmt: str
    field: str
    says: str  # a fragment of the reason
    spec: dict | None = None


CASES = [
    Case("aspect ratio 500:1 (10000x20)", lambda t: jsonl_with(t, {"images": ["images/strip.png"]},
         {"images/strip.png": png((10000, 20))}), "jsonl", "images[0]", "aspect ratio 500:1"),
    Case("aspect ratio 1:250", lambda t: jsonl_with(t, {"images": ["images/tall.png"]},
         {"images/tall.png": png((20, 5000))}), "jsonl", "images[0]", "refuse aspect ratios above 200:1"),
    Case("decompression bomb 12000x12000 PNG", lambda t: jsonl_with(t, {"images": ["images/bomb.png"]},
         {"images/bomb.png": bomb_png(12000, 12000)}), "jsonl", "images[0]", "max_decoded_pixels"),
    Case("decoded-pixel cap is configurable", lambda t: jsonl_with(t, {"images": ["images/big.png"]},
         {"images/big.png": png((1200, 1000))}), "jsonl", "images[0]", "1200x1000 = 1.2 M pixels",
         {"max_decoded_pixels": 1_000_000}),
    Case("invalid UTF-8 in a JSONL line", lambda t: _bad_utf8(t), "jsonl", None, "line 2 is not valid UTF-8"),
    Case("NaN answer in parquet", lambda t: parquet_with_float_answers(t, float("nan")), "geometry3k", "answer",
         "is nan"),
    Case("inf answer in parquet", lambda t: parquet_with_float_answers(t, float("inf")), "geometry3k", "answer",
         "is inf"),
    Case("NaN solution in JSONL (Python's json reads NaN)", lambda t: _nan_jsonl(t), "jsonl", "solution", "is nan"),
    Case("ShareGPT image path with ../", lambda t: sharegpt_with(t, "../secret.png"), "sharegpt", "images[0]",
         "resolves outside the dataset root"),
    Case("ShareGPT absolute image path", lambda t: sharegpt_with(t, str(t / "secret.png")), "sharegpt",
         "images[0]", "(absolute) resolves outside"),
    Case("ShareGPT image path under ~", lambda t: sharegpt_with(t, "~/secret.png", "image"), "sharegpt",
         "image[0]", "(under ~) resolves outside"),
    Case("<image1> reference but no image (MATH-V field `image` null)", lambda t: jsonl_with(
         t, {"question": "How many digits?\n<image1>", "images": None, "image": None}), "jsonl", "images",
         "refers to 1 image(s)"),
    Case("options dropped by the jsonl format", lambda t: jsonl_with(t, {"options": ["1", "2"]}), "jsonl", "options",
         "format: mathv"),
]


def _bad_utf8(tmp: Path) -> Path:
    path = jsonl_with(tmp, {})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b"What", b"Wh\xe9t"))  # Latin-1 e-acute
    return path


def _nan_jsonl(tmp: Path) -> Path:
    path = jsonl_with(tmp, {})
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1].replace('"solution": "3"', '"solution": NaN'))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_named_or_skipped(case: Case, tmp_path):
    path = case.write(tmp_path)
    spec = {"format": case.fmt, "path": str(path), **(case.spec or {})}
    with pytest.raises(DataError) as info:
        load_samples(DatasetSpec.model_validate(spec))
    err = info.value
    assert err.file == str(path) and err.record_id in ("bad", "train-1"), str(err)
    assert err.field == case.field, str(err)
    assert case.says in str(err), str(err)
    assert str(err).startswith(f"{path}: record "), str(err)

    res = load_samples(DatasetSpec.model_validate({**spec, "skip_bad_records": True}))
    assert res.dataset["id"] == ["good"]
    assert len(res.skipped) == 1 and case.says in res.skipped[0][1]


def test_outside_root_opt_in_and_inside_absolute_paths(tmp_path):
    path = sharegpt_with(tmp_path, "../secret.png")
    res = load_samples(DatasetSpec(format="sharegpt", path=str(path), allow_outside_root=True))
    assert len(res.dataset) == 2 and res.dataset[1]["images"][0].size == (30, 30)
    # an absolute path that stays under the root is fine
    inside = sharegpt_with(tmp_path / "b", str(tmp_path / "b" / "data" / "images" / "good.png"))
    assert len(load_samples(DatasetSpec(format="sharegpt", path=str(inside))).dataset) == 2


def test_resize_never_pushes_an_acceptable_image_over_the_aspect_limit(tmp_path):
    """20000x101 (198:1) fits the processor; truncating its short side while resizing made it 210:1."""
    path = jsonl_with(tmp_path, {"images": ["images/strip.png"]}, {"images/strip.png": png((20000, 101))})
    ds = load_samples(DatasetSpec(format="jsonl", path=str(path), max_pixels=50176)).dataset
    w, h = ds[1]["images"][0].size
    assert w * h <= 50176 and max(w, h) / min(w, h) <= 200


def test_jpeg_bomb_is_decoded_reduced(tmp_path):
    """A JPEG above the decoded-pixel cap loads when draft decoding brings it under the cap (1/8 scale)."""
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(buf, format="JPEG", quality=50)
    path = jsonl_with(tmp_path, {"images": ["images/photo.jpg"]}, {"images/photo.jpg": buf.getvalue()})
    spec = DatasetSpec(format="jsonl", path=str(path), max_pixels=200_000, max_decoded_pixels=2_000_000)
    img = load_samples(spec).dataset[1]["images"][0]
    assert img.size[0] * img.size[1] <= 200_000 and abs(img.size[0] / img.size[1] - 4 / 3) < 0.02


def test_grpo_preflight_names_or_skips_a_processor_refused_image(tmp_path):
    """The 10000x20 image used to pass preflight and crash GRPO at step 1 inside the processor."""
    import yaml

    from visionr1.recipe import load_recipe
    from visionr1.training.plan import PlanError
    from visionr1.training.runner import preflight

    path = jsonl_with(tmp_path, {"images": ["images/strip.png"]}, {"images/strip.png": png((10000, 20))})
    stage = {"name": "rl", "type": "grpo", "dataset": {"format": "jsonl", "path": str(path)},
             "rewards": [{"name": "accuracy"}], "grpo": {"max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2}}
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(yaml.safe_dump({"name": "p", "model": {"path": "tiny:qwen2_5_vl/test"}, "stages": [stage]}))
    with pytest.raises(PlanError, match=r"stage rl: dataset: .*record bad: field images\[0\]: image is 10000x20"):
        preflight(load_recipe(recipe_path), tmp_path / "run", 1, [0])
    prepared = preflight(load_recipe(recipe_path, ["stages.0.dataset.skip_bad_records=true"]), tmp_path / "run", 1, [0])
    assert prepared[0].train["id"] == ["good"] and [rid for rid, _ in prepared[0].skipped] == ["bad"]
