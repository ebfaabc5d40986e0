"""One answer-extraction policy (issue 12), table by table: false credits that must score 0, equivalences that
must score 1, answers written the way MATH / Minerva / MathVista / MATH-V responses write them, structural
guards that keep heavy answers away from sympy, and the batched accuracy call GRPO logs."""

import pytest

from visionr1.rewards import mathcheck
from visionr1.rewards.extract import LAST_RESORTS, extract_answer, extract_with_source, final_boxed
from visionr1.rewards.functions import accuracy_reward, iou_reward
from visionr1.rewards.mathcheck import heavy_reason, math_equal_many
from visionr1.rewards.scoring import correct_many, is_correct, parse_count, score_answer


def wrap(answer: str) -> str:
    return f"<think>reasoning</think><answer>{answer}</answer>"


# Reward hacking: a wrong, hedged or garbage answer that contains the right number. (answer, gold, task)
FALSE_CREDIT = [
    (r"\sin(3)", "3", "math"),  # a function of the right number
    (r"\sin 3", "3", "math"),
    ("sin 3", "3", "math"),
    (r"\log(5)", "5", "math"),
    ("log 5", "5", "math"),
    ("f(1)", "1", "math"),
    (r"\frac{garbage}{7}", "7", "math"),
    (r"\frac{7}{garbage}", "7", "math"),
    (".5", "5", "math"),  # a leading-dot decimal is 0.5
    ("-.5", "5", "math"),
    ("AZYUK2A", "2", "math"),  # text with one number somewhere
    ("The answer might be 12 or it might not", "12", "math"),
    ("3 hours and 5", "5", "math"),
    ("3 or 4", "4", "math"),  # a hedge between two values
    ("x = 3 or x = 4", "3", "math"),
    (r"\{3, 4\}", "4", "math"),
    (r"3\sqrt{2}", "3", "math"),
    ("1/2", "12", "math"),
    ("12", "1/2", "math"),
    ("2^{10}", "10", "math"),
    ("10!", "10", "math"),
    (r"3\frac{1}{2}", "1.5", "math"),  # a mixed number is 3.5
    ("AZYUK2A", "2", "count"),
    (r"\log(5)", "5", "count"),
    ("f(1)", "1", "count"),
    ("2^3", "3", "count"),
    ("x2", "2", "count"),
    ("3 + 4", "4", "count"),
    ("[0, 0, 1000, 1000]", "[100, 100, 400, 400]", "grounding"),  # a box over the whole image
    ("[0, 0, 640, 480]", "[0, 0, 300, 300]", "grounding"),
    ("[-1e9, -1e9, 1e9, 1e9]", "[10, 10, 50, 50]", "grounding"),
]


@pytest.mark.parametrize("answer,gold,task", FALSE_CREDIT)
def test_false_credit_scores_zero(answer, gold, task):
    assert score_answer(answer, gold, task) == 0.0
    assert accuracy_reward([wrap(answer)], solution=[gold], task=[task]) == [0.0]


# Equivalences the scorer used to miss. (answer, gold)
EQUIVALENT = [
    (r"16,\!386.20", "16386.2"),  # MATH's thousands separator
    (r"\$16,\!386.20", r"16,\!386.20"),
    (r"1\,000", "1000"),
    ("1{,}000", "1,000"),
    ("1,000", "1000"),
    (r"(2,12) \cup (12,102)", r"(2, 12) \cup (12, 102)"),  # no thousands rule inside intervals
    ("(1,000, 2)", "(1, 0, 2)"),  # inside brackets commas separate elements
    (r"[3,100]", r"[3, 100]"),
    (".4", "0.4"),
    ("-.25", r"-\frac{1}{4}"),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"),
    (r"\begin{bmatrix} 1 & -2 \\ \frac{1}{2} & 0 \end{bmatrix}", r"\begin{pmatrix}1&-2\\0.5&0\end{pmatrix}"),
    (r"\begin{pmatrix} 3 \\ -1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}3\\-1\\2\end{pmatrix}"),
    (r"\begin{pmatrix} x & 1 \\ 0 & x \end{pmatrix}", r"\begin{pmatrix}x&1\\0&x\end{pmatrix}"),
    ("12 apples", "12"),
    (r"5\text{ cm}", "5"),
    (r"\$25", "25"),
    ("1,000.99€", "1000.99"),
    ("£12", "12"),
    ("28 pct", r"28\%"),
    (r"\boxed{28 percent}", r"28\%"),
    (r"3\frac{1}{2}", r"\frac{7}{2}"),  # a mixed number, as MATH writes them
    (r"2\frac{\pi}{3}", r"\frac{2\pi}{3}"),  # ...but a product stays a product
    (r"10\frac{5}{3}", r"\frac{50}{3}"),
    ("1 000", "1000"),
    ("1,000.0", "1000"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})"),
    (r"\dfrac{\sqrt{3}}{2}", "0.87"),
    (r"x=\pm\sqrt{2}", r"\sqrt2,-\sqrt2"),
]


