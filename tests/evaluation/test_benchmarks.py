"""Scoring tests for MathVerse, MM-Math, MathVision, DynaMath, WeMath and the synthetic tasks, each on a
small file in the benchmark's published format; expected numbers are worked out by hand from the rules."""

from __future__ import annotations

import json

import httpx
import pytest

from visionr1.evaluation.judge import EvalJudge, JudgeConfig
from visionr1.evaluation.score import score_predictions


def _items(out_dir):
    return {i["pid"]: i for i in map(json.loads, (out_dir / "items.jsonl").read_text().splitlines())}


# ------------------------------------------------------------------------------------------------ MathVerse


def _mathverse(idx, version, question, answer, qtype):
    return {
        "sample_index": str(idx), "problem_index": "685", "problem_version": version, "question": question,
        "image": "images_version_1-4/image_685.png", "answer": answer, "question_type": qtype,
        "metadata": {"split": "testmini", "source": "Geo3D_collected", "subject": "Plane Geometry", "subfield": "Length"},
        "query_wo": "Please directly answer the question...", "query_cot": "Please first conduct reasoning...",
    }


MC_Q = "As shown, find AB.\nChoices:\nA:4\nB:6\nC:8\nD:10"
MATHVERSE = [
    _mathverse(1, "Text Dominant", MC_Q, "B", "multi-choice"),
    _mathverse(2, "Vision Only", "", "B", "multi-choice"),
    _mathverse(3, "Text Lite", MC_Q, "B", "multi-choice"),
    _mathverse(4, "Vision Intensive", "Find L.", "14", "free-form"),
    _mathverse(5, "Vision Dominant", "Find the ratio.", "\\frac{1}{2}", "free-form"),
    _mathverse(6, "Text Dominant", "Find d.", "22.3", "free-form"),
    _mathverse(7, "Text Lite", "Find d.", "22.3", "free-form"),
]


def test_mathverse_rule_judge(tmp_path, fixtures):
    data = fixtures.json(tmp_path / "testmini.json", MATHVERSE)
    preds = fixtures.predictions(tmp_path / "p.jsonl", {
        "1": "<think>AB=6</think><answer>B</answer>",
        "2": "<think>...</think><answer>(B)</answer>",
        "3": "<think>...</think><answer>6</answer>",  # the option's text names option B
        "4": "so L = \\boxed{14}",
        "5": "<answer>0.5</answer>",  # equivalent value
        "6": "<answer>22.4</answer>",
    }, id_field="sample_index")
    summary = score_predictions("mathverse", data, preds, tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (7, 5)
    assert summary["missing_predictions"]["ids"] == ["7"]
    assert summary["breakdowns"]["problem_version"]["Text Dominant"] == {"accuracy": 0.5, "correct": 1, "total": 2}
    assert _items(tmp_path / "out")["3"]["normalized"] == "B"


def test_mathverse_official_llm_stages(tmp_path, fixtures):
    seen = []

    def handler(request):
        prompt = json.loads(request.content)["messages"][0]["content"]
        seen.append(prompt)
        reply = "1" if prompt.endswith("Judgement:") else "Extracted Answer: 50 cm"
        return httpx.Response(200, json={"choices": [{"message": {"content": reply}}]})

    data = fixtures.json(tmp_path / "testmini.json", [MATHVERSE[5]])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"6": "about half a metre, 50 cm"})
    judge = EvalJudge(JudgeConfig("http://judge.local/v1", "m", mode="official"), transport=httpx.MockTransport(handler))
    summary = score_predictions("mathverse", data, preds, tmp_path / "out", judge=judge)
    assert summary["correct"] == 1
    assert summary["scoring"]["method"] == "llm" and summary["scoring"]["judged_by"] == {"rules": 0, "llm": 1}
    assert "[Standard Answer]: 22.3" in seen[1] and "[Model_answer] : 50 cm" in seen[1]
    assert _items(tmp_path / "out")["6"]["extracted"] == "50 cm"


# ------------------------------------------------------------------------------------------------ MM-Math


def _mm(solution, difficult="容易", year="七年级上学期", knowledge=("Functions",)):
    return {"question": "求值", "file_name": "x.png", "solution": f"解：……所以 {solution}", "year": year,
            "difficult": difficult, "knowledge": list(knowledge)}


