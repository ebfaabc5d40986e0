"""MathVista: every rule of calculate_score.py's normalisation, then end-to-end scoring of both releases."""

from __future__ import annotations

import json

import httpx
import pytest

from visionr1.evaluation.benchmarks.mathvista import normalize_extracted_answer
from visionr1.evaluation.judge import EvalJudge, JudgeConfig
from visionr1.evaluation.score import score_predictions

CHOICES = ["3/11", "8/11", "6/11", "3/5"]
MC = ("multi_choice", "text")

# (extraction, choices, (question_type, answer_type), precision, expected normalisation, rule exercised)
CASES = [
    ("(B)", CHOICES, MC, None, "8/11", "letter in parentheses -> option text"),
    ("(b)", CHOICES, MC, None, "8/11", "parenthesised letter is upper-cased"),
    ("The answer is (C) 6/11", CHOICES, MC, None, "6/11", "first (X) anywhere in the text"),
    ("C", CHOICES, MC, None, "6/11", "bare option letter -> option text"),
    ("  D  ", CHOICES, MC, None, "3/5", "extraction is stripped first"),
    ("8/11", CHOICES, MC, None, "8/11", "option text: nearest option is itself"),
    ("8/11.", CHOICES, MC, None, "8/11", "nearest option by Levenshtein distance"),
    ("B. 8/11", CHOICES, MC, None, "8/11", "letter without parentheses + text: nearest option"),
    ("c", CHOICES, MC, None, "3/5", "bare lowercase letter is not an option letter: nearest (shortest) option"),
    ("E", CHOICES, MC, None, "3/5", "letter past the last option: nearest option"),
    ("", CHOICES, MC, None, "3/5", "empty extraction: nearest = shortest option"),
    ("", ["ab", "cd"], MC, None, "ab", "Levenshtein ties go to the first option"),
    (None, ["Nothing", "None"], MC, None, "None", "non-string extraction is str()-ed"),
    ("3.9", None, ("free_form", "integer"), None, "3", "integer: str(int(float(x))) truncates"),
    ("-2.7", None, ("free_form", "integer"), None, "-2", "integer truncation is toward zero"),
    ("12.0", None, ("free_form", "integer"), None, "12", "integer from a float string"),
    ("1e3", None, ("free_form", "integer"), None, "1000", "integer from scientific notation"),
    ("007", None, ("free_form", "integer"), None, "7", "integer loses leading zeros"),
    ("1,000", None, ("free_form", "integer"), None, None, "integer: thousands separator does not parse"),
    ("ten", None, ("free_form", "integer"), None, None, "integer: words do not parse"),
    (None, None, ("free_form", "integer"), None, None, "integer: no extraction"),
    ("1.25", None, ("free_form", "float"), 1, "1.2", "float: round() to precision (half to even)"),
    ("1.35", None, ("free_form", "float"), 1, "1.4", "float: round() of the binary value"),
    ("3.14159", None, ("free_form", "float"), 2, "3.14", "float: two decimals"),
    ("2", None, ("free_form", "float"), 1, "2.0", "float: an integer gains '.0'"),
    ("3.7", None, ("free_form", "float"), None, "4", "float without precision: round(x, None) -> int"),
    ("1.2 cm", None, ("free_form", "float"), 1, None, "float: units do not parse"),
    ("[1, 2]", None, ("free_form", "list"), None, "[1, 2]", "list: str(x)"),
    ("[1,2]", None, ("free_form", "list"), None, "[1,2]", "list: spacing is kept as written"),
    ("quarter", None, ("free_form", "text"), None, "quarter", "free-form text: unchanged"),
]


@pytest.mark.parametrize(("extraction", "choices", "types", "precision", "expected", "rule"), CASES, ids=[c[-1] for c in CASES])
def test_normalization_rules(extraction, choices, types, precision, expected, rule):
    assert normalize_extracted_answer(extraction, choices, types[0], types[1], precision) == expected


