"""Finding the data files of a split and reading their records, before any conversion.

A *source* is the raw records of one dataset, addressable by index so that shuffling and ``limit`` need not
read what they skip: JSON/JSONL records are parsed up front (text is cheap), parquet rows are fetched in
chunks by index (their image bytes are not). A record that cannot even be parsed (a bad JSONL line) is kept
as a :class:`DataError` in its slot, so it is reported or skipped like any other bad record rather than
sinking the whole file.

Directory layouts understood, for split ``S`` and the format's extensions ``EXT``: ``DIR/S.EXT``,
``DIR/S-*.EXT`` (sharded), ``DIR/data/S.EXT``, ``DIR/data/S-*.EXT`` (the Hugging Face hub layout) and
``DIR/S/*.EXT``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionr1.data.errors import DataError
from visionr1.utils.io import iter_jsonl

_CHUNK = 256  # parquet rows fetched per read: large enough to amortise, small enough for image bytes


def _split_of(path: Path, root: Path) -> str:
    """The split a file belongs to: its stem before a shard suffix, or its folder under ``root``."""
    rel = path.relative_to(root)
    if len(rel.parts) > 1 and rel.parts[0] != "data":
        return rel.parts[0]
    return path.stem.split("-")[0].split(".")[0]


def find_files(path: str | Path, split: str | None, exts: Sequence[str]) -> list[Path]:
    """The data files of ``split`` under ``path`` (or ``path`` itself if it is a file).

    Raises ``DataError`` naming what exists when the path or the split is missing, or when ``split`` is
    unset and the directory holds several splits.
    """
    root = Path(path).expanduser()
    if root.is_file():
        return [root]
    if not root.exists():
        raise DataError("no such file or directory", file=root, record_level=False)
    candidates: list[Path] = []
    for ext in exts:
        for pattern in ("*.{e}", "data/*.{e}", "*/*.{e}"):
            candidates += sorted(root.glob(pattern.format(e=ext)))
    candidates = sorted(set(candidates))
    if not candidates:
        raise DataError(
            f"directory holds no data files (looked for {', '.join('*.' + e for e in exts)}, also under data/)",
            file=root,
            record_level=False,
        )
    by_split: dict[str, list[Path]] = {}
    for c in candidates:
        by_split.setdefault(_split_of(c, root), []).append(c)
    if split is None:
        if len(by_split) == 1:
            return next(iter(by_split.values()))
        raise DataError(
            f"directory holds several splits ({', '.join(sorted(by_split))}); set `split` to one of them",
            file=root,
            record_level=False,
        )
    if split not in by_split:
        raise DataError(
            f"no split {split!r} here; splits found: {', '.join(sorted(by_split))}", file=root, record_level=False
        )
    return by_split[split]


@dataclass
class RawRecord:
    """One record before conversion: its file, its index in that file, and the parsed fields (or the error
    that kept it from being parsed)."""

    file: Path
    index: int
    fields: dict[str, Any] | DataError
    key: str | None = None  # the id a dict-of-records JSON file gave it (MathVista: the pid)


class Source:
    """Records addressable by a global index; subclasses say how to fetch them."""

    files: list[Path]

    def __len__(self) -> int:
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Every field name that occurs in the data (a column check before per-record conversion)."""
        raise NotImplementedError

    def iter(self, order: Sequence[int]) -> Iterator[RawRecord]:
        raise NotImplementedError

    def describe(self) -> str:
        if len(self.files) == 1:
            return str(self.files[0])
        return f"{self.files[0].parent} ({len(self.files)} files: {', '.join(f.name for f in self.files[:3])}{', ...' if len(self.files) > 3 else ''})"


