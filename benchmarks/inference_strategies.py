"""Held-out accuracy vs tokens generated per item, for every inference-time strategy and N in {1, 2, 4, 8}.

    python benchmarks/inference_strategies.py                       # seeds 0 1 2: train each demo model, measure
    python benchmarks/inference_strategies.py --seeds 0 --limit 100 # one seed, the first 100 held-out items
    python benchmarks/inference_strategies.py --smoke               # seconds: untrained test-size model, 3 items

For each seed, the model is the demo's (``visionr1 demo recipes/demo.yaml seed=K``: synthetic counting task,
cold-start SFT then two PTST GRPO stages, ``train/grpo-2/final``), trained once into
``OUT/seed-K/demo`` (reused when present), and evaluated on the demo's held-out items with the paper's sampling
(temperature 0.6, top_p 0.95, the demo's 192-token limit) through ``run_benchmark`` -- the same code path as
``visionr1 eval run --strategy``, so every point is also resumable.

Points measured:
- ``single``, ``staged`` and ``caption-first`` (one sample, N = 1), ``beam`` (``stages=think-answer``: the demo
  model is trained on the R1 format; N = width) -- each its own run;
- ``best-of-n`` (log-prob), ``vote`` and ``oracle`` (best-of-n with the ground truth: an UPPER BOUND, pass@N)
  for every N from ONE run of 8 samples per item: the first N candidates of 8 i.i.d. samples are an N-sample,
  so N in {1, 2, 4, 8} are read from the same candidates (selection by ``strategies.pick`` / ``strategies.vote``,
  scored by the benchmark's scorer). This costs 8 samples per item instead of 3 x 15.

Tokens per item count every generated token of every candidate. Writes ``OUT/results.json`` (every point,
every seed, and mean / std over seeds), ``OUT/accuracy_vs_tokens.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_MAX_PIXELS = 12544  # recipes/demo.yaml: model.max_pixels


def train_demo(seed: int, out: Path, stage: str = "grpo-2") -> tuple[Path, Path]:
    """The demo's ``stage`` checkpoint and held-out file for ``seed`` (trained by ``visionr1 demo`` if missing)."""
    final, heldout = out / "train" / stage / "final", out / "data" / "test.jsonl"
    if not (final / "config.json").is_file():
        cmd = [sys.executable, "-m", "visionr1", "demo", str(REPO / "recipes" / "demo.yaml"), f"seed={seed}",
               "logging.progress=lines", "--output-dir", str(out)]
        print(f"seed {seed}: training the demo model ({' '.join(cmd[2:])})", flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
    return final, heldout


def smoke_model(out: Path) -> tuple[Path, Path]:
    from visionr1.models.tiny import get_tiny_model
    from visionr1.tasks.synthetic import make_synthetic

    data = make_synthetic("counting", 6, 0, out / "data", test_fraction=0.5)
    return get_tiny_model("qwen2_5_vl", "test"), data / "test.jsonl"


def run_point(model: Path, data: Path, out: Path, spec: str, seed: int, max_new_tokens: int, limit: int | None,
              batch_size: int) -> dict[str, Any]:
    from visionr1.evaluation.run import DecodingConfig, run_benchmark
    from visionr1.evaluation.strategies import parse_strategy

    decoding = DecodingConfig(max_new_tokens=max_new_tokens, temperature=0.6, top_p=0.95, batch_size=batch_size,
                              seed=seed)
    t0 = time.perf_counter()
    summary = run_benchmark("synthetic", model, data, out, decoding, limit=limit, max_pixels=DEMO_MAX_PIXELS,
                            strategy=parse_strategy(spec))
    return {"accuracy": summary["accuracy"], "tokens_per_item": summary["strategy"]["tokens_per_item"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def points_from_samples(out: Path, data: Path, ns: list[int]) -> list[dict[str, Any]]:
    """best-of-n (log-prob), vote and oracle for each N, from the first N candidates of the 8-sample run."""
    from visionr1.evaluation.benchmarks import ScoringContext, get_benchmark
    from visionr1.evaluation.strategies import item_info, pick, same_answer, vote

    bench = get_benchmark("synthetic")
    items = {i.pid: i for i in bench.load(data)}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
    points = []
    for n in ns:
        correct = {"best-of-n": 0, "vote": 0, "oracle (upper bound)": 0}
        tokens = 0
        for row in rows:
            item, cands = items[row["pid"]], row["candidates"][:n]
            info = item_info(bench, item)
            lps = [c["mean_logprob"] for c in cands]
            tokens += sum(c["num_tokens"] for c in cands)
            ok = [c["oracle_correct"] for c in cands]
            best = pick([0.0] * n, lps)
            voted, _ = vote([c["answer"] for c in cands], lps, lambda a, b, info=info: same_answer(a, b, info))
            correct["best-of-n"] += ok[best]
            correct["vote"] += ok[voted]
            correct["oracle (upper bound)"] += any(ok)
        # the oracle flag is the benchmark's own verdict on each candidate: check it once against the scorer
        sample = rows[0]["candidates"][0]
        assert bench.score(items[rows[0]["pid"]], sample["text"], ScoringContext()).correct == sample["oracle_correct"]
        for name, c in correct.items():
            points.append({"strategy": name, "n": n, "accuracy": c / len(rows), "tokens_per_item": tokens / len(rows)})
    return points


def measure_seed(seed: int, model: Path, data: Path, out: Path, ns: list[int], max_new_tokens: int,
                 limit: int | None, batch_size: int) -> list[dict[str, Any]]:
    points = []
    singles = [("single", "single"), ("staged", "staged"), ("caption-first", "caption-first")]
    beams = [(f"beam-{n}", f"beam:width={n},stages=think-answer") for n in ns if n > 1]
    for label, spec in singles + beams:
        print(f"seed {seed}: {spec}", flush=True)
        p = run_point(model, data, out / label, spec, seed, max_new_tokens, limit, batch_size)
        points.append({"strategy": label.split("-")[0] if label.startswith("beam") else label,
                       "n": int(label.split("-")[1]) if label.startswith("beam") else 1, **p})
    print(f"seed {seed}: best-of-n:n={max(ns)},select=oracle (vote and best-of-n read from it)", flush=True)
    p = run_point(model, data, out / "samples", f"best-of-n:n={max(ns)},select=oracle", seed, max_new_tokens, limit,
                  batch_size)
    points += points_from_samples(out / "samples", data, ns)
    return [dict(pt, seed=seed) for pt in points] + [{"strategy": "_samples_run", "seed": seed, **p}]


def aggregate(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for p in points:
        if not p["strategy"].startswith("_"):
            groups.setdefault((p["strategy"], p["n"]), []).append(p)
    out = []
    for (name, n), ps in sorted(groups.items()):
        acc = [p["accuracy"] for p in ps]
        tok = [p["tokens_per_item"] for p in ps]
        out.append({"strategy": name, "n": n, "seeds": len(ps), "accuracy_mean": statistics.fmean(acc),
                    "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "tokens_per_item_mean": statistics.fmean(tok)})
    return out


def plot(table: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["strategy"] for r in table):
        rs = sorted((r for r in table if r["strategy"] == name), key=lambda r: r["tokens_per_item_mean"])
        style = "--" if "upper bound" in name else "-"
        ax.errorbar([r["tokens_per_item_mean"] for r in rs], [100 * r["accuracy_mean"] for r in rs],
                    yerr=[100 * r["accuracy_std"] for r in rs], fmt=style + "o", capsize=3, label=name)
        for r in rs:
            ax.annotate(f"N={r['n']}", (r["tokens_per_item_mean"], 100 * r["accuracy_mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("tokens generated per item (log scale)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--limit", type=int, default=None, help="first N held-out items (default: all 200)")
    ap.add_argument("--max-new-tokens", type=int, default=192, help="the demo's evaluation limit")
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per generate call")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "inference-strategies")
    ap.add_argument("--stage", default="grpo-2", help="the demo checkpoint to measure: sft | grpo-1 | grpo-2")
    ap.add_argument("--model", type=Path, default=None,
                    help="measure this checkpoint instead of training one per seed (the seeds then vary sampling only)")
    ap.add_argument("--data", type=Path, default=None, help="its held-out jsonl (with --model)")
    ap.add_argument("--smoke", action="store_true", help="untrained test-size model, 3 items, N in {1, 2}, one seed")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seeds, args.ns, args.max_new_tokens, args.limit = args.seeds[:1], [1, 2], 6, 3
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    points: list[dict[str, Any]] = []
    for seed in args.seeds:
        seed_dir = args.out / f"seed-{seed}"
        if args.smoke:
            model, data = smoke_model(seed_dir)
        elif args.model is not None:
            if args.data is None:
                raise SystemExit("--model needs --data (its held-out jsonl)")
            # one model: the seeds vary the sampling only (recorded as "seeds_vary" in results.json)
            model, data = args.model, args.data
        else:
            model, data = train_demo(seed, seed_dir / "demo", args.stage)
        points += measure_seed(seed, model, data, seed_dir, args.ns, args.max_new_tokens, args.limit,
                               args.batch_size)

    table = aggregate(points)
    result = {"smoke": args.smoke, "seeds_vary": "sampling only" if args.model else "training and sampling", "model": str(args.model) if args.model else f"demo {args.stage}", "seeds": args.seeds, "ns": args.ns, "limit": args.limit,
              "max_new_tokens": args.max_new_tokens, "points": points, "table": table}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    what = "/".join(args.model.parts[-3:]) if args.model else f"demo {args.stage}"
    title = (f"{what}, synthetic counting, {len(args.seeds)} seed(s) ({result['seeds_vary']})"
             + (f", first {args.limit} held-out items" if args.limit else "") + (" [SMOKE]" if args.smoke else ""))
    plot(table, args.out / "accuracy_vs_tokens.png", title)
    print(f"{'strategy':<22}{'N':>3}{'accuracy %':>16}{'tokens/item':>13}")
    for r in table:
        print(f"{r['strategy']:<22}{r['n']:>3}{100 * r['accuracy_mean']:>10.1f} ± {100 * r['accuracy_std']:<4.1f}"
              f"{r['tokens_per_item_mean']:>12.1f}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'accuracy_vs_tokens.png'}")
    return result


if __name__ == "__main__":
    main()
