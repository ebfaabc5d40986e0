"""Official readings, quirks included, by default; published extractions honoured; leniencies never read
less (issue 24, items 2-4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionr1.evaluation import score_predictions
from visionr1.evaluation.benchmarks.dynamath import official_short_answer
from visionr1.evaluation.benchmarks.mathvision import is_equal, latex2sympy2_reading

PUBLISHED = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "mathvista_published"
# The one published verdict the current calculate_score.py does not reproduce: the file was scored by its
# older integer rule (int("2.0") fails), README of that folder.
OLDER_INTEGER_RULE = {("gpt4_2shot_code.json", "720")}


@pytest.mark.parametrize("path", sorted(PUBLISHED.glob("*.json")), ids=lambda p: p.stem)
def test_published_mathvista_extractions_score_as_published(tmp_path, path):
    records = json.loads(path.read_text(encoding="utf-8"))
    records = records if isinstance(records, list) else list(records.values())
    preds = [{"pid": r["pid"], "response": r.get("response"), "extraction": r.get("extraction")} for r in records]
    summary = score_predictions("mathvista", path, preds, tmp_path)
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    published = {str(r["pid"]): bool(r["true_false"]) for r in records}
    differ = {i["pid"] for i in items if i["correct"] != published[i["pid"]]}
    assert differ == {pid for name, pid in OLDER_INTEGER_RULE if name == path.name}
    assert summary["scoring"]["extraction"]["published_extraction"] == len(records)
    assert {i["source"] for i in items} == {"published_extraction"}


def _vista(pid, answer, qt, at, choices=None):
    return {"pid": pid, "question": "q", "image": "i.png", "choices": choices, "unit": None, "precision": None,
            "answer": answer, "question_type": qt, "answer_type": at, "metadata": {}}


def test_mathvista_extraction_is_handed_on_exactly(tmp_path, fixtures):
    data = fixtures.jsonl(tmp_path / "d.jsonl", [_vista("1", "No", "multi_choice", "text", ["Yes", "No"]),
                                                 _vista("2", "6", "free_form", "integer")])
    # the response says the right thing; the extraction (what calculate_score.py scores) does not, or the
    # other way round: the extraction decides, mapped by the official normalisation ("N/A" -> nearest option)
    preds = [{"pid": "1", "response": "<answer>No</answer>", "extraction": "N/A"},
             {"pid": "2", "response": "I cannot tell.", "extraction": "6.0"}]
    summary = score_predictions("mathvista", data, preds, tmp_path / "o")
    items = {i["pid"]: i for i in map(json.loads, (tmp_path / "o" / "items.jsonl").read_text().splitlines())}
    assert items["1"]["normalized"] == "No" and items["1"]["correct"]  # "N/A" is nearest "No" by edit distance
    assert items["2"]["normalized"] == "6" and items["2"]["correct"]
    assert summary["scoring"]["extraction"]["published_extraction"] == 2
    without = score_predictions("mathvista", data, [{"pid": "2", "response": "I cannot tell."}], only_ids=["2"])
    assert without["correct"] == 0 and without["scoring"]["extraction"]["published_extraction"] == 0


def test_mathverse_extraction_goes_to_the_judge(tmp_path, fixtures):
    q = "As shown, find AB.\nChoices:\nA:4\nB:6\nC:8\nD:10"
    rec = {"sample_index": "1", "problem_version": "Text Lite", "question": q, "answer": "C",
           "question_type": "multi-choice", "metadata": {}}
    data = fixtures.jsonl(tmp_path / "v.jsonl", [rec])
    right = score_predictions("mathverse", data, [{"sample_index": "1", "response": "so A", "extraction": "C"}])
    wrong = score_predictions("mathverse", data, [{"sample_index": "1", "response": "<answer>C</answer>", "extraction": "A"}])
    assert (right["correct"], wrong["correct"]) == (1, 0)
    assert right["scoring"]["extraction"]["published_extraction"] == 1


# ---- DynaMath: the official preprocessing and last-line rule, exactly


@pytest.mark.parametrize(
    "response,short",
    [
        ("The answer is D.\nD.", "D"),
        ("The answer is\nD", ""),  # the last character goes, whatever it is
        ("so 3.142", "so 3.14"),
        ('{"solution": "...", "short answer": "3.142"}', "3.142"),
        ('Here: {"solution": "x \\\\in [1, 2]", "short answer": "B"} done', "B"),  # backslashes removed first
        ('{"solution": "x"}', "None"),
        ("so \\boxed{12}\nok", "{12"),  # the text from the first "{" to the last "}", not JSON: its last line
    ],
)
def test_dynamath_official_short_answer(response, short):
    assert official_short_answer(response)[0] == short


def _dyna(truth, answer_type):
    return {"id": "1", "question": "q", "ground_truth": truth, "answer_type": answer_type, "subject": "s",
            "knowledge_level": "high school"}


@pytest.mark.parametrize(
    "truth,answer_type,response,default",
    [
        ("D", "multiple choice", "After all, the answer is\nD", False),  # officially the last line minus "D": ""
        ("D", "multiple choice", "After all, the answer is\nD.", True),
        ("3.142", "float", "The value is\n3.142", False),  # officially "3.14": off by 2e-3
        ("3.142", "float", "The value is\n3.142.", True),
        ("D", "multiple choice", "<think>hmm</think><answer>D</answer>", True),  # the project's format: X itself
        ("3.142", "float", '<answer>{"solution": "s", "short answer": "3.142"}</answer>', True),
    ],
)
def test_dynamath_default_reading_and_leniency(tmp_path, fixtures, truth, answer_type, response, default):
    data = fixtures.jsonl(tmp_path / "d.jsonl", [_dyna(truth, answer_type)])
    preds = [{"pid": "1:1", "response": response}]
    assert score_predictions("dynamath", data, preds)["correct"] == int(default)
    # the leniency never reads less than the default
    lenient = score_predictions("dynamath", data, preds, leniencies=["rewards_extraction"])
    assert lenient["correct"] >= int(default)


# ---- every leniency reads at least what the default reads (item 4)

LENIENCY_CASES = [
    # (benchmark, record, prediction id, responses)
    ("dynamath", _dyna("D", "multiple choice"), "1:1",
     ["so it is D.\nD.", "The answer is D.", "{D}", "so\nD", "I pick (D)", "Choices: A B C D\nE."]),
    ("dynamath", _dyna("2.0", "float"), "1:1", ["x = 2.0.\n2.0.", "The answer is 2.0", "2 apples.\n2.0 ", "3\n2.0."]),
    ("mathvision", {"id": "1", "question": "q", "options": ["1", "2", "3"], "answer": "B", "level": 1, "subject": "s"}, "1",
     ["The answer is B.", "(B)\nbecause", "I think 2.", "the answer is 3. Or rather \\boxed{B}", "Final Answer: 2"]),
    ("mathvision", {"id": "1", "question": "q", "options": [], "answer": "\\frac{1}{2}", "level": 1, "subject": "s"}, "1",
     ["The answer is 0.5.", "\\boxed{\\frac{1}{2}}", "so it is 1/2", "Final Answer: 0.5", "0.5 or 0.25"]),
    ("wemath", {"ID": "1", "key": "2steps_1", "question": "q", "option": "A. 1; B. 2", "answer": "B"}, "1@2steps_1",
     ["Answer: B", "the answer is B", "B", "\\boxed{B}", "Answer: A. Actually B"]),
    ("mmmath", {"id": "a", "question": "q", "solution": "所以 \\boxed{6}"}, "a",
     ["\\boxed{6}", "the answer is 6", "Final Answer: 6", "\\boxed{5} then 6"]),
]


@pytest.mark.parametrize("bench,record,pid,responses", LENIENCY_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_rewards_extraction_never_reads_less_than_the_default(tmp_path, fixtures, bench, record, pid, responses):
    data = fixtures.jsonl(tmp_path / "d.jsonl", [record])
    for response in responses:
        preds = [{"pid": pid, "response": response}]
        default = score_predictions(bench, data, preds)["correct"]
        lenient = score_predictions(bench, data, preds, leniencies=["rewards_extraction"])["correct"]
        assert lenient >= default, (bench, response)


# ---- MATH-V: values read as latex2sympy2 reads them (the parser the official script imports)


@pytest.mark.parametrize(
    "truth,answer,equal",
    [
        ("$\\frac{1}{6}$", "\\frac{1}{6}", True),  # an option text in dollars is a value officially
        ("$2 \\sqrt{13}$", "2\\sqrt{13}", True),
        ("$9(\\pi-2)$", "9(\\pi-2)", True),
        ("$\\frac{3 \\pi}{2}$", "4.71", True),
        ("$40\\pi/3$", "\\frac{40\\pi}{3}", True),
        ("$8: 5$", "8:5", True),
        ("$\\displaystyle \\frac{3}{4}$", "0.75", True),
        ("$6\\frac{1}{4}$", "6.25", True),
        ("$2 \\cdot 4 \\cdot 3$", "24", True),
        ("\\frac{\\sqrt{21}}{5}", "\\frac{\\sqrt{21}}{5}}isthevalueof\\sin{t", True),  # the longest expression read
        ("5", "5.so,evenwithoutthediagram", True),
        ("4", "{4}", True),  # a group, not a set
        ("$40^{\\circ}$", "40", False),  # latex2sympy2 has no degree sign: no value
        ("$-\\!2$", "-2", False),
        ("$2\\pi$", "2π", False),  # non-ASCII
        ("$\\boxed{\\frac{3}{4}}$", "\\frac{3}{4}", False),
        ("$\\frac{1}{6}$", "\\frac{1}{5}", False),
        ("$2 \\sqrt{13}$", "2\\sqrt{12}", False),
    ],
)
def test_mathvision_values_read_as_the_official_parser_reads_them(truth, answer, equal):
    assert is_equal(truth, answer) is equal


def test_latex2sympy2_reading_raises_where_latex2sympy2_fails():
    for text in ("40^{\\circ}", "\\boxed{3}", "-\\!2", "2π", "3\\sqrt{3}-\\pi \\$"):
        with pytest.raises(ValueError):
            latex2sympy2_reading(text)
