"""The PTST picture: reward (with accuracy, the informative-group share and the padded-token share) and
completion length (with the tokens generated per step) per step across every stage of a run.

Vision-R1's claim is visible in one figure: within a stage, mean completion length is held under the stage's
``max_completion_length`` (truncated answers score 0 under ``hard_format_result``), and when the next stage
raises the limit (and halves the group size) the length is allowed to grow while reward keeps rising. The
figure draws each stage's limit as a dashed line, so "lengths respect each stage's limit" can be read off it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``; a line cut short by a kill is skipped."""
    from visionr1.utils.io import iter_jsonl

    return [row for _, row, problem in iter_jsonl(path) if problem is None]


def plot_run(metrics_path: str | Path, out_path: str | Path, title: str | None = None) -> Path | None:
    """Write the PNG; returns its path, or ``None`` when no training step was logged."""
    fig = figure(read_metrics(metrics_path), title)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def figure(metrics: list[dict[str, Any]], title: str | None = None) -> Any:
    """The matplotlib figure of :func:`plot_run` for rows of ``metrics.jsonl`` (None without a training step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metrics if r.get("kind") == "train"]
    sampled = [r for r in metrics if r.get("kind") == "pairs"]  # DPO: one row per iteration's sampling
    if not rows:
        return None
    # A resumed stage logs some steps twice (those after its last checkpoint): keep the latest of each.
    # DPO iterations each count their steps from 0.
    latest: dict[tuple[int, int, int], dict[str, Any]] = {}
    for r in rows:
        latest[(r["stage_index"], r.get("iteration") or 0, r["step"])] = r
    rows = [latest[k] for k in sorted(latest)]

    fig, (ax_r, ax_l) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax_loss = None  # SFT / DPO loss gets its own scale (right axis): it would flatten rewards in [0, 1]
    ax_tokens = None  # tokens generated per step (right axis of the length panel)
    stages: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        stages.setdefault(r["stage_index"], []).append(r)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    for n, (_, srows) in enumerate(sorted(stages.items())):
        color = colors[n % len(colors)]
        x = [r["run_step"] for r in srows]
        first = srows[0]
        label = first["stage"]
        if first.get("stage_type") == "grpo":
            label += f" ({first.get('max_completion_length')}×{first.get('num_generations')})"
        ax_r.axvspan(min(x) - 0.5, max(x) + 0.5, color=color, alpha=0.07)
        ax_l.axvspan(min(x) - 0.5, max(x) + 0.5, color=color, alpha=0.07)
        # alternate heights: short stages (a few GRPO steps after hundreds of SFT steps) would overlap
        ax_r.text(min(x) - 0.4, 1.0 + 0.06 * (n % 2), label, transform=ax_r.get_xaxis_transform(), va="bottom",
                  fontsize=8, color=color)

        reward = [(r["run_step"], r["reward"]) for r in srows if r.get("reward") is not None]
        if reward:
            ax_r.plot(*zip(*reward, strict=True), "o-", color=color, ms=3, label=f"{first['stage']} reward")
        acc = [(r["run_step"], r["accuracy"]) for r in srows if r.get("accuracy") is not None]
        if acc:
            ax_r.plot(*zip(*acc, strict=True), "x--", color=color, ms=4, alpha=0.7, label=f"{first['stage']} accuracy")
        share = [(r["run_step"], r["informative_group_share"]) for r in srows
                 if r.get("informative_group_share") is not None]
        if share:  # GRPO groups with a reward spread (training.rollout_filter): the others train nothing
            ax_r.plot(*zip(*share, strict=True), ":", color=color, alpha=0.6, label=f"{first['stage']} informative groups")
        padded = [(r["run_step"], r["padded_token_share"]) for r in srows if r.get("padded_token_share") is not None]
        if padded:  # padding positions / all positions of the loss forward (training.packing): compute spent on nothing
            ax_r.plot(*zip(*padded, strict=True), "-.", color=color, alpha=0.5, label=f"{first['stage']} padded tokens")
        if first.get("stage_type") == "dpo":
            pair_acc = [(r["run_step"], r["rewards/accuracies"]) for r in srows if r.get("rewards/accuracies") is not None]
            if pair_acc:
                ax_r.plot(*zip(*pair_acc, strict=True), "x--", color=color, ms=4, alpha=0.7,
                          label=f"{first['stage']} pair accuracy")
            mean = [(r["run_step"], r["dpo/mean_reward"]) for r in sampled if r.get("stage_index") == first["stage_index"]]
            if mean:
                ax_r.plot(*zip(*mean, strict=True), "D", color=color, ms=5, label=f"{first['stage']} sampled reward")
        loss = [(r["run_step"], r["loss"]) for r in srows if first.get("stage_type") in ("sft", "dpo") and r.get("loss") is not None]
        if loss:
            ax_loss = ax_loss or ax_r.twinx()
            ax_loss.plot(*zip(*loss, strict=True), "s:", color=color, ms=3,
                         label=f"{first['stage']} {first['stage_type'].upper()} loss")

        mean_len = [(r["run_step"], r["completions/mean_length"]) for r in srows if r.get("completions/mean_length") is not None]
        if mean_len:
            ax_l.plot(*zip(*mean_len, strict=True), "o-", color=color, ms=3, label=f"{first['stage']} mean length")
        max_len = [(r["run_step"], r["completions/max_length"]) for r in srows if r.get("completions/max_length") is not None]
        if max_len:
            ax_l.plot(*zip(*max_len, strict=True), "^", color=color, ms=3, alpha=0.5, label=f"{first['stage']} max length")
        generated = [(r["run_step"], r["generated_tokens"]) for r in srows if r.get("generated_tokens") is not None]
        if generated:
            ax_tokens = ax_tokens or ax_l.twinx()
            ax_tokens.plot(*zip(*generated, strict=True), "v:", color=color, ms=3, alpha=0.6,
                           label=f"{first['stage']} generated tokens")
        limit = first.get("max_completion_length")
        if limit and first.get("stage_type") == "grpo":
            ax_l.hlines(limit, min(x) - 0.5, max(x) + 0.5, colors=color, linestyles="dashed", label=f"{first['stage']} limit {limit}")

    ax_r.set_ylabel("reward / accuracy / shares")
    if ax_tokens is not None:
        ax_tokens.set_ylabel("tokens generated per step (dotted)")
        ax_tokens.set_ylim(bottom=0)
        ax_tokens.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.1, 0.0))
    if ax_loss is not None:
        ax_loss.set_ylabel("SFT / DPO loss (dotted)")
        ax_loss.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.1, 0.0))
    ax_l.set_ylim(bottom=0)
    ax_r.grid(alpha=0.3)
    right = 1.1 if ax_loss is not None or ax_tokens is not None else 1.01  # clear of the right axes' tick labels
    for ax in (ax_r, ax_l):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(right, 1.0))
    ax_l.set_ylabel("completion length (tokens)")
    ax_l.set_xlabel("optimizer step (all stages)")
    ax_l.grid(alpha=0.3)
    fig.suptitle(title or "reward and completion length per step (PTST)")
    fig.tight_layout()
    return fig
