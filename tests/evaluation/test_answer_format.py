"""The project's own answer formats reach every benchmark's official rules (issue 24, item 1).

Whatever the rewards accept as the answer of a well-formed completion -- ``<answer>X</answer>``, the
Vision-R1-cold ``<answer> Final Answer:X </answer>``, ``\\boxed{X}`` inside the answer, R1-V's
``<think>\\n...\\n</think>\\n<answer> X </answer>`` -- is read as X on every benchmark, with no flag: the right
X scores right, a wrong one wrong. Records are built in each benchmark's published shape, multiple choice and
free form, numbers and LaTeX values; the thinking holds distractors that must not be read.
"""

from __future__ import annotations

import json

import pytest

from visionr1.evaluation import score_predictions

THINK = "Maybe 999? Or \\boxed{998}. The answer is 997. Let me check again."
FORMATS = {
    "plain": "<think>{t}</think><answer>{x}</answer>",
    "final_answer": "<think>{t}</think>\n<answer> Final Answer:{x} </answer>",  # Vision-R1-cold, as the cold start writes
    "final_answer_spaced": "<think>{t}</think><answer>Final Answer: {x}</answer>",
    "boxed": "<think>{t}</think><answer>\\boxed{{{x}}}</answer>",
    "final_answer_boxed": "<think>{t}</think><answer> Final Answer: \\boxed{{{x}}} </answer>",
    "r1v": "<think>\n{t}\n</think>\n<answer> {x} </answer>",
    "answer_is": "<think>{t}</think><answer>The answer is {x}.</answer>",
}


def _mathvista(pid, answer, qt="free_form", at="integer", choices=None, precision=None):
    return {"pid": pid, "question": "What is the value?", "image": f"images/{pid}.jpg", "choices": choices,
            "unit": None, "precision": precision, "answer": answer, "question_type": qt, "answer_type": at,
            "metadata": {"split": "testmini", "language": "english", "source": "Geometry3K",
                         "category": "math-targeted-vqa", "skills": ["algebraic reasoning"]}}


