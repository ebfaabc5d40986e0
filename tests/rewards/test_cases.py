"""Table-driven tricky cases: format, extraction, and per-task scoring, each with its expected value."""

import pytest

from visionr1.rewards.extract import extract_answer
from visionr1.rewards.functions import (
    accuracy_reward,
    check_format,
    format_reward,
    hard_format_result_reward,
    iou_reward,
)
from visionr1.rewards.scoring import is_correct, score_answer

T = "<think>reasoning</think>"


def wrap(answer: str) -> str:
    return f"{T}<answer>{answer}</answer>"


# (completion, think_prefilled, expected format reward)
FORMAT_CASES = [
    ("<think>a</think><answer>b</answer>", False, 1.0),
    ("  <think>\nmulti\nline\n</think>\n\n<answer>\n42\n</answer>\n", False, 1.0),  # open-r1's multi-line bug
    ("<think></think><answer>b</answer>", False, 1.0),  # empty thinking is allowed by the regex of R1-V too
    ("<think>a</think><answer>   </answer>", False, 0.0),  # empty answer
    ("<think>a</think>", False, 0.0),  # truncated: no answer
    ("<think>a</think><answer>b", False, 0.0),  # truncated inside the answer
    ("text before <think>a</think><answer>b</answer>", False, 0.0),
    ("<think>a</think>between<answer>b</answer>", False, 0.0),
    ("<think>a</think><answer>b</answer> trailing", False, 0.0),
    ("<think>a<think>b</think></think><answer>c</answer>", False, 0.0),  # nested
    ("<think>a</think><think>b</think><answer>c</answer>", False, 0.0),  # repeated
    ("<think>a</think><answer>b</answer><answer>c</answer>", False, 0.0),
    ("<answer>b</answer><think>a</think>", False, 0.0),  # wrong order
    ("<think>a <answer>x</answer></think><answer>c</answer>", False, 0.0),  # answer inside thinking
    ("<think>a</think><answer>x <think>y</think></answer>", False, 0.0),
    ("<THINK>a</THINK><ANSWER>b</ANSWER>", False, 0.0),  # tags are case-sensitive
    ("prefilled thinking</think><answer>b</answer>", True, 1.0),
    ("<think>a</think><answer>b</answer>", True, 0.0),  # prompt already opened <think>
    ("prefilled</think>", True, 0.0),
]


@pytest.mark.parametrize("completion,prefilled,expected", FORMAT_CASES)
def test_format(completion, prefilled, expected):
    assert format_reward([completion], think_prefilled=prefilled) == [expected]
    assert check_format(completion, prefilled) == bool(expected)


# (completion, task, expected extracted answer)
EXTRACT_CASES = [
    (wrap(" Final Answer: 12 "), "math", "12"),  # Vision-R1-cold format
    (wrap(r"Final Answer: $\boxed{\frac{1}{2}}$"), "math", r"\frac{1}{2}"),
    (wrap(r"**Final Answer:** $3\sqrt{2}$."), "math", r"3\sqrt{2}"),
    (wrap("The area is 5, so the answer is 10."), "math", "10"),
    ("<think>The answer is 5</think>the answer is 6", "math", "6"),  # never from inside <think>
    ("<think>I get \\boxed{5}</think>", "math", None),  # only thinking: no answer
    ("<think>still thinking, answer is 5", "math", None),  # unclosed think
    (r"Step 1 ... so \boxed{7} then \boxed{8}", "math", "8"),  # last boxed
    ("blah\nFinal Answer: 42\n", "math", "42"),
    ("there are 3 red and 4 blue, 7 in total", "count", "7"),  # last number for numeric tasks
    ("I count seven apples", "count", "seven"),
    ("prefilled thoughts 5</think><answer>9</answer>", "math", "9"),
    ("<think>a</think><answer>B</answer>", "choice", "B"),
    (wrap('{"bbox_2d": [1, 2, 3, 4]}'), "grounding", '{"bbox_2d": [1, 2, 3, 4]}'),
    ("<think>a</think> the box is [1, 2, 30, 40].", "grounding", "[1, 2, 30, 40]"),
    ([{"role": "assistant", "content": [{"type": "text", "text": wrap("77")}]}], "math", "77"),
    ([{"role": "assistant", "content": wrap("x = 2")}], "math", "x = 2"),
]


@pytest.mark.parametrize("completion,task,expected", EXTRACT_CASES)
def test_extract(completion, task, expected):
    assert extract_answer(completion, task) == expected


