"""Insight-V at CPU scale: the reasoning agent alone, reasoning + summary agent, and 1-3 iterations of DPO.

    python benchmarks/insight_v.py                  # seeds 0 1 2 -> runs/insight-v/summary.json, table on stdout
    python benchmarks/insight_v.py --seeds 3        # one seed
    python benchmarks/insight_v.py --smoke          # seconds: every step runs on a test-size model, nothing measured

Per seed, each step a fresh ``visionr1`` process (what a user runs), each skipped when its output exists (so a
killed benchmark resumes):

1. data: ``visionr1 insight data`` with the ORACLE backend on the ``counting`` task (chains built from the
   scene's ground truth in four variants, the wrong ones dropped by the reward library's scorer, the rest rated;
   the reasoner set keeps the best chain per question, the summary set the best chain plus deliberately flawed
   ones), and ``make-synthetic`` items for DPO prompts and a held-out set (another seed: never trained on);
2. a seeded random ``demo``-size Qwen2.5-VL (~1.2M parameters);
3. the reasoning agent: cold-start SFT on the reasoner set, then one ``type: dpo`` stage with ``iterations: 3``
   (each samples K=4 responses for the next 64 prompts of the stream, ranks them by ``hard_format_result``,
   best vs worst, DPOTrainer from the previous iteration's weights);
4. the summary agent: SFT of the same random start on the summary set;
5. evaluation on the held-out items, greedy: ``eval run --strategy insight-v`` for the SFT reasoner and each
   DPO iteration's weights, with the summary agent: per checkpoint (a) the reasoner's own answer and (b) the
   summary agent's final answer.

Nothing here is tuned on the held-out items: the settings are the demo's (learning rates, batch sizes) and
Insight-V's (3 DPO iterations, beta 0.1), scaled to this machine.
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
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 3


def settings(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"size": "test", "insight_n": 8, "dpo_prompts": 8, "heldout": 3, "sft_epochs": 1, "sft_max_steps": 2,
                "dpo_prompts_per_iteration": 2, "dpo_max_steps": 1, "sample_tokens": 16, "eval_tokens": 16,
                "summary_tokens": 8,
                # an untrained model never scores: a labelled toy reward separates its samples so pairs exist
                "extra_rewards": [{"name": str(REPO / "recipes" / "tiny" / "toy_rewards.py") + ":letters", "weight": 0.1}]}
    return {"size": "demo", "insight_n": 400, "dpo_prompts": 3 * 64, "heldout": 100, "sft_epochs": 3,
            "sft_max_steps": -1, "dpo_prompts_per_iteration": 64, "dpo_max_steps": -1, "sample_tokens": 320,
            "eval_tokens": 320, "summary_tokens": 320, "extra_rewards": []}


def run(cmd: list[str], log: Path) -> None:
    """One ``visionr1`` step in its own process, its output in ``log``."""
    full = [sys.executable, "-m", "visionr1", *cmd]
    print(f"  $ visionr1 {' '.join(cmd)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        proc = subprocess.run(full, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"visionr1 {cmd[0]} failed (exit {proc.returncode}); see {log}")


def sft_stage(dataset: Path, s: dict[str, Any]) -> dict[str, Any]:
    return {"name": "sft", "type": "sft", "dataset": {"format": "sharegpt", "path": str(dataset)},
            "sft": {"num_train_epochs": s["sft_epochs"], "max_steps": s["sft_max_steps"], "learning_rate": 2.0e-3,
                    "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "per_device_train_batch_size": 8,
                    "max_length": 1024, "bf16": False, "gradient_checkpointing": False}}


def dpo_stage(prompts: Path, s: dict[str, Any]) -> dict[str, Any]:
    from visionr1.insight.prompts import REASONER_INSTRUCTION

    return {"name": "dpo", "type": "dpo",
            # the reasoner's own user turn (insight.prompts.reasoner_text), so DPO samples what eval asks
            "dataset": {"format": "jsonl", "path": str(prompts),
                        "prompt": {"template": "{question}\n" + REASONER_INSTRUCTION}},
            "iterations": ITERATIONS, "samples_per_prompt": 4,
            "prompts_per_iteration": s["dpo_prompts_per_iteration"],
            "sampling": {"max_new_tokens": s["sample_tokens"], "temperature": 1.0, "batch_size": 32},
            "rewards": [{"name": "hard_format_result", "weight": 1.0}, *s["extra_rewards"]],
            "dpo": {"beta": 0.1, "loss_type": ["sigmoid"], "learning_rate": 1.0e-4, "num_train_epochs": 2,
                    "max_steps": s["dpo_max_steps"], "per_device_train_batch_size": 8, "max_length": 1024,
                    "bf16": False, "gradient_checkpointing": False}}


def write_recipe(path: Path, name: str, seed: int, base: Path, stages: list[dict[str, Any]]) -> Path:
    recipe = {"name": name, "seed": seed, "cpu_threads": 1, "report_to": [], "logging": {"progress": "lines"},
              "model": {"path": str(base), "dtype": "float32", "max_pixels": 12544}, "stages": stages}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def evaluate(model: Path, summary: Path, heldout: Path, out: Path, s: dict[str, Any], seed: int) -> dict[str, Any]:
    if not (out / "summary.json").is_file():
        run(["eval", "run", "-b", "synthetic", "--model", str(model), "--data", str(heldout), "-o", str(out),
             "--strategy", f"insight-v:summary_tokens={s['summary_tokens']}", "--summary-model", str(summary),
             "--temperature", "0", "--max-new-tokens", str(s["eval_tokens"]), "--batch-size", "50",
             "--seed", str(seed), "--cpu-threads", "1"], out.parent / "eval.log")
    result = json.loads((out / "summary.json").read_text())
    return {"reasoner": result["strategy"]["reasoner_accuracy"], "final": result["strategy"]["final_accuracy"],
            "summary_changed_answer": result["strategy"].get("summary_changed_answer"),
            "verdicts": result["strategy"].get("verdicts"), "mean_chain_steps": result["strategy"].get("mean_chain_steps"),
            "tokens_per_item": result.get("tokens_per_item") or result["strategy"].get("tokens_per_item")}


def run_seed(seed: int, out: Path, s: dict[str, Any]) -> dict[str, Any]:
    from visionr1.models.tiny import build_tiny_model
    from visionr1.tasks.synthetic import make_synthetic

    t0 = time.perf_counter()
    data = out / "data"
    insight = data / "insight"
    if not (insight / "report.json").is_file():
        run(["insight", "data", str(REPO / "recipes" / "insight-v" / "data_oracle.yaml"), "input.task=counting",
             f"input.n={s['insight_n']}", f"input.seed={seed}", "--output-dir", str(insight)], out / "data.log")
    prompts_dir, heldout_dir = data / "dpo-prompts", data / "heldout"
    if not (prompts_dir / "train.jsonl").is_file():  # another item seed than the insight data's
        make_synthetic("counting", s["dpo_prompts"], 1000 + seed, prompts_dir, test_fraction=0.0)
    if not (heldout_dir / "test.jsonl").is_file():  # yet another: never trained on
        make_synthetic("counting", 2 * s["heldout"], 2000 + seed, heldout_dir, test_fraction=0.5)
    base = out / "base"
    if not (base / "config.json").is_file():
        build_tiny_model("qwen2_5_vl", s["size"], base, seed=seed)

    reasoner, summary = out / "reasoner", out / "summary"
    for name, run_dir, stages in (
        ("reasoner", reasoner, [sft_stage(insight / "reasoner_sft.json", s), dpo_stage(prompts_dir / "train.jsonl", s)]),
        ("summary", summary, [sft_stage(insight / "summary_sft.json", s)]),
    ):
        recipe = write_recipe(out / f"{name}.yaml", f"insight-{name}", seed, base, stages)
        run(["train", str(recipe), "--output-dir", str(run_dir)], out / f"train-{name}.log")

    checkpoints = {"sft": reasoner / "sft" / "final"}
    checkpoints |= {f"dpo-{i}": reasoner / "dpo" / f"iter-{i}" / "final" for i in range(1, ITERATIONS + 1)}
    evals = {name: evaluate(ckpt, summary / "sft" / "final", heldout_dir / "test.jsonl", out / "eval" / name, s, seed)
             for name, ckpt in checkpoints.items()}
    pairs = [json.loads((reasoner / "dpo" / f"iter-{i}" / "sampling.json").read_text()) for i in range(1, ITERATIONS + 1)]
    return {"seed": seed, "evals": evals, "dpo_sampling": pairs, "wall_seconds": round(time.perf_counter() - t0, 1)}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in results[0]["evals"]:
        row = {"checkpoint": name}
        for key in ("reasoner", "final"):
            m, sd = mean_std([100 * r["evals"][name][key] for r in results])
            row[key] = {"mean": round(m, 1), "std": round(sd, 1), "per_seed": [round(100 * r["evals"][name][key], 1)
                                                                              for r in results]}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "insight-v")
    ap.add_argument("--smoke", action="store_true", help="test-size model, a few items, 1-2 steps: seconds, no measurement")
    args = ap.parse_args(argv)
    s = settings(args.smoke)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = []
    for seed in args.seeds:
        print(f"seed {seed} (load average {os.getloadavg()[0]:.1f})", flush=True)
        results.append(run_seed(seed, args.out / f"seed-{seed}", s))
    rows = table(results)
    summary = {"smoke": args.smoke, "settings": s, "seeds": args.seeds, "table": rows, "runs": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'checkpoint':<10}{'reasoner alone %':>22}{'reasoner + summary %':>26}")
    for r in rows:
        print(f"{r['checkpoint']:<10}{r['reasoner']['mean']:>14.1f} ± {r['reasoner']['std']:<5.1f}"
              f"{r['final']['mean']:>18.1f} ± {r['final']['std']:<5.1f}")
    print(f"wrote {args.out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
