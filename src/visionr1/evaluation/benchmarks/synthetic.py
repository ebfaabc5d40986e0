"""visionr1's synthetic tasks (``make-synthetic``), scored by the reward library itself: one scorer.

Data: a ``make-synthetic`` directory (its ``test.jsonl`` is evaluated) or any file in the project's jsonl
format (docs/CONTRACTS.md). Prompts are built by the data loader exactly as for training, so the evaluation
question is the RL question. An item is correct when ``rewards.scoring.is_correct`` says so (grounding:
IoU >= 0.5); ``format`` is the rewards' format check (``<think>...</think><answer>...</answer>``) and
``hard_format_result`` both at once (Vision-R1's RL reward), so the numbers read like the training curves.

Detection items (``task: detection``) add the detection metrics of ``rewards/detection.py``: ``detection_map``
(COCO mAP@[.50:.95] over all detection items at once, as COCO evaluates a test set), ``detection_map_50`` /
``_75``, and ``detection_reward`` (the mean per-item RL reward, mAP x VLM-R1's extra-box penalty); an item
counts as correct when its reward is >= 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionr1.evaluation.benchmarks.base import (
    Benchmark,
    Item,
    ItemResult,
    Sample,
    ScoringContext,
    accuracy_table,
    rename_columns,
)
from visionr1.evaluation.records import EvalError, read_records


def synthetic_file(path: Path) -> Path:
    """The jsonl file to evaluate: ``DIR/test.jsonl`` for a make-synthetic directory, else the file."""
    path = Path(path)
    if path.is_dir():
        test = path / "test.jsonl"
        if not test.is_file():
            raise EvalError(f"{path}: no test.jsonl (make-synthetic writes one when --test-fraction > 0)")
        return test
    return path


def score_completion(response: str, solution: Any, task: str | None, choices: Any) -> dict[str, Any]:
    """The rewards' verdicts on one completion: extracted answer, correct, format, hard format+result."""
    from visionr1.rewards.extract import extract_answer
    from visionr1.rewards.functions import check_format
    from visionr1.rewards.scoring import is_correct

    correct = is_correct(response, solution, task, choices)
    fmt = check_format(response)
    return {"extracted": extract_answer(response, task), "correct": correct, "format": fmt, "hard": correct and fmt}


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    meta = record.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = {}
    return meta if isinstance(meta, dict) else {}


def _detection_metrics(pairs: list[tuple[Item, ItemResult]]) -> dict[str, float]:
    """Dataset-level COCO mAP and the mean per-item reward over the detection items; {} when there are none."""
    det = [(i, r) for i, r in pairs if i.record.get("task") == "detection"]
    if not det:
        return {}
    from visionr1.rewards.detection import dataset_map

    m = dataset_map([r.extracted for _, r in det], [i.record["solution"] for i, _ in det])
    return {
        "detection_map": m["map"], "detection_map_50": m["map_50"], "detection_map_75": m["map_75"],
        "detection_reward": sum(r.info.get("detection_reward", 0.0) for _, r in det) / len(det),
    }


class Synthetic(Benchmark):
    name = "synthetic"
    id_field = "id"
    image_fields = ("images",)
    binary_fields = ()

    def __init__(self) -> None:
        self._canonical: dict[str, dict[str, Any]] | None = None

    def load(self, path: Path, for_generation: bool = False, columns: dict[str, str] | None = None) -> list[Item]:
        file = synthetic_file(path)
        raws = read_records(file)
        for r in raws:
            rename_columns(r, columns or {})
        items = [Item(self.record_id(r), r.data, r.file) for r in raws]
        for item in items:
            self.require(item, "solution", "task")
        return items

    def question(self, item: Item) -> str:
        return str(item.record.get("question", ""))

    def samples(self, items: Sequence[Item], template: str, max_pixels: int, image_root: Path | None) -> list[Sample]:
        """Canonical prompts from the data loader (the training path), loaded once per benchmark object."""
        if self._canonical is None:
            from visionr1.data.loaders import load_samples
            from visionr1.data.spec import DatasetSpec, PromptSpec

            spec = DatasetSpec(
                format="jsonl", path=str(items[0].file), max_pixels=max_pixels,
                image_root=str(image_root) if image_root else None, prompt=PromptSpec(template=template),
            )
            self._canonical = {row["id"]: row for row in load_samples(spec).dataset}
        out = []
        for item in items:
            row = self._canonical.get(item.pid)
            if row is None:
                raise EvalError(f"{item.file}: record {item.pid}: not produced by the data loader")
            out.append(Sample(item.pid, row["prompt"], list(row["images"] or [])))
        return out

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        v = score_completion(response, r["solution"], r.get("task"), r.get("choices"))
        source = "answer_rules" if v["extracted"] is not None else "none"
        info = {"format": v["format"], "hard_format_result": v["hard"]}
        if r.get("task") == "detection":
            from visionr1.rewards.scoring import score_answer

            info["detection_reward"] = score_answer(v["extracted"], r["solution"], "detection")
        return ItemResult(item.pid, v["extracted"], v["extracted"], v["correct"], source, info=info)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        pairs = list(zip(items, results, strict=True))
        n = len(results)
        return {
            "metrics": {
                "format": sum(bool(r.info.get("format")) for r in results) / n if n else 0.0,
                "hard_format_result": sum(bool(r.info.get("hard_format_result")) for r in results) / n if n else 0.0,
                **_detection_metrics(pairs),
            },
            "breakdowns": {
                "task": accuracy_table((i.record.get("task"), r.correct) for i, r in pairs),
                "synthetic_task": accuracy_table((_metadata(i.record).get("synthetic_task"), r.correct) for i, r in pairs),
                "difficulty": accuracy_table((_metadata(i.record).get("difficulty"), r.correct) for i, r in pairs),
            },
        }
