"""The demo's headline numbers over several seeds: held-out accuracy per stage, GRPO's gain over SFT, wall time.

    python benchmarks/demo_seeds.py                       # seeds 3 4 5, the shipped recipes/demo.yaml
    python benchmarks/demo_seeds.py --seeds 3 4 5 6 7     # more seeds
    python benchmarks/demo_seeds.py -- stages.grpo-1.grpo.max_steps=60   # overrides for every run

Each seed is one complete `visionr1 demo` run in its own process (so its wall time is what `make demo` costs),
one after the other (running them side by side on two cores would distort the times), into
``runs/demo-seeds/seed-<k>``. The seed changes the synthetic items, the initial weights and training. Prints a
table per seed, then ``gain mean ± std`` (sample standard deviation) and the range, and writes
``runs/demo-seeds/summary.json``. The issue's target: GRPO over SFT >= +5 points on average, wall time
<= 15 min per run. The load average is recorded with every run: other processes on the machine slow it down.

The default seeds are 3, 4 and 5 because the shipped settings were tuned on seeds 0, 1 and 2: figures to report
come from seeds never used for choosing settings, on the held-out split. To compare settings, evaluate on the
validation split instead (``-- eval.split=validation``) and pass tuning seeds; the table then says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def run_seed(seed: int, out: Path, recipe: str | None, overrides: list[str], console: Console) -> dict:
    """One demo run in a subprocess; its report.json plus the wall time seen from outside."""
    exe = Path(sys.executable).with_name("visionr1")
    cmd = [str(exe), "demo", *([recipe] if recipe else []), f"seed={seed}", "logging.progress=lines", *overrides,
           "--output-dir", str(out)]
    console.print(f"[bold]seed {seed}[/]: {' '.join(cmd[1:])}  (load average {_load()})")
    log = out.parent / f"seed-{seed}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: visionr1 demo failed (exit {proc.returncode}); see {log}")
    report = json.loads((out / "report.json").read_text())
    report["process_wall_seconds"] = wall
    report["load_after"] = _load()
    return report


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5],
                        help="Default 3 4 5: never used for tuning (0 1 2 were).")
    parser.add_argument("--recipe", default=None, help="Demo recipe (default: the shipped one).")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo-seeds")
    parser.add_argument("overrides", nargs="*", help="Dotted overrides applied to every run (after --).")
    args = parser.parse_args()
    console = Console(highlight=False)

    reports = {s: run_seed(s, args.out / f"seed-{s}", args.recipe, args.overrides, console) for s in args.seeds}
    stages = reports[args.seeds[0]]["stages"]
    split = reports[args.seeds[0]].get("split", "heldout")  # the headline split: heldout unless eval.split=validation

    table = Table(title=f"{'held-out' if split == 'heldout' else 'VALIDATION (for tuning)'} accuracy per stage (%)")
    for col in ("seed", *stages, "GRPO − SFT", "wall (min)", "load after"):
        table.add_column(col, justify="right")
    for s, r in reports.items():
        acc = [f"{100 * r[split][st]['accuracy']:.1f}" for st in stages]
        table.add_row(str(s), *acc, f"{r['gain']['grpo_over_sft']:+.1f}", f"{r['process_wall_seconds'] / 60:.1f}",
                      r["load_after"])
    means = [_mean_std([100 * r[split][st]["accuracy"] for r in reports.values()]) for st in stages]
    gains = [r["gain"]["grpo_over_sft"] for r in reports.values()]
    walls = [r["process_wall_seconds"] for r in reports.values()]
    g_mean, g_std = _mean_std(gains)
    w_mean, w_std = _mean_std(walls)
    table.add_row("mean ± std", *(f"{m:.1f} ± {sd:.1f}" for m, sd in means), f"{g_mean:+.1f} ± {g_std:.1f}",
                  f"{w_mean / 60:.1f} ± {w_std / 60:.1f}", "", style="bold")
    console.print(table)
    console.print(f"GRPO over SFT: {g_mean:+.1f} ± {g_std:.1f} points (min {min(gains):+.1f}, max {max(gains):+.1f}) "
                  f"over seeds {args.seeds}; target >= +5: {'met' if g_mean >= 5 else 'NOT met'}")
    console.print(f"wall time per run: {w_mean / 60:.1f} ± {w_std / 60:.1f} min (max {max(walls) / 60:.1f}); "
                  f"target <= 15 min: {'met' if max(walls) <= 900 else 'NOT met'}")

    summary = {
        "seeds": args.seeds, "overrides": args.overrides, "stages": stages, "split": split,
        "accuracy": {st: {str(s): r[split][st]["accuracy"] for s, r in reports.items()} for st in stages},
        "accuracy_mean_std": {st: list(m) for st, m in zip(stages, means, strict=True)},
        "gain_grpo_over_sft": {"per_seed": dict(zip(map(str, reports), gains, strict=True)), "mean": g_mean,
                               "std": g_std, "min": min(gains), "max": max(gains)},
        "wall_seconds": {"per_seed": dict(zip(map(str, reports), walls, strict=True)), "mean": w_mean, "std": w_std},
        "phases": {str(s): r["phases"] for s, r in reports.items()},
        "load_after": {str(s): r["load_after"] for s, r in reports.items()},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
