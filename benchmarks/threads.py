"""How many torch CPU threads `visionr1 train` (GRPO) and `visionr1 eval run` should use: the measurement
behind ``cpu_threads: auto`` (src/visionr1/runtime.py).

    python benchmarks/threads.py                     # 3 rounds, GRPO 3 steps + eval of 8 items, ~15 min on 2 cores
    python benchmarks/threads.py --rounds 5 --steps 4 --out runs/bench/threads

Configurations, each a fresh process of the real command (start-up included, as a user pays it):
``--cpu-threads 1``, ``--cpu-threads 2``, ``--cpu-threads 2`` with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP
threads sleep instead of spinning), and ``--cpu-threads auto`` (what the policy picks at that moment). Runs are
interleaved after one untimed warm-up run (see interleave.py); ratios are to the 1-thread run of the same round. ``OMP_NUM_THREADS`` and
``OMP_WAIT_POLICY`` are removed from the environment first, so only the configuration sets them.

The machine may be shared: the 1-minute load average before every run is in the output, and the figures
hold for that load, not for an idle machine. Writes ``threads.json`` and ``threads.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import interleaved, markdown_table, summarise, timed_run  # noqa: E402

CONFIGS = {
    "1 thread": ("1", {}),
    "2 threads": ("2", {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": ("2", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "auto": ("auto", {}),
}

RECIPE = """\
name: bench-threads
seed: 0
model: {{path: {model}, dtype: float32, max_pixels: 12544}}
report_to: []
logging: {{completions_per_log: 0, progress: none, plot: false}}
stages:
  - name: grpo
    type: grpo
    dataset: {{format: jsonl, path: {data}/train.jsonl}}
    rewards: [{{name: hard_format_result}}]
    grpo: {{max_completion_length: 32, num_generations: 4, per_device_train_batch_size: 4, max_steps: {steps},
           learning_rate: 1.0e-5, beta: 0.01, bf16: false, gradient_checkpointing: false, save_strategy: "no"}}
"""


def prepare(work: Path, steps: int, size: str) -> dict[str, Path]:
    """Data (synthetic counting), a tiny Qwen2.5-VL saved like a checkpoint, and the GRPO recipe."""
    from visionr1.models.tiny import build_tiny_model
    from visionr1.tasks.synthetic import make_synthetic

    data = make_synthetic("counting", 40, 0, work / "data", difficulty="medium", test_fraction=0.25)
    model = build_tiny_model("qwen2_5_vl", size, work / "model", seed=0)
    recipe = work / "grpo.yaml"
    recipe.write_text(RECIPE.format(model=model, data=data, steps=steps))
    return {"data": data, "model": model, "recipe": recipe}


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "WORLD_SIZE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps per training run.")
    ap.add_argument("--eval-items", type=int, default=8)
    ap.add_argument("--size", default="test", help="Tiny model preset: test | demo.")
    ap.add_argument("--only", choices=["grpo", "eval"], default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/threads"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "visionr1"]
    with tempfile.TemporaryDirectory(prefix="visionr1-threads-") as tmp:
        work = Path(tmp)
        paths = prepare(work, args.steps, args.size)

        def grpo(name: str, r: int) -> dict:
            threads, extra = CONFIGS[name]
            return timed_run([*cli, "train", str(paths["recipe"]), "--output-dir", str(work / f"run-{r}-{threads}-{len(extra)}"),
                              "--cpu-threads", threads], {**base_env(), **extra})

        def evaluate(name: str, r: int) -> dict:
            threads, extra = CONFIGS[name]
            return timed_run([*cli, "eval", "run", "--benchmark", "synthetic", "--model", str(paths["model"]),
                              "--data", str(paths["data"] / "test.jsonl"), "--output", str(work / f"eval-{r}-{threads}-{len(extra)}"),
                              "--max-new-tokens", "48", "--batch-size", "4", "--limit", str(args.eval_items),
                              "--temperature", "0", "--cpu-threads", threads], {**base_env(), **extra})

        report = {"cores": len(os.sched_getaffinity(0)), "rounds": args.rounds, "grpo_steps": args.steps,
                  "model_size": args.size, "eval_items": args.eval_items, "workloads": {}}
        for workload, fn in (("grpo", grpo), ("eval", evaluate)):
            if args.only and workload != args.only:
                continue
            print(f"== {workload}")
            fn("1 thread", -1)  # untimed warm-up: file caches, compiled regexes, the tiny model on disk
            raw = interleaved(list(CONFIGS), args.rounds, fn)
            report["workloads"][workload] = {"runs": raw, "summary": summarise(raw, "1 thread"),
                                             "cpu_summary": summarise(raw, "1 thread", key="cpu_seconds")}
    (args.out / "threads.json").write_text(json.dumps(report, indent=2))
    md = [f"# CPU threads: {report['cores']} cores, {args.rounds} interleaved rounds\n"]
    for workload, res in report["workloads"].items():
        what = (f"`visionr1 train`, GRPO {args.steps} steps, 4 x 32 tokens" if workload == "grpo"
                else f"`visionr1 eval run`, {args.eval_items} items, 48 tokens")
        md += [f"## {what}: wall seconds per command\n", markdown_table(res["summary"], "1 thread"), "",
               f"## {what}: CPU seconds (user + system) per command\n",
               markdown_table(res["cpu_summary"], "1 thread"), ""]
    (args.out / "threads.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