MMMATH = {
    "a": _mm("\\boxed{3}"),
    "b": _mm("\\boxed{0.25}", difficult="普通"),
    "c": _mm("\\boxed{2} 和 \\boxed{-3}", year="八年级下学期"),
    "d": _mm("\\boxed{60^\\circ}", knowledge=("Properties of Shapes",)),
    "e": _mm("\\boxed{(1,3]}"),
    "f": _mm("\\boxed{y=2x+1}"),
    "g": _mm("\\boxed{5}", difficult="困难"),
    "h": _mm("\\boxed{\\frac{\\sqrt{3}}{2}}"),
    "i": {"question": "q", "file_name": "i.png", "solution": "答案是 7", "year": "九年级上学期", "difficult": "容易", "knowledge": []},
}


@pytest.mark.parametrize(("pid", "response", "correct"), [
    ("a", "<think>3</think><answer>\\boxed{3.004}</answer>", True),  # within 1e-2
    ("b", "\\boxed{25}", True),  # a percentage: truth x100
    ("c", "\\boxed{-3}, \\boxed{2}", True),  # several answers, any order
    ("d", "<answer>Final Answer: 60</answer>", True),  # degrees stripped; no \boxed: rewards' extraction
    ("e", "\\boxed{(1, 3]}", True),  # interval
    ("f", "\\boxed{2x-y+1=0}", True),  # equivalent equation
    ("g", "\\boxed{6}", False),
    ("h", "\\boxed{0.866}", True),  # numeric value of an expression, within 1e-2
    ("i", "\\boxed{7}", False),  # the truth has no \boxed: scored 0, as the official script does
])
def test_mmmath_rule_judge_cases(tmp_path, fixtures, pid, response, correct):
    data = fixtures.json(tmp_path / "mm_math.json", {pid: MMMATH[pid]})
    preds = fixtures.predictions(tmp_path / "p.jsonl", {pid: response})
    assert score_predictions("mmmath", data, preds)["correct"] == int(correct)