# (answer, solution, task, choices, expected score)
SCORE_CASES = [
    # math: equivalence
    ("0.5", r"\frac{1}{2}", "math", None, 1.0),
    (r"\dfrac{3}{4}", "0.75", "math", None, 1.0),
    ("3/4", "0.75", "math", None, 1.0),
    (r"\sqrt{12}", r"2\sqrt{3}", "math", None, 1.0),  # math-verify pitfall: bare gold 2\sqrt{3} -> 2
    ("3.46", r"2\sqrt{3}", "math", None, 1.0),  # rounded decimal of an exact gold
    ("3.4", r"2\sqrt{3}", "math", None, 0.0),  # one decimal is too coarse
    ("0.46", "0.5", "math", None, 0.0),  # two literals must be equal
    ("2", r"2\sqrt{3}", "math", None, 0.0),
    ("[2014, 2016]", "[2014, 2016]", "math", None, 1.0),  # pitfall: bare gold interval -> 2016
    ("2016", "[2014, 2016]", "math", None, 0.0),
    ("(2014, 2016)", "[2014, 2016]", "math", None, 0.0),  # open vs closed interval
    (r"(-\infty, 2]", r"(-\infty,2]", "math", None, 1.0),
    (r"(2,\infty)\cup(-\infty,1)", r"(-\infty,1)\cup(2,\infty)", "math", None, 1.0),
    (r"\{3, 1, 2\}", r"\{1,2,3\}", "math", None, 1.0),
    ("(2, 1)", "(1, 2)", "math", None, 0.0),  # a point is ordered
    ("3, 2", "2, 3", "math", None, 1.0),  # a list of roots is not
    ("x = 2 or x = 3", "2, 3", "math", None, 1.0),
    ("x = 4", "4", "math", None, 1.0),
    ("4", "x=4", "math", None, 1.0),
    (r"30^\circ", "30", "math", None, 1.0),
    ("30°", r"30^{\circ}", "math", None, 1.0),
    ("30 degrees", "30", "math", None, 1.0),
    (r"5\text{ cm}", "5", "math", None, 1.0),
    ("12 square units", "12", "math", None, 1.0),
    ("1,234", "1234", "math", None, 1.0),
    ("1{,}000{,}000", "1000000", "math", None, 1.0),
    (r"50\%", "50", "math", None, 1.0),
    ("0.5", r"50\%", "math", None, 1.0),
    ("−3", "-3", "math", None, 1.0),  # unicode minus
    (r"\frac{\pi}{2}", r"\frac{\pi}{2}", "math", None, 1.0),
    (r"\pi/2", r"\frac{\pi}{2}", "math", None, 1.0),
    (r"2+\sqrt{3}", r"\sqrt{3}+2", "math", None, 1.0),
    ("(x+1)^2", "x^2+2x+1", "math", None, 1.0),  # fast path: sampled at fixed points
    ("2x+1", "2x+2", "math", None, 0.0),
    ("y = 4 + 4x", "y = 4x + 4", "math", None, 1.0),
    ("xy(x+y)", "x^2y+xy^2", "math", None, 1.0),  # symbolic path (math-verify in a worker)
    ("xy(x-y)", "x^2y+xy^2", "math", None, 0.0),
    (r"\sin\frac{\pi}{6}", r"\frac12", "math", None, 1.0),
    (r"\log_2 8", "3", "math", None, 1.0),
    ("}}{{\\frac{", "6", "math", None, 0.0),  # unbalanced garbage: no parse attempted
    ("The answer cannot be determined", "7", "math", None, 0.0),
    ("Yes", "yes", "math", None, 1.0),
    ("12.0", "12", "math", None, 1.0),
    ("1.2e3", "1200", "math", None, 1.0),
    (r"1.2\times 10^{3}", "1200", "math", None, 1.0),
    # choice
    ("B", "B", "choice", ["1", "2", "3"], 1.0),
    ("(B)", "B", "choice", ["1", "2", "3"], 1.0),
    ("B.", "B", "choice", ["1", "2", "3"], 1.0),
    ("b", "B", "choice", ["1", "2", "3"], 1.0),
    ("B. 2", "B", "choice", ["1", "2", "3"], 1.0),
    ("B. 3", "B", "choice", ["1", "2", "3"], 0.0),  # letter and text name different options
    ("The answer is B", "B", "choice", ["1", "2", "3"], 1.0),
    ("Option (B)", "B", "choice", None, 1.0),
    ("2", "B", "choice", ["1", "2", "3"], 1.0),  # the option text
    ("B", "12 cm", "choice", ["10 cm", "12 cm"], 1.0),  # gold given as option text
    ("12 CM", "12 cm", "choice", ["10 cm", "12 cm"], 1.0),
    ("A and B", "B", "choice", ["1", "2", "3"], 0.0),
    ("A, B", "B", "choice", ["1", "2", "3"], 0.0),
    ("C", "B", "choice", ["1", "2", "3"], 0.0),
    ("A triangle has angles, so (B)", "B", "choice", ["1", "2", "3"], 1.0),  # article "A" is no option
    ("C or D", "C", "choice", ["1", "2", "3"], 1.0),  # D is not an option when there are 3
    ("blue", "Blue", "choice", None, 1.0),
    # count
    ("3", "3", "count", None, 1.0),
    ("three", "3", "count", None, 1.0),
    ("Twenty-one", "21", "count", None, 1.0),
    ("There are 4 cubes.", "4", "count", None, 1.0),
    ("3 or 4", "4", "count", None, 0.0),
    ("4.0", "4", "count", None, 1.0),
    ("4.5", "4", "count", None, 0.0),
    ("none", "0", "count", None, 1.0),
    # grounding
    ("[10, 10, 50, 50]", "[10, 10, 50, 50]", "grounding", None, 1.0),
    ('{"bbox_2d": [10, 10, 50, 50], "label": "cat"}', "[10, 10, 50, 50]", "grounding", None, 1.0),
    ('```json\n[{"bbox_2d": [0, 0, 10, 10]}]\n```', "[5, 0, 15, 10]", "grounding", None, 0.0),  # IoU 1/3 < 0.5
    ('```json\n[{"bbox_2d": [0, 0, 10, 10]}]\n```', "[2, 0, 12, 10]", "grounding", None, 8 / 12),
    ("[50, 50, 10, 10]", "[10, 10, 50, 50]", "grounding", None, 0.0),  # inverted
    ("[10, 10, 50]", "[10, 10, 50, 50]", "grounding", None, 0.0),  # malformed
    ('{"bbox_2d": [10, 10, "x", 50]}', "[10, 10, 50, 50]", "grounding", None, 0.0),
    ("[60, 60, 70, 70]", "[10, 10, 50, 50]", "grounding", None, 0.0),  # disjoint
    ("[nan, 1, 2, 3]", "[10, 10, 50, 50]", "grounding", None, 0.0),
    # free
    ("The Red Cube.", "red cube", "free", None, 1.0),
    ("red  CUBE", "red cube", "free", None, 1.0),
    ("red sphere", "red cube", "free", None, 0.0),
    ("", "red cube", "free", None, 0.0),
]


