"""Benchmark records and prediction files, read in the formats the benchmarks publish them in.

A benchmark ships as JSON (a list of records, or an object keyed by id, as MathVista's ``testmini.json`` and
DynaMath's ``dataset.json``), JSONL (MathVision, MM-Math's metadata) or parquet (the Hugging Face copies,
images embedded as ``{"bytes", "path"}`` structs). A directory means every such file under it (DynaMath's ten
``sample_variant*`` parquet files). Scoring never needs the pixels, so image columns can be skipped when a
parquet file is read: a 5,010-record DynaMath copy is 370 MB of PNG.

Errors name the file, the line or record, and what to do about it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionr1.utils.io import iter_jsonl

DATA_SUFFIXES = (".json", ".jsonl", ".parquet")


class EvalError(ValueError):
    """Bad evaluation input (data, predictions, options); the message names the file, record and fix."""


@dataclass
class PublishedRecord:
    """One record as published, with where it came from."""

    data: dict[str, Any]
    file: Path  # relative image paths in the record resolve against this file's folder
    index: int  # position in the file (0-based)
    key: str | None = None  # the key, when the JSON file is an object keyed by id


def data_files(path: Path) -> list[Path]:
    """The data files ``path`` names: itself, or every JSON/JSONL/parquet file under a directory (sorted)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise EvalError(f"{path}: unsupported data file type {path.suffix!r}; expected one of {DATA_SUFFIXES}")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise EvalError(f"{path}: directory holds no .json, .jsonl or .parquet file")
        return files
    raise EvalError(f"{path}: no such file or directory (pass the benchmark's data file or folder with --data)")


def clean_value(value: Any) -> Any:
    """NaN (parquet's missing float) -> None; integral floats stay floats (callers decide)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records_from_json(path: Path) -> Iterator[PublishedRecord]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); is it JSONL? name it .jsonl") from None
    if isinstance(obj, list):
        for i, rec in enumerate(obj):
            if not isinstance(rec, dict):
                raise EvalError(f"{path}: record {i} is a {type(rec).__name__}, expected an object")
            yield PublishedRecord(rec, path, i)
    elif isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        for i, (key, rec) in enumerate(obj.items()):
            yield PublishedRecord(rec, path, i, key=str(key))
    else:
        raise EvalError(f"{path}: expected a list of records or an object of records keyed by id")


def _records_from_jsonl(path: Path) -> Iterator[PublishedRecord]:
    for n, (_lineno, rec, problem) in enumerate(iter_jsonl(path)):
        if problem is not None:
            raise EvalError(f"{path}: {problem}")
        yield PublishedRecord(rec, path, n)


def _records_from_parquet(path: Path, skip_columns: Collection[str]) -> Iterator[PublishedRecord]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        columns = [c for c in schema.names if c not in skip_columns]
        table = pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise EvalError(f"{path}: not a readable parquet file ({exc})") from None
    for i, rec in enumerate(table.to_pylist()):
        yield PublishedRecord({k: clean_value(v) for k, v in rec.items()}, path, i)


def read_records(path: Path, skip_columns: Collection[str] = ()) -> list[PublishedRecord]:
    """Every record under ``path`` in file order. ``skip_columns`` are not read from parquet files."""
    out: list[PublishedRecord] = []
    for file in data_files(path):
        suffix = file.suffix.lower()
        if suffix == ".json":
            out.extend(_records_from_json(file))
        elif suffix == ".jsonl":
            out.extend(_records_from_jsonl(file))
        else:
            out.extend(_records_from_parquet(file, skip_columns))
    if not out:
        raise EvalError(f"{path}: no records")
    return out


def read_predictions(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of a predictions JSONL file; each object needs ``response``."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: predictions file not found")
    out = []
    for lineno, obj, problem in iter_jsonl(path):
        if problem is not None:
            raise EvalError(f"{path}: {problem} (each line: an object with an id and \"response\")")
        if "response" not in obj:
            raise EvalError(f"{path}: line {lineno}: no \"response\" field (keys: {sorted(obj)})")
        if obj["response"] is not None and not isinstance(obj["response"], str):
            raise EvalError(f"{path}: line {lineno}: \"response\" must be a string or null")
        out.append((lineno, obj))
    return out


def read_resumable_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSONL file that a killed process may have been appending to.

    A process killed mid-write leaves a last line without its newline; that line is cut off the file (it
    would otherwise glue onto the next appended record) and not returned. Any other bad line is an error:
    it means the file was edited, not interrupted.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with path.open("r+b") as fh:
            fh.truncate(end)
    out = []
    for _lineno, obj, problem in iter_jsonl(path):
        if problem is not None:
            raise EvalError(f"{path}: {problem}; remove the line to resume")
        out.append(obj)
    return out
