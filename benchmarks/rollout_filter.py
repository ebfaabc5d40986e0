"""Dynamic sampling + online difficulty filtering vs plain GRPO, on the PTST ablation's task, at CPU scale:
informative-group share, generated tokens, wall seconds and held-out accuracy, per step and per checkpoint.

    python benchmarks/rollout_filter.py            # seeds 0 1 2 -> runs/claims/rollout_filter/summary.json, curves.png
    python benchmarks/rollout_filter.py --smoke    # seconds: every step runs, nothing is measured

As the PTST ablation's stage 1 (``benchmarks/ptst_ablation.py``): easy counting, a demo-size tiny Qwen2.5-VL
(random weights), a reflective cold start (oracle, ``max_reflections``) and SFT ("ci", built once and shared by
the seeds, as is the RL pool), whose answers are often too long for the 96-token limit, so many groups of 8 score
all 0 under ``hard_format_result``. Then, per seed (its own prompt order and sampling), two GRPO arms from ci, the
same optimizer steps, prompts per step and settings:

- ``plain``: TRL's batches as they come;
- ``filtered``: ``dynamic_sampling`` (all-equal groups dropped and refilled, at most 3 extra rounds) and
  ``difficulty_filter`` (prompts solved by every or no sample at their last appearance skipped). The RL pool is
  small (``rl_items``) so prompts come back within the run: the filter only acts on prompts seen before.

Recorded per step (the runs' metrics.jsonl): ``informative_group_share`` (after dynamic sampling) and
``/before``, ``generated_tokens``, ``step_time`` (TRL's time per step, generation included). Held-out accuracy
(mean of sampled passes, T 0.6, on the same items for every checkpoint) at ci and at every ``eval_every`` steps of
each arm, so accuracy can be read against cumulative generated tokens and cumulative wall seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import claims  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

FULL = {"model": "demo", "max_pixels": 12544, "cold_items": 400, "max_reflections": 4, "sft_steps": 150,
        "sft_batch": 8, "rl_items": 48, "L": 96, "G": 8, "prompts": 4, "steps": 20, "eval_every": 5,
        "lr_sft": 2e-3, "lr_grpo": 1e-4, "eval_items": 100, "eval_samples": 2, "eval_limit": 192,
        "max_refill_rounds": 3, "plot": True}
SMOKE = {"model": "test", "max_pixels": 12544, "cold_items": 4, "max_reflections": 2, "sft_steps": 1,
         "sft_batch": 2, "rl_items": 4, "L": 4, "G": 4, "prompts": 1, "steps": 2, "eval_every": 1,
         "lr_sft": 1e-3, "lr_grpo": 1e-5, "eval_items": 2, "eval_samples": 1, "eval_limit": 8,
         "max_refill_rounds": 1, "plot": False}
ARMS = ("plain", "filtered")
STEP_KEYS = ("informative_group_share", "informative_group_share/before", "generated_tokens", "step_time",
             "reward", "dynamic_sampling/refill_rounds", "completions/mean_length")


def stage(cfg: dict[str, Any], rl: Path, arm: str) -> dict[str, Any]:
    st = claims.grpo_stage("grpo", rl, cfg["steps"], cfg["L"], cfg["G"], cfg["prompts"], cfg["lr_grpo"])
    st["grpo"].update(save_steps=cfg["eval_every"], save_total_limit=None)  # every checkpoint is evaluated
    if arm == "filtered":
        st["dynamic_sampling"] = {"enabled": True, "max_refill_rounds": cfg["max_refill_rounds"]}
        st["difficulty_filter"] = {"enabled": True, "last_k": 1}
    return st


def shared(out: Path, cfg: dict, start_model: Path | None = None) -> dict[str, Path]:
    """What every seed starts from, built once (seed 0, as the PTST ablation's seed 0; a file lock lets seeds run
    side by side): cold-start, RL and held-out items of one split, the base model, the reflective cold start and its
    SFT ("ci"). A directory already holding them (e.g. copied from a 1-seed trial) is used as it is. One SFT for all
    seeds because it is the costliest part and not what is compared: the seeds vary the GRPO runs (prompt order and
    sampling) on the same RL pool."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    found = {"ci": out / "train-ci" / "ci" / "final", "rl": out / "data" / "rl.jsonl", "test": out / "data" / "test.jsonl"}
    with (out / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(p.exists() for p in found.values()):
            return found
        items = claims.make_split("counting", cfg["cold_items"] + cfg["rl_items"] + cfg["eval_items"], 0,
                                  out / "data", claims.difficulty("easy"))
        parts = claims.split_lines(items, {"cold": cfg["cold_items"], "rl": cfg["rl_items"], "test": cfg["eval_items"]})
        base = claims.build_model(cfg["model"], 0, out / "model", start_model)
        cold = claims.coldstart(parts["cold"], out / "coldstart", max_reflections=cfg["max_reflections"])
        ci = claims.train("ci", base, [claims.sft_stage("ci", cold, cfg["sft_steps"], cfg["sft_batch"], cfg["lr_sft"])],
                          out / "train-ci", 0, cfg["max_pixels"], cfg["plot"])["ci"]
    return {"ci": ci, "rl": parts["rl"], "test": parts["test"]}


def one_seed(seed: int, out: Path, cfg: dict, console: Console, start_model: Path | None = None) -> dict:
    common = shared(out.parent / "shared", cfg, start_model)
    ci, rl, test = common["ci"], common["rl"], common["test"]

    def score(name: str, ckpt: Path) -> float:
        r = claims.cached(out / "eval" / f"{name}.json", {**cfg, "checkpoint": str(ckpt)},
                          lambda: claims.evaluate(ckpt, {"test": test}, cfg["eval_limit"],
                                                  cfg["eval_samples"], cfg["max_pixels"], greedy=False)["test"])
        console.print(f"seed {seed} {name}: accuracy {100 * r['accuracy']:.1f}%")
        return r["accuracy"]

    start = score("ci", ci)
    arms: dict[str, Any] = {}
    for arm in ARMS:
        run = out / f"train-{arm}"
        claims.train(arm, ci, [stage(cfg, rl, arm)], run, seed, cfg["max_pixels"], cfg["plot"])
        steps = [{"step": r["step"], **{k: r.get(k) for k in STEP_KEYS}} for r in claims.train_rows(run)]
        points = [{"step": 0, "accuracy": start}]
        for step in range(cfg["eval_every"], cfg["steps"] + 1, cfg["eval_every"]):
            ckpt = run / "grpo" / (f"checkpoint-{step}" if step < cfg["steps"] else "final")
            points.append({"step": step, "accuracy": score(f"{arm}-{step}", ckpt)})
        arms[arm] = {"steps": steps, "points": points, "record": _record(run)}
    return {"seed": seed, "arms": arms}


def _record(run: Path) -> dict[str, Any]:
    import json

    stage_rec = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["stages"][0]
    return {"rollout_filter": stage_rec.get("rollout_filter"), "refills": stage_rec["data_order"].get("refills")}


def cumulative(steps: list[dict], key: str) -> dict[int, float]:
    """Step -> the sum of ``key`` over steps 1..step (0 at step 0)."""
    total, out = 0.0, {0: 0.0}
    for row in steps:
        total += float(row.get(key) or 0.0)
        out[row["step"]] = total
    return out


def arm_stats(per_seed: list[dict]) -> dict[str, dict[str, Any]]:
    """Per arm, mean ± std over seeds: informative share (mean over steps, and the lowest step), refill rounds,
    total generated tokens and step seconds, final accuracy and its gain over ci per million generated tokens and
    per thousand seconds."""
    out = {}
    for arm in ARMS:
        runs = [r["arms"][arm] for r in per_seed]

        def over_steps(key: str, runs=runs) -> list[float]:
            return [sum(float(s[key] or 0.0) for s in run["steps"]) / len(run["steps"]) for run in runs]

        tokens = [cumulative(run["steps"], "generated_tokens")[run["steps"][-1]["step"]] for run in runs]
        seconds = [cumulative(run["steps"], "step_time")[run["steps"][-1]["step"]] for run in runs]
        final = [run["points"][-1]["accuracy"] for run in runs]
        gain = [run["points"][-1]["accuracy"] - run["points"][0]["accuracy"] for run in runs]
        out[arm] = {
            "informative_share": claims.mean_std(over_steps("informative_group_share")),
            "informative_share_min_step": claims.mean_std([min(float(s["informative_group_share"] or 0.0)
                                                                for s in run["steps"]) for run in runs]),
            "informative_share_before": claims.mean_std(over_steps("informative_group_share/before")),
            "refill_rounds_per_step": claims.mean_std(over_steps("dynamic_sampling/refill_rounds")),
            "generated_tokens": claims.mean_std(tokens),
            "step_seconds": claims.mean_std(seconds),
            "final_accuracy": claims.mean_std(final),
            "gain_per_mtoken": claims.mean_std([g / t * 1e6 for g, t in zip(gain, tokens, strict=True)]),
            "gain_per_ks": claims.mean_std([g / s * 1e3 for g, s in zip(gain, seconds, strict=True)]),
        }
    return out


def plot(per_seed: list[dict], path: Path) -> Path:
    """Three panels: informative-group share per step; held-out accuracy against cumulative generated tokens; and
    against cumulative step seconds (mean over seeds, seeds' range shaded)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"plain": "tab:gray", "filtered": "tab:blue"}
    for arm, color in colors.items():
        runs = [r["arms"][arm] for r in per_seed]
        n = min(len(run["steps"]) for run in runs)
        x = [s["step"] for s in runs[0]["steps"][:n]]
        share = np.array([[float(s["informative_group_share"] or 0.0) for s in run["steps"][:n]] for run in runs])
        axes[0].plot(x, share.mean(0), "-", color=color, label=f"{arm}: after")
        axes[0].fill_between(x, share.min(0), share.max(0), color=color, alpha=0.15, linewidth=0)
        if arm == "filtered":
            before = np.array([[float(s["informative_group_share/before"] or 0.0) for s in run["steps"][:n]]
                               for run in runs])
            axes[0].plot(x, before.mean(0), ":", color=color, label=f"{arm}: first round (before refills)")
        for ax, key in ((axes[1], "generated_tokens"), (axes[2], "step_time")):
            xs = np.array([[cumulative(run["steps"], key).get(p["step"], np.nan) for p in run["points"]] for run in runs])
            ys = np.array([[100 * p["accuracy"] for p in run["points"]] for run in runs])
            ax.plot(xs.mean(0) / (1000 if key == "generated_tokens" else 1), ys.mean(0), "o-", color=color,
                    label=f"{arm} ({len(runs)} seeds)")
            ax.fill_between(xs.mean(0) / (1000 if key == "generated_tokens" else 1), ys.min(0), ys.max(0),
                            color=color, alpha=0.15, linewidth=0)
    axes[0].set(xlabel="GRPO step", ylabel="informative-group share", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="generated tokens (thousands, cumulative)", ylabel="held-out accuracy %")
    axes[2].set(xlabel="step seconds (cumulative, generation included)", ylabel="held-out accuracy %")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Dynamic sampling + difficulty filtering vs plain GRPO (mean over seeds; band: seeds' range)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    args, cfg, seeds, per_seed = claims.run_seeds(__doc__, REPO / "runs" / "claims" / "rollout_filter", FULL, SMOKE,
                                                  one_seed, argv)
    console = Console(highlight=False, width=max(Console().width, 150))
    stats = arm_stats(per_seed)
    summary = {"settings": cfg, "smoke": args.smoke, "seeds": seeds, "stats": stats, "per_seed": per_seed,
               "curves_png": str(plot(per_seed, args.out / "curves.png"))}
    for arm, s in stats.items():
        console.print(
            f"{arm}: informative share {100 * s['informative_share'][0]:.1f} ± {100 * s['informative_share'][1]:.1f}% "
            f"(first round {100 * s['informative_share_before'][0]:.1f}%, lowest step "
            f"{100 * s['informative_share_min_step'][0]:.1f}%), refill rounds/step {s['refill_rounds_per_step'][0]:.2f}, "
            f"{s['generated_tokens'][0] / 1000:.1f} ± {s['generated_tokens'][1] / 1000:.1f}k tokens, "
            f"{s['step_seconds'][0]:.0f} ± {s['step_seconds'][1]:.0f} s, final accuracy "
            f"{100 * s['final_accuracy'][0]:.1f} ± {100 * s['final_accuracy'][1]:.1f}%, gain over ci "
            f"{100 * s['gain_per_mtoken'][0]:.1f} points/M tokens, {100 * s['gain_per_ks'][0]:.2f} points/1000 s")
    console.print(f"curves: {summary['curves_png']}")
    claims.write_json(args.out / "summary.json", summary)
    return summary


if __name__ == "__main__":
    main()