def _record(pid, question, answer, qt="free_form", at="integer", choices=None, precision=None, **meta):
    return {
        "question": question, "image": f"images/{pid}.jpg", "choices": choices, "unit": None,
        "precision": precision, "answer": answer, "question_type": qt, "answer_type": at, "pid": pid,
        "metadata": {"split": "testmini", "language": "english", "img_width": 32, "img_height": 24,
                     "source": meta.get("source", "CLEVR-Math"), "category": meta.get("category", "math-targeted-vqa"),
                     "task": "math word problem", "context": "synthetic scene", "grade": "elementary school",
                     "skills": meta.get("skills", ["arithmetic reasoning"])},
    }


RECORDS = {
    "1": _record("1", "What fraction is blue?", "8/11", *MC, choices=CHOICES, skills=["arithmetic reasoning", "algebraic reasoning"]),
    "2": _record("2", "How many objects are left?", "3", category="general-vqa"),
    "3": _record("3", "What is d?", "1.2", at="float", precision=1),
    "4": _record("4", "Which years?", "[2007, 2008]", at="list"),
    "5": _record("5", "Which organism?", "Common water flea", "multi_choice", "text",
                 choices=["Tilapia", "Common water flea", "Tadpole"], category="general-vqa"),
    "6": _record("6", "How many?", "5"),
}
RESPONSES = {
    "1": "<think>blue is 8 of 11</think><answer>(B) 8/11</answer>",  # tag -> letter -> option text
    "2": "<think>5 minus 2</think><answer> Final Answer: 3.9 </answer>",  # truncation makes 3.9 right
    "3": "So the distance is \\boxed{1.25}",  # float rounded to precision 1 -> 1.2
    "4": "The answer is [2007, 2008]",  # list as a string
    "5": "Common water flea",  # the response is an option
    # "6": no prediction -> counted, wrong
}


def test_scores_official_json_release(tmp_path, fixtures):
    data = fixtures.json(tmp_path / "data" / "testmini.json", RECORDS)
    preds = fixtures.predictions(tmp_path / "preds.jsonl", RESPONSES)
    summary = score_predictions("mathvista", data, preds, tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (6, 5)
    assert summary["accuracy"] == pytest.approx(5 / 6)
    assert summary["missing_predictions"] == {"count": 1, "ids": ["6"]}
    assert summary["scoring"]["method"] == "rules"
    assert summary["scoring"]["extraction"]["missing"] == 1
    assert summary["breakdowns"]["category"]["math-targeted-vqa"] == {"accuracy": 0.75, "correct": 3, "total": 4}
    assert summary["breakdowns"]["skills"]["algebraic reasoning"]["correct"] == 1
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    by_id = {i["pid"]: i for i in items}
    assert by_id["1"]["extracted"] == "B" and by_id["1"]["normalized"] == "8/11"  # the letter, as GPT-4 writes it
    assert by_id["2"]["normalized"] == "3" and by_id["2"]["correct"] is True
    assert by_id["3"]["normalized"] == "1.2"
    assert by_id["6"]["source"] == "missing" and by_id["6"]["correct"] is False
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["accuracy"] == summary["accuracy"]


def test_scores_hugging_face_parquet_release(tmp_path, fixtures):
    """The HF copy: a list of rows, precision as a float (NaN for none), metadata a struct, images embedded."""
    rows = []
    for rec in RECORDS.values():
        row = dict(rec, query=f"Hint: ...\nQuestion: {rec['question']}", decoded_image={"bytes": fixtures.png(), "path": None})
        row["precision"] = float("nan") if rec["precision"] is None else float(rec["precision"])
        row["choices"] = rec["choices"]
        rows.append(row)
    data = fixtures.parquet(tmp_path / "testmini-00000-of-00001.parquet", rows)
    preds = fixtures.predictions(tmp_path / "preds.jsonl", RESPONSES)
    summary = score_predictions("mathvista", data, preds, tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (6, 5)


def test_unknown_prediction_ids_are_an_error_that_names_them(tmp_path, fixtures):
    from visionr1.evaluation.records import EvalError

    data = fixtures.json(tmp_path / "testmini.json", RECORDS)
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {**RESPONSES, "999": "3"})
    with pytest.raises(EvalError, match="999"):
        score_predictions("mathvista", data, preds, tmp_path / "out")
    summary = score_predictions("mathvista", data, preds, tmp_path / "out", unknown="warn")
    assert summary["unknown_prediction_ids"] == {"count": 1, "ids": ["999"]}


def test_last_resort_answer_goes_to_the_llm_only_when_configured(tmp_path, fixtures):
    """A thought cut off mid-way is read (the official LLM extractor reads the whole response), but only its
    last number says anything: rules keep that guess and count it; a judge (fallback mode) is asked instead."""
    data = fixtures.json(tmp_path / "testmini.json", {"2": RECORDS["2"]})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {"2": "<think>there were 5, two leave, so 3 rem"})
    rules = score_predictions("mathvista", data, preds)
    assert rules["correct"] == 1 and rules["scoring"]["last_resorts"] == {"kept": 1, "sent_to_llm": 0}

    prompts = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompts.append(body["messages"][0]["content"])
        return httpx.Response(200, json={"choices": [{"message": {"content": "3"}}]})

    judge = EvalJudge(JudgeConfig("http://judge.local/v1", "gpt-4", mode="fallback"), transport=httpx.MockTransport(handler))
    summary = score_predictions("mathvista", data, preds, judge=judge)
    assert summary["correct"] == 1
    assert summary["scoring"]["items_needing_llm"] == 1 and summary["scoring"]["method"] == "rules + llm fallback"
    assert summary["scoring"]["llm"]["calls"] == 1
    assert summary["scoring"]["last_resorts"] == {"kept": 0, "sent_to_llm": 1}
    assert prompts[0].startswith("Please read the following example.") and prompts[0].endswith("Extracted answer: ")