def test_mmmath_summary_breakdowns(tmp_path, fixtures):
    data = fixtures.jsonl(tmp_path / "mm_math.jsonl", [dict(v, id=k) for k, v in MMMATH.items()])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"a": "\\boxed{3}", "d": "Final Answer: 60", "g": "\\boxed{5}", "i": "\\boxed{7}"})
    summary = score_predictions("mmmath", data, preds, tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (9, 2)  # officially a reply without \boxed{} scores 0 ("d")
    lenient = score_predictions("mmmath", data, preds, leniencies=["rewards_extraction"])
    assert lenient["correct"] == 3 and lenient["scoring"]["extraction"]["answer_rules"] == 1
    assert summary["breakdowns"]["difficulty"]["hard"] == {"accuracy": 1.0, "correct": 1, "total": 1}
    assert summary["breakdowns"]["grade"]["seven"]["total"] == 7
    assert summary["breakdowns"]["knowledge"]["shape"]["correct"] == 0  # "d", right only with the leniency
    assert lenient["breakdowns"]["knowledge"]["shape"]["correct"] == 1
    assert summary["metrics"] == {"answers_without_boxed": 1, "truths_without_boxed": 1}


# ------------------------------------------------------------------------------------------------ MathVision


def _mv(pid, answer, options=(), subject="arithmetic", level=1):
    return {"id": pid, "question": "<image1>\nWhat is x?", "options": list(options), "image": f"images/{pid}.jpg",
            "answer": answer, "solution": None, "level": level, "subject": subject}


def test_mathvision_rules(tmp_path, fixtures):
    opts = ["2", "3", "4", "5", "6"]
    data = fixtures.jsonl(tmp_path / "test.jsonl", [
        _mv("1", "C", opts), _mv("2", "C", opts), _mv("3", "0.5", level=2), _mv("4", "(1,2)"),
        _mv("5", "3.14", subject="metric geometry"), _mv("6", "7"), _mv("7", "7"),
    ])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {
        "1": "<think>...</think><answer>C</answer>",
        "2": "<think>...</think><answer>4</answer>",  # the correct option's text
        "3": "the value is \\boxed{\\frac{1}{2}}",  # equal after evaluation, 2 decimals
        "4": "\\boxed{(1,2)}",
        "5": "\\boxed{\\pi}",
        "6": "<think>hmm</think> I believe 8",
        "7": "<think>so the answer is 7",  # no answer for the rules: the official rules read the text
    }, id_field="id")
    summary = score_predictions("mathvision", data, preds, tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (7, 6)
    items = _items(tmp_path / "out")
    assert items["6"]["correct"] is False and items["7"]["source"] == "benchmark_rules"
    assert summary["breakdowns"]["level"]["2"] == {"accuracy": 1.0, "correct": 1, "total": 1}


# ------------------------------------------------------------------------------------------------ DynaMath


def _dyna(seed, truth, answer_type, subject):
    return {"id": str(seed), "question": "q", "image": f"image/image{seed}.png", "ground_truth": truth,
            "answer_type": answer_type, "subject": subject, "knowledge_level": "high school"}


def test_dynamath_average_and_worst_case(tmp_path, fixtures):
    for v in (1, 2, 3):  # the HF layout: one parquet file per variant split
        fixtures.parquet(tmp_path / "data" / f"sample_variant{v}-00000-of-00001.parquet", [
            dict(_dyna(1, "2.0944", "float", "analytic geometry"), decoded_image={"bytes": fixtures.png(), "path": None}),
            dict(_dyna(2, "B", "multiple choice", "statistics"), decoded_image={"bytes": fixtures.png(), "path": None}),
            dict(_dyna(3, "May", "free form", "statistics"), decoded_image={"bytes": fixtures.png(), "path": None}),
        ])
    preds = [
        {"pid": "1:1", "response": '{"solution": "T = 2π/3", "short answer": "2.094"}'},
        {"pid": "1:2", "response": "<answer>2.0944</answer>"},
        {"pid": "1:3", "response": "<answer>2.1</answer>"},  # off by more than 1e-3
        {"id": "2", "variant": 1, "response": '{"short answer": "B"}'},
        {"id": "2", "variant": 2, "response": "<answer>(B) no</answer>"},
        {"id": "2", "variant": 3, "response": "<answer>B</answer>"},
        {"pid": "3:1", "response": "<answer>May</answer>"},
        {"pid": "3:3", "response": "<answer>May</answer>"},
    ]
    fixtures.jsonl(tmp_path / "p.jsonl", preds)
    summary = score_predictions("dynamath", tmp_path / "data", tmp_path / "p.jsonl", tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (9, 7)
    assert summary["metrics"]["average_accuracy"] == pytest.approx(7 / 9)
    assert summary["metrics"]["worst_case_accuracy"] == pytest.approx(1 / 3)  # only seed 2 right in all variants
    assert summary["metrics"]["variants_per_seed"] == {"min": 3, "max": 3}
    assert summary["breakdowns"]["worst_case_subject"]["statistics"] == {"accuracy": 0.5, "correct": 1, "total": 2}
    assert summary["missing_predictions"]["ids"] == ["3:2"]


def test_dynamath_official_dataset_json(tmp_path, fixtures):
    """A generated dataset.json (one variant, keyed by seed, ``answer``/``level``), π as a factor."""
    data = fixtures.json(tmp_path / "dataset.json", {
        "12": {"question": "period?", "answer": "6.2832", "image": "image/image12.png", "answer_type": "float",
               "subject": "analytic geometry", "level": "high school"},
    })
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"12:1": '{"short answer": "2π"}'})
    assert score_predictions("dynamath", data, preds)["correct"] == 1


# ------------------------------------------------------------------------------------------------ WeMath


def _wm(gid, key, answer):
    return {"ID": gid, "split": "testmini", "knowledge concept": f"concept-{key.split('_')[-1]}",
            "question": "q", "option": "A. 1; B. 2; C. 3; D. 4", "answer": answer, "image_path": "img.png",
            "key": key, "question number": 1, "knowledge concept description": "d"}


def test_wemath_four_dimensional_metrics(tmp_path, fixtures):
    # right/wrong pattern per problem: (sub-problems..., composite)
    plan = {"g1": (2, "TTT"), "g2": (2, "TFT"), "g3": (2, "FFT"), "g4": (3, "TTTF"), "g5": (3, "FTTF")}
    records, preds = [], {}
    styles = ["Answer: {}", "<think>..</think><answer>{}</answer>", "<answer> Final Answer: {} </answer>"]
    for gid, (steps, pattern) in plan.items():
        keys = [f"{steps}steps_{i}" for i in range(1, steps + 1)] + [f"{steps}steps_multi"]
        for n, (key, ok) in enumerate(zip(keys, pattern, strict=True)):
            records.append(_wm(gid, key, "A"))
            preds[f"{gid}@{key}"] = styles[n % 3].format("A" if ok == "T" else "B")
    data = fixtures.json(tmp_path / "testmini.json", records)
    fixtures.predictions(tmp_path / "p.jsonl", preds)
    m = score_predictions("wemath", data, tmp_path / "p.jsonl", tmp_path / "out")["metrics"]
    assert m["multi_step_problems"] == 5
    strict, loose = m["strict"], m["loose"]
    assert (strict["IK"]["count"], strict["IG"]["count"], strict["CM"]["count"], strict["RM"]["count"]) == (1, 1, 1, 2)
    assert (loose["CM"]["count"], loose["RM"]["count"]) == (2, 1)
    assert strict["score"] == pytest.approx((5 - 0.5 - 2 - 1) / 5) and loose["score"] == pytest.approx((5 - 0.5 - 1 - 1) / 5)
    assert strict["RM"]["rate"] == pytest.approx(2 / 3) and loose["RM"]["rate"] == pytest.approx(1 / 3)
    assert strict["IK"]["rate"] == pytest.approx(0.2) and loose["CM"]["rate"] == pytest.approx(0.4)
    assert (m["S1"], m["S2"], m["S3"]) == (pytest.approx(8 / 12), 1.0, 0.0)


