"""Open-vocabulary detection scored by COCO mAP: VLM-R1's OVD reward, and the same metric for evaluation.

An answer is Qwen2.5-VL's box list, ``[{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}, ...]`` in pixel
coordinates (a bare object, a ```json fence or prose around the list are accepted; ``[]`` says "none of them
is there"). One completion is scored as VLM-R1's ``odLength`` reward does:

    reward = mAP@[.50:.95] of the list against the gold boxes x min(1, #gold / #predicted)

- mAP is COCO's (``faster-coco-eval``, a C++ re-implementation of ``pycocotools``' COCOeval that gives the
  same numbers; never hand-written here), over IoU thresholds 0.50, 0.55, ..., 0.95, per gold category,
  averaged over the categories of the gold list.
- The factor is VLM-R1's penalty for listing boxes that are not there. mAP alone cannot see them: a box of a
  category absent from the image has no category to be a false positive in (COCO skips categories without
  gold boxes), and an extra box ranked below the right ones leaves the precision envelope at 1. Without the
  factor a policy that lists every category it is asked about, several times, would lose nothing.
- Gold empty: 1 for an empty prediction, else 0; prediction empty (gold not): 0. Malformed output (no JSON
  list, a list of non-objects, over ``MAX_DETECTION_CHARS``) scores 0 and never raises.

Where we depart from VLM-R1: (1) the list order is the confidence ranking (entry i gets score (n - i) / n),
stated instead of left to COCOeval's tie-breaking (which happens to be the same stable order); (2) labels
are compared case- and whitespace-insensitively; (3) an entry with a missing or inverted box, or no label,
counts as a listed box (so it is penalised) that matches nothing, where VLM-R1 drops it silently; (4) the
dataset-level metric (``dataset_map``) is COCO's proper one over all images at once, where a box of a
category that is absent from its image but present elsewhere *is* a false positive.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_DETECTION_CHARS = 20_000  # longer answers are not box lists; bounds the JSON parse
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class Detection:
    """One listed object: ``box`` (x1, y1, x2, y2) and ``label`` (normalised), None where the entry lacks one."""

    box: tuple[float, float, float, float] | None
    label: str | None


def normalize_label(label: Any) -> str | None:
    """Case- and whitespace-insensitive label; None for a non-string or empty label.

    >>> normalize_label("  Red   Circle "), normalize_label(3)
    ('red circle', None)
    """
    if not isinstance(label, str):
        return None
    return " ".join(label.lower().split()) or None


def _box(value: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    x1, y1, x2, y2 = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def _load_json(text: str) -> Any:
    """The first of: a ```json fence, the whole text, the span from the first '[' to the last ']'."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)][-1:] + [text]
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for cand in candidates:
        try:
            return json.loads(cand)
        except (ValueError, RecursionError):
            continue
    return None


def parse_detections(text: Any) -> list[Detection] | None:
    """The listed objects, in order, or None when the answer is not a box list (malformed: scores 0).

    >>> parse_detections('[{"bbox_2d": [1, 2, 11, 12], "label": "Cat"}]')
    [Detection(box=(1.0, 2.0, 11.0, 12.0), label='cat')]
    >>> parse_detections("```json\\n[]\\n```"), parse_detections("[{'bbox_2d': [1, 2, 3, 4]"), parse_detections("[1, 2]")
    ([], None, None)
    """
    if isinstance(text, (list, dict)):
        data = text
    elif isinstance(text, str) and len(text) <= MAX_DETECTION_CHARS:
        data = _load_json(text.strip())
    else:
        return None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        return None
    return [Detection(_box(e.get("bbox_2d")), normalize_label(e.get("label"))) for e in data]


# ------------------------------------------------------------------------------------------------- COCO


def _coco_map(images: Sequence[tuple[Sequence[Detection], Sequence[Detection]]]) -> dict[str, float]:
    """COCO bbox AP over (predicted, gold) pairs, one pair per image: ``map`` (IoU .50:.95), ``map_50``,
    ``map_75``. Predictions of labels with no gold box anywhere cannot be evaluated and are left out."""
    from faster_coco_eval import COCO, COCOeval_faster

    cats = sorted({g.label for _, gold in images for g in gold if g.label is not None and g.box is not None})
    if not cats:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    cat_id = {c: i + 1 for i, c in enumerate(cats)}
    gt: dict[str, list] = {"images": [], "annotations": [], "categories": [{"id": i, "name": c} for c, i in cat_id.items()]}
    dts = []
    for image_id, (pred, gold) in enumerate(images, 1):
        gt["images"].append({"id": image_id, "width": 100_000, "height": 100_000})
        for g in gold:
            if g.box is not None and g.label is not None:
                x1, y1, x2, y2 = g.box
                gt["annotations"].append({
                    "id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat_id[g.label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                })
        n = len(pred)
        for rank, p in enumerate(pred):
            if p.box is not None and p.label in cat_id:
                x1, y1, x2, y2 = p.box
                dts.append({"image_id": image_id, "category_id": cat_id[p.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": (n - rank) / n})
    if not dts:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    coco_gt = COCO(gt)
    ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dts), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {"map": max(0.0, float(ev.stats[0])), "map_50": max(0.0, float(ev.stats[1])), "map_75": max(0.0, float(ev.stats[2]))}


def length_penalty(num_pred: int, num_gold: int) -> float:
    """VLM-R1's factor for listing more boxes than there are: min(1, #gold / #predicted).

    >>> length_penalty(2, 2), length_penalty(4, 2), length_penalty(1, 3)
    (1.0, 0.5, 1.0)
    """
    return 1.0 if num_pred <= num_gold else num_gold / num_pred


def score_detection(answer: Any, solution: Any, penalty: bool = True) -> float:
    """One answer against the gold list: mAP@[.50:.95] x ``length_penalty`` (module docstring). Never raises
    on model output; an unreadable gold list scores 0 (the data loader rejects one at load time).

    >>> gold = '[{"bbox_2d": [0, 0, 10, 10], "label": "a"}, {"bbox_2d": [20, 0, 30, 10], "label": "b"}]'
    >>> score_detection(gold, gold), score_detection('[{"bbox_2d": [0, 0, 10, 10], "label": "a"}]', gold)
    (1.0, 0.5)
    >>> score_detection("I see two boxes", gold), score_detection("[]", "[]")
    (0.0, 1.0)
    """
    pred, gold = parse_detections(answer), parse_detections(solution)
    if pred is None or gold is None:
        return 0.0
    if not gold:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    score = _coco_map([(pred, gold)])["map"]
    return score * length_penalty(len(pred), len(gold)) if penalty else score


def dataset_map(answers: Sequence[Any], solutions: Sequence[Any]) -> dict[str, float]:
    """COCO mAP of a whole evaluation set (one image per item): ``map``, ``map_50``, ``map_75``, and
    ``malformed`` (the share of answers that are no box list; they count as predicting nothing)."""
    pairs, malformed = [], 0
    for ans, sol in zip(answers, solutions, strict=True):
        pred, gold = parse_detections(ans), parse_detections(sol)
        if pred is None:
            malformed += 1
            pred = []
        pairs.append((pred, gold or []))
    out = _coco_map(pairs) if pairs else {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    out["malformed"] = malformed / len(pairs) if pairs else 0.0
    return out


def rescale_detections(solution: str, original: tuple[int, int], size: tuple[int, int]) -> str | None:
    """A gold box list rescaled from an image of ``original`` (w, h) to ``size`` (boxes rounded to pixels);
    None when ``solution`` is not a box list with a valid box and label in every entry.

    >>> rescale_detections('[{"bbox_2d": [100, 50, 200, 100], "label": "cat"}]', (400, 200), (200, 100))
    '[{"bbox_2d": [50, 25, 100, 50], "label": "cat"}]'
    """
    dets = parse_detections(solution)
    if dets is None or any(d.box is None or d.label is None for d in dets):
        return None
    data = _load_json(solution.strip()) if isinstance(solution, str) else solution
    data = [data] if isinstance(data, dict) else data
    sx, sy = size[0] / original[0], size[1] / original[1]
    out = []
    for entry, d in zip(data, dets, strict=True):
        x1, y1, x2, y2 = d.box
        out.append({**entry, "bbox_2d": [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]})
    return json.dumps(out, ensure_ascii=False)


# ------------------------------------------------------------------------------------------ TRL reward


def detection_map_reward(
    completions: Sequence[Any],
    solution: Sequence[Any],
    task: Sequence[str | None] | str | None = None,
    penalty: bool = True,
    think_prefilled: bool = False,
    **kwargs: Any,
) -> list[float]:
    """VLM-R1's open-vocabulary detection reward (``odLength``): mAP of the answer's box list x the
    penalty for extra boxes; 0.0 for rows whose task is not ``detection`` (like ``iou`` for grounding).
    ``penalty=False`` gives plain mAP (VLM-R1's ``od`` reward), for ablations."""
    from visionr1.rewards.extract import completion_text, extract_answer

    n = len(completions)
    tasks = [task] * n if task is None or isinstance(task, str) else list(task)
    sols = [solution] * n if isinstance(solution, str) else list(solution)
    out = []
    for comp, sol, t in zip(completions, sols, tasks, strict=True):
        if t != "detection":
            out.append(0.0)
            continue
        ans = extract_answer(completion_text(comp), "detection", think_prefilled)
        out.append(score_detection(ans, sol, penalty) if ans is not None else 0.0)
    return out