# What an LLM extractor would hand the official normalisation. (record, response, correct?)
LLM_FORM_CASES = [
    (_record("a", "What is p?", "0.333", at="float", precision=3), r"<answer>\frac{1}{3}</answer>", True),
    (_record("b", "What is p?", "0.33", at="float", precision=2), r"So $p = \frac{1}{3}$, the answer is $\frac13$.", True),
    (_record("c", "How long? (Unit: cm)", "5"), "<answer>5 cm</answer>", True),
    (_record("d", "Find the angle.", "45"), "The answer is 45°.", True),
    (_record("e", "How many?", "1000"), "<answer>1,000</answer>", True),
    (_record("f", "Find x.", "9"), "The value of x is 9.", True),
    (_record("g", "Find x.", "9"), "<answer>The value of x is 9.</answer>", True),
    (_record("h", "Find x.", "9"), "<answer>x = 8</answer>", False),
    (_record("i", "Is it bigger?", "No", "multi_choice", "text", choices=["Yes", "No"]), "No, the blue bar is shorter.", True),
    (_record("j", "Is it bigger?", "Yes", "multi_choice", "text", choices=["Yes", "No"]), "No, the blue bar is shorter.", False),
    (_record("k", "What time?", "quarter past", "multi_choice", "text", choices=["half", "quarter", "o'clock", "quarter to", "quarter past"]),
     "The hands point to 8:15, so it is quarter past eight.", True),
    (_record("l", "Which?", "8/11", *MC, choices=CHOICES), "Counting the squares, eight of eleven are blue, so (B).", True),
    (_record("m", "Which?", "8/11", *MC, choices=CHOICES), "Eight of the eleven squares are blue: 8/11 of the shape.", True),
    # published outputs (lupantech/MathVista results/): GPT-4's extraction reads these as shown
    (_record("o", "Is Chartreuse the roughest?", "no", "multi_choice", "text", choices=["yes", "no"]),
     "C. No, Chartreuse is not the roughest, as it is a softer color. The roughest color option is D (Teal).", True),
    (_record("p", "Which?", "LangRoom", "multi_choice", "text", choices=["HomeGrid", "Msgr S1", "Msgr S2", "LangRoom"]),
     "Based on the table, the environment with the least GPU days is option (C) Msgr S2.</s>", False),
]


