"""``load_samples(spec)``: any supported on-disk format in, a ``datasets.Dataset`` of canonical samples out.

The canonical sample (docs/CONTRACTS.md) is what trainers, evaluation and cold start consume, so this is
the only module that knows about on-disk formats. The steps, in order:

1. find the split's files (``sources.find_files``) and open them (parquet, JSON or JSONL by suffix);
2. check the dataset as a whole: not empty, every required column present (these errors are never
   skippable: skipping every record would only hide them);
3. shuffle the record *indices* (``shuffle_seed``) and convert records until ``limit`` samples are kept, so
   a 10-sample smoke run on a 200K-record file reads 10 records, not 200K;
4. per record: the format's converter, then :func:`finish_sample`. A bad record raises ``DataError`` naming
   the file, the record id and the field, or, with ``skip_bad_records``, is counted in ``LoadResult.skipped``
   and reported in a warning. Nothing is dropped silently;
5. build the Dataset with a fixed schema (:data:`FEATURES`), identical for every format, so datasets from
   different sources concatenate.

Images are stored as given where possible and decoded on access (see ``images.py``).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionr1.data.errors import DataError, Where
from visionr1.data.formats import FORMATS, Converted
from visionr1.data.images import rescale_box
from visionr1.data.render import render_into
from visionr1.data.sources import RawRecord, find_files, open_source
from visionr1.data.spec import DatasetSpec
from visionr1.rewards.scoring import TASKS  # the task column names the scorer that grades the record

log = logging.getLogger(__name__)

COLUMNS = ("id", "task", "question", "prompt", "images", "solution", "choices", "completion", "metadata")


def _features():
    """The canonical Arrow schema. Every content part has ``type`` and ``text`` (image parts: text None)."""
    from datasets import Features, Image, List, Value

    message = {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
    return Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "question": Value("string"),
            "prompt": List(message),
            # mode="RGB": stored images that are palette/greyscale decode to RGB, as the contract promises
            "images": List(Image(mode="RGB")),
            "solution": Value("string"),
            "choices": List(Value("string")),
            "completion": List(message),
            "metadata": Value("string"),
        }
    )


@dataclass
class LoadResult:
    """What :func:`load_samples` returns.

    ``dataset``: canonical samples. ``skipped``: ``(record id, reason)`` for every record left out under
    ``skip_bad_records``. ``source``: the file(s) read, for logs. ``files``: the same as paths.
    ``num_records``: records in the source (before ``limit``). ``image_sizes``: ``(original, stored)`` size
    of every image loaded, in order (what ``data inspect`` and ``--dry-run`` turn into image tokens).
    """

    dataset: Any
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    files: list[Path] = field(default_factory=list)
    num_records: int = 0
    image_sizes: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs: ``120 samples from d/train.jsonl (3 records skipped)``."""
        s = f"{len(self.dataset)} samples from {self.source}"
        if self.skipped:
            s += f" ({len(self.skipped)} records skipped)"
        return s


