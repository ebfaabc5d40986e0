"""Throughput of the accuracy reward vs plain math-verify, on one deterministic set of mixed completions.

    python benchmarks/rewards_throughput.py            # 4000 completions, seed 0
    python benchmarks/rewards_throughput.py --n 1000   # quicker

The set mixes math (integers, fractions, decimals, radicals, pi, intervals, sets, degrees, units, thousands
separators, polynomials), choice, count and grounding; answers are right (often in another equivalent form),
wrong, or malformed (no tags, truncated, unclosed thinking, garbage). It is scored two ways in one run:
1. ours: ``accuracy_reward`` on batches of 256, as GRPO calls it (extraction included; the symbolic worker
   pool is started before timing -- a one-off cost per training process, reported separately);
2. math-verify: ``verify(parse("$gold$"), parse("$answer$"))`` on the answers we extracted (extraction not
   timed), with its pitfalls (bare LaTeX outside $...$) fixed in its favour.
Verdicts are compared where both apply: math rows, and count rows whose answer is written in digits (number
words are ours alone). The last line is ``speedup_vs_math_verify=X``.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections import Counter

from visionr1.rewards.extract import extract_answer
from visionr1.rewards.functions import accuracy_reward
from visionr1.rewards.symbolic import get_pool

WORDS = "so the the we then let us compute check note that area side length angle total value".split()


# ----------------------------------------------------------------------------- data


def _thinking(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(20, 60)):
        parts.append(rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randint(0, 99)))
    if rng.random() < 0.3:
        parts.append(rf"Wait, maybe \boxed{{{rng.randint(0, 50)}}} is wrong.")
    return " ".join(parts)


def _math_item(rng: random.Random) -> tuple[str, str, bool]:
    """(gold, answer, intended_correct): answers often in a different but equivalent form."""
    kind = rng.choice(["int", "frac", "dec", "rad", "pi", "interval", "set", "deg", "unit", "thousands", "poly", "eq", "xy"])
    a, b = rng.randint(1, 30), rng.randint(2, 12)
    right = rng.random() < 0.6
    if kind == "int":
        gold = str(a)
        return gold, (rng.choice([gold, f"x = {a}", f"{a}.0"]) if right else str(a + 1)), right
    if kind == "frac":
        b = rng.choice([2, 4, 5, 8, 10])
        gold = rf"\frac{{{a}}}{{{b}}}"
        return gold, (rng.choice([f"{a / b:g}", f"{a}/{b}", rf"\dfrac{{{a}}}{{{b}}}"]) if right else f"{a}/{b + 1}"), right
    if kind == "dec":
        gold = f"{a / b:.2f}"
        return gold, (rng.choice([gold, gold + "0"]) if right else f"{a / b + 0.1:.2f}"), right
    if kind == "rad":
        s = rng.choice([2, 3, 5, 6, 7])
        gold = rf"{a}\sqrt{{{s}}}"
        return gold, (rng.choice([gold, rf"\sqrt{{{a * a * s}}}", rf"{a} \sqrt {{ {s} }}"]) if right else rf"{a + 1}\sqrt{{{s}}}"), right
    if kind == "pi":
        gold = rf"\frac{{{a}\pi}}{{{b}}}"
        return gold, (rng.choice([gold, rf"{a}\pi/{b}", rf"\frac{{{a}}}{{{b}}}\pi"]) if right else rf"\frac{{{a}\pi}}{{{b + 1}}}"), right
    if kind == "interval":
        lo, hi = -a, b
        gold = f"[{lo}, {hi})"
        return gold, (rng.choice([gold, f"[{lo},{hi})"]) if right else f"({lo}, {hi})"), right
    if kind == "set":
        xs = sorted(rng.sample(range(1, 20), 3))
        gold = r"\{" + ", ".join(map(str, xs)) + r"\}"
        ys = xs[::-1] if right else [xs[0], xs[1], xs[2] + 1]
        return gold, r"\{" + ",".join(map(str, ys)) + r"\}", right
    if kind == "deg":
        gold = rf"{a * 5}^\circ"
        return gold, (rng.choice([f"{a * 5}", f"{a * 5}°", rf"{a * 5}^{{\circ}}"]) if right else f"{a * 5 + 5}"), right
    if kind == "unit":
        gold = str(a * 3)
        return gold, (rng.choice([rf"{a * 3}\text{{ cm}}", f"{a * 3} cm^2"]) if right else f"{a * 3 + 1} cm"), right
    if kind == "thousands":
        v = a * 1000 + b * 7
        gold = str(v)
        return gold, (f"{v:,}" if right else f"{v + 10:,}"), right
    if kind == "poly":
        gold = f"x^2 + {2 * a}x + {a * a}"
        return gold, (rng.choice([f"(x+{a})^2", gold]) if right else f"(x+{a + 1})^2"), right
    if kind == "xy":  # runs of letters: beyond the fast path, decided by math-verify in the workers
        gold = f"{a}x^2y + {a}xy^2"
        return gold, (rng.choice([f"{a}xy(x+y)", gold]) if right else f"{a}xy(x-y)"), right
    gold = f"y = {a}x + {b}"
    return gold, (rng.choice([f"y={a}x+{b}", f"y = {b} + {a}x"]) if right else f"y = {a}x - {b}"), right


def _wrap(rng: random.Random, think: str, answer: str) -> str:
    style = rng.random()
    if style < 0.55:
        return f"<think>{think}</think><answer> Final Answer: {answer} </answer>"
    if style < 0.7:
        return f"<think>{think}</think>\n<answer>$\\boxed{{{answer}}}$</answer>"
    if style < 0.8:
        return f"{think}. Therefore the answer is {answer}."
    if style < 0.87:
        return f"<think>{think} so the answer is {answer}"  # truncated: never closed thinking
    if style < 0.93:
        return f"<think>{think}</think><answer>"  # truncated right after the tag
    return rng.choice(["", "I don't know.", "<answer></answer>", "}}{{\\frac{", "<think></think><answer>???</answer>"])


def make_items(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        think = _thinking(rng)
        r = rng.random()
        if r < 0.55:
            gold, answer, _ = _math_item(rng)
            items.append({"task": "math", "solution": gold, "choices": None, "completion": _wrap(rng, think, answer)})
        elif r < 0.7:
            k = rng.randint(2, 5)
            choices = [str(rng.randint(1, 99)) for _ in range(k)]
            g = rng.randrange(k)
            letter = "ABCDE"[g]
            pick = letter if rng.random() < 0.6 else "ABCDE"[rng.randrange(k)]
            answer = rng.choice([pick, f"({pick})", f"{pick}. {choices['ABCDE'.index(pick)]}", "A and B"])
            items.append({"task": "choice", "solution": letter, "choices": choices, "completion": _wrap(rng, think, answer)})
        elif r < 0.85:
            c = rng.randint(0, 12)
            words = "zero one two three four five six seven eight nine ten eleven twelve".split()
            guess = c if rng.random() < 0.6 else c + rng.choice([-1, 1, 2])
            answer = rng.choice([str(guess), words[guess] if 0 <= guess <= 12 else str(guess), f"There are {guess} objects"])
            items.append({"task": "count", "solution": str(c), "choices": None, "completion": _wrap(rng, think, answer)})
        else:
            x, y = rng.randint(0, 400), rng.randint(0, 400)
            w, h = rng.randint(10, 200), rng.randint(10, 200)
            gold = f"[{x}, {y}, {x + w}, {y + h}]"
            dx = rng.randint(-20, 20)
            box = [x + dx, y, x + w + dx, y + h]
            answer = rng.choice([str(box), f'{{"bbox_2d": {box}, "label": "object"}}', f"[{x}, {y}, {x - 5}]"])
            items.append({"task": "grounding", "solution": gold, "choices": None, "completion": _wrap(rng, think, answer)})
    return items


# ----------------------------------------------------------------------------- scoring


def score_ours(items: list[dict], batch_size: int) -> tuple[list[float], float]:
    start = time.perf_counter()
    scores: list[float] = []
    for i in range(0, len(items), batch_size):
        b = items[i : i + batch_size]
        scores += accuracy_reward(
            [x["completion"] for x in b], solution=[x["solution"] for x in b],
            task=[x["task"] for x in b], choices=[x["choices"] for x in b],
        )
    return scores, time.perf_counter() - start


def score_math_verify(items: list[dict]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    answers = [extract_answer(x["completion"], x["task"]) for x in items]  # shared step, not timed
    start = time.perf_counter()
    verdicts = []
    for x, ans in zip(items, answers, strict=True):
        if ans is None:
            verdicts.append(False)
            continue
        verdicts.append(bool(verify(parse(f"${x['solution']}$"), parse(f"${ans}$"))))
    return verdicts, time.perf_counter() - start


def main(n: int = 4000, seed: int = 0, batch_size: int = 256) -> float:
    logging.disable(logging.WARNING)  # math-verify logs every unparseable answer
    items = make_items(n, seed)
    print(f"items: {n} (seed {seed}) " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(x['task'] for x in items).items())))

    t0 = time.perf_counter()
    get_pool().warm_up()
    print(f"symbolic worker pool start (one-off, not timed): {time.perf_counter() - t0:.2f}s, {get_pool().max_workers} workers")

    ours, t_ours = score_ours(items, batch_size)
    mv, t_mv = score_math_verify(items)
    print(f"ours (accuracy_reward):      {t_ours:8.2f}s  {n / t_ours:9.0f} completions/s")
    print(f"math-verify parse+verify:    {t_mv:8.2f}s  {n / t_mv:9.0f} completions/s")

    answers = [extract_answer(x["completion"], x["task"]) for x in items]
    both = [
        i for i, x in enumerate(items)
        if x["task"] == "math" or (x["task"] == "count" and answers[i] is not None and answers[i].strip().lstrip("-").isdigit())
    ]
    agree = [i for i in both if (ours[i] == 1.0) == mv[i]]
    math_rows = [i for i in both if items[i]["task"] == "math"]
    math_agree = sum((ours[i] == 1.0) == mv[i] for i in math_rows)
    print(f"agreement where both apply (math + numeric count): {len(agree)}/{len(both)} = {len(agree) / max(1, len(both)):.4f}")
    print(f"agreement on math rows: {math_agree}/{len(math_rows)} = {math_agree / max(1, len(math_rows)):.4f}")
    dis = [i for i in both if (ours[i] == 1.0) != mv[i]]
    kinds = Counter()
    shown = set()
    for i in dis:
        ans = extract_answer(items[i]["completion"], items[i]["task"])
        key = (items[i]["task"], items[i]["solution"].split("{")[0][:6], str(ans)[:12])
        kinds[(items[i]["task"], "ours=1" if ours[i] == 1.0 else "ours=0")] += 1
        if len(shown) < 12 and key not in shown:
            shown.add(key)
            print(f"  disagree [{items[i]['task']}] gold={items[i]['solution']!r} answer={ans!r} ours={ours[i]} math_verify={mv[i]}")
    if dis:
        print("  disagreements by side: " + ", ".join(f"{t} {s}: {c}" for (t, s), c in sorted(kinds.items())))
    speedup = t_mv / t_ours
    print(f"speedup_vs_math_verify={speedup:.2f}")
    return speedup


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    main(args.n, args.seed, args.batch_size)