@pytest.mark.parametrize(("record", "response", "correct"), LLM_FORM_CASES, ids=[c[0]["pid"] for c in LLM_FORM_CASES])
def test_rules_hand_the_normalisation_what_an_llm_would(tmp_path, fixtures, record, response, correct):
    data = fixtures.json(tmp_path / "testmini.json", {record["pid"]: record})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {record["pid"]: response})
    assert score_predictions("mathvista", data, preds)["correct"] == int(correct)


# Prose without a marker, in the styles of published MathVista outputs (short LLaVA/miniGPT-4 replies);
# written here, not copied from the measured files. What GPT-4's extraction reads: (record, response, correct?)
_YN = {"qt": "multi_choice", "at": "text", "choices": ["Yes", "No"]}
PROSE_CASES = [
    # the option's text up to a suffix: singular for plural, "slight" for "Slightly"
    (_record("s1", "Which animal eats the grass?", "Rabbits", "multi_choice", "text", choices=["Hawks", "Rabbits", "Snakes"]),
     "The animal that eats the grass in this food web would be the rabbit.", True),
    (_record("s2", "Which animal eats the grass?", "Hawks", "multi_choice", "text", choices=["Hawks", "Rabbits", "Snakes"]),
     "The animal that eats the grass in this food web would be the rabbit.", False),
    (_record("s3", "What happens to the deer?", "Slightly increase", "multi_choice", "text",
             choices=["Increase", "Slightly increase", "Decrease"]), "The deer population would show a slight increase.", True),
    # most of one option's content words, none of the others'
    (_record("w1", "Which months are warmest?", "June and July", "multi_choice", "text",
             choices=["January and February", "June and July", "October and November"]),
     "According to the graph, the warmest month in Madrid is July.", True),
    (_record("w2", "What happens to the owls if mice decrease?", "Owls will decrease", "multi_choice", "text",
             choices=["Owls will increase", "Owls will decrease", "Nothing"]),
     "If the mice decrease, the owl population will likely decrease too, as owls feed on mice.", True),
    (_record("w3", "Which is largest?", "Metals", "multi_choice", "text", choices=["Metals", "Plastics", "Glass"]),
     "The image does not show enough to say which category is the largest.", False),
    # a statement answers a Yes/No question: negated -> No, else Yes
    (_record("y1", "Is this function continuous?", "Yes", **_YN), "The function is continuous.", True),
    (_record("y2", "Is this function continuous?", "Yes", **_YN), "The function is not continuous at x = 0.", False),
    (_record("y3", "Does Dark Cyan have the lowest value?", "No", **_YN),
     "Based on the chart, Dark Cyan does not have the lowest value; Olive does.", True),
    (_record("y4", "Are there fewer cubes than balls?", "No", **_YN), "Based on the image, there are fewer cubes than balls.", False),
    # numbers in sentences: number words, the sentence that answers, not the data listed around it
    (_record("n1", "How many objects are left?", "5"), "After removing the red spheres, there are five objects left.", True),
    (_record("n2", "How many objects are left?", "7"), "After removing the red spheres, there are five objects left.", False),
    (_record("n3", "What is the difference?", "45"),
     "The tallest bar is 70%, and the shortest bar is 25%. The difference between them is 45%.", True),
    (_record("n4", "What was the rate of change?", "6"),
     "The rate of change between 2016 and 2017 was an increase of 6 books. In 2016 there were 14 books, and in 2017 there were 20 books.", True),
    (_record("n5", "In which year was it highest?", "2018"), "The revenue was highest in 2018, with a value of 41.5 million.", True),
    (_record("n6", "What is the value?", "3.5", at="float", precision=1),
     "Each step adds 0.5. Therefore, the value at the fifth step is 3.5.", True),
    (_record("n9", "What is the smallest value?", "1"),
     "The values are 10, 20 and 30. Therefore, the smallest one is Step 1 with a value of 10.", False),
    (_record("n7", "How many people?", "2"), "I cannot tell how many people are in the image.", False),
    (_record("n8", "Find x.", "2"), "The length of BC is 2*x in this triangle.", False),
]


