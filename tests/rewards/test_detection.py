"""The open-vocabulary detection reward (VLM-R1's odLength: COCO mAP x extra-box penalty) and its routing.

Gold lists mix categories, box sizes from 3 px to 2,000 px and aspect ratios up to 1:150, so a scorer that
ignored sizes, labels or IoU thresholds would show here.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionr1.rewards.detection import dataset_map, parse_detections, rescale_detections, score_detection
from visionr1.rewards.functions import accuracy_reward, hard_format_result_reward
from visionr1.rewards.registry import build_reward_funcs, get_reward_function
from visionr1.rewards.scoring import is_correct, score_answer

GOLD = [
    {"bbox_2d": [10, 10, 40, 40], "label": "red circle"},
    {"bbox_2d": [100, 20, 130, 50], "label": "red circle"},
    {"bbox_2d": [300, 5, 303, 455], "label": "blue square"},  # 3 x 450: 1:150
    {"bbox_2d": [0, 500, 2000, 2500], "label": "blue square"},
    {"bbox_2d": [600, 600, 613, 609], "label": "green diamond"},
]
GOLD_S = json.dumps(GOLD)
WRONG_PLACES = [[900, 900, 950, 950], [1500, 100, 1540, 160], [700, 1800, 760, 1830]]


def ans(entries) -> str:
    return json.dumps(entries)


def strictly_decreasing(xs) -> bool:
    return all(a > b for a, b in zip(xs, xs[1:], strict=False))


def test_perfect_list_scores_one_in_any_order_form_and_case():
    assert score_detection(GOLD_S, GOLD_S) == 1.0
    relabelled = [dict(e, label=e["label"].upper().replace(" ", "  ")) for e in GOLD]
    assert score_detection("```json\n" + ans(relabelled) + "\n```", GOLD_S) == 1.0
    assert score_detection("Here they are: " + ans(GOLD[::-1]) + " -- done.", GOLD_S) == 1.0
    single = ans(GOLD[:1])
    assert score_detection(json.dumps(GOLD[0]), single) == 1.0  # a bare object is a list of one


def test_missing_boxes_lower_the_score_monotonically():
    scores = [score_detection(ans(GOLD[: len(GOLD) - k]), GOLD_S) for k in range(len(GOLD))]
    assert scores[0] == 1.0 and strictly_decreasing(scores) and scores[-1] > 0
    assert score_detection("[]", GOLD_S) == 0.0


@pytest.mark.parametrize("where", ["absent category", "present category, wrong place"])
def test_extra_boxes_lower_the_score_monotonically(where):
    """A box of a category the image lacks is invisible to mAP: only VLM-R1's penalty sees it."""
    label = "purple triangle" if where == "absent category" else "red circle"
    extras = [{"bbox_2d": b, "label": label} for b in WRONG_PLACES]
    scores = [score_detection(ans(GOLD + extras[:k]), GOLD_S) for k in range(len(extras) + 1)]
    assert scores[0] == 1.0 and strictly_decreasing(scores)
    assert scores[1] == pytest.approx(5 / 6)  # mAP stays 1 (listed last = ranked last); penalty 5/6
    unpenalised = [score_detection(ans(GOLD + extras[:k]), GOLD_S, penalty=False) for k in range(4)]
    assert unpenalised == [1.0] * 4  # why the penalty exists


def test_mislabelled_boxes_lower_the_score_monotonically():
    scores = []
    for k in range(4):
        entries = [dict(e) for e in GOLD]
        for e, wrong in zip(entries[:k], ["blue square", "green diamond", "red circle"], strict=False):
            e["label"] = wrong
        scores.append(score_detection(ans(entries), GOLD_S))
    assert scores[0] == 1.0 and strictly_decreasing(scores)


def test_box_precision_is_graded_over_iou_thresholds():
    def shifted(dx):
        return [dict(e, bbox_2d=[e["bbox_2d"][0] + dx, e["bbox_2d"][1], e["bbox_2d"][2] + dx, e["bbox_2d"][3]])
                for e in GOLD[:2]]

    gold = ans(GOLD[:2])  # two 30 px circles
    scores = [score_detection(ans(shifted(dx)), gold) for dx in (0, 1, 3, 6, 12)]
    assert scores[0] == 1.0 and strictly_decreasing(scores) and scores[-1] == 0.0  # IoU(12 px) < 0.5


def test_list_order_is_the_confidence_ranking():
    wrong = {"bbox_2d": WRONG_PLACES[0], "label": "red circle"}
    assert score_detection(ans([wrong] + GOLD), GOLD_S) < score_detection(ans(GOLD + [wrong]), GOLD_S)


MALFORMED = [
    "", "None", "I found two red circles.", "[1, 2, 3, 4]", '["red circle"]', '[{"bbox_2d": [10, 10, 40, 40], "label"',
    "{'bbox_2d': [10, 10, 40, 40], 'label': 'red circle'}",  # Python repr, not JSON
    "[" * 5000 + "]" * 5000,  # deep nesting
    ans(GOLD) * 200,  # over the length cap
    '"[{\\"bbox_2d\\": [10, 10, 40, 40]}]"', "42", "null", "true",
]