def finish_sample(conv: Converted, record_id: str, where: Where) -> dict[str, Any]:
    """A converter's output -> one row of :data:`FEATURES`: checks the task, makes a grounding box follow
    its resized image, encodes metadata as JSON text (a stable Arrow schema across sources)."""
    if conv.task not in TASKS:
        raise where.error("task", f"unknown task {conv.task!r}; expected one of {', '.join(TASKS)}")
    solution = conv.solution
    meta = dict(conv.metadata)
    if conv.task == "grounding":
        if not conv.images:
            raise where.error("images", "a grounding record needs the image its box refers to")
        first = conv.images[0]
        if first.resized:
            # the box is in pixels of the first image, as the annotator saw it; it must follow the resize
            scaled = rescale_box(solution, first.original_size, first.size)
            if scaled is None:
                raise where.error("solution", f"grounding solution must be '[x1, y1, x2, y2]', got {solution!r}")
            meta.setdefault("original_solution", solution)
            meta.setdefault("original_image_size", list(first.original_size))
            solution = scaled
    elif conv.task == "detection":
        solution = _detection_solution(conv, solution, meta, where)
    try:
        metadata = json.dumps(meta, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise where.error("metadata", f"cannot be stored as JSON: {exc}") from None
    return {
        "id": record_id,
        "task": conv.task,
        "question": conv.question,
        "prompt": conv.prompt,
        "images": [im.value for im in conv.images],
        "solution": solution,
        "choices": conv.choices,
        "completion": conv.completion,
        "metadata": metadata,
    }


def _detection_solution(conv: Converted, solution: str, meta: dict[str, Any], where: Where) -> str:
    """A detection record's gold box list, checked, and rescaled when its image was (rewards/detection.py)."""
    from visionr1.rewards.detection import rescale_detections

    if not conv.images:
        raise where.error("images", "a detection record needs the image its boxes refer to")
    first = conv.images[0]
    scaled = rescale_detections(solution, first.original_size, first.size if first.resized else first.original_size)
    if scaled is None:
        raise where.error(
            "solution",
            'detection solution must be a JSON list of {"bbox_2d": [x1, y1, x2, y2], "label": "..."} '
            f"(x2 > x1, y2 > y1; [] for none), got {solution[:200]!r}",
        )
    if first.resized:
        meta.setdefault("original_solution", solution)
        meta.setdefault("original_image_size", list(first.original_size))
        return scaled
    return solution


def _record_id(rec: RawRecord, id_keys: tuple[str, ...]) -> str:
    """The source's id when it has one, else ``<file stem>-<index>`` (docs/CONTRACTS.md)."""
    if isinstance(rec.fields, dict):
        for key in id_keys:
            value = rec.fields.get(key)
            if value is not None and str(value).strip():
                return str(value)
    return rec.key or f"{rec.file.stem}-{rec.index}"


def _map_columns(fields: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The record with each mapped source column renamed to the field the format reads."""
    out = dict(fields)
    for target, column in mapping.items():
        if column in fields:
            out[target] = out.pop(column) if column != target else fields[column]
    return out


def _check_mapping(present: set[str], mapping: dict[str, str], described: str) -> set[str]:
    """Every mapped column must exist (a typo would otherwise read as a missing field per record); returns
    the column names as the format will see them."""
    if not present or not mapping:
        return present
    missing = {t: c for t, c in mapping.items() if c not in present}
    if missing:
        target, column = next(iter(missing.items()))
        raise DataError(
            f"columns.{target}: no column {column!r} in the data; columns present: {', '.join(sorted(present))}",
            file=described,
            field=f"columns.{target}",
            record_level=False,
        )
    return (present - set(mapping.values())) | set(mapping)


def _check_columns(present: set[str], required: tuple[tuple[str, ...], ...], fmt: str, described: str) -> None:
    if not present:
        return  # no record parsed at all (e.g. every JSONL line broken): the per-record errors say why
    for group in required:
        if not present.intersection(group):
            want = " or ".join(f"'{c}'" for c in group)
            raise DataError(
                f"missing column {want} required by format {fmt!r}; columns present: {', '.join(sorted(present)) or 'none'}"
                f" (map yours with columns: {{{group[0]}: YOUR_COLUMN}})",
                file=described,
                field=group[0],
                record_level=False,
            )


def load_samples(spec: DatasetSpec) -> LoadResult:
    """Load the dataset ``spec`` describes as canonical samples (see the module docstring for the steps).

    Raises ``DataError`` for a missing path or split, an empty dataset, a missing column, and, unless
    ``spec.skip_bad_records``, for the first bad record (missing/corrupt image, undecodable video,
    placeholder/image count mismatch, missing or ill-typed field).
    """
    from datasets import Dataset

    fmt = FORMATS[spec.format]
    files = find_files(spec.path, spec.split, fmt.exts)
    source = open_source(files)
    described = source.describe()
    if len(source) == 0:
        raise DataError("empty dataset: no records", file=described, record_level=False)
    present = _check_mapping(source.columns(), spec.columns, described)
    _check_columns(present, fmt.required, spec.format, described)

    order = list(range(len(source)))
    if spec.shuffle_seed is not None:
        random.Random(spec.shuffle_seed).shuffle(order)
    image_root = Path(spec.image_root).expanduser() if spec.image_root else None

    rows: list[dict[str, Any]] = []
    sizes: list[tuple[tuple[int, int], tuple[int, int]]] = []
    skipped: list[tuple[str, str]] = []
    for rec in source.iter(order):
        if spec.limit is not None and len(rows) >= spec.limit:
            break
        if spec.columns and isinstance(rec.fields, dict):
            rec.fields = _map_columns(rec.fields, spec.columns)
        record_id = _record_id(rec, fmt.id_keys)
        try:
            if isinstance(rec.fields, DataError):
                raise rec.fields
            where = Where(rec.file, record_id, image_root or rec.file.parent, spec.allow_outside_root)
            conv = fmt.convert(rec.fields, where, spec)
            row = finish_sample(conv, record_id, where)
            if spec.render_question:  # R1-Vision: the question as an image (data/render.py)
                row = render_into(row, spec.render, where, spec.image_max_pixels)
            rows.append(row)
            sizes += [(im.original_size, im.size) for im in conv.images]
        except DataError as exc:
            if not spec.skip_bad_records or not exc.record_level:
                raise
            skipped.append((exc.record_id or record_id, exc.short))

    tried = len(rows) + len(skipped)
    if skipped:
        _report_skipped(skipped, tried, described)
    if not rows:
        raise DataError(
            f"no usable records: all {tried} records read were bad (first: {skipped[0][0]}: {skipped[0][1]})",
            file=described,
            record_level=False,
        )
    _warn_duplicate_ids(rows, described)
    columns = {c: [r[c] for r in rows] for c in COLUMNS}
    dataset = Dataset.from_dict(columns, features=_features())
    return LoadResult(
        dataset=dataset, skipped=skipped, source=described, files=files, num_records=len(source), image_sizes=sizes
    )


def _report_skipped(skipped: list[tuple[str, str]], tried: int, described: str) -> None:
    """The skip count goes to the log as a warning (shown on stderr even when logging is not configured),
    with the first reasons, so skipping never goes unnoticed."""
    head = "; ".join(f"{rid}: {why}" for rid, why in skipped[:5])
    more = f"; ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    log.warning(
        "skipped %d of %d records of %s (skip_bad_records: true): %s%s",
        len(skipped),
        tried,
        described,
        head,
        more,
    )


def _warn_duplicate_ids(rows: list[dict[str, Any]], described: str) -> None:
    dups = [rid for rid, n in Counter(r["id"] for r in rows).items() if n > 1]
    if dups:
        log.warning(
            "%s: %d ids occur more than once (e.g. %s); evaluation joins by id will conflate them",
            described,
            len(dups),
            ", ".join(dups[:3]),
        )


def canonical_features():
    """The canonical schema as ``datasets.Features`` (for code that builds canonical datasets itself)."""
    return _features()
