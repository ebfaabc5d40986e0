"""The paper's PTST ablation at CPU scale: PTST (short x many -> long x few) vs one long stage vs RL from the
base model ("Zero"), the same samples x length budget, from a reflective (overthinking) cold start.

    python benchmarks/ptst_ablation.py                 # seeds 0 1 2 -> runs/claims/ptst/summary.json, curves.png
    python benchmarks/ptst_ablation.py --smoke         # seconds: every step runs, nothing is measured

One seed per process runs the seeds side by side (``--seeds 0 &``, ``--seeds 1 &``, ...); each keeps its result
in ``seed-N/result.json`` (and each checkpoint's scores in ``seed-N/eval/``), so ``--seeds 0 1 2`` afterwards
only merges them, and a rerun after a kill resumes (training from its last checkpoint) instead of starting over.

The paper (research notes; avg of MathVista / MathVerse / MM-Math): base 49.6; cold-start SFT ("CI") 44.5
and overthinking; 16K x 4 only ("Long") 47.7; PTST 4K x 16 -> 8K x 8 55.4; RL from the base ("Zero") 50.7.
Here, per seed:
1. counting (easy), a demo-size tiny Qwen2.5-VL; cold start by the oracle with ``max_reflections`` R1-style
   re-checks ("Wait, let me check that again."), so the SFT model ("ci") thinks long and is often truncated;
2. arms, each GRPO with hard_format_result, every step costing the same samples x length (G x L):
   - ``ptst``: L1 x G1 for S steps, then 2L1 x G1/2 for S steps, from ci (the paper's 4K x 16 -> 8K x 8);
   - ``long``: 4L1 x G1/4 for 2S steps, from ci (the paper's 16K x 4);
   - ``zero``: L1 x G1 for 2S steps from the *base* model, format + accuracy 1:1 (the paper's Zero);
3. every checkpoint (base, ci, each stage of each arm) on the same held-out items with the longest limit
   (4 L1 tokens): accuracy (mean of sampled passes, T 0.6) and greedy, mean completion tokens and the
   truncation rate; the training curves of all arms in one plot (reward and completion length per step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import claims  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

FULL = {"model": "demo", "max_pixels": 12544, "cold_items": 400, "max_reflections": 4, "sft_steps": 150,
        "sft_batch": 8, "rl_items": 480, "L1": 96, "G1": 8, "prompts": 4, "S": 20, "lr_sft": 2e-3, "lr_grpo": 1e-4,
        "eval_items": 150, "eval_samples": 2, "eval_greedy": True, "plot": True}
# a task where thinking length pays: counting 4-7 shapes of more colours; the oracle's plain reasoning is
# 96-153 tokens (41% over 128), reflective 97-783 (49% over 512), so stage 1 (128) must cut reasoning, not
# only re-checks, and stage 2 (256) has room to win it back
VARIANTS = {"medium": {**FULL, "difficulty": "medium", "L1": 128,
                       "about": "counting 4-7 shapes, 128 x 8 -> 256 x 4 vs 512 x 2 (length pays)"}}
SMOKE = {"model": "test", "max_pixels": 12544, "cold_items": 4, "max_reflections": 2, "sft_steps": 1,
         "sft_batch": 2, "rl_items": 4, "L1": 4, "G1": 8, "prompts": 1, "S": 1, "lr_sft": 1e-3, "lr_grpo": 1e-5,
         "eval_items": 2, "eval_samples": 1, "eval_greedy": False, "plot": False}


def arms(cfg: dict, rl: Path) -> dict[str, tuple[str, list[dict]]]:
    """Arm name -> (start: "ci" or "base", GRPO stages). As in the paper, generations x length per prompt is
    the same in every stage (16 x 4K = 8 x 8K = 4 x 16K) and so are the prompts per step."""
    L, G, S, P, lr = cfg["L1"], cfg["G1"], cfg["S"], cfg["prompts"], cfg["lr_grpo"]
    return {
        "ptst": ("ci", [claims.grpo_stage("ptst-1", rl, S, L, G, P, lr),
                        claims.grpo_stage("ptst-2", rl, S, 2 * L, G // 2, P, lr)]),
        "long": ("ci", [claims.grpo_stage("long", rl, 2 * S, 4 * L, G // 4, P, lr)]),
        "zero": ("base", [claims.grpo_stage("zero", rl, 2 * S, L, G, P, lr,
                                            rewards=[{"name": "format", "weight": 1.0}, {"name": "accuracy", "weight": 1.0}])]),
    }


def one_seed(seed: int, out: Path, cfg: dict, console: Console, start_model: Path | None = None) -> dict:
    # --- 1. data, model, reflective cold start, SFT ("ci") ------------------------------------------------------
    preset = claims.difficulty(cfg.get("difficulty", "easy"))
    items = claims.make_split("counting", cfg["cold_items"] + cfg["rl_items"] + cfg["eval_items"], seed,
                              out / "data", preset)
    parts = claims.split_lines(items, {"cold": cfg["cold_items"], "rl": cfg["rl_items"], "test": cfg["eval_items"]})
    base = claims.build_model(cfg["model"], seed, out / "model", start_model)
    cold = claims.coldstart(parts["cold"], out / "coldstart", max_reflections=cfg["max_reflections"])
    ci = claims.train("ci", base, [claims.sft_stage("ci", cold, cfg["sft_steps"], cfg["sft_batch"], cfg["lr_sft"])],
                      out / "train-ci", seed, cfg["max_pixels"], cfg["plot"])["ci"]

    # --- 2. the arms -------------------------------------------------------------------------------------------------
    checkpoints = {"base": base, "ci": ci}
    runs = {}
    for arm, (start, stages) in arms(cfg, parts["rl"]).items():
        finals = claims.train(arm, {"ci": ci, "base": base}[start], stages, out / f"train-{arm}", seed,
                              cfg["max_pixels"], cfg["plot"])
        checkpoints.update(finals)
        runs[arm] = out / f"train-{arm}"

    # --- 3. held-out evaluation and curves --------------------------------------------------------------------------
    limit = 4 * cfg["L1"]
    results = {}
    for name, ckpt in checkpoints.items():
        r = claims.cached(out / "eval" / f"{name}.json", {**cfg, "checkpoint": str(ckpt)},
                          lambda ckpt=ckpt: claims.evaluate(ckpt, {"test": parts["test"]}, limit, cfg["eval_samples"],
                                                            cfg["max_pixels"], greedy=cfg["eval_greedy"])["test"])
        results[name] = {k: r.get(k) for k in ("accuracy", "format", "mean_completion_tokens", "truncated_rate")}
        results[name]["greedy"] = r.get("greedy", {}).get("accuracy")
        console.print(f"seed {seed} {name}: accuracy {100 * r['accuracy']:.1f}%, "
                      f"{r['mean_completion_tokens']:.0f} tokens, truncated {100 * r['truncated_rate']:.0f}%")
    curves = {arm: [{k: row.get(k) for k in ("stage", "step", "run_step", "reward", "completions/mean_length",
                                             "completions/clipped_ratio")} for row in claims.train_rows(d)]
              for arm, d in runs.items()}
    return {"seed": seed, "results": results, "curves": curves}


CURVES = (("reward", "reward (zero: format + accuracy)"), ("completions/mean_length", "mean completion tokens"),
          ("completions/clipped_ratio", "share cut off at the limit"))
# the claims, as paired differences per seed (first minus second), in accuracy points
CONTRASTS = (("ptst-2", "long"), ("ptst-2", "zero"), ("ptst-2", "ptst-1"), ("ptst-1", "ci"), ("long", "ci"))


def plot_curves(per_seed: list[dict], path: Path) -> Path:
    """Reward, mean completion length and the clipped share per GRPO step of every arm, in one figure: the
    mean over seeds (a 3-step moving average) with the seeds' range shaded, and where PTST's stage 2 starts."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(CURVES), 1, figsize=(9, 8), sharex=True)
    colors = {"ptst": "tab:blue", "long": "tab:orange", "zero": "tab:green"}
    boundary = None
    for arm, color in colors.items():
        runs = [run["curves"][arm] for run in per_seed if run["curves"].get(arm)]
        if not runs:
            continue
        steps = min(len(rows) for rows in runs)
        x = np.array([r["run_step"] for r in runs[0][:steps]])
        if arm == "ptst":
            starts = [r["run_step"] for r, prev in zip(runs[0][1:], runs[0], strict=False) if r["stage"] != prev["stage"]]
            boundary = starts[0] - 0.5 if starts else None
        for ax, (key, label) in zip(axes, CURVES, strict=False):
            ys = np.array([[float(r.get(key) or 0.0) for r in rows[:steps]] for rows in runs])
            kernel = np.ones(min(3, steps))
            norm = np.convolve(np.ones(steps), kernel, mode="same")  # the ends average fewer steps, not zeros
            smooth = np.array([np.convolve(y, kernel, mode="same") / norm for y in ys])
            ax.plot(x, smooth.mean(0), "-", color=color, label=f"{arm} ({len(runs)} seeds)")
            ax.fill_between(x, smooth.min(0), smooth.max(0), color=color, alpha=0.15, linewidth=0)
            ax.set_ylabel(label, fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        if boundary is not None:
            ax.axvline(boundary, color="tab:blue", linestyle=":", linewidth=1)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("GRPO step (dotted: PTST stage 2 begins, twice the length, half the generations)")
    fig.suptitle("PTST ablation: training curves (mean over seeds, 3-step moving average; band: seeds' range)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_stats(per_seed: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per GRPO stage, mean over seeds of the mean completion length and the clipped share in the first and
    the last quarter of its steps (how the limit shaped the completions during training)."""
    out: dict[str, dict[str, list[float]]] = {}
    for run in per_seed:
        for rows in run["curves"].values():
            for stage in dict.fromkeys(r["stage"] for r in rows):
                own = [r for r in rows if r["stage"] == stage]
                q = max(1, len(own) // 4)
                for part, chunk in (("first", own[:q]), ("last", own[-q:])):
                    for key, short in (("completions/mean_length", "length"), ("completions/clipped_ratio", "clipped")):
                        values = [float(r.get(key) or 0.0) for r in chunk]
                        out.setdefault(stage, {}).setdefault(f"{short}_{part}", []).append(sum(values) / len(values))
    return {stage: {k: claims.mean_std(v) for k, v in d.items()} for stage, d in out.items()}


def training_cost(out: Path, cfg: dict, per_seed: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per GRPO stage, what the equal samples x length budget cost in fact: wall seconds (the run manifests'
    start/finish; the seeds ran side by side on one machine, so compare arms, not absolute times) and tokens
    generated (mean completion length x completions per step, summed over steps)."""
    from datetime import datetime

    per_step = {st["name"]: st["grpo"]["per_device_train_batch_size"]
                for _, stages in arms(cfg, Path("rl.jsonl")).values() for st in stages}
    walls: dict[str, list[float]] = {}
    tokens: dict[str, list[float]] = {}
    for run in per_seed:
        seed_dir = out / f"seed-{run['seed']}"
        for arm, rows in run["curves"].items():
            manifest = seed_dir / f"train-{arm}" / "manifest.json"
            if manifest.is_file():
                for st in json.loads(manifest.read_text(encoding="utf-8"))["stages"]:
                    if st.get("started") and st.get("finished"):
                        span = datetime.fromisoformat(st["finished"]) - datetime.fromisoformat(st["started"])
                        walls.setdefault(st["name"], []).append(span.total_seconds())
            for stage in dict.fromkeys(r["stage"] for r in rows):
                total = sum(float(r.get("completions/mean_length") or 0.0) for r in rows if r["stage"] == stage)
                tokens.setdefault(stage, []).append(total * per_step.get(stage, 0))
    return {stage: {"wall_s": claims.mean_std(walls[stage]) if walls.get(stage) else None,
                    "generated_tokens": claims.mean_std(tokens[stage])} for stage in tokens}


def contrasts(per_seed: list[dict]) -> dict[str, dict]:
    """Paired differences in held-out accuracy (points), per seed and as mean ± std."""
    out = {}
    for a, b in CONTRASTS:
        if all(a in r["results"] and b in r["results"] for r in per_seed):
            diffs = [100 * (r["results"][a]["accuracy"] - r["results"][b]["accuracy"]) for r in per_seed]
            greedy = [100 * ((r["results"][a].get("greedy") or 0) - (r["results"][b].get("greedy") or 0)) for r in per_seed]
            out[f"{a} - {b}"] = {"per_seed": diffs, "mean_std": claims.mean_std(diffs),
                                 "seeds_positive": sum(d > 0 for d in diffs), "greedy_mean_std": claims.mean_std(greedy)}
    return out


def main(argv: list[str] | None = None) -> dict:
    args, cfg, seeds, per_seed = claims.run_seeds(__doc__, REPO / "runs" / "claims" / "ptst", FULL, SMOKE, one_seed, argv,
                                                  variants=VARIANTS)
    console = Console(highlight=False, width=max(Console().width, 150))
    names = list(per_seed[0]["results"])
    keys = ("accuracy", "greedy", "format", "mean_completion_tokens", "truncated_rate")
    stats = {n: {k: claims.mean_std([r["results"][n][k] or 0.0 for r in per_seed]) for k in keys} for n in names}
    summary = {"settings": cfg, "smoke": args.smoke, "seeds": seeds, "stats": stats,
               "training": training_stats(per_seed), "cost": training_cost(args.out, cfg, per_seed),
               "contrasts": contrasts(per_seed), "per_seed": per_seed,
               "curves_png": str(plot_curves(per_seed, args.out / "curves.png"))}

    table = Table(title=f"held-out, limit {4 * cfg['L1']} tokens; mean ± std over seeds {' '.join(map(str, seeds))}")
    for col in ("checkpoint", "accuracy %", "greedy %", "format %", "mean tokens", "truncated %",
                "training: tokens first -> last quarter", "clipped %"):
        table.add_column(col, justify="right")
    for n in names:
        s, t = stats[n], summary["training"].get(n)
        train = (f"{t['length_first'][0]:.0f} -> {t['length_last'][0]:.0f}", f"{100 * t['clipped_first'][0]:.0f} -> "
                 f"{100 * t['clipped_last'][0]:.0f}") if t else ("", "")
        table.add_row(n, *(f"{100 * s[k][0]:.1f} ± {100 * s[k][1]:.1f}" for k in ("accuracy", "greedy", "format")),
                      f"{s['mean_completion_tokens'][0]:.0f} ± {s['mean_completion_tokens'][1]:.0f}",
                      f"{100 * s['truncated_rate'][0]:.0f} ± {100 * s['truncated_rate'][1]:.0f}", *train)
    console.print(table)
    for stage, c in summary["cost"].items():
        wall = f"{c['wall_s'][0]:.0f} ± {c['wall_s'][1]:.0f} s" if c["wall_s"] else "wall time not recorded"
        console.print(f"{stage}: {wall}, {c['generated_tokens'][0] / 1000:.1f}k tokens generated in training")
    for name, c in summary["contrasts"].items():
        m, sd = c["mean_std"]
        console.print(f"{name}: {m:+.1f} ± {sd:.1f} points (positive in {c['seeds_positive']}/{len(seeds)} seeds; "
                      f"per seed {', '.join(f'{d:+.1f}' for d in c['per_seed'])}; greedy {c['greedy_mean_std'][0]:+.1f})")
    console.print(f"curves: {summary['curves_png']}")
    claims.write_json(args.out / "summary.json", summary)
    return summary


if __name__ == "__main__":
    main()
