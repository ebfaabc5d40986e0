"""Property tests: no reward function raises on any string, outputs stay in range, extraction is stable."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionr1.rewards.extract import extract_answer
from visionr1.rewards.functions import (
    accuracy_reward,
    format_reward,
    hard_format_result_reward,
    iou_reward,
    length_reward,
)
from visionr1.rewards.latexnum import try_evaluate
from visionr1.rewards.scoring import TASKS, parse_box, parse_count

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "}", "{", "(", ")", "[", "]", "\\frac", "\\sqrt",
    "\\pi", "\\infty", "\\cup", "\\{", "\\}", "^", "_", "=", ",", ".", "-", "+", "/", "*", "%", "°", "$", "x",
    "Final Answer:", "the answer is ", "B", "(C)", "three", "bbox_2d", '{"bbox_2d": [', "1", "2.5", "10", "0",
    "1e999", "nan", "inf", "−", "√", " ", "\n", "\\text{cm}", "\\left(", "\\right)", "9^{9^{9}}", "\x00",
]
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(string.printable, max_size=5)), max_size=30).map("".join),
)
solutions = st.sampled_from(["4", "\\frac{1}{2}", "[10, 10, 50, 50]", "B", "red cube", "x^2+1", "(1, 2]", "3"])
tasks = st.sampled_from(list(TASKS) + [None])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(texts, solutions, tasks)
def test_rewards_never_raise(text, solution, task):
    choices = ["1", "2", "3"] if task == "choice" else None
    kw = dict(solution=[solution], task=[task], choices=[choices], timeout=0.5)
    for comp in (text, [{"role": "assistant", "content": text}]):
        acc = accuracy_reward([comp], **kw)[0]
        hard = hard_format_result_reward([comp], **kw)[0]
        fmt = format_reward([comp])[0]
        assert 0.0 <= acc <= 1.0 and hard in (0.0, 1.0) and fmt in (0.0, 1.0)
        assert hard <= fmt
        assert 0.0 <= iou_reward([comp], solution=[solution], task=[task])[0] <= 1.0
        assert length_reward([comp])[0] >= 0.0


@FUZZ
@given(texts)
def test_parsers_never_raise(text):
    for task in list(TASKS) + [None]:
        ans = extract_answer(text, task)
        assert ans is None or isinstance(ans, str)
    try_evaluate(text)
    parse_count(text)
    box = parse_box(text)
    assert box is None or (box[2] > box[0] and box[3] > box[1])


@FUZZ
@given(st.text(max_size=200).filter(lambda s: "<" not in s and ">" not in s and s.strip()))
def test_answer_block_content_is_what_is_extracted_for_free_text(body):
    """A well-formed completion always has format 1 and its answer comes from the answer block only."""
    comp = f"<think>the answer is 999</think><answer>{body}</answer>"
    assert format_reward([comp]) == [1.0]
    ans = extract_answer(comp, "free")
    assert ans is None or "999" not in ans or "999" in body
