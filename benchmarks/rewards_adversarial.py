"""Time per line of adversarial answers: the inputs a policy could learn to emit to stall GRPO's scoring.

    python benchmarks/rewards_adversarial.py            # 600 lines (50 of each family), 2 rounds
    python benchmarks/rewards_adversarial.py --n 120

Families: exponent towers (numeric and with variables), ``\\frac`` chains 25 and 40 deep, 25 and 300 nested
parentheses, long sums, 5,000-letter runs, huge factorials and exponents, nested roots -- each against a
numeric and a symbolic gold. Every line is scored with ``accuracy_reward`` in batches of 64, as GRPO calls it,
after the symbolic pool has started (a one-off). Lines are made unique (a varying constant), so the verdict
cache does not hide the cost; a second round on the same lines shows the cached cost. Targets (issue 12):
any single line <= 50 ms unless it truly needs symbolic work, mean <= 20 ms/line. The last line is
``adversarial_ms_per_line=X``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from visionr1.rewards.functions import accuracy_reward
from visionr1.rewards.symbolic import get_pool

FAMILIES = {
    "tower_numeric": lambda k: "9^{9^{9^{" + str(k % 9 + 1) + "}}}",
    "tower_variable": lambda k: "x^{" + str(k + 2) + "^{3^{4}}}",
    "frac_chain_25": lambda k: "\\frac{1}{" * 25 + f"x+{k}" + "}" * 25,
    "frac_chain_40": lambda k: "\\frac{1}{" * 40 + str(k + 2) + "}" * 40,
    "parens_25": lambda k: "(" * 25 + f"x+{k}" + ")" * 25,
    "parens_300": lambda k: "(" * 300 + str(k) + ")" * 300,
    "long_sum": lambda k: "x+" * 300 + str(k),
    "long_letters": lambda k: "a" * 5000 + str(k),
    "factorial": lambda k: f"{100000 + k}!",
    "huge_exponent": lambda k: f"(x+1)^{{{100000 + k}}}",
    "nested_roots": lambda k: "\\sqrt{" * 30 + f"y+{k}" + "}" * 30,
    "tower_mixed": lambda k: f"2^{{2^{{2^{{2^{{{k + 2}}}}}}}}}",
}
GOLDS = ("7", "x^2+1")


def lines(n: int, offset: int = 0) -> list[tuple[str, str, str]]:
    per = max(1, n // len(FAMILIES))
    out = []
    for name, make in FAMILIES.items():
        for k in range(offset, offset + per):
            out.append((name, f"<think>t</think><answer>{make(k)}</answer>", GOLDS[k % 2]))
    return out


def run(items: list[tuple[str, str, str]], batch_size: int) -> list[float]:
    """Seconds per line (each batch's time shared by its lines); batches never mix families."""
    per_line: list[float] = []
    starts = [i for i in range(len(items)) if i == 0 or items[i][0] != items[i - 1][0]] + [len(items)]
    bounds = [
        (i, min(i + batch_size, end))
        for begin, end in zip(starts[:-1], starts[1:], strict=True)
        for i in range(begin, end, batch_size)
    ]
    for i, j in bounds:
        b = items[i:j]
        start = time.perf_counter()
        scores = accuracy_reward([c for _, c, _ in b], solution=[g for _, _, g in b], task=["math"] * len(b))
        took = time.perf_counter() - start
        assert all(s == 0.0 for s in scores), "an adversarial answer earned reward"
        per_line += [took / len(b)] * len(b)
    return per_line


def single_line_times(items: list[tuple[str, str, str]]) -> dict[str, float]:
    """The slowest single line per family, each scored alone and unseen (what one completion can cost)."""
    worst: dict[str, float] = {}
    for name, comp, gold in items:
        start = time.perf_counter()
        accuracy_reward([comp], solution=[gold], task=["math"])
        worst[name] = max(worst.get(name, 0.0), time.perf_counter() - start)
    return worst


def main(n: int = 600, batch_size: int = 64) -> float:
    logging.disable(logging.WARNING)
    items = lines(n)
    t0 = time.perf_counter()
    get_pool().warm_up()
    print(f"symbolic worker pool start (one-off, not timed): {time.perf_counter() - t0:.2f}s")
    first = run(items, batch_size)
    cached = run(items, batch_size)
    print(f"lines: {len(items)} ({len(FAMILIES)} families)")
    for name in FAMILIES:
        ms = [t * 1000 for (fam, _, _), t in zip(items, first, strict=True) if fam == name]
        print(f"  {name:16s} {statistics.mean(ms):7.2f} ms/line")
    worst = single_line_times(lines(len(FAMILIES) * 5, offset=10_000))
    print("slowest single line per family (ms): " + ", ".join(f"{k}={v * 1000:.1f}" for k, v in worst.items()))
    mean_ms = statistics.mean(first) * 1000
    print(f"cached second round: {statistics.mean(cached) * 1000:.3f} ms/line")
    print(f"max single line: {max(worst.values()) * 1000:.1f} ms")
    print(f"adversarial_ms_per_line={mean_ms:.3f}")
    return mean_ms


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    main(args.n, args.batch_size)
