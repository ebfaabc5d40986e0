"""Safety and bounds: model output is never run as code, and every completion is scored in bounded time --
on the main thread, off it, and inside (daemonic) worker processes."""

import multiprocessing
import threading
import time

import pytest

from visionr1.rewards import symbolic
from visionr1.rewards.functions import accuracy_reward, format_reward, hard_format_result_reward
from visionr1.rewards.symbolic import get_pool, symbolic_equal_many


def wrap(answer: str) -> str:
    return f"<think>t</think><answer>{answer}</answer>"


def injections(target):
    return [
        f"__import__('os').system('touch {target}')",
        f"__import__('os').system('touch {target}') + 1",  # digits and operators: reaches symbolic parsing
        f"(lambda: __import__('os').system('touch {target}'))() * 2",
        f"\\text{{{target}}} + eval('__import__(\"os\").system(\"touch {target}\")') + 3",
        f"$__import__('os').system('touch {target}')$ = 4",
    ]


def test_injection_does_nothing(tmp_path):
    target = tmp_path / "pwned"
    attempts = injections(target)
    comps = [wrap(a) for a in attempts] + [f"the answer is {a}" for a in attempts]
    n = len(comps)
    for task in ("math", "count", "choice", "free", "grounding"):
        accuracy_reward(comps, solution=["x + 1"] * n, task=[task] * n)
    # straight into math-verify (the symbolic path), as prediction and as gold
    symbolic_equal_many([("x+1", a) for a in attempts] + [(a, "1") for a in attempts], timeout=5)
    assert not target.exists()


def test_math_verify_python_parser_never_used(monkeypatch, tmp_path):
    """math-verify's ExprExtractionConfig calls sympy's parse_expr (which evaluates Python); we never enable it."""
    import math_verify.parser as mvp

    def forbidden(*args, **kwargs):
        raise AssertionError("parse_expr called on untrusted text")

    monkeypatch.setattr(mvp, "parse_expr", forbidden)
    mvp.parse_expr_cached.cache_clear()
    monkeypatch.setattr(mvp, "parse_expr_cached", forbidden)
    for a in injections(tmp_path / "pwned") + ["1/2 + 3", "2^10"]:
        symbolic._verify("x + 1", a)  # the worker's code, run in-process
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "answer",
    [
        "(" * 300 + "1" + ")" * 300,
        "\\frac{" * 300 + "1" + "}{2}" * 300,
        "9" * 100_000,
        "x^" * 50_000,
        "1+" * 50_000 + "1",
        "\\sqrt{" * 500 + "2" + "}" * 500,
    ],
)
def test_pathological_answers_are_fast(answer):
    comps = [wrap(answer), f"the answer is {answer}", answer]
    start = time.monotonic()
    accuracy_reward(comps, solution=["1"] * 3, task=["math"] * 3, timeout=2.0)
    hard_format_result_reward(comps, solution=["1"] * 3, task=["math"] * 3, timeout=2.0)
    format_reward(comps)
    assert time.monotonic() - start < 8.0


def test_hard_symbolic_item_is_cut_off_the_main_thread():
    """A power tower makes sympy compute a number with ~10^8 digits inside one C call: no signal interrupts
    it, only a kill does (the wall-clock backstop behind the CPU budget). Sent straight to the workers: the
    scorer's structural guards would refuse it before (test_guards_refuse_heavy_answers_before_the_workers)."""
    pool = get_pool()
    before = pool.timeouts
    out: dict = {}

    def run():
        start = time.monotonic()
        out["v"] = symbolic_equal_many([(r"2^{x}", r"9^{9^{9^{9}}}"), ("x^2+2x+1", "(x+1)^2")], timeout=1.0)
        out["t"] = time.monotonic() - start

    th = threading.Thread(target=run)
    th.start()
    th.join(60)
    assert out["v"] == [False, True]  # the slow item scores 0, the other one is unaffected
    assert out["t"] < 20  # includes starting workers on a busy machine
    assert pool.timeouts > before


def _score_in_child(q):
    q.put(accuracy_reward([wrap("(x+1)^2"), wrap(r"9^{9^{9^{9}}}")], solution=["x^2+2x+1", "2^{x}"], timeout=1.0))


def test_works_inside_a_daemonic_worker_process():
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_score_in_child, args=(q,), daemon=True)
    p.start()
    result = q.get(timeout=90)
    p.join(10)
    assert result == [1.0, 0.0]


def test_falls_back_in_process_when_no_worker_can_start(monkeypatch):
    class NoWorker:
        def __init__(self):
            raise OSError("cannot spawn")

    monkeypatch.setattr(symbolic, "_Worker", NoWorker)
    pool = symbolic.SymbolicPool(max_workers=1)
    assert pool.equal_many([("x^2y + xy^2", "xy(x+y)"), ("x^2y", "xy^2")], timeout=5) == [True, False]


REDOS_UNITS = ["a", "#", "**", "_", " ", "1", ",", "1,", "cm ", "x^2", "\\frac{", "answer is ", "$", "(", "[1,",
               "one-", "-", "a ", "1 a", "Final Answer:", "\\{", "bbox_2d", "A ", "(A)", ".", "e5", "}", "\\text{"]


GOLDS = {"math": "x^2+1", "count": "3", "choice": "B", "grounding": "[1, 2, 3, 4]", "free": "red cube"}


@pytest.mark.parametrize("unit", REDOS_UNITS)
def test_no_catastrophic_backtracking(unit):
    """Long runs of one fragment, then a character that makes every regex fail (the classic ReDoS shape)."""
    start = time.monotonic()
    for tail in ("!", "1x", "<"):
        body = unit * (3000 // len(unit)) + tail
        comps = [body, wrap(body), f"the answer is {body}"]
        for task, gold in GOLDS.items():
            accuracy_reward(comps, solution=[gold] * 3, task=[task] * 3, choices=[["1", "2"]] * 3, timeout=1.0)
    assert time.monotonic() - start < 5.0


def test_budget_is_cpu_time_so_a_loaded_machine_does_not_turn_right_into_wrong():
    """The worker is frozen (SIGSTOP) for longer than the item's budget, as a busy machine would starve it:
    wall time passes, CPU time does not, and the right answer stays right. A CPU-heavy item over its budget
    is stopped by the worker's own CPU timer (counted, the worker is not killed)."""
    import os
    import signal

    pool = get_pool()
    pool.warm_up(1)
    pair = (r"(x+y+z)^{12}", r"(x+y+z)^{11}(z+y+x)")
    out: dict = {}
    th = threading.Thread(target=lambda: out.setdefault("v", symbolic_equal_many([pair], timeout=1.5)))
    th.start()
    time.sleep(0.1)
    frozen = [w.proc.pid for w in pool._workers if w.proc.poll() is None]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(2.5)  # longer than the 1.5 s budget
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    th.join(60)
    assert out["v"] == [True]

    before, pids = pool.timeouts, {w.proc.pid for w in pool._workers}
    # not cached by the worker, and truly CPU-heavy on a warm worker (~0.2-0.4 s: sympy must expand and apply
    # the Pythagorean identity; a pair sympy canonicalises at once, like (a+b+c)^13 vs (a+b+c)^12(c+b+a), takes
    # a few ms once the worker's parser is warm and would pass a 10 ms budget)
    fresh = (r"\sin(u)^{2}+\cos(u)^{2}+(u+w)^{12}", r"1+(u+w)^{11}u+(u+w)^{11}w")
    assert symbolic_equal_many([fresh], timeout=0.01) == [False]
    assert pool.timeouts == before + 1 and pids <= {w.proc.pid for w in pool._workers}