def test_wemath_official_letter_rule():
    from visionr1.evaluation.benchmarks import Item, ScoringContext, get_benchmark

    bench = get_benchmark("We-Math")
    item = Item("g@2steps_1", _wm("g", "2steps_1", "C"), None)  # type: ignore[arg-type]
    ctx = ScoringContext()
    assert bench.score(item, "reasoning...\nAnswer: C.", ctx).correct
    assert bench.score(item, "<answer>C</answer>", ctx).correct
    assert not bench.score(item, "I am not sure", ctx).correct


# ------------------------------------------------------------------------------------------------ synthetic


def test_synthetic_scored_by_the_reward_library(tmp_path, fixtures):
    from visionr1.tasks.synthetic import make_synthetic

    make_synthetic("choice", 4, 0, tmp_path / "syn", test_fraction=0.5)
    rows = [json.loads(line) for line in (tmp_path / "syn" / "test.jsonl").read_text().splitlines()]
    right, wrong = rows
    fixtures.predictions(tmp_path / "p.jsonl", {
        right["id"]: f"<think>look</think><answer>{right['solution']}</answer>",
        wrong["id"]: "no tags, answer Z",
    })
    summary = score_predictions("synthetic", tmp_path / "syn", tmp_path / "p.jsonl", tmp_path / "out")
    assert (summary["n"], summary["correct"]) == (2, 1)
    assert summary["metrics"] == {"format": 0.5, "hard_format_result": 0.5}


def test_dynamath_files_without_a_variant_are_refused(tmp_path, fixtures):
    from visionr1.evaluation.records import EvalError

    for name in ("a.parquet", "b.parquet"):
        fixtures.parquet(tmp_path / "d" / name, [_dyna(1, "B", "multiple choice", "statistics")])
    fixtures.predictions(tmp_path / "p.jsonl", {"1:1": "B"})
    with pytest.raises(EvalError, match="which variant is this file"):
        score_predictions("dynamath", tmp_path / "d", tmp_path / "p.jsonl")


# ------------------------------------------------------------------------------------------------ one policy
# (issue 12) The same truncation policy everywhere, the official result by default, leniencies by name.

TRUNCATED = "<think>The bars are 3 and 4 tall, so the answer is C"  # cut off inside the thinking


def test_every_benchmark_reads_a_truncated_response(tmp_path, fixtures):
    opts = ["2", "3", "4", "5"]
    mv = fixtures.jsonl(tmp_path / "mv.jsonl", [_mv("1", "C", opts)])
    assert score_predictions("mathvision", mv, fixtures.predictions(tmp_path / "a.jsonl", {"1": TRUNCATED}, id_field="id"))["correct"] == 1
    we = fixtures.jsonl(tmp_path / "we.jsonl", [_wm("1", "2steps_1", "C")])
    assert score_predictions("wemath", we, fixtures.predictions(tmp_path / "b.jsonl", {"1@2steps_1": "<think>... Answer: C"}))["correct"] == 1
    dy = fixtures.jsonl(tmp_path / "dy.jsonl", [_dyna(1, "C", "multiple choice", "s")])
    assert score_predictions("dynamath", dy, fixtures.predictions(tmp_path / "c.jsonl", {"1:1": "<think>so it is C.\nC."}))["correct"] == 1
    verse = fixtures.jsonl(tmp_path / "verse.jsonl", [_mathverse(1, "Text Lite", MC_Q, "C", "multi-choice")])
    assert score_predictions("mathverse", verse, fixtures.predictions(tmp_path / "d.jsonl", {"1": TRUNCATED}))["correct"] == 1