@pytest.mark.parametrize(("record", "response", "correct"), PROSE_CASES, ids=[c[0]["pid"] for c in PROSE_CASES])
def test_prose_answers_are_read_as_an_llm_extractor_reads_them(tmp_path, fixtures, record, response, correct):
    data = fixtures.json(tmp_path / "testmini.json", {record["pid"]: record})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {record["pid"]: response})
    assert score_predictions("mathvista", data, preds)["correct"] == int(correct)


# Round 2 (issue 12), classes found on the wider published sample; own examples in those styles. Each class
# has cases that must stay wrong. These replies state an answer (or, free form, none: wrong either way), so
# the default and ``--strict no_answer`` score them alike.
_MC = {"qt": "multi_choice", "at": "text"}
_DOTS = "Fill in the blank to describe the model. The model has 6 dots divided into 2 equal groups. There are (_) dots in each group."
ROUND2_CASES = [
    # Chinese answer marks: 答案:C, 所以答案是B, 最接近的是D)
    (_record("c1", "如图，则周长为（）", "12", **_MC, choices=["10", "11", "12", "13"]),
     "* 由勾股定理, BC=√(3²+4²)=5\n* 所以周长约为11.8,与选项最接近的是C) 12\n\n答案:C", True),
    (_record("c2", "如图，则周长为（）", "11", **_MC, choices=["10", "11", "12", "13"]),
     "* 由勾股定理, BC=√(3²+4²)=5\n* 所以周长约为11.8,与选项最接近的是C) 12\n\n答案:C", False),
    (_record("c3", "如图，则x的值为（）", "4", **_MC, choices=["3", "4", "5", "6"]), "由相似三角形得 x = 8/2 = 4\n\n因此,x 的值为 B) 4\n\n所以答案是B", True),
    # program of thought: the printed result is the answer; a free-form program that printed nothing answers
    # nothing (wrong in both modes: the official normalisation maps no free-form text onto a value)
    (_record("p1", "f(-1) is ____ f(0).", "smaller than", **_MC, choices=["larger than", "equal to", "smaller than"]), "smaller than", True),
    (_record("p3", "When does the function value first reach 3?", "3"),
     "import numpy as np\n\ndef f(x):\n    return x**2 - 6*x + 12\n\nfor x in np.linspace(0, 10, 1000):\n    if f(x) == 3:\n        print(x)\n        break", False),
    (_record("p4", "How many objects are left?", "4"),
     "cubes = 5\nballs = 3\n\nremaining = total - (cubes + balls)\nprint(remaining)", False),
    # Yes/No by the comparison the question asks: a reply restating it the other way round answers No
    (_record("q1", "Is the number of red cubes less than the number of blue balls?", "No", **_YN),
     "Based on the image, there are more red cubes than blue balls.", True),
    (_record("q2", "Is the number of red cubes less than the number of blue balls?", "Yes", **_YN),
     "Based on the image, there are more red cubes than blue balls.", False),
    (_record("q3", "Are there fewer cubes than balls?", "Yes", **_YN), "There are more balls than cubes in the image.", True),
    (_record("q4", "Is Web Green the minimum?", "No", **_YN), "Web Green has the maximum value in the chart.", True),
    (_record("q5", "Is Web Green the minimum?", "Yes", **_YN), "Web Green has the maximum value in the chart.", False),
    # numbers: the result of a worked sum, the number the question's "which <noun>" asks for, a stated total
    (_record("x1", "What is the perimeter of the shape?", "20"),
     "All four sides are 5 m long. Therefore, the perimeter of the square is 5 + 5 + 5 + 5 = **20 m**.", True),
    (_record("x2", "What is the perimeter of the shape?", "5"),
     "All four sides are 5 m long. Therefore, the perimeter of the square is 5 + 5 + 5 + 5 = **20 m**.", False),
    (_record("x3", "In which week is the total sales the highest?", "4"),
     "Sales grow from 100 units in week 1 to 250 units in week 4. Therefore, the highest total sales is 250 units, which occurs in week 4.", True),
    (_record("x4", "In which week is the total sales the highest?", "250"),
     "Sales grow from 100 units in week 1 to 250 units in week 4. Therefore, the highest total sales is 250 units, which occurs in week 4.", False),
    (_record("x5", "How many balls are there?", "7"), "There are 4 red and 3 blue balls, for a total of 7 balls.", True),
    (_record("x6", _DOTS, "3"), "The model has 3 groups of 6 dots, for a total of 18 dots.", False),
    (_record("x7", _DOTS, "3"), "Sure! Here is the answer:\n\nThe model has 6 dots divided into 2 equal groups. There are 3 dots in each group.", True),
    (_record("x8", "What percentage of the circle is shaded?", "40"), "Approximately 40% of the circle is shaded.", True),
    (_record("x9", "What percentage of the circle is shaded?", "60"), "Approximately 40% of the circle is shaded.", False),
]