@dataclass
class ListSource(Source):
    """Records already in memory (JSON, JSONL)."""

    files: list[Path]
    records: list[RawRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def columns(self) -> set[str]:
        out: set[str] = set()
        for r in self.records:
            if isinstance(r.fields, dict):
                out.update(r.fields)
        return out

    def iter(self, order: Sequence[int]) -> Iterator[RawRecord]:
        for i in order:
            yield self.records[i]


def read_json_records(files: list[Path]) -> ListSource:
    """JSON (a list of records, or a dict of records keyed by id) and JSONL files."""
    src = ListSource(files=files)
    for f in files:
        if f.suffix == ".jsonl":
            src.records += _read_jsonl(f)
        else:
            src.records += _read_json(f)
    return src


def _read_jsonl(f: Path) -> list[RawRecord]:
    out = []
    for _lineno, value, problem in iter_jsonl(f):
        idx = len(out)
        if problem is not None:
            out.append(RawRecord(f, idx, DataError(problem, file=f, record_id=f"{f.stem}-{idx}")))
        else:
            out.append(RawRecord(f, idx, value))
    return out


def _read_json(f: Path) -> list[RawRecord]:
    try:
        with f.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        # JSON Lines saved as .json is common (and LLaMA-Factory reads both): read it as such
        if _first_line_is_object(f):
            return _read_jsonl(f)
        raise DataError(f"not valid JSON: {exc}", file=f, record_level=False) from None
    except UnicodeDecodeError as exc:
        if _first_line_is_object(f):  # JSON Lines: the bad line is one bad record
            return _read_jsonl(f)
        raise DataError(f"not UTF-8 text: {exc}", file=f, record_level=False) from None
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        items = [(str(k), v) for k, v in data.items()]  # MathVista's testmini.json: {pid: record}
    elif isinstance(data, list):
        items = [(None, v) for v in data]
    else:
        raise DataError(
            f"expected a JSON list of records (or an object of records keyed by id), got a {type(data).__name__}",
            file=f,
            record_level=False,
        )
    out = []
    for idx, (key, value) in enumerate(items):
        if isinstance(value, dict):
            out.append(RawRecord(f, idx, value, key))
        else:
            err = DataError(
                f"entry {idx} is a JSON {type(value).__name__}, expected an object",
                file=f,
                record_id=key or f"{f.stem}-{idx}",
            )
            out.append(RawRecord(f, idx, err, key))
    return out


def _first_line_is_object(f: Path) -> bool:
    try:
        with f.open("rb") as fh:
            return isinstance(json.loads(fh.readline().decode("utf-8", errors="replace")), dict)
    except json.JSONDecodeError:
        return False


class ParquetSource(Source):
    """Parquet files read by row index, a chunk at a time. A file's table is read when a row of it is first
    asked for and then kept (shuffling across shards would otherwise re-read each shard per chunk); the
    canonical dataset holds the same bytes anyway, so this at most doubles the peak memory of a load."""

    def __init__(self, files: list[Path]) -> None:
        import pyarrow.parquet as pq

        self.files = files
        self._pq = pq
        self._counts: list[int] = []
        self._columns: set[str] = set()
        for f in files:
            try:
                meta = pq.ParquetFile(f)
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for non-parquet data
                raise DataError(f"not a readable parquet file: {exc}", file=f, record_level=False) from None
            self._counts.append(meta.metadata.num_rows)
            self._columns.update(meta.schema_arrow.names)
        self._offsets = [0]
        for c in self._counts:
            self._offsets.append(self._offsets[-1] + c)
        self._tables: dict[int, Any] = {}

    def __len__(self) -> int:
        return self._offsets[-1]

    def columns(self) -> set[str]:
        return set(self._columns)

    def _locate(self, i: int) -> tuple[int, int]:
        import bisect

        fi = bisect.bisect_right(self._offsets, i) - 1
        return fi, i - self._offsets[fi]

    def _table(self, fi: int):
        if fi not in self._tables:
            self._tables[fi] = self._pq.read_table(self.files[fi], memory_map=True)
        return self._tables[fi]

    def iter(self, order: Sequence[int]) -> Iterator[RawRecord]:
        for start in range(0, len(order), _CHUNK):
            chunk = [self._locate(i) for i in order[start : start + _CHUNK]]
            # group by file, keep the requested order
            rows: dict[tuple[int, int], dict] = {}
            for fi in sorted({fi for fi, _ in chunk}):
                local = [r for f, r in chunk if f == fi]
                for r, row in zip(local, self._table(fi).take(local).to_pylist(), strict=True):
                    rows[(fi, r)] = row
            for fi, r in chunk:
                yield RawRecord(self.files[fi], r, rows[(fi, r)])


def open_source(files: list[Path]) -> Source:
    """Parquet or JSON/JSONL by file suffix (any format may come as either); one kind per split."""
    kinds = {"parquet" if f.suffix == ".parquet" else "json" for f in files}
    if len(kinds) > 1:
        raise DataError(
            f"mixes parquet and JSON files ({', '.join(f.name for f in files)}); point `path` at one file",
            file=files[0].parent,
            record_level=False,
        )
    if kinds == {"parquet"}:
        return ParquetSource(files)
    return read_json_records(files)