@pytest.mark.parametrize("answer,solution,task,choices,expected", SCORE_CASES)
def test_score_answer(answer, solution, task, choices, expected):
    assert score_answer(answer, solution, task, choices) == pytest.approx(expected)


# (completion, solution, task, accuracy, hard_format_result)
END_TO_END = [
    (wrap("Final Answer: 4"), "4", "math", 1.0, 1.0),
    ("the answer is 4", "4", "math", 1.0, 0.0),  # right but unformatted: Vision-R1 gives 0
    (wrap("5"), "4", "math", 0.0, 0.0),
    (wrap("[10, 10, 50, 40]"), "[10, 10, 50, 50]", "grounding", 0.75, 1.0),  # IoU 0.75 >= 0.5
    (wrap("[10, 10, 50, 20]"), "[10, 10, 50, 50]", "grounding", 0.0, 0.0),  # IoU 0.25: no partial credit
    ("<think>so it is B</think><answer>A</answer>", "B", "choice", 0.0, 0.0),
]


@pytest.mark.parametrize("completion,solution,task,acc,hard", END_TO_END)
def test_end_to_end(completion, solution, task, acc, hard):
    assert accuracy_reward([completion], solution=[solution], task=[task]) == [pytest.approx(acc)]
    assert hard_format_result_reward([completion], solution=[solution], task=[task]) == [hard]
    assert is_correct(completion, solution, task) == (acc >= 0.5 if task == "grounding" else acc == 1.0)


def test_iou_reward_ignores_other_tasks():
    comps = [wrap("[0, 0, 10, 10]"), wrap("4")]
    assert iou_reward(comps, solution=["[0, 0, 10, 10]", "4"], task=["grounding", "math"]) == [1.0, 0.0]


def test_task_inferred_when_missing():
    comps = [wrap("[0, 0, 10, 10]"), wrap("B"), wrap(r"\frac{1}{2}")]
    sols = ["[0, 0, 10, 10]", "B", "0.5"]
    assert accuracy_reward(comps, solution=sols, choices=[None, ["x", "y"], None]) == [1.0, 1.0, 1.0]


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="must be one of"):
        accuracy_reward([wrap("1")], solution=["1"], task=["maths"])


def test_table_size():
    assert len(FORMAT_CASES) + len(EXTRACT_CASES) + len(SCORE_CASES) + len(END_TO_END) >= 60


def test_prefilled_thinking_is_never_the_answer():
    inside = "the answer is 5, let me check"  # still inside the <think> the prompt opened
    assert accuracy_reward([inside], solution=["5"], task=["math"], think_prefilled=True) == [0.0]
    done = "so 5</think><answer>5</answer>"
    assert accuracy_reward([done], solution=["5"], task=["math"], think_prefilled=True) == [1.0]
    assert hard_format_result_reward([done], solution=["5"], task=["math"], think_prefilled=True) == [1.0]


@pytest.mark.parametrize(
    "module", ["extract", "latexnum", "mathcheck", "scoring", "functions", "registry", "judge"]
)
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"visionr1.rewards.{module}"))
    assert result.failed == 0 and result.attempted > 0