@pytest.mark.parametrize(("record", "response", "correct"), ROUND2_CASES, ids=[c[0]["pid"] for c in ROUND2_CASES])
def test_round2_classes_from_the_wider_published_sample(tmp_path, fixtures, record, response, correct):
    data = fixtures.json(tmp_path / "testmini.json", {record["pid"]: record})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {record["pid"]: response})
    assert score_predictions("mathvista", data, preds)["correct"] == int(correct)


# Multiple-choice replies in which the rules find no answer (issue 12: the default is the official number).
# calculate_score.py maps whatever GPT-4 extracted from such a reply onto the nearest option by Levenshtein
# distance; by default the rules hand it what the reply offers, so the default lands where that mapping
# does: the first "(X)" of an option list (a letter past the options is itself mapped by edit distance), the
# nearest option to a refusal's text, to a hedge's "B (13) and C (26)", to "Equal". ``--strict no_answer``
# scores every one wrong. Own examples in the published styles.
# (record, response, option the default's edit-distance mapping lands on, default correct?)
NO_ANSWER_CASES = [
    # option echo
    (_record("e1", "Is it positive?", "Yes", **_YN), "(C) Yes\n(D) No", "No", False),  # "C" is nearer "No"
    (_record("e2", "Is it positive?", "No", **_YN), "(C) Yes\n(D) No", "No", True),
    (_record("e3", "Find the angle.", "40°", **_MC, choices=["40°", "50°", "60°", "70°"]),
     "(E) 80°\n(F) 90°\n(G) 100°\n(H) 110°", "40°", True),  # "E": every option at distance 3, the first wins
    (_record("e4", "Find tan A.", "0.6", **_MC, choices=["0.25", "0.6", "0.75"]), "(E) 0.5", "0.6", True),
    (_record("e5", "Which bar is tallest?", "B", **_MC, choices=["A", "B", "C", "D"]), "(A) A\n(B) B\n(C) C\n(D) D", "A", False),
    # refusals
    (_record("r1", "Was the cake round?", "No", **_YN),
     "The text does not provide information on whether the cake was round.\n\nThus, the answer cannot be determined.", "Yes", False),
    (_record("r2", "Was the cake round?", "Yes", **_YN),
     "The text does not provide information on whether the cake was round.\n\nThus, the answer cannot be determined.", "Yes", True),
    (_record("r3", "Is it split in half?", "Yes", **_YN),
     "There is not enough context to know what \"it\" refers to, so I am unable to select option A or B.", "Yes", True),
    (_record("r4", "Is this function odd?", "No", **_YN), "The solution cannot be provided as the function is not specified.", "Yes", False),
    (_record("r5", "Which model scores best?", "Uniform", **_MC, choices=["Identity", "Uniform", "Soft"]),
     "The solution cannot be provided without the chart of the scores.", "Identity", False),
    (_record("w3", "Which is largest?", "Metals", "multi_choice", "text", choices=["Metals", "Plastics", "Glass"]),
     "The image does not show enough to say which category is the largest.", "Plastics", False),  # as in PROSE_CASES
    # a hedge between two options
    (_record("h1", "What are the diagonals?", "26", **_MC, choices=["6.5", "13", "26", "52"]),
     "Solving gives x = 13 and 2x = 26. So, the answer is B (13) and C (26).", "13", False),
    (_record("h2", "What are the diagonals?", "13", **_MC, choices=["6.5", "13", "26", "52"]),
     "Solving gives x = 13 and 2x = 26. So, the answer is B (13) and C (26).", "13", True),
    # no option named: a word, not a statement ("Equal" is at distance 5 from both, the first wins)
    (_record("o1", "Are there fewer cubes than balls?", "Yes", **_YN), "Equal", "Yes", True),
    (_record("o2", "Are there fewer cubes than balls?", "No", **_YN), "Equal", "Yes", False),
    # a program of thought that printed nothing (its source is what the reply offers)
    (_record("g1", "Which is larger?", "a", **_MC, choices=["a", "b"]), "a = 3\nb = 4\nresult = max(a, b)\nprint(result)", "a", True),
    (_record("g2", "Which is larger?", "b", **_MC, choices=["a", "b"]), "a = 3\nb = 4\nresult = max(a, b)\nprint(result)", "a", False),
]


