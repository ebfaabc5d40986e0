"""FSDP2 and ZeRO-3 against DDP on this CPU: seconds per optimizer step and peak memory per process.

    python benchmarks/engines.py                         # 2 interleaved rounds, demo-size model: ~15 min on 2 cores
    python benchmarks/engines.py --rounds 3 --size test  # quicker, smaller model

Each round runs, for every engine in a rotated order, one `visionr1 train` of an SFT stage then a GRPO stage (each
stage its own 2-process gloo launch through configs/accelerate/cpu-*.yaml, as a user runs it). Per stage:

- seconds per step: the median gap between consecutive steps' log times in metrics.jsonl, steps 2.. (the first
  step carries start-up), with no checkpoint saved between them;
- peak memory per process: the largest VmHWM (KiB, /proc) of any one process of the command (the parent, the
  launcher and both ranks), polled every 50 ms (``interleave.timed_run``);
- the command's wall and CPU seconds.
Ratios to DDP are taken within a round, then summarised (median, min-max). Figures in benchmarks/README.md.

What this does and does not say: on a CPU with gloo, sharding buys no speed (the two ranks share two cores and
every all-gather is a memory copy), so the step-time ratio is the price of the sharding collectives at this size,
not a forecast for GPUs; the memory figure per process includes each process's Python, torch and library
imports (~1 GiB), which dwarf a 1.3M-parameter model's states: the sharding saving is measured in
``tests/training/test_engines.py`` (ZeRO-3 writes one optimizer partition per rank), not here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from interleave import interleaved, timed_run  # noqa: E402

ENGINES = {"ddp": "cpu-ddp.yaml", "fsdp2": "cpu-fsdp2.yaml", "zero3": "cpu-zero3.yaml"}


def recipe(work: Path, model: str, data: Path, sft_data: Path, steps: int) -> Path:
    text = f"""
name: engines-bench
seed: 0
model: {{path: '{model}', dtype: float32, max_pixels: 12544}}
report_to: []
logging: {{progress: lines, plot: false}}
stages:
  - name: sft
    type: sft
    dataset: {{format: jsonl, path: {sft_data}}}
    sft: {{max_steps: {steps}, learning_rate: 1.0e-4, per_device_train_batch_size: 4, max_length: 1024, bf16: false,
          gradient_checkpointing: false, save_steps: 1000}}
  - name: grpo
    type: grpo
    dataset: {{format: jsonl, path: {data}}}
    rewards: [{{name: hard_format_result}}]
    grpo: {{max_completion_length: 32, num_generations: 4, per_device_train_batch_size: 8, max_steps: {steps},
           learning_rate: 1.0e-5, beta: 0.01, loss_type: grpo, bf16: false, gradient_checkpointing: false,
           save_steps: 1000}}
"""
    path = work / "recipe.yaml"
    path.write_text(text)
    return path


def make_data(work: Path) -> tuple[Path, Path]:
    from visionr1.tasks.synthetic import make_synthetic

    root = work / "data"
    make_synthetic("counting", 256, 0, root)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    sft = root / "train-sft.jsonl"
    sft.write_text("".join(json.dumps({**r, "completion": f"<think>{r['metadata'].get('reasoning', '')}</think>"
                                       f"<answer> Final Answer:{r['solution']} </answer>"}) + "\n" for r in rows))
    return root / "train.jsonl", sft


def step_seconds(metrics: Path, stage: str) -> float | None:
    times = [json.loads(line)["time"] for line in metrics.read_text().splitlines()
             if '"kind": "train"' in line and f'"stage": "{stage}"' in line]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]  # step k ends at times[k-1]: gaps skip step 1
    return round(statistics.median(gaps), 4) if gaps else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--size", default="demo", choices=["test", "demo"])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES))
    ap.add_argument("--out", default=str(HERE / "results" / "engines.json"))
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="engines-bench-"))
    data, sft = make_data(work)
    path = recipe(work, f"tiny:qwen2_5_vl/{args.size}", data, sft, args.steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    visionr1 = str(Path(sys.executable).with_name("visionr1"))

    def run(engine: str, r: int) -> dict[str, Any]:
        out = work / f"{engine}-{r}"
        cmd = [sys.executable, visionr1, "train", str(path), "launch.num_processes=2",
               f"launch.config_file={REPO / 'configs' / 'accelerate' / ENGINES[engine]}", "--output-dir", str(out)]
        res = timed_run(cmd, env, cwd=str(REPO), timeout=1800)
        if res["rc"] == 0:
            manifest = json.loads((out / "manifest.json").read_text())
            res["distributed_type"] = [s["distributed_type"] for s in manifest["stages"]]
            for stage in ("sft", "grpo"):
                res[f"{stage}_step_s"] = step_seconds(out / "metrics.jsonl", stage)
        return res

    raw = interleaved(args.engines, args.rounds, run)
    summary: dict[str, Any] = {}
    for engine, runs in raw.items():
        ok = [r for r in runs if r["rc"] == 0]
        row: dict[str, Any] = {"runs": len(ok), "distributed_type": ok[0]["distributed_type"] if ok else None}
        for key in ("sft_step_s", "grpo_step_s", "peak_rss_mib", "seconds", "cpu_seconds"):
            vals = [r[key] for r in ok if r.get(key) is not None]
            row[key] = round(statistics.median(vals), 4) if vals else None
            ratios = [r[key] / b[key] for r, b in zip(runs, raw["ddp"], strict=True)
                      if r["rc"] == 0 and b["rc"] == 0 and r.get(key) and b.get(key)]
            row[f"{key}_ratio_to_ddp"] = ({"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                                           "max": round(max(ratios), 3)} if ratios else None)
        summary[engine] = row
    report = {"size": args.size, "steps": args.steps, "rounds": args.rounds, "summary": summary, "raw": raw}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