@pytest.mark.parametrize("text", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_answers_score_zero(text):
    assert score_detection(text, GOLD_S) == 0.0
    assert score_answer(text, GOLD_S, "detection") == 0.0


def test_bad_entries_count_as_listed_boxes_that_match_nothing():
    bad = [{"bbox_2d": [50, 50, 10, 10], "label": "red circle"}, {"bbox_2d": [1, 2, 3], "label": "x"},
           {"bbox_2d": [1, 2, 3, float("nan")], "label": "x"}, {"label": "red circle"}, {"bbox_2d": [1, 1, 9, 9]}]
    dets = parse_detections(json.dumps(bad))
    assert len(dets) == 5 and all(d.box is None or d.label is None for d in dets)
    assert score_detection(ans(GOLD + bad[:1]), GOLD_S) == pytest.approx(5 / 6)
    assert score_detection(ans(bad), GOLD_S) == 0.0


def test_empty_gold():
    assert score_detection("[]", "[]") == 1.0
    assert score_detection("```json\n[]\n```", "[]") == 1.0
    assert score_detection(ans(GOLD[:1]), "[]") == 0.0
    assert score_detection("nothing here", "[]") == 0.0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.from_regex(r"\[\{\"bbox_2d\": \[[-0-9., e]{0,30}\], \"label\": .{0,12}\}\]")))
def test_any_text_scores_in_unit_interval_and_never_raises(text):
    assert 0.0 <= score_detection(text, GOLD_S) <= 1.0


# ------------------------------------------------------------------------------------------------ routing


def _completion(answer: str) -> list[dict]:
    return [{"role": "assistant", "content": f"<think>\nI look at each object.\n</think>\n<answer>{answer}</answer>"}]


def test_registered_reward_accuracy_and_hard_format_route_detection():
    partial = ans(GOLD[:2])  # two of five boxes: mAP 1/3 (only red circle complete) -> fails the 0.5 bar
    comps = [_completion(GOLD_S), _completion(partial), "<think>x</think><answer>7</answer>", _completion(GOLD_S)]
    sols = [GOLD_S, GOLD_S, "7", GOLD_S]
    tasks = ["detection", "detection", "count", "detection"]
    comps[3] = f"{GOLD_S}"  # right boxes, no tags: accuracy yes, hard format no

    reward = get_reward_function("detection_map")
    assert reward.__name__ == "detection_map"
    got = reward(completions=comps, solution=sols, task=tasks, prompts=[None] * 4)
    assert got[0] == 1.0 and 0 < got[1] < 0.5 and got[2] == 0.0 and got[3] == 1.0
    assert accuracy_reward(comps, sols, tasks) == [1.0, got[1], 1.0, 1.0]
    assert hard_format_result_reward(comps, sols, tasks) == [1.0, 0.0, 1.0, 0.0]
    assert is_correct(comps[0], GOLD_S, "detection") and not is_correct(comps[1], GOLD_S, "detection")
    assert get_reward_function("detection_map", penalty=False)(
        completions=[_completion(ans(GOLD + GOLD[:1]))], solution=[GOLD_S], task=["detection"]
    ) == [1.0]
    assert build_reward_funcs(["detection_map", "format"]).names == ["detection_map", "format"]
    with pytest.raises(ValueError, match="did you mean 'penalty'"):
        get_reward_function("detection_map", penalti=False)


def test_thinking_is_never_read_as_the_answer():
    text = f"<think>maybe {GOLD_S}</think><answer>[]</answer>"
    assert score_answer(None, GOLD_S, "detection") == 0.0
    assert accuracy_reward([text], [GOLD_S], ["detection"]) == [0.0]
    assert accuracy_reward([f"<think>{GOLD_S}"], [GOLD_S], ["detection"]) == [0.0]  # truncated


# ------------------------------------------------------------------------------------------------ dataset


def test_dataset_map_is_cocos_over_all_images():
    a = ans(GOLD[:2])  # image 1: red circles
    b = ans(GOLD[2:4])  # image 2: blue squares
    assert dataset_map([a, b], [a, b]) == {"map": 1.0, "map_50": 1.0, "map_75": 1.0, "malformed": 0.0}
    # A blue square hallucinated in image 1, listed first: no false positive for the per-image mAP
    # (image 1 has no blue squares), but one for the dataset's, where blue squares exist elsewhere.
    hallucinated = ans([{"bbox_2d": [200, 200, 230, 230], "label": "blue square"}] + GOLD[:2])
    assert score_detection(hallucinated, a, penalty=False) == 1.0
    assert dataset_map([hallucinated, b], [a, b])["map"] < 1.0
    m = dataset_map([a, "garbage"], [a, b])
    assert m["malformed"] == 0.5 and m["map"] == pytest.approx(0.5)


def test_rescale_follows_the_image():
    assert json.loads(rescale_detections(GOLD_S, (4000, 3000), (400, 300)))[3] == {
        "bbox_2d": [0, 50, 200, 250], "label": "blue square"}
    assert rescale_detections("[{}]", (10, 10), (5, 5)) is None
    assert rescale_detections("[]", (10, 10), (5, 5)) == "[]"


def test_doctests():
    import doctest

    import visionr1.rewards.detection

    result = doctest.testmod(visionr1.rewards.detection)
    assert result.failed == 0 and result.attempted > 0
