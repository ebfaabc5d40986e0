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
    easy = claims.difficulty("easy")
    items = claims.make_split("counting", cfg["cold_items"] + cfg["rl_items"] + cfg["eval_items"], seed,
                              out / "data", easy)
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


def plot_curves(per_seed: list[dict], path: Path) -> Path:
    """Reward and mean completion length per step of every arm (one line per seed) in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_l) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    colors = {"ptst": "tab:blue", "long": "tab:orange", "zero": "tab:green"}
    for k, run in enumerate(per_seed):
        for arm, rows in run["curves"].items():
            x = [r["run_step"] for r in rows]
            label = arm if k == 0 else None
            ax_r.plot(x, [r["reward"] for r in rows], "-", color=colors[arm], alpha=0.7, label=label)
            ax_l.plot(x, [r["completions/mean_length"] for r in rows], "-", color=colors[arm], alpha=0.7, label=label)
    ax_r.set_ylabel("reward (zero: format + accuracy)")
    ax_l.set_ylabel("mean completion length (tokens)")
    ax_l.set_xlabel("GRPO step")
    for ax in (ax_r, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("PTST ablation: training curves (one line per seed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    args, cfg, seeds, per_seed = claims.run_seeds(__doc__, REPO / "runs" / "claims" / "ptst", FULL, SMOKE, one_seed, argv)
    console = Console(highlight=False)
    names = list(per_seed[0]["results"])
    stats = {n: {k: claims.mean_std([r["results"][n][k] for r in per_seed])
                 for k in ("accuracy", "mean_completion_tokens", "truncated_rate")} for n in names}
    summary = {"settings": cfg, "smoke": args.smoke, "seeds": seeds, "stats": stats, "per_seed": per_seed,
               "curves_png": str(plot_curves(per_seed, args.out / "curves.png"))}

    table = Table(title=f"held-out, limit {4 * cfg['L1']} tokens; mean ± std over seeds {' '.join(map(str, seeds))}")
    for col in ("checkpoint", "accuracy %", "mean tokens", "truncated %"):
        table.add_column(col, justify="right")
    for n in names:
        s = stats[n]
        table.add_row(n, f"{100 * s['accuracy'][0]:.1f} ± {100 * s['accuracy'][1]:.1f}",
                      f"{s['mean_completion_tokens'][0]:.0f} ± {s['mean_completion_tokens'][1]:.0f}",
                      f"{100 * s['truncated_rate'][0]:.0f} ± {100 * s['truncated_rate'][1]:.0f}")
    console.print(table)
    console.print(f"curves: {summary['curves_png']}")
    claims.write_json(args.out / "summary.json", summary)
    return summary


if __name__ == "__main__":
    main()
