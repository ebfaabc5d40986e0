"""Rules-only MathVista scoring vs the official GPT-4 extraction, on published model outputs.

    python benchmarks/mathvista_agreement.py results/*/output_*.json      # files as lupantech/MathVista publishes

Each published item carries the record (``choices``, ``answer_type``, ``precision``, ``answer``...), the model's
``response`` (``execution`` for program-of-thought outputs: the printed result is what the official extraction
read), GPT-4's ``extraction`` and the official ``true_false``. Per file it prints:

- official: accuracy of GPT-4's extraction through our port of ``calculate_score.py`` (and how often that
  reproduces the published ``true_false``);
- rules: accuracy of our rules-only scoring of the same responses (``eval score`` without a judge);
- gap = rules - official, and the item-level agreement of the two verdicts, with a few disagreements.

The last line is ``mean_gap_points=X`` over the files given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from visionr1.evaluation.benchmarks.base import Item, ScoringContext
from visionr1.evaluation.benchmarks.mathvista import (
    MathVista,
    normalize_extracted_answer,
    precision_of,
    safe_equal,
)


def load(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {str(r["pid"]): r for r in data}


def compare(path: Path, show: int = 5) -> tuple[float, float, int]:
    bench, ctx = MathVista(), ScoringContext()
    items = load(path)
    official = rules = reproduced = agree = 0
    shown = 0
    for pid, rec in items.items():
        response = rec.get("execution") if rec.get("execution") not in (None, "") else rec.get("response") or ""
        norm = normalize_extracted_answer(
            rec.get("extraction"), rec.get("choices"), rec["question_type"], rec["answer_type"], precision_of(rec)
        )
        off = safe_equal(norm, rec["answer"])
        res = bench.score(Item(pid, rec, path), str(response), ctx)
        official += off
        rules += res.correct
        reproduced += off == bool(rec.get("true_false", off))
        agree += off == res.correct
        if off != res.correct and shown < show:
            shown += 1
            print(f"  pid {pid}: official {rec.get('extraction')!r} -> {off}; rules {res.extracted!r} -> {res.correct}")
    n = len(items)
    gap = 100 * (rules - official) / n
    print(
        f"{path.parent.name}/{path.name}: n={n} official={100 * official / n:.1f}% (true_false reproduced "
        f"{reproduced}/{n}) rules={100 * rules / n:.1f}% gap={gap:+.1f} points agreement={agree}/{n}"
    )
    return gap, agree / n, n


def main(paths: list[Path]) -> float:
    gaps = [compare(p)[0] for p in paths]
    mean = sum(gaps) / len(gaps)
    print(f"mean_gap_points={mean:+.2f} over {len(gaps)} files (mean |gap| {sum(map(abs, gaps)) / len(gaps):.2f})")
    return mean


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    main(ap.parse_args().files)
