"""SFT vs RL out of domain (R1-V, VLM-R1): from the same start, more SFT or GRPO on the same items; then
in-domain and out-of-domain held-out accuracy.

    python benchmarks/sft_vs_rl_ood.py                 # seeds 0 1 2 -> runs/claims/sft-vs-rl/summary.json
    python benchmarks/sft_vs_rl_ood.py --smoke         # seconds: every step runs, nothing is measured

The surveyed finding: RL generalises out of domain better, SFT wins (or ties) in domain. Set-up, per seed:
1. training distribution: counting, easy scenes (2-4 objects, red/green/blue, circles/squares); held-out sets
   from the same distribution (`id`), with unseen colours (`ood-colour`: yellow/purple/orange, same counts)
   and with more objects (`ood-count`: 5-7 objects, answers never seen in training);
2. start: a demo-size tiny Qwen2.5-VL, cold-start SFT on oracle modality-bridging data (short: format and
   some counting);
3. two arms from that start, on the *same training items* (budget = items seen): `sft` = SFT on the oracle
   reasoning of those items, `grpo` = GRPO (hard_format_result) with their questions as prompts, one prompt
   per item; GRPO also sees each item's `num_generations` completions, so it costs more compute (the wall
   seconds of each arm are recorded);
4. every checkpoint (start, sft, grpo) on every held-out set: mean of sampled passes (T 0.6) and greedy.
Prints mean ± std over seeds and whether the claim's two halves hold (OOD: grpo − sft > 0; ID: sft − grpo >= 0).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import claims  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SETS = ("id", "ood-colour", "ood-count")
ARMS = ("start", "sft", "grpo")

FULL = {"model": "demo", "max_pixels": 12544, "start_items": 400, "start_steps": 150, "arm_items": 240,
        "sft_batch": 8, "grpo_prompts": 8, "grpo_generations": 8, "grpo_length": 128, "lr_sft": 2e-3,
        "lr_grpo": 1e-4, "eval_items": 150, "eval_samples": 2, "eval_greedy": True, "eval_tokens": 160, "plot": True}
SMOKE = {"model": "test", "max_pixels": 12544, "start_items": 4, "start_steps": 1, "arm_items": 2,
         "sft_batch": 2, "grpo_prompts": 1, "grpo_generations": 2, "grpo_length": 8, "lr_sft": 1e-3,
         "lr_grpo": 1e-5, "eval_items": 2, "eval_samples": 1, "eval_greedy": False, "eval_tokens": 8, "plot": False}


def one_seed(seed: int, out: Path, cfg: dict, console: Console, start_model: Path | None = None) -> dict:
    # --- 1. data: one training distribution, three held-out sets --------------------------------------------
    easy = claims.difficulty("easy")
    dists = {"id": easy,
             "ood-colour": claims.difficulty("easy", colors=["yellow", "purple", "orange"]),
             "ood-count": claims.difficulty("easy", min_objects=5, max_objects=7, image_size=140)}
    n_train = cfg["start_items"] + cfg["arm_items"]
    train_file = claims.make_split("counting", n_train + cfg["eval_items"], seed, out / "data" / "id", easy)
    parts = claims.split_lines(train_file, {"start": cfg["start_items"], "arm": cfg["arm_items"],
                                            "test-id": cfg["eval_items"]})
    tests = {"id": parts["test-id"]}
    for name in SETS[1:]:  # another seed stream, so no held-out scene repeats a training one
        tests[name] = claims.make_split("counting", cfg["eval_items"], 1000 + seed, out / "data" / name, dists[name])

    # --- 2. the common start: cold-start SFT -----------------------------------------------------------------
    model = claims.build_model(cfg["model"], seed, out / "model", start_model)
    cold_start = claims.coldstart(parts["start"], out / "coldstart-start")
    cold_arm = claims.coldstart(parts["arm"], out / "coldstart-arm")
    t0 = time.perf_counter()
    start = claims.train("start", model, [claims.sft_stage("start", cold_start, cfg["start_steps"], cfg["sft_batch"],
                                                            cfg["lr_sft"])], out / "train-start", seed, cfg["max_pixels"], cfg["plot"])["start"]
    wall = {"start": time.perf_counter() - t0}

    # --- 3. two arms on the same items ---------------------------------------------------------------------------
    sft_steps = max(1, cfg["arm_items"] // cfg["sft_batch"])
    grpo_steps = max(1, cfg["arm_items"] // cfg["grpo_prompts"])
    t0 = time.perf_counter()
    sft = claims.train("sft", start, [claims.sft_stage("sft", cold_arm, sft_steps, cfg["sft_batch"], cfg["lr_sft"] / 4)],
                       out / "train-sft", seed, cfg["max_pixels"], cfg["plot"])["sft"]
    wall["sft"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grpo = claims.train("grpo", start, [claims.grpo_stage("grpo", parts["arm"], grpo_steps, cfg["grpo_length"],
                                                           cfg["grpo_generations"], cfg["grpo_prompts"], cfg["lr_grpo"])],
                        out / "train-grpo", seed, cfg["max_pixels"], cfg["plot"])["grpo"]
    wall["grpo"] = time.perf_counter() - t0

    # --- 4. every arm on every held-out set ------------------------------------------------------------------------
    results: dict[str, dict[str, dict]] = {}
    for arm, ckpt in {"start": start, "sft": sft, "grpo": grpo}.items():
        scores = claims.evaluate(ckpt, tests, cfg["eval_tokens"], cfg["eval_samples"], cfg["max_pixels"],
                                 greedy=cfg["eval_greedy"])
        results[arm] = {name: {"accuracy": r["accuracy"], "greedy": r.get("greedy", {}).get("accuracy"),
                               "format": r["format"], "mean_completion_tokens": r["mean_completion_tokens"]}
                        for name, r in scores.items()}
        console.print(f"seed {seed} {arm}: " + ", ".join(f"{s} {100 * results[arm][s]['accuracy']:.1f}%" for s in SETS))
    return {"seed": seed, "results": results, "wall_seconds": wall,
            "steps": {"start": cfg["start_steps"], "sft": sft_steps, "grpo": grpo_steps}}


def summarize(per_seed: list[dict]) -> dict:
    out: dict = {"accuracy": {}, "claim": {}}
    for arm in ARMS:
        out["accuracy"][arm] = {s: claims.mean_std([r["results"][arm][s]["accuracy"] for r in per_seed]) for s in SETS}
    for s in SETS:
        gaps = [r["results"]["grpo"][s]["accuracy"] - r["results"]["sft"][s]["accuracy"] for r in per_seed]
        out["claim"][f"grpo_minus_sft:{s}"] = claims.mean_std(gaps)
    ood = [out["claim"][f"grpo_minus_sft:{s}"][0] for s in SETS[1:]]
    out["claim"]["rl_better_ood"] = all(g > 0 for g in ood)
    out["claim"]["sft_not_worse_id"] = out["claim"]["grpo_minus_sft:id"][0] <= 0
    return out


def main(argv: list[str] | None = None) -> dict:
    args, cfg, seeds, per_seed = claims.run_seeds(__doc__, REPO / "runs" / "claims" / "sft-vs-rl", FULL, SMOKE, one_seed, argv)
    console = Console(highlight=False)
    summary = {"settings": cfg, "smoke": args.smoke, "seeds": seeds, **summarize(per_seed), "per_seed": per_seed}

    table = Table(title="held-out accuracy (%), mean ± std over seeds " + " ".join(map(str, seeds)))
    table.add_column("arm")
    for s in SETS:
        table.add_column(s, justify="right")
    for arm in ARMS:
        table.add_row(arm, *(f"{100 * m:.1f} ± {100 * sd:.1f}" for m, sd in summary["accuracy"][arm].values()))
    table.add_row("grpo − sft", *(f"{100 * m:+.1f} ± {100 * sd:.1f}" for m, sd in
                                  (summary["claim"][f"grpo_minus_sft:{s}"] for s in SETS)), style="bold")
    console.print(table)
    console.print(f"RL better out of domain: {summary['claim']['rl_better_ood']}; "
                  f"SFT not worse in domain: {summary['claim']['sft_not_worse_id']}")
    claims.write_json(args.out / "summary.json", summary)
    return summary


if __name__ == "__main__":
    main()
