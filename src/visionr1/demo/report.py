"""The demo's outputs: ``report.json`` (machine-readable), ``report.md`` + ``report.png`` (for a person), and the
table printed at the end.

``report.json`` (the contract of issue 8; the benchmark and the tests read it):
``stages`` (evaluated checkpoints in order: ``base``, ``sft``, ``grpo-1``, ...), ``heldout`` (per stage:
``accuracy``, ``format``, ``mean_completion_tokens`` under the paper's sampled decoding, plus ``pass_at_k``,
``greedy`` (the same three, greedy), ``hard_format_result``, ``truncated_rate``, ``n``, ``samples``, ``split``),
``validation`` (the same, on the validation split, when ``eval.split`` asked for it), ``split`` (which of the
two the headline numbers, ``gain`` and the tables are from: ``heldout`` when it was evaluated), ``gain``
(accuracy differences in points, sampled and greedy), ``wall_seconds`` and ``phases`` (seconds per phase),
``training`` (per stage: steps, settings, first/last reward), the task, the cold start, the machine and the
resolved recipe.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from visionr1.pipeline.config import PipelineRecipe
from visionr1.utils.io import iter_jsonl

PLOT_FILE = "report.png"
# each split's name in a report, and what its numbers are for
SPLITS = {"heldout": "held-out", "validation": "validation"}
SPLIT_NOTE = {
    "heldout": "items never trained on and never used to choose settings: the numbers to report",
    "validation": "items for choosing settings (never trained on, never the held-out items): not a result to report",
}


def write_report(run_dir: Path, recipe: PipelineRecipe, train_recipe: Any, splits: dict[str, Any], cold: dict[str, Any],
                 evaluated: dict[str, dict[str, dict[str, Any]]], phases: dict[str, float], wall: float,
                 run_info: dict[str, Any]) -> dict[str, Any]:
    """Write report.json, report.png and report.md into ``run_dir``; return the report. ``evaluated`` is the
    eval section's ``{split: {stage: scores}}``; the headline numbers are the held-out split's when it was
    evaluated, else the validation split's, and the report names the split everywhere."""
    from visionr1.training.plot import read_metrics

    rows = read_metrics(run_dir / "train" / "metrics.jsonl") if (run_dir / "train" / "metrics.jsonl").is_file() else []
    split = "heldout" if "heldout" in evaluated else "validation"
    scores = evaluated[split]  # the headline split's
    stages = list(scores)
    acc = {s: scores[s]["accuracy"] for s in stages}
    grpo = [s.name for s in train_recipe.stages if s.type == "grpo"]
    sft = next(s.name for s in train_recipe.stages if s.type == "sft")
    report = {
        "name": recipe.name,
        "seed": recipe.seed,
        "stages": stages,
        "split": split,
        **{name: evaluated[name] for name in SPLITS if name in evaluated},
        "gain": {
            "sft_over_base": 100 * (acc[sft] - acc["base"]),
            "grpo_over_sft": 100 * (acc[grpo[-1]] - acc[sft]),
            "per_grpo_stage_over_sft": {g: 100 * (acc[g] - acc[sft]) for g in grpo},
            "greedy_grpo_over_sft": (100 * (scores[grpo[-1]]["greedy"]["accuracy"] - scores[sft]["greedy"]["accuracy"])
                                     if "greedy" in scores[sft] else None),
            "unit": "accuracy points (absolute, x100)",
            "split": split,
        },
        "wall_seconds": round(wall, 1),
        "phases": ordered_phases(phases),
        "training": _training_summary(train_recipe, rows, run_dir / "train"),
        "task": splits,
        "coldstart": cold,
        "machine": {**_machine(), **run_info},
        "recipe": recipe.model_dump(mode="json"),
        "files": {"report_md": "report.md", "plot": PLOT_FILE, "metrics": "train/metrics.jsonl",
                  "ptst_plot": "train/ptst.png", "predictions": "eval/<stage>/<sample-i|greedy>/predictions.jsonl",
                  "cold_start_data": "coldstart/cold_start.jsonl", "train_manifest": "train/manifest.json"},
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    plot = plot_report(rows, scores, run_dir / PLOT_FILE, title=f"{recipe.name} (seed {recipe.seed})",
                       split=SPLITS[split])
    (run_dir / "report.md").write_text(render_markdown(report, run_dir, plot is not None), encoding="utf-8")
    return report


def ordered_phases(phases: dict[str, float]) -> dict[str, float]:
    """Each phase followed by its parts (``train`` then ``train:sft``, ...), in the order they ran.

    >>> list(ordered_phases({"data": 1, "eval:base": 2, "eval": 3}))
    ['data', 'eval', 'eval:base']
    """
    out: dict[str, float] = {}
    for key, value in phases.items():
        if ":" not in key:
            out[key] = value
            out.update({k: v for k, v in phases.items() if k.startswith(key + ":")})
    return out


def _training_summary(train_recipe: Any, rows: list[dict[str, Any]], train_dir: Path) -> dict[str, Any]:
    manifest = json.loads((train_dir / "manifest.json").read_text()) if (train_dir / "manifest.json").is_file() else {}
    by_name = {s["name"]: s for s in manifest.get("stages", [])}
    out: dict[str, Any] = {}
    for stage in train_recipe.stages:
        values = stage.sft if stage.type == "sft" else stage.grpo
        srows = [r for r in rows if r.get("kind") == "train" and r.get("stage") == stage.name]
        entry: dict[str, Any] = {"type": stage.type, "steps": by_name.get(stage.name, {}).get("global_step"),
                                 "learning_rate": values.get("learning_rate")}
        if stage.type == "grpo":
            entry.update(max_completion_length=values.get("max_completion_length"),
                         num_generations=values.get("num_generations"), beta=values.get("beta"))
            for key, name in (("reward", "reward"), ("accuracy", "train_accuracy"),
                              ("completions/mean_length", "mean_length"),
                              ("completions/clipped_ratio", "clipped_ratio"),
                              ("informative_group_share", "informative_share"),
                              ("padded_token_share", "padded_token_share")):
                vals = [r[key] for r in srows if r.get(key) is not None]
                if vals:
                    k = max(1, len(vals) // 4)  # first and last quarter of the stage: less noisy than one step
                    entry[f"{name}_first_quarter"] = sum(vals[:k]) / k
                    entry[f"{name}_last_quarter"] = sum(vals[-k:]) / k
            tokens = [r["generated_tokens"] for r in srows if r.get("generated_tokens") is not None]
            if tokens:  # completion tokens generated per step, refill rounds included (training.rollout_filter)
                entry["generated_tokens_per_step"] = sum(tokens) / len(tokens)
        else:
            losses = [r["loss"] for r in srows if r.get("loss") is not None]
            if losses:
                entry.update(loss_first=losses[0], loss_last=losses[-1])
            entry["train_loss"] = by_name.get(stage.name, {}).get("train_loss")
        out[stage.name] = entry
    return out


def _machine() -> dict[str, Any]:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average_1_5_15": load,
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


# ----------------------------------------------------------------------------------------------------------
# the plot
# ----------------------------------------------------------------------------------------------------------


def _smooth(values: list[float], window: int = 5) -> list[float]:
    """Trailing moving average (GRPO's per-step reward is a mean over a few prompts: noisy).

    >>> _smooth([0, 1, 2, 3], 2)
    [0.0, 0.5, 1.5, 2.5]
    """
    out = []
    for i in range(len(values)):
        w = values[max(0, i - window + 1) : i + 1]
        out.append(sum(w) / len(w))
    return out


def plot_report(rows: list[dict[str, Any]], heldout: dict[str, dict[str, Any]], out: Path, title: str,
                split: str = "held-out") -> Path | None:
    """Reward and completion length per GRPO step (PTST stages side by side), and held-out accuracy per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train" and r.get("stage_type") == "grpo"]
    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(2, 2, width_ratios=[2.2, 1], hspace=0.12, wspace=0.28)
    ax_r, ax_l, ax_a = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    ax_l.sharex(ax_r)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    stages: dict[str, list[dict[str, Any]]] = {}
    for r in train:
        stages.setdefault(r["stage"], []).append(r)
    for n, (name, srows) in enumerate(stages.items()):
        c = colors[(n + 1) % len(colors)]
        latest = {r["step"]: r for r in srows}  # a resumed stage logs some steps twice
        srows = [latest[k] for k in sorted(latest)]
        x = [r["run_step"] for r in srows]
        first = srows[0]
        label = f"{name} ({first.get('max_completion_length')} tok × {first.get('num_generations')})"
        for ax in (ax_r, ax_l):
            ax.axvspan(min(x) - 0.5, max(x) + 0.5, color=c, alpha=0.06)
        reward = [r.get("reward") or 0.0 for r in srows]
        ax_r.plot(x, reward, "o", color=c, ms=2.5, alpha=0.35)
        ax_r.plot(x, _smooth(reward), "-", color=c, lw=2, label=f"{label}: reward (5-step mean)")
        length = [r.get("completions/mean_length") for r in srows]
        if all(v is not None for v in length):
            ax_l.plot(x, length, "-", color=c, lw=1.5, label=f"{name}: mean completion length")
        limit = first.get("max_completion_length")
        if limit:
            ax_l.hlines(limit, min(x) - 0.5, max(x) + 0.5, colors=c, linestyles="dashed", label=f"{name}: limit {limit}")
    ax_r.set_ylabel("reward (hard format+result)")
    ax_r.set_ylim(-0.03, 1.03)
    ax_r.grid(alpha=0.3)
    ax_r.legend(fontsize=8, loc="best")
    ax_r.set_title("GRPO with PTST: reward per step")
    ax_l.set_ylabel("completion tokens")
    ax_l.set_xlabel("optimizer step (SFT steps included in the count)")
    ax_l.grid(alpha=0.3)
    if ax_l.get_legend_handles_labels()[0]:
        ax_l.legend(fontsize=8, loc="upper left", ncol=2)
    plt.setp(ax_r.get_xticklabels(), visible=False)

    names = list(heldout)
    first = heldout[names[0]]
    acc = [100 * heldout[s]["accuracy"] for s in names]
    xs = list(range(len(names)))
    has_greedy = all("greedy" in heldout[s] for s in names)
    width = 0.4 if has_greedy else 0.6
    left = [i - width / 2 for i in xs] if has_greedy else xs
    ax_a.bar(left, acc, width=width, color=colors[0], label=f"accuracy (T={first.get('temperature')}, "
             f"mean of {first.get('samples')} samples)")
    for x, v in zip(left, acc, strict=True):
        ax_a.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=9)
    if has_greedy:
        greedy = [100 * heldout[s]["greedy"]["accuracy"] for s in names]
        ax_a.bar([i + width / 2 for i in xs], greedy, width=width, color=colors[0], alpha=0.35, label="greedy accuracy")
        for i, v in enumerate(greedy):
            ax_a.text(i + width / 2, v + 1, f"{v:.0f}", ha="center", fontsize=8, alpha=0.8)
    if all(heldout[s].get("pass_at_k") is not None for s in names):
        ax_a.plot(xs, [100 * heldout[s]["pass_at_k"] for s in names], "k_", ms=22, mew=2,
                  label=f"pass@{first.get('samples')}")
    ax_a.set_xticks(xs, names)
    ax_a.set_ylim(0, 105)
    ax_a.set_ylabel(f"% of {split} items")
    ax_a.set_title(f"{split} accuracy (n={first['n']})")
    ax_a.legend(fontsize=8, loc="upper left")
    ax_a.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------------------------
# report.md and the console table
# ----------------------------------------------------------------------------------------------------------


def _examples(run_dir: Path, stage: str, k: int) -> list[dict[str, Any]]:
    path = run_dir / "eval" / stage / "sample-0" / "predictions.jsonl"
    if k == 0 or not path.is_file():
        return []
    return [row for _, row, problem in iter_jsonl(path) if problem is None][:k]


def render_markdown(report: dict[str, Any], run_dir: Path, has_plot: bool) -> str:
    split = report.get("split", "heldout")
    h, g, t = report[split], report["gain"], report["training"]
    stages = report["stages"]
    sft = next(n for n, e in t.items() if e["type"] == "sft")
    last = stages[-1]
    task = report["task"]
    rec = report["recipe"]
    lines = [
        f"# visionr1 demo: Vision-R1 end to end on a CPU (seed {report['seed']})",
        "",
        f"A {rec['tiny_model']['size']}-size tiny {rec['tiny_model']['family']} with random initial weights went through the "
        f"whole pipeline on the synthetic **{task['task']}** task ({task['difficulty']}) in "
        f"{report['wall_seconds'] / 60:.1f} minutes: cold-start SFT took {SPLITS[split]} accuracy from "
        f"{100 * h['base']['accuracy']:.1f}% to {100 * h[sft]['accuracy']:.1f}%, and GRPO with PTST from there to "
        f"**{100 * h[last]['accuracy']:.1f}%** ({g['grpo_over_sft']:+.1f} points over SFT; greedy decoding: "
        f"{_f(g.get('greedy_grpo_over_sft'), 1, signed=True)}).",
        "",
        f"**{SPLITS[split]} split** ({SPLIT_NOTE[split]}):",
        "",
        *_split_table(h, stages),
    ]
    first = h[stages[0]]
    lines += ["", f"{SPLITS[split].capitalize()}: {first['n']} items; every stage decoded the same way, at most "
              f"{rec['eval']['max_new_tokens']} new tokens. **accuracy** follows the paper's evaluation: sampling at "
              f"temperature {first.get('temperature')}, top_p {first.get('top_p')}, averaged over "
              f"{first.get('samples')} seeded passes (pass@1); **pass@k**: any of the {first.get('samples')} right; "
              "**greedy accuracy**: one greedy pass. An answer is right when the reward library's scorer says so "
              "(`rewards.scoring.is_correct`, read from `<answer>`); **format**: "
              "`<think>…</think><answer>…</answer>`; **truncated**: cut off at the limit (mostly before its answer).", ""]
    other = "validation" if split == "heldout" else None
    if other and report.get(other):
        lines += [f"**{SPLITS[other]} split** ({SPLIT_NOTE[other]}; {report[other][stages[0]]['n']} items):", "",
                  *_split_table(report[other], stages), ""]
    if h[sft].get("pass_at_k") is not None and h[last].get("pass_at_k") is not None:
        k = first.get("samples")
        p0, p1 = 100 * h[sft]["pass_at_k"], 100 * h[last]["pass_at_k"]
        a0, a1 = 100 * h[sft]["accuracy"], 100 * h[last]["accuracy"]
        if a1 > a0 and p1 < p0:
            how = ("GRPO sharpened the answer distribution (the reward concentrates the samples on answers that "
                   "earn it) more than it taught new skill, the pattern reported for RL on reasoning models")
        elif a1 > a0:
            how = "GRPO raised pass@1 without narrowing what the samples reach"
        else:
            how = "GRPO did not raise pass@1 on this run"
        lines += [f"From SFT to {last}, pass@1 went {a0:.1f}% → {a1:.1f}% and pass@{k} {p0:.1f}% → {p1:.1f}%: {how}.", ""]
    if has_plot:
        lines += [f"![reward and completion length per GRPO step; held-out accuracy per stage]({PLOT_FILE})", ""]
    lines += ["## What ran", ""]
    lines.append(f"- **data**: {task['coldstart']} cold-start items, {task['rl']} RL prompts, {task['heldout']} held-out "
                 f"items of `{task['task']}` (difficulty {task['difficulty']}), one seeded stream (seed {report['seed']})"
                 + (f"; {task['validation']} validation items from a stream of their own (seed {task['validation_seed']}), "
                    "for choosing settings." if task.get("validation") is not None else "."))
    c = report["coldstart"]
    lines.append(f"- **cold start**: modality bridging with the **oracle** backend: {c['kept']} of {c['input']} samples "
                 f"kept. {c.get('oracle_note') or ''}")
    for name, e in t.items():
        if e["type"] == "sft":
            lines.append(f"- **{name}** (SFT): {e['steps']} step(s), lr {e['learning_rate']}, loss "
                         f"{_f(e.get('loss_first'))} → {_f(e.get('loss_last'))}.")
        else:
            lines.append(
                f"- **{name}** (GRPO, PTST): {e['steps']} step(s), {e['max_completion_length']} tokens × "
                f"{e['num_generations']} generations, lr {e['learning_rate']}, beta {e['beta']}; reward "
                f"{_f(e.get('reward_first_quarter'))} → {_f(e.get('reward_last_quarter'))} (first → last quarter), "
                f"mean length {_f(e.get('mean_length_first_quarter'), 0)} → {_f(e.get('mean_length_last_quarter'), 0)}, "
                f"cut off at the limit {_pct(e.get('clipped_ratio_first_quarter'))} → {_pct(e.get('clipped_ratio_last_quarter'))}"
                + (f", groups with a reward spread {_pct(e.get('informative_share_first_quarter'))} → "
                   f"{_pct(e.get('informative_share_last_quarter'))}" if e.get("informative_share_first_quarter") is not None else "")
                + ".")
    lines += ["", "## Wall time", "", "| phase | seconds |", "|---|---:|"]
    for k, v in report["phases"].items():
        name = f"&nbsp;&nbsp;└ {k.split(':', 1)[1]}" if ":" in k else k  # per-stage parts under their phase
        lines.append(f"| {name} | {v:.0f} |")
    m = report["machine"]
    load = ", ".join(f"{x:.1f}" for x in m["load_average_1_5_15"]) if m.get("load_average_1_5_15") else "n/a"
    start = f"{m['load_average_at_start']:.1f} at the start, " if m.get("load_average_at_start") is not None else ""
    lines += [f"| **total** | **{report['wall_seconds']:.0f}** |", "",
              f"{m['cpus']} CPUs, {m['torch_threads']} torch thread(s); load average (other processes slow the "
              f"demo down) {start}{load} (1, 5, 15 min) at the end.", ""]
    examples = {s: _examples(run_dir, s, rec["eval"]["examples"]) for s in stages}
    if any(examples.values()):
        lines += ["## Held-out completions", ""]
        for s, rows in examples.items():
            for r in rows:
                mark = "right" if r.get("correct") else "wrong"
                lines += [f"**{s}** ({r['pid']}, {mark}, {r['num_tokens']} tokens):", "", "```text",
                          _clip((r.get("response") or "").strip(), 600 if s != "base" else 200), "```", ""]
    lines += [
        "## Departures from the paper", "",
        "- A ~1M-parameter random model instead of Qwen2.5-VL-7B: SFT teaches it the language, the format and the "
        "task at once, and is kept short on purpose so that RL has room to improve.",
        "- The cold start's MLLM and reasoner are the oracle (each scene's ground-truth description and "
        "rule-derived reasoning), labelled as such in `coldstart/report.json`.",
        "- Completion limits of ~100-200 tokens instead of 4K → 8K; KL beta as in the recipe (0 saves the "
        "reference model's forward pass).",
        "",
        "Files: `report.json` (numbers), `train/metrics.jsonl` (every step), `train/ptst.png` (training plot), "
        "`eval/<stage>/predictions.jsonl`, `coldstart/` (SFT data and its report).",
        "",
    ]
    return "\n".join(lines)


def _split_table(h: dict[str, dict[str, Any]], stages: list[str]) -> list[str]:
    lines = ["| stage | accuracy | format | mean completion tokens | truncated | pass@k | greedy accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in stages:
        e = h[s]
        greedy = f"{100 * e['greedy']['accuracy']:.1f}%" if "greedy" in e else "n/a"
        passk = f"{100 * e['pass_at_k']:.1f}%" if e.get("pass_at_k") is not None else "n/a"
        lines.append(f"| {s} | {100 * e['accuracy']:.1f}% | {100 * e['format']:.1f}% | "
                     f"{e['mean_completion_tokens']:.1f} | {_pct(e.get('truncated_rate'))} | {passk} | {greedy} |")
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _clip(text: str, n: int) -> str:
    """At most ``n`` characters, marked when cut.

    >>> _clip("abcdef", 3)
    'abc …'
    """
    return text if len(text) <= n else text[:n] + " …"


def _f(value: Any, digits: int = 3, signed: bool = False) -> str:
    return "n/a" if value is None else f"{value:{'+' if signed else ''}.{digits}f}"


def print_table(report: dict[str, Any], console: Console, run_dir: Path | None = None) -> None:
    """The closing table: one row per stage, the change from the row above, and the headline numbers."""
    split = report.get("split", "heldout")
    first = report[split][report["stages"][0]]
    table = Table(title=f"{SPLITS[split]} results ({first['n']} items; accuracy = mean of {first.get('samples')} samples "
                        f"at T={first.get('temperature')}, as in the paper)")
    for col in ("stage", "accuracy", "Δ", "pass@k", "greedy", "format", "tokens", "truncated"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    prev = None
    for s in report["stages"]:
        e = report[split][s]
        delta = "" if prev is None else f"{100 * (e['accuracy'] - prev):+.1f}"
        style = "bold green" if s == report["stages"][-1] else None
        greedy = f"{100 * e['greedy']['accuracy']:.1f}%" if "greedy" in e else ""
        passk = f"{100 * e['pass_at_k']:.1f}%" if e.get("pass_at_k") is not None else ""
        table.add_row(s, f"{100 * e['accuracy']:.1f}%", delta, passk, greedy, f"{100 * e['format']:.1f}%",
                      f"{e['mean_completion_tokens']:.1f}", _pct(e.get("truncated_rate")), style=style)
        prev = e["accuracy"]
    console.print(table)
    g = report["gain"]["grpo_over_sft"]
    verdict = "[green]target (+5) met[/]" if round(g, 1) >= 5 else "[yellow]below the +5 target on this seed[/]"
    if split != "heldout":
        console.print(f"[yellow]{SPLITS[split]} split: {SPLIT_NOTE[split]}[/]")
    console.print(f"GRPO over SFT ({SPLITS[split]}): [bold]{g:+.1f}[/] points ({verdict}); wall time "
                  f"{report['wall_seconds'] / 60:.1f} min.")
    if run_dir is not None:
        console.print(f"Report: {run_dir / 'report.md'} (plot {run_dir / PLOT_FILE}), numbers in {run_dir / 'report.json'}")