def test_mathvision_option_latex_is_official_by_default(tmp_path, fixtures):
    data = fixtures.jsonl(tmp_path / "mv.jsonl", [_mv("1", "B", ["$30^{\\circ}$", "$40^{\\circ}$", "$50^{\\circ}$"])])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1": "<think>...</think><answer>40</answer>"}, id_field="id")
    assert score_predictions("mathvision", data, preds)["correct"] == 0  # the official parser fails on $...$
    lenient = score_predictions("mathvision", data, preds, leniencies=["option_latex"])
    assert lenient["correct"] == 1 and lenient["scoring"]["leniencies"] == ["option_latex"]


@pytest.mark.parametrize(
    "response,default,lenient",
    [
        ("The answer is D.\nD.", True, True),  # the official last-line rule
        ("After all this, D is the one.\nSo, in the end: D.", False, False),  # last line "So, in the end: D"
        # officially the text from the first "{" to the last "}" is read: "{D}", not JSON, whose last line minus
        # its last character is "{D", which holds D in its first three characters: right, quirk and all
        ("so the answer is \\boxed{D}\nThat settles it", True, True),
        ("so the answer is D\nThat settles it", False, True),  # last line minus one character: "That settles i"
        ("so the answer is\nD", False, True),  # a bare last-line letter: officially "" (its last character dropped)
    ],
)
def test_dynamath_default_is_the_official_rule(tmp_path, fixtures, response, default, lenient):
    data = fixtures.jsonl(tmp_path / "dy.jsonl", [_dyna(1, "D", "multiple choice", "s")])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1:1": response})
    assert score_predictions("dynamath", data, preds)["correct"] == int(default)
    assert score_predictions("dynamath", data, preds, leniencies=["rewards_extraction"])["correct"] == int(lenient)


INLINE_Q = ("Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at 3 and -3, "
            "determine its equation.A. \\frac{x^2}{81} + \\frac{y^2}{9} = 1 B. Can not determine.\n")


@pytest.mark.parametrize(
    "question,answer,response,default,partial",
    [
        (INLINE_Q, "A", "<answer>\\frac{x^2}{81} + \\frac{y^2}{9} = 1</answer>", True, True),  # inline option text
        (INLINE_Q, "B", "<answer>Can not determine.</answer>", True, True),
        (MC_Q, "C", "<answer>C and D</answer>", False, True),  # the official judge wants a complete match
        (MC_Q, "C", "<answer>C</answer>", True, True),
        (MC_Q, "C", "<answer>8</answer>", True, True),
    ],
)
def test_mathverse_options(tmp_path, fixtures, question, answer, response, default, partial):
    data = fixtures.jsonl(tmp_path / "v.jsonl", [_mathverse(1, "Text Lite", question, answer, "multi-choice")])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1": response})
    assert score_predictions("mathverse", data, preds)["correct"] == int(default)
    assert score_predictions("mathverse", data, preds, leniencies=["partial_choice"])["correct"] == int(partial)


def test_fallback_judge_gets_the_last_resorts(tmp_path, fixtures):
    """"...3, 4 and 5, so I cannot tell." is found only by the last-number rule: a judge decides, and it counts."""
    data = fixtures.jsonl(tmp_path / "v.jsonl", [_mathverse(4, "Vision Intensive", "Find L.", "14", "free-form")])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"4": "It could be 3, 4 and 5, so I cannot tell."})
    rules = score_predictions("mathverse", data, preds)
    assert rules["scoring"]["last_resorts"] == {"kept": 1, "sent_to_llm": 0}
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(1)
        return httpx.Response(200, json={"choices": [{"message": {"content": "null"}}]})

    judge = EvalJudge(JudgeConfig("http://judge.local/v1", "gpt-4", mode="fallback"), transport=httpx.MockTransport(handler))
    summary = score_predictions("mathverse", data, preds, judge=judge)
    assert asked == [1] and summary["scoring"]["last_resorts"] == {"kept": 0, "sent_to_llm": 1}
    assert summary["scoring"]["extraction"]["llm"] == 1 and summary["correct"] == 0


def test_unknown_leniency_is_a_clear_error(tmp_path, fixtures):
    from visionr1.evaluation.records import EvalError

    data = fixtures.jsonl(tmp_path / "dy.jsonl", [_dyna(1, "D", "multiple choice", "s")])
    preds = fixtures.predictions(tmp_path / "p.jsonl", {"1:1": "D"})
    with pytest.raises(EvalError, match="option_latex"):
        score_predictions("dynamath", data, preds, leniencies=["optionlatex"])