@pytest.mark.parametrize("answer,gold", EQUIVALENT)
def test_equivalences(answer, gold):
    assert score_answer(answer, gold, "math") == 1.0
    assert score_answer(gold, answer, "math") == 1.0


def test_matrices_differ_when_entries_or_shape_do():
    m = r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"
    assert score_answer(r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", m, "math") == 0.0
    assert score_answer(r"\begin{pmatrix}1&2&3&4\end{pmatrix}", m, "math") == 0.0
    assert score_answer(r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1&2\end{pmatrix}", "math") == 0.0


# Whole completions in public answer styles. (completion, gold, task, expected accuracy)
STYLES = [
    # Minerva: "Final Answer: The final answer is $X$. I hope it is correct."
    (r"... so $x=3$. Final Answer: The final answer is $3$. I hope it is correct.", "3", "math", 1.0),
    (r"Final Answer: The final answer is $\frac{\sqrt{3}}{2}$. I hope it is correct.", r"\frac{\sqrt3}{2}", "math", 1.0),
    (r"Final Answer: The final answer is $(2,12) \cup (12,102)$. I hope it is correct.", r"(2,12)\cup(12,102)", "math", 1.0),
    ("The final answer is $4$. I hope it is correct.", "5", "math", 0.0),
    # math inside a sentence in <answer>
    (wrap(r"Therefore $x \geq 5$ is the solution."), r"x \geq 5", "math", 1.0),
    (wrap(r"The area is $12\pi$."), r"12\pi", "math", 1.0),
    (wrap("The area is 12 square units."), "12", "math", 1.0),
    (wrap(r"So the value of x is \(\frac{3}{4}\)."), "0.75", "math", 1.0),
    (wrap("The value of x is 9."), "9", "math", 1.0),
    (wrap("The total is 7 apples."), "7", "count", 1.0),
    (wrap("The area is 13."), "12", "math", 0.0),
    # currency dollars are not inline math
    ("He pays $18 for apples and $25 for pears, so he spends $43 in total.", "43", "math", 1.0),
    ("He pays $18 for apples and $25 for pears, so he spends $43 in total.", "18", "math", 0.0),
    (wrap("He pays $18 and $25, so the total is $43."), "43", "math", 1.0),
    # several boxes: read together (roots are right, hedges wrong)
    (r"The roots are $x=\boxed{2}$ or $x=\boxed{3}$.", "2, 3", "math", 1.0),
    (r"The roots are $x=\boxed{2}$ or $x=\boxed{3}$.", "3", "math", 0.0),
    (r"so \boxed{3} and \boxed{4}", "4", "math", 0.0),
    (r"Maybe \boxed{5}? No. Checking again, the sum is 12. So the answer is \boxed{12}.", "12", "math", 1.0),
    (r"\boxed{-1}, \boxed{1}", r"\pm 1", "math", 1.0),
    # MATH-style boxed with thousands separator; MathVista-style prose
    (r"The total is $\boxed{16,\!386.20}$ dollars.", "16386.20", "math", 1.0),
    ("The correct answer is (B) 8/11.", "B", "choice", 1.0),
    ("The answer is 5.", "5", "math", 1.0),
    ("The answer is 5.2 cm.", "5.2", "math", 1.0),
    (wrap("Final Answer: The final answer is 7. I hope it is correct."), "7", "math", 1.0),
    (wrap("The answer is 3. 5 is wrong."), "3", "math", 1.0),
    ("The answer is not 5, it is 6.", "6", "math", 1.0),
    ("The answer is not 5, it is 6.", "5", "math", 0.0),
    (wrap("Not 7"), "7", "math", 0.0),
    (wrap(r"\boxed{2} \text{ and } \boxed{3}"), "2, 3", "math", 1.0),
    (wrap("The solutions are $x = 2$ and $x = 3$."), "2, 3", "math", 1.0),
    (wrap("So, $AB = 10$ and $BC = 12$."), "12", "math", 0.0),  # two values for one gold: a hedge
    (wrap("It is either 3 or 4."), "4", "math", 0.0),
    ("**Final Answer**\n\\[\n\\boxed{12}\n\\]", "12", "math", 1.0),
]


@pytest.mark.parametrize("completion,gold,task,expected", STYLES)
def test_answer_styles(completion, gold, task, expected):
    assert accuracy_reward([completion], solution=[gold], task=[task]) == [expected]


def test_final_boxed_stops_at_prose():
    assert final_boxed(r"first try \boxed{5}. After checking everything again: \boxed{7}") == "7"
    assert final_boxed(r"\boxed{1} \boxed{1}") == "1"


# Truncated completions: no answer for the reward, the whole text for evaluation.
def test_truncation_policy():
    cut = "<think>The area is 6, so the answer is 5 and"
    assert extract_answer(cut, "math") is None
    assert accuracy_reward([cut], solution=["5"], task=["math"]) == [0.0]
    assert extract_answer(cut, "math", truncated="read") == "5 and"
    assert extract_answer("<think>... so the answer is 5", "math", truncated="read") == "5"
    with pytest.raises(ValueError, match="no_answer, read"):
        extract_answer(cut, "math", truncated="maybe")


@pytest.mark.parametrize(
    "completion,task,source",
    [
        (wrap("4"), "math", "answer_tag"),
        (r"so \boxed{4}", "math", "boxed"),
        ("the answer is 4", "math", "answer_is"),
        ("4", "math", "short_text"),
        ("it is clearly $x=4$ here", "math", "math_span"),
        ("...3, 4 and 5, so I cannot tell.", "math", "last_number"),
        ("I think it is the red one", "free", "whole_text"),
    ],
)
def test_sources_mark_last_resorts(completion, task, source):
    ans, how = extract_with_source(completion, task)
    assert how == source and ans is not None
    assert (how in LAST_RESORTS) == (source in {"math_span", "last_number", "whole_text"})


def test_count_needs_a_standalone_number():
    assert parse_count("There are 4 cubes.") == 4
    assert parse_count("4 cubes and 4 spheres, 4 each") == 4
    assert parse_count("AZYUK2A") is None and parse_count(r"\sqrt{9}") is None


# Adversarial answers (towers, deep fractions, nested parentheses, long strings, huge factorials): refused
# by structural guards, never sent to sympy.
ADVERSARIAL = [
    "9^{9^{9^{9}}}",
    "2^{2^{2^{2^{2}}}}",
    "x^{2^{3^{4}}}",
    "\\frac{1}{" * 40 + "x" + "}" * 40,
    "\\frac{1}{" * 25 + "x" + "}" * 25,
    "(" * 300 + "x" + ")" * 300,
    "(" * 25 + "x+1" + ")" * 25,
    "100000!",
    "x^{100000}",
    "x+" * 300 + "x",
    "a" * 5000,
    "\\sqrt{" * 30 + "y" + "}" * 30,
]


@pytest.mark.parametrize("answer", ADVERSARIAL)
def test_adversarial_answers_never_reach_the_workers(answer, monkeypatch):
    def forbidden(pairs, timeout):
        raise AssertionError(f"sent to the symbolic workers: {pairs[0][1][:60]!r}")

    monkeypatch.setattr(mathcheck, "symbolic_equal_many", forbidden)
    assert math_equal_many([(answer, "x^2+1"), (answer, "7")]) == [False, False]


def test_guards_let_real_answers_through():
    for ok in (r"\frac{x^2+1}{2x}", r"e^{x^2}", r"\sqrt{\frac{a}{b}}", r"x^{10}+1", r"\binom{10}{3}", "5!"):
        assert heavy_reason(mathcheck.clean_math(ok)[0]) is None, ok


def test_batched_accuracy_one_symbolic_call_and_cache(monkeypatch):
    calls = []
    real = mathcheck.symbolic_equal_many

    def counting(pairs, timeout):
        calls.append(list(pairs))
        return real(pairs, timeout)

    monkeypatch.setattr(mathcheck, "symbolic_equal_many", counting)
    mathcheck.VERDICTS.clear()
    comps = [wrap("xy(x+y)"), wrap("xy(x-y)"), wrap("xy(x+y)"), wrap("4"), wrap("B"), wrap("[0, 0, 10, 10]"), "no answer"]
    sols = ["x^2y+xy^2", "x^2y+xy^2", "x^2y+xy^2", "4", "B", "[0, 0, 10, 11]", "3"]
    tasks = ["math", "math", "math", "math", "choice", "grounding", "math"]
    choices = [None, None, None, None, ["1", "2"], None, None]
    got = correct_many(comps, sols, tasks, choices)
    assert got == [True, False, True, True, True, True, False]
    assert len(calls) == 1 and len(calls[0]) == 2  # one call, the repeated pair sent once
    assert got == [is_correct(c, s, t, ch) for c, s, t, ch in zip(comps, sols, tasks, choices, strict=True)]
    assert len(calls) == 1  # the per-item calls were answered from the verdict cache


def test_iou_reward_stays_continuous():
    assert iou_reward([wrap("[0, 0, 10, 10]")], solution=["[5, 0, 15, 10]"], task=["grounding"]) == [pytest.approx(1 / 3)]