def _mathverse(idx, question, answer, qtype):
    return {"sample_index": str(idx), "problem_index": "7", "problem_version": "Text Lite", "question": question,
            "image": "images/x.png", "answer": answer, "question_type": qtype,
            "metadata": {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Length"}}


def _mathvision(pid, answer, options=()):
    return {"id": pid, "question": "<image1>\nFind x.", "options": list(options), "image": f"images/{pid}.jpg",
            "answer": answer, "solution": None, "level": 2, "subject": "metric geometry - length"}


def _mmmath(solution):
    return {"question": "求值", "file_name": "x.png", "solution": f"解：……所以 \\boxed{{{solution}}}",
            "year": "八年级下学期", "difficult": "普通", "knowledge": ["Properties of Shapes"]}


def _dynamath(seed, truth, answer_type):
    return {"id": str(seed), "question": "q", "image": f"image/image{seed}.png", "ground_truth": truth,
            "answer_type": answer_type, "subject": "algebra", "knowledge_level": "high school"}


def _wemath(gid, answer):
    return {"ID": gid, "split": "testmini", "knowledge concept": "Angles", "question": "q",
            "option": "A. 30°; B. 45°; C. 60°; D. 90°", "answer": answer, "image_path": "img.png",
            "key": "2steps_1", "question number": 1, "knowledge concept description": "d"}


MC_Q = "As shown, find AB.\nChoices:\nA:4\nB:6\nC:8\nD:10"
LATEX_OPTIONS = ["$\\frac{1}{2}$", "$2 \\sqrt{3}$", "$\\frac{3 \\pi}{2}$", "$8: 5$", "$\\sqrt{2}-1$"]

# benchmark -> (records, {pid: (right answers, wrong answers)}, id field of the data, id suffix of predictions)
CASES = {
    "mathvista": (
        [_mathvista("1", "8/11", "multi_choice", "text", ["3/11", "8/11", "6/11", "3/4"]),
         _mathvista("2", "6"), _mathvista("3", "1.5", at="float", precision=1),
         _mathvista("4", "Yes", "multi_choice", "text", ["Yes", "No"])],
        {"1": (["B", "8/11"], ["A", "3/4"]), "2": (["6"], ["7"]), "3": (["1.5"], ["2.5"]), "4": (["Yes", "A"], ["No"])},
    ),
    "mathverse": (
        [_mathverse(1, MC_Q, "C", "multi-choice"), _mathverse(2, "Find L.", "14", "free-form"),
         _mathverse(3, "Find the ratio.", "\\frac{1}{2}", "free-form")],
        {"1": (["C", "8"], ["A", "10"]), "2": (["14"], ["12"]), "3": (["\\frac{1}{2}", "0.5"], ["\\frac{1}{3}"])},
    ),
    "mathvision": (
        [_mathvision("1", "C", ["2", "3", "4", "5", "6"]), _mathvision("2", "7"), _mathvision("3", "\\frac{1}{2}"),
         _mathvision("4", "2\\sqrt{3}"), _mathvision("5", "C", LATEX_OPTIONS), _mathvision("6", "D", LATEX_OPTIONS),
         _mathvision("7", "9\\pi")],
        {"1": (["C", "4"], ["A", "6"]), "2": (["7"], ["8"]), "3": (["\\frac{1}{2}", "0.5"], ["\\frac{1}{3}"]),
         "4": (["2\\sqrt{3}", "\\sqrt{12}"], ["3\\sqrt{2}"]), "5": (["C", "\\frac{3\\pi}{2}"], ["\\frac{\\pi}{2}", "B"]),
         "6": (["D", "8:5"], ["5:8"]), "7": (["9\\pi"], ["9"])},
    ),
    "mmmath": (
        [dict(_mmmath("60^\\circ"), id="a"), dict(_mmmath("\\frac{3}{4}"), id="b"), dict(_mmmath("2\\sqrt{5}"), id="c")],
        {"a": (["60^\\circ", "60"], ["45"]), "b": (["\\frac{3}{4}", "0.75"], ["\\frac{4}{3}"]), "c": (["2\\sqrt{5}"], ["5\\sqrt{2}"])},
    ),
    "dynamath": (
        [_dynamath(1, "3.142", "float"), _dynamath(2, "D", "multiple choice"), _dynamath(3, "May", "free form"),
         _dynamath(4, "12.0", "float")],
        {"1:1": (["3.142", "3.1416"], ["2.718"]), "2:1": (["D"], ["B"]), "3:1": (["May"], ["June"]),
         "4:1": (["12", "12.0"], ["13"])},
    ),
    "wemath": (
        [_wemath("1", "C"), _wemath("2", "A")],
        {"1@2steps_1": (["C"], ["A"]), "2@2steps_1": (["A"], ["D"])},
    ),
}


def _score(tmp_path, fixtures, bench, answers, fmt):
    """{(pid, answer): correct} for each answer written in format ``fmt``, one eval score call per answer."""
    records, _ = CASES[bench]
    data = fixtures.jsonl(tmp_path / f"{bench}.jsonl", records)
    out = {}
    for i, (pid, answer) in enumerate(answers):
        response = FORMATS[fmt].format(t=THINK, x=answer)
        summary = score_predictions(bench, data, [{"pid": pid, "response": response}], tmp_path / f"o{i}")
        item = next(json.loads(line) for line in (tmp_path / f"o{i}" / "items.jsonl").read_text().splitlines()
                    if json.loads(line)["pid"] == pid)
        assert summary["scoring"]["leniencies"] == []
        out[(pid, answer)] = (item["correct"], item["source"], item["normalized"])
    return out


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("bench", sorted(CASES))
def test_right_answer_in_our_format_scores_right(tmp_path, fixtures, bench, fmt):
    right = [(pid, a) for pid, (rights, _) in CASES[bench][1].items() for a in rights]
    got = _score(tmp_path, fixtures, bench, right, fmt)
    wrongly_scored = {k: v for k, v in got.items() if not v[0]}
    assert not wrongly_scored, f"{bench}/{fmt}: right answers scored wrong: {wrongly_scored}"
    assert all(v[1] == "answer_format" for v in got.values()), got


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("bench", sorted(CASES))
def test_wrong_answer_in_our_format_scores_wrong(tmp_path, fixtures, bench, fmt):
    wrong = [(pid, a) for pid, (_, wrongs) in CASES[bench][1].items() for a in wrongs]
    got = _score(tmp_path, fixtures, bench, wrong, fmt)
    credited = {k: v for k, v in got.items() if v[0]}
    assert not credited, f"{bench}/{fmt}: wrong answers scored right: {credited}"


@pytest.mark.parametrize("bench", sorted(CASES))
def test_two_answer_blocks_are_not_read_as_the_last(tmp_path, fixtures, bench):
    """Two blocks are no answer for the rewards; evaluation does not pick the right one of a hedge either."""
    records, answers = CASES[bench]
    data = fixtures.jsonl(tmp_path / f"{bench}.jsonl", records)
    pid, (rights, wrongs) = next(iter(answers.items()))
    response = f"<think>{THINK}</think><answer>{wrongs[0]}</answer><answer>{rights[0]}</answer>"
    summary = score_predictions(bench, data, [{"pid": pid, "response": response}], tmp_path / "o")
    item = json.loads((tmp_path / "o" / "items.jsonl").read_text().splitlines()[0])
    assert item["source"] != "answer_format"
    assert summary["scoring"]["extraction"]["answer_format"] == 0