def _score_one(tmp_path, fixtures, record, response, strict=()):
    data = fixtures.json(tmp_path / "testmini.json", {record["pid"]: record})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {record["pid"]: response})
    out = tmp_path / ("strict" if strict else "default")
    summary = score_predictions("mathvista", data, preds, out, strict=strict)
    item = json.loads((out / "items.jsonl").read_text(encoding="utf-8"))
    return summary, item


@pytest.mark.parametrize(("record", "response", "option", "correct"), NO_ANSWER_CASES,
                         ids=[c[0]["pid"] for c in NO_ANSWER_CASES])
def test_no_answer_is_mapped_as_the_official_script_maps_it_unless_strict(tmp_path, fixtures, record, response, option, correct):
    summary, item = _score_one(tmp_path, fixtures, record, response)
    assert (item["normalized"], item["correct"]) == (option, correct)
    assert item["info"]["no_answer"] == "edit_distance"
    assert summary["metrics"]["no_answer"] == {"count": 1, "edit_distance": 1, "edit_distance_correct": int(correct), "wrong": 0}
    assert summary["scoring"]["strict"] == []

    summary, item = _score_one(tmp_path, fixtures, record, response, strict=["no_answer"])
    assert (item["normalized"], item["correct"]) == (None, False)
    assert summary["metrics"]["no_answer"] == {"count": 1, "edit_distance": 0, "edit_distance_correct": 0, "wrong": 1}
    assert summary["scoring"]["strict"] == ["no_answer"]


_NO_ANSWER_IDS = {c[0]["pid"] for c in NO_ANSWER_CASES}
_ANSWERED = [c for c in LLM_FORM_CASES + PROSE_CASES + ROUND2_CASES if c[0]["pid"] not in _NO_ANSWER_IDS]


@pytest.mark.parametrize(("record", "response", "correct"), _ANSWERED, ids=[c[0]["pid"] for c in _ANSWERED])
def test_answered_replies_score_alike_in_both_modes(tmp_path, fixtures, record, response, correct):
    default, item = _score_one(tmp_path, fixtures, record, response)
    strict, strict_item = _score_one(tmp_path, fixtures, record, response, strict=["no_answer"])
    assert default["correct"] == strict["correct"] == int(correct)
    assert item == strict_item
    assert default["metrics"]["no_answer"]["edit_distance"] == 0


def test_strict_option_from_the_command_line_and_unknown_names(tmp_path, fixtures):
    from typer.testing import CliRunner

    from visionr1.cli import app
    from visionr1.evaluation.records import EvalError

    record = _record("e2", "Is it positive?", "No", **_YN)
    data = fixtures.json(tmp_path / "testmini.json", {"e2": record})
    preds = fixtures.predictions(tmp_path / "preds.jsonl", {"e2": "(C) Yes\n(D) No"})
    runner = CliRunner()
    for extra, accuracy in (([], 1.0), (["--strict", "no_answer"], 0.0)):
        out = tmp_path / f"out{len(extra)}"
        res = runner.invoke(app, ["eval", "score", "-b", "mathvista", "--data", str(data), "--predictions", str(preds),
                                  "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert summary["accuracy"] == accuracy and summary["scoring"]["strict"] == extra[1:]
    with pytest.raises(EvalError, match="no_answer"):
        score_predictions("mathvista", data, preds, strict=["no-answer"])
