"""Step 4's filters: table-driven cases and property tests for the parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionr1.coldstart.config import FilterSpec, RewriteRule
from visionr1.coldstart.filters import (
    count_reflections,
    has_repetition_loop,
    judge,
    leftover_references,
    rewrite_references,
    split_thinking,
)

GOOD_THINK = "I see three red cubes and two blue spheres. Wait, let me count the cubes again: one, two, three. So 3."


def j(content, reasoning=None, finish="stop", **kw):
    args = {"question": "How many cubes?", "solution": "3", "task": "count", "choices": None, "spec": FilterSpec()}
    args.update(kw)
    return judge(content, reasoning, finish, **args)


@pytest.mark.parametrize(
    "content, reasoning, finish, kwargs, reason",
    [
        (f"<think>{GOOD_THINK}</think>\nFinal Answer: 3", None, "stop", {}, None),
        (f"{GOOD_THINK}</think>\n**Final Answer:** 3", None, "stop", {}, None),  # R1 template opened <think>
        ("Final Answer: 3", GOOD_THINK, "stop", {}, None),  # reasoning_content from the server
        (f"<think>{GOOD_THINK}", None, "length", {}, "truncated"),
        ("The answer is 3.", None, "stop", {}, "missing_think"),
        (f"<think>a</think><think>{GOOD_THINK}</think> Final Answer: 3", None, "stop", {}, "unbalanced_think_tags"),
        (f"<think>{GOOD_THINK}</think>", None, "stop", {}, "no_answer"),
        (f"<think>{GOOD_THINK}</think> Final Answer: 4", None, "stop", {}, "wrong_answer"),
        ("<think>" + "so we get x again. " * 60 + "</think> Final Answer: 3", None, "stop", {}, "repetition_loop"),
        (f"<think>{GOOD_THINK} 所以答案是三个立方体。</think> Final Answer: 3", None, "stop", {}, "language_mixing"),
        ("<think>3.</think> Final Answer: 3", None, "stop", {}, "too_short"),
        (f"<think>{GOOD_THINK}</think> Final Answer: 3", None, "stop", {"spec": FilterSpec(max_response_chars=50)}, "too_long"),
        (f"<think>{GOOD_THINK} This matches what is described above.</think> Final Answer: 3", None, "stop", {}, "description_reference"),
    ],
)
def test_judge(content, reasoning, finish, kwargs, reason):
    v = j(content, reasoning, finish, **kwargs)
    assert v.reason == reason, v.reasons
    assert v.kept == (reason is None)
    if v.kept:
        assert v.response == f"<think>\n{GOOD_THINK}\n</think><answer> Final Answer:3 </answer>"


def test_question_script_is_allowed_and_greek_is_not_foreign():
    q = "图中有几个立方体？"
    assert j(f"<think>{GOOD_THINK} 三个立方体 θ=π/2</think> Final Answer: 3", question=q).kept


def test_choice_answer_is_checked_with_the_reward_library():
    v = j(f"<think>{GOOD_THINK}</think> Final Answer: B", solution="B", task="choice", choices=["2", "3", "4"])
    assert v.kept and v.answer == "B"
    assert j(f"<think>{GOOD_THINK}</think> Final Answer: A", solution="B", task="choice", choices=["2", "3", "4"]).reason == "wrong_answer"


def test_rewrites_make_the_reasoning_look_at_the_image_and_are_counted():
    v = j("<think>According to the description, there are three cubes. The image description says two spheres are "
          "blue, as described. So 3 cubes.</think> Final Answer: 3")
    assert v.kept and v.rewrites == 3
    assert "From the image, there are three cubes. The image shows two spheres are blue, as shown." in v.response
    custom = FilterSpec(extra_rewrites=[RewriteRule(pattern=r"\bpicture\b", replacement="image")])
    assert j(f"<think>{GOOD_THINK} The picture is clear.</think> Final Answer: 3", spec=custom).response.count("The image is clear") == 1


def test_caption_prefix_opens_the_thinking():
    v = j(f"<think>{GOOD_THINK}</think> Final Answer: 3", thinking_prefix="Let me first look at the image: three cubes.\n\n")
    assert v.response.startswith("<think>\nLet me first look at the image: three cubes.\n\nI see")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Based on the description, AB = 5.", "From the image, AB = 5."),
        ("the caption mentions a red car", "the image shows a red car"),
        ("As stated in the provided description, x=2", "As shown in the image, x=2"),
        ("In the description, the angle is 30°.", "In the image, the angle is 30°."),
        ("The formal description gives AB = 3", "The image shows AB = 3"),
        ("No reference here: \\frac{a}{b}", "No reference here: \\frac{a}{b}"),
    ],
)
def test_rewrite_table(text, expected):
    assert rewrite_references(text)[0] == expected


def test_loops_and_reflections():
    varied = " ".join(f"Step {i}: add {i} apples to get {i * (i + 1) // 2}." for i in range(60))
    assert not has_repetition_loop(varied)
    assert has_repetition_loop(varied + " Let me verify this once more." * 100)
    assert count_reflections("Wait. Hmm, wait. Alternatively: Waiting.") == {"Wait": 1, "Hmm": 1, "Alternatively": 1}


_plain = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(_plain, _plain)
def test_split_thinking_roundtrip(think, rest):
    t, r, problem = split_thinking(f"<think>{think}</think>{rest}")
    assert problem is None and t == think.strip() and r == rest
    t2, r2, p2 = split_thinking(f"{think}</think>{rest}")
    assert p2 is None and t2 == think.strip() and r2 == rest


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_split_thinking_never_raises_and_tags_are_balanced(text):
    t, _, problem = split_thinking(text)
    assert (t is None) == (problem is not None)
    if t is not None:
        assert "<think>" not in t and "</think>" not in t


_words = st.lists(st.sampled_from(["the", "description", "says", "caption", "as", "described", "in", "according", "to",
                                   "image", "cube", "shows", "provided", "based", "on", "AB", "=", "5", "The", "Description"]),
                  max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_words)
def test_rewrite_leaves_no_betraying_phrase(text):
    out, _ = rewrite_references(text)
    low = out.lower()
    for phrase in ("the description says", "according to the description", "as described in", "based on the description",
                   "the caption says", "in the description"):
        assert phrase not in low
    # idempotent: a second pass has nothing left to rewrite
    assert rewrite_references(out)[0] == out


def test_leftover_references_ignore_words_of_the_question():
    assert leftover_references("a description of", "Which description fits?") == []
    assert leftover_references("a description of", "How many?") == ["description"]
