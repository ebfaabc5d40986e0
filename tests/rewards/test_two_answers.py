"""Two answers are no answer (issue 24, item 5): a completion that states two different final values for a
single-answer task earns nothing from accuracy or hard_format_result; a list asked for stays a list."""

import pytest

from visionr1.rewards.extract import extract_answer
from visionr1.rewards.functions import accuracy_reward, format_reward, hard_format_result_reward

T = "<think>let me see</think>"

# (completion, gold, task): each states two different values for one answer, one of them the gold
HEDGES = [
    (f"{T}<answer>12</answer><answer>13</answer>", "13", "math"),
    (f"{T}<answer>12</answer><answer>13</answer>", "12", "math"),
    (f"{T}<answer>12</answer>\n<answer>13</answer>", "13", "count"),
    (f"{T}<answer>B</answer><answer>C</answer>", "C", "choice"),
    (f"{T}<answer>Final Answer: 12</answer> <answer>Final Answer: 13</answer>", "13", "math"),
    (f"{T}<answer>\\boxed{{12}}</answer><answer>\\boxed{{13}}</answer>", "13", "math"),
    (f"{T}<answer>Final Answer: 12. Final Answer: 13</answer>", "13", "math"),
    (f"{T}<answer>The answer is 12. The answer is 13.</answer>", "13", "count"),
    (f"{T}<answer>The answer is 12. Wait, the answer is 13.</answer>", "12", "math"),
    (f"{T}<answer>The answer is B. Final answer: C</answer>", "C", "choice"),
    (f"{T}<answer>Final Answer: $\\frac{{1}}{{2}}$. The final answer is $\\frac{{1}}{{3}}$.</answer>", "\\frac{1}{3}", "math"),
]


@pytest.mark.parametrize("completion,gold,task", HEDGES)
def test_two_answers_earn_nothing(completion, gold, task):
    choices = [["one", "two", "three", "four"]] if task == "choice" else None
    kw = {"solution": [gold], "task": [task]} | ({"choices": choices} if choices else {})
    assert accuracy_reward([completion], **kw) == [0.0]
    assert hard_format_result_reward([completion], **kw) == [0.0]


def test_two_blocks_fail_the_format_reward_and_have_no_answer():
    completion = f"{T}<answer>12</answer><answer>13</answer>"
    assert format_reward([completion]) == [0.0]
    assert extract_answer(completion, "math") is None


# the same value stated twice, a list asked for, and one answer: still read
KEPT = [
    (f"{T}<answer>Final Answer: 13. The answer is 13.</answer>", "13", "math", 1.0),
    (f"{T}<answer>Final Answer: The final answer is 7. I hope it is correct.</answer>", "7", "math", 1.0),
    (f"{T}<answer>The answer is 12 and 13.</answer>", "12, 13", "math", 1.0),
    (f"{T}<answer>\\boxed{{12}}, \\boxed{{13}}</answer>", "12, 13", "math", 1.0),
    (f"{T}<answer>The answer is 12. The answer is 13.</answer>", "12, 13", "math", 1.0),
    (f"{T}<answer> Final Answer:6 </answer>", "6", "math", 1.0),
    (f"{T}<answer>13</answer>", "13", "count", 1.0),
]


@pytest.mark.parametrize("completion,gold,task,expected", KEPT)
def test_single_answers_and_lists_are_still_read(completion, gold, task, expected):
    assert accuracy_reward([completion], solution=[gold], task=[task]) == [expected]
    assert hard_format_result_reward([completion], solution=[gold], task=[task]) == [expected]
