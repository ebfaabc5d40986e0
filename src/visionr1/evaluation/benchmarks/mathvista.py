"""MathVista (testmini: 1,000 items), scored as ``evaluation/calculate_score.py`` of lupantech/MathVista does.

Records: ``pid, question, choices, unit, precision, answer, question_type (multi_choice | free_form),
answer_type (text | integer | float | list), metadata{language, source, category, task, context, grade,
skills}`` and, in the Hugging Face copy, ``query`` (the official prompt with its hint) and ``decoded_image``.

Official pipeline: an LLM (GPT-4) extracts the answer (``extract_answer.py``, after quick rules: the whole
response is an option, or parses as the integer/float), then :func:`normalize_extracted_answer` maps it onto
the answer's type and it is compared with ``answer`` by string equality. Departure: by default the answer is
extracted by rules (the rewards' extraction, then the official quick rules); ``--judge-mode official`` uses
the LLM with the official few-shot prompt instead, ``fallback`` where the rules find nothing or only a last
resort (the last number, the whole text). Where the rules find no answer in a multiple-choice reply (a
refusal, a list of options, a hedge between two, no option named, a program that printed nothing), the
official normalisation gets what the reply offers (the rules' answer text, else the reply) and maps it onto
the nearest option by edit distance, as ``calculate_score.py`` maps GPT-4's extraction of such a reply
("N/A", the refusal's text): a credit without an answer, kept so that the default is the official number.
The strict option ``no_answer`` (``eval score --strict no_answer``) scores such items wrong instead; the
summary counts them (``metrics.no_answer``).

What the rules hand the official normalisation is what GPT-4's extraction would write (:func:`llm_form`): a
number for a numeric question (``\\frac{1}{3}`` -> ``0.3333...``, ``5 cm`` -> ``5``, ``45°`` -> ``45``,
``1,000`` -> ``1000``, "The value of x is 9." -> ``9``) and an option letter for a multiple-choice one,
found in prose without a marker from the options it names (:func:`choice_from_prose`) rather than left to
the nearest-option-by-edit-distance rule, which picks at random among prose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

from visionr1.evaluation.benchmarks.base import (
    Benchmark,
    Item,
    ItemResult,
    ScoringContext,
    accuracy_table,
    official_response,
    project_answer,
    rules_extract_with_source,
)
from visionr1.rewards.extract import LAST_RESORTS

# The official few-shot extraction prompt (MathVista demos, pids 852, 104, 824, 506, 540).
DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\\nChoices:\\n(A) 3/11\\n(B) 8/11\\n(C) 6/11\\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""

# calculate_score.py's breakdown keys ("skills" holds a list: an item counts for each of its skills).
BREAKDOWN_KEYS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills")


def get_most_similar(prediction: str, choices: Sequence[str]) -> str:
    """The choice nearest to ``prediction`` by Levenshtein distance; ties go to the first (official).

    >>> get_most_similar("8/1", ["3/11", "8/11", "6/11"])
    '8/11'
    """
    distances = [Levenshtein.distance(prediction, c) for c in choices]
    return choices[distances.index(min(distances))]


def normalize_extracted_answer(
    extraction: Any, choices: Sequence[str] | None, question_type: str, answer_type: str, precision: int | None
) -> Any:
    """Port of calculate_score.py's ``normalize_extracted_answer``, rule for rule.

    >>> normalize_extracted_answer("(B) 8/11", ["3/11", "8/11"], "multi_choice", "text", None)
    '8/11'
    >>> normalize_extracted_answer("3.9", None, "free_form", "integer", None)  # truncates, does not round
    '3'
    >>> normalize_extracted_answer("1.25", None, "free_form", "float", 1)
    '1.2'
    >>> normalize_extracted_answer("ten", None, "free_form", "integer", None) is None
    True
    """
    if question_type == "multi_choice":
        choices = list(choices or [])
        if isinstance(extraction, str):
            extraction = extraction.strip()
        else:
            try:
                extraction = str(extraction)
            except Exception:
                extraction = ""
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)  # "A" from "(A) text"
        if letter:
            extraction = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            extraction = choices[options.index(extraction)]
        elif choices:
            extraction = get_most_similar(extraction, choices)
    elif answer_type == "integer":
        try:
            extraction = str(int(float(extraction)))
        except Exception:
            extraction = None
    elif answer_type == "float":
        try:
            extraction = str(round(float(extraction), precision))
        except Exception:
            extraction = None
    elif answer_type == "list":
        try:
            extraction = str(extraction)
        except Exception:
            extraction = None
    return extraction


def safe_equal(prediction: Any, answer: Any) -> bool:
    try:
        return bool(prediction == answer)
    except Exception:
        return False


def quick_extract(response: str, record: dict[str, Any]) -> str | None:
    """extract_answer.py's rules before its LLM call: the response *is* an option / integer / float, or
    says ``The answer is "X".``; None when none applies (the official script would ask the LLM)."""
    choices = record.get("choices") or []
    if response == "":
        return ""
    if record.get("question_type") == "multi_choice" and response in choices:
        return response
    if record.get("answer_type") == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if record.get("answer_type") == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    m = re.search(r'The answer is "(.*)"\.', response)
    return m.group(1) if m else None


_LEAD_MARK_RE = re.compile(r"^\W*\(?[A-Z]\)?(?:[.):]|\s)\s*")
_LETTER_MARK_RE = re.compile(
    r"\(([A-Z])\)|\b(?:option|choice|answer)\s*:?\s*\(?([A-Z])\b\)?|^\s*\(?([A-Z])[.):]\s"
    r"|答案\s*(?:是|为)?\s*[:：]?\s*\(?([A-Z])(?![A-Za-z])|(?<![A-Za-z(])([A-Z])\)",  # 答案:D, 所以答案是C, 最接近的是D)
    re.M,
)
# a reply that is a list of options ("(C) Yes\n(D) No", "(E) 70°\n(F) 75°"): an echo of the prompt, no answer
_OPTION_LINE_RE = re.compile(r"^\s*\(([A-Z]{1,2})\)\s*\S")
_TRAILING_OPTIONS_RE = re.compile(r"(?:\n[ \t]*\([A-Z]\)[^\n]{0,40}){2,}\s*$")
_REFUSAL_RE = re.compile(
    r"\b(?:cannot|can't|can not|could not|couldn't|unable to|impossible to|not possible to)\s+(?:be\s+)?"
    r"(?:determine|determined|answer|answered|provide|provided|tell|told|say|select|know|known|find|found|solve|solved)\b"
    r"|\bnot enough (?:information|context|data)\b|\binsufficient (?:information|context|data)\b"
    r"|\bdoes not provide (?:enough |any )?(?:information|context|data)\b",
    re.I,
)
# two options given as the answer: "B (13) and C (26)", "A or C", "B, D"
_TWO_LETTERS_RE = re.compile(
    r"(?<![A-Za-z])\(?([A-Z])\)?(?:\s*\([^)]*\))?\s*(?:,|\band\b|\bor\b|/)\s*\(?([A-Z])\)?(?![A-Za-z])")
_LESS = r"less|fewer|smaller|lower|shorter|minimum|lowest|smallest|least|min"
_MORE = r"more|greater|larger|bigger|higher|taller|longer|maximum|highest|largest|most|max"
_COMPARISON_RE = re.compile(rf"\b(?:(?P<less>{_LESS})|(?P<more>{_MORE}))\b", re.I)


def is_option_echo(text: str, choices: Sequence[str]) -> bool:
    """The reply only lists labelled options, each line "(X) " and a few words: two lines or more, or one
    whose letter is past the record's options ("(E) 0.5" for four options). Lines of prose after their
    labels ("(A) Grass would be affected, as ...") discuss the options; they are not an echo."""
    lines = [ln for ln in text.strip().split("\n") if ln.strip()]
    labels = [m.group(1) for ln in lines if (m := _OPTION_LINE_RE.match(ln)) and len(ln.split()) <= 5]
    if not lines or len(labels) < len(lines):
        return False
    return len(lines) >= 2 or labels[0] not in [chr(ord("A") + i) for i in range(len(choices))]


def is_refusal(text: str) -> bool:
    """The reply says the question cannot be answered ("the answer cannot be determined", "not enough
    information", "unable to select option A or B")."""
    return _REFUSAL_RE.search(text) is not None


def _compared(text: str) -> tuple[set[str], set[str]] | None:
    """Content words before and after "than" (up to six words each side), or None without "than"."""
    m = re.search(r"\bthan\b", text, re.I)
    if not m:
        return None
    def words(chunk: str) -> set[str]:
        return {_stem(w) for w in re.findall(r"[A-Za-z]+", chunk)
                if w.lower() not in _STOP_WORDS and not _COMPARISON_RE.fullmatch(w) and w.lower() != "number"}
    before = " ".join(re.findall(r"\S+", text[: m.start()])[-6:])
    after = " ".join(re.findall(r"\S+", text[m.end():])[:6])
    return words(before), words(after)


def yes_no_by_comparison(question: str, sentence: str) -> str | None:
    """"yes" / "no" for a reply that restates the comparison a Yes/No question asks, or None when the
    question or the reply makes none. The same direction (fewer / fewer) answers Yes, the opposite (less /
    more, minimum / maximum) No; a negation flips it, and so do the compared things given the other way
    round ("fewer cubes than balls?" - "more balls than cubes")."""
    q = [m for m in _COMPARISON_RE.finditer(question)]
    r = [m for m in _COMPARISON_RE.finditer(sentence)]
    if not q or not r:
        return None
    q_less = {bool(m.group("less")) for m in q}
    r_less = {bool(m.group("less")) for m in r}
    if len(q_less) > 1 or len(r_less) > 1:
        return None
    yes = q_less == r_less
    qc, rc = _compared(question), _compared(sentence)
    if qc and rc and len(rc[0] & qc[1]) > len(rc[0] & qc[0]):
        yes = not yes
    if _NEGATION_RE.search(sentence):
        yes = not yes
    return "yes" if yes else "no"


def choice_from_prose(text: str, choices: Sequence[str], question: str | None = None) -> str | None:
    """The option a prose response settles on, as GPT-4's extraction reads it; None when it names none.
    A first line that states an option's text names it; a Yes/No question is answered by its first word
    (after any letter); otherwise the last option letter marked as one
    ("(B)", "option B", a line "B. ..."), else the option whose text is mentioned last (the longest text
    wins at one place: "quarter past" over "quarter"). A list of options, or a refusal, names none. A
    Yes/No reply that restates the question's comparison is read by it (``yes_no_by_comparison``).

    >>> choice_from_prose("No, the blue bar is shorter than the red one.", ["Yes", "No"])
    'B'
    >>> choice_from_prose("The hands point to 8:15, so it is quarter past eight.", ["half", "quarter", "quarter past"])
    'C'
    """
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    lowered = [str(c).strip().lower() for c in choices]
    if is_option_echo(text, choices) or is_refusal(text):
        return None
    first = _LEAD_MARK_RE.sub("", text.strip().split("\n", 1)[0]).strip().rstrip(".").lower()
    if first in lowered:  # the first line states an option's text (whatever its letter)
        return letters[lowered.index(first)]
    if set(lowered) <= {"yes", "no"}:
        m = re.match(r"\W*(yes|no)\b", first, re.I)
        if m:
            return letters[lowered.index(m.group(1).lower())]
    last = None
    text = _TRAILING_OPTIONS_RE.sub("", text)  # "... Choose the correct option letter:\n(A) 1\n(B) 2": a prompt echo
    for m in _LETTER_MARK_RE.finditer(text):
        letter = next(g for g in m.groups() if g)
        if letter in letters:
            last = letter
    if last is not None:
        return last
    stemmed = _stem_text(text)
    spans = []  # (start, end, letter) of every mention, word by word up to suffixes ("the Frog" names "Frogs")
    for letter, opt in zip(letters, lowered, strict=True):
        if opt:
            needle = _stem_text(opt)
            spans += [(m.start(), m.end(), letter)
                      for m in re.finditer(rf"(?<![\w.]){re.escape(needle)}(?![\w]|\.\d)", stemmed)]
    # a mention inside a longer one is part of it ("a slight decrease" names "Slightly Decrease", not "Decrease")
    spans = [a for a in spans if not any(b[0] <= a[0] and a[1] <= b[1] and b[1] - b[0] > a[1] - a[0] for b in spans)]
    if spans:
        return max(spans, key=lambda sp: (sp[0], sp[1] - sp[0]))[2]
    if set(lowered) == {"yes", "no"}:  # a statement answers a Yes/No question: negated -> No, else Yes
        sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
        if len(sentence.split()) < 3:  # "Equal": a word, not a statement
            return None
        by_comparison = yes_no_by_comparison(question, sentence) if question else None
        if by_comparison is not None:
            return letters[lowered.index(by_comparison)]
        return letters[lowered.index("no" if _NEGATION_RE.search(sentence) else "yes")]
    return _option_by_words(text, choices, letters)


_STOP_WORDS = frozenset(
    "a an the of and or to in on at by for with from is are was were be will would can could it its this that "
    "these those as than then there their they which what who".split()
)
_NEGATION_RE = re.compile(r"\b(?:not|no|never|none|neither|nor|cannot)\b|n't\b", re.I)
_SUFFIXES = ("ly", "es", "s", "ed", "ing")


def _stem(word: str) -> str:
    """A word without one common English suffix (words of 5+ letters only): 'frogs' -> 'frog', 'slightly' ->
    'slight', 'decreased' -> 'decreas', 'decrease' -> 'decrease'."""
    w = word.lower()
    for suffix in _SUFFIXES:
        if len(w) >= 5 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _stem_text(text: str) -> str:
    return re.sub(r"[A-Za-z]+", lambda m: _stem(m.group()), text.lower())


def _option_by_words(text: str, choices: Sequence[str], letters: Sequence[str]) -> str | None:
    """The option most of whose content words the text uses ("the hottest month is July" -> "July and
    August"); None unless one option has at least half its content words there and beats every other."""
    words = {_stem(w) for w in re.findall(r"[A-Za-z]+", text)}
    scores = []
    for c in choices:
        content = {_stem(w) for w in re.findall(r"[A-Za-z]+", str(c)) if w.lower() not in _STOP_WORDS}
        scores.append(len(content & words) / len(content) if content else 0.0)
    top = max(scores, default=0.0)
    if top < 0.5 or scores.count(top) > 1:
        return None
    return letters[scores.index(top)]


def numeric_form(answer: str) -> str | None:
    """A number as an LLM extractor writes it, from an extracted math answer; None when it is not one.

    >>> numeric_form(r"\\frac{1}{3}")[:5], numeric_form("5 cm"), numeric_form("45°"), numeric_form("1,000")
    ('0.333', '5', '45', '1000')
    >>> numeric_form("x = 9"), numeric_form("2\\sqrt{2}")[:4], numeric_form("x + 1") is None
    ('9', '2.82', True)
    """
    from fractions import Fraction

    from visionr1.rewards.extract import reduce_sentence
    from visionr1.rewards.latexnum import try_evaluate
    from visionr1.rewards.mathcheck import clean_math

    cleaned, _ = clean_math(reduce_sentence(answer))
    cleaned = re.sub(r"^\s*[A-Za-z]\w*\s*=\s*", "", cleaned)
    value = try_evaluate(cleaned)
    if value is None:
        return None
    v = value.value
    if isinstance(v, Fraction) and v.denominator == 1:
        return str(v.numerator)
    if isinstance(v, Fraction) and value.decimals is not None:
        return cleaned.strip()
    return repr(float(v))


def llm_form(extracted: str, record: dict[str, Any], response: str, how: str | None) -> str:
    """What GPT-4's extraction would have written, from the rules' answer (see the module docstring);
    "" for no answer (two options given as one answer: "B (13) and C (26)")."""
    choices = record.get("choices") or []
    question = record.get("question")
    if record.get("question_type") == "multi_choice" and choices:
        from visionr1.rewards.scoring import named_options

        named = named_options(extracted, choices)
        if len(named) == 1:
            return named.pop()
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        if how not in (None, "whole_text") and any(
            a != b and a in letters and b in letters for a, b in _TWO_LETTERS_RE.findall(extracted)
        ):
            return ""
        by_number = _option_by_number(extracted, choices)
        if by_number is not None:  # "20.0" for "20°", "3.0" for "3"
            return by_number
        text = extracted if how not in (None, "whole_text") else official_response(response)
        found = choice_from_prose(text, choices, question)
        if found is None and (how in (None, "whole_text") or is_refusal(text) or is_option_echo(text, choices)):
            return ""  # no answer: the reply names no option ("Equal"), refuses, or lists options
        return found if found is not None else extracted
    if record.get("answer_type") in ("integer", "float"):
        if how is None or how in LAST_RESORTS:  # no stated answer: the number the answer sentence gives
            prose = number_from_prose(official_response(response), question)
            if prose is not None:
                return prose
            if how == "last_number":  # its only numbers are inside expressions ("2*x"): no answer stated
                return ""
        form = numeric_form(extracted)
        if form is None and not re.search(r"\d", extracted):  # "Here is the answer: <prose>" -> 'groups'
            prose = number_from_prose(official_response(response), question)
            if prose is not None:
                return prose
        return form if form is not None else extracted
    return extracted


_NUMBER_OPTION_RE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*[^\d\s.]{0,3}\s*")  # "20°", "4.00米", "14cm", "3"


def _option_by_number(extracted: str, choices: Sequence[str]) -> str | None:
    """The letter of the one option that is a number (and a short unit) equal to ``extracted``, a number."""
    try:
        target = float(extracted.strip())
    except ValueError:
        return None
    hits = [i for i, c in enumerate(choices)
            if (m := _NUMBER_OPTION_RE.fullmatch(str(c))) and float(m.group(1)) == target]
    return chr(ord("A") + hits[0]) if len(hits) == 1 else None


_PRINT_RE = re.compile(r"^\s*print\((.*)\)\s*$", re.M)
_CODE_LINE_RE = re.compile(r"^\s*(?:def \w+\(|import \w|from [\w.]+ import |for .+ in .+:|if .+:|\w+\s*=\s*\S)", re.M)
_LITERAL_RE = re.compile(r"""\s*(?:(-?\d+(?:\.\d+)?)|'([^'\n]*)'|"([^"\n]*)")\s*""")


def program_output(response: str) -> str | None:
    """For a program-of-thought reply (Python source rather than its printed result): what it prints when
    that is a literal (``print(42)``, ``print('B')``), else "" (what it would print is not in the text:
    the program is no answer). None when the reply is not a program."""
    prints = _PRINT_RE.findall(response)
    if not prints or not _CODE_LINE_RE.search(response):
        return None
    m = _LITERAL_RE.fullmatch(prints[-1])
    return next((g for g in m.groups() if g is not None), "") if m else ""


_NUM = r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?"
_WORD_NUMBER_RE = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"(?:[\s-]+(?:one|two|three|four|five|six|seven|eight|nine))?\b",
    re.I,
)
_PROSE_NUMBER_RE = re.compile(rf"(?<![\w.^_{{]){_NUM}(?![\w^_(]|\.\d|\s*[*/^]\s*\w)")
_CONCLUSION_RE = re.compile(r"^\W*(?:therefore|thus|hence|so|in conclusion|in summary|overall)\b", re.I)
_LABEL_BEFORE_RE = re.compile(r"(?:\b[A-Z][A-Za-z]*|\b(?:bar|step|option|figure|episode|row|column|id))\s$")
# "Approximately 40%": a quantity adverb opening a sentence is no label
_NOT_LABEL_RE = re.compile(
    r"\b(?:approximately|about|around|nearly|roughly|almost|exactly|only|just|over|under|some|maybe|perhaps)\s$", re.I)
_OPERATOR_BEFORE_RE = re.compile(r"(?<!\*)[-+*/×÷]\s*$")  # not "**" (bold)
_OPERATOR_AFTER_RE = re.compile(r"^\s*[-+*/×÷](?!\*)\s*\d")
_TOTAL_RE = re.compile(rf"\b(?:a total of|in total|totals?|altogether|in all)\s+(?:[A-Za-z]+\s+){{0,2}}?({_NUM})", re.I)
_WHICH_NOUN_RE = re.compile(r"\b(?:which|what)\s+(year|month|week|day|hour|grade|step|level|round|quarter|epoch)\b", re.I)
_MID_CONCLUSION_RE = re.compile(r"\b(?:so|therefore|thus|hence)\b", re.I)
_COPULA_RE = re.compile(r"\b(?:is|are|was|were|be|equals?)\b|=", re.I)
_STATED_VALUE_RE = re.compile(rf"(?:\b(?:is|are|was|were)\b|=)\s+(?:[A-Za-z]+\s+){{0,3}}?(?:{_NUM})", re.I)


def number_from_prose(text: str, question: str | None = None) -> str | None:
    """The number a prose reply gives as its answer, as GPT-4's extraction reads it; None when no sentence
    states one. The sentence: the last concluding one ("Therefore, ...", "So ...") that holds a number,
    else the last that holds one and does not list two values ("In 2013 there were 23, in 2014 there were
    36" supports the answer, it is not one); in it, from its last "so" / "therefore" on, the first number
    after its verb ("is", "was", "=") else its first number, labels ("Bar 1") and the operands of a worked sum
    ("3 + 3 + 3 = 9" gives 9) skipped; a stated total ("for a total of 8") wins, and so does the number after
    the noun a "which week / what year" question asks for ("..., which occurs in week 3"). Number words count
    ("three objects" -> 3), thousands separators go ("1,238" -> 1238); a number inside an expression ("2*x",
    "x^2") is no answer.

    >>> number_from_prose("After subtracting them, there are three objects left.")
    '3'
    >>> number_from_prose("The change from 2013 to 2014 was an increase of 13. In 2013 there were 23, in 2014 there were 36.")
    '13'
    >>> number_from_prose("Each side is 4 cm. Therefore, the perimeter is 16 cm.")
    '16'
    >>> number_from_prose("I cannot tell from the image.") is None
    True
    """
    from visionr1.rewards.scoring import words_to_int

    text = _WORD_NUMBER_RE.sub(lambda m: str(words_to_int(m.group())), text)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if _PROSE_NUMBER_RE.search(s)]
    if not sentences:
        return None
    concluding = [s for s in sentences if _CONCLUSION_RE.search(s)]
    # a sentence stating two values ("the highest is 80%, and the lowest is 20%") lists data, not the answer
    single = [s for s in sentences if len(_STATED_VALUE_RE.findall(s)) < 2]
    sentence = (concluding or single or sentences)[-1]
    asked = _WHICH_NOUN_RE.search(question or "")
    if asked:
        named = re.findall(rf"\b{asked.group(1)}s?\s+({_NUM})\b", sentence, re.I)
        if named:
            return named[-1].replace(",", "")
    total = _TOTAL_RE.search(sentence)
    if total:
        return total.group(1).replace(",", "")
    start = 0  # "there were 5, two leave, so 3 remain": what follows the last "so" / "therefore" concludes
    for m in _MID_CONCLUSION_RE.finditer(sentence):
        if _answer_number(sentence, m.end()):
            start = m.end()
    verb = _COPULA_RE.search(sentence, start)
    number = (_answer_number(sentence, verb.end()) if verb else None) or _answer_number(sentence, start)
    return number.replace(",", "") if number else None


def _answer_number(sentence: str, start: int) -> str | None:
    """The first number from ``start`` on that is not a label: "Bar 1", "Step 2", "In 2013" name things."""
    for m in _PROSE_NUMBER_RE.finditer(sentence, start):
        before = sentence[: m.start()]
        if _LABEL_BEFORE_RE.search(before) and not _NOT_LABEL_RE.search(before):
            continue
        if _OPERATOR_BEFORE_RE.search(before) or _OPERATOR_AFTER_RE.match(sentence[m.end():]):
            continue  # an operand: "3 + 3 + 3 = 9" answers 9
        return m.group()
    return None


def precision_of(record: dict[str, Any]) -> int | None:
    """``precision`` as an int (parquet stores it as a float, NaN for none)."""
    p = record.get("precision")
    if p is None:
        return None
    try:
        return int(p)
    except (TypeError, ValueError):
        return None


def build_query(record: dict[str, Any]) -> str:
    """The official prompt when the record has no ``query`` (the JSON release keeps queries apart):
    hint by answer type, question (with its unit), lettered choices."""
    qt, at, precision = record.get("question_type"), record.get("answer_type"), precision_of(record)
    if qt == "multi_choice":
        hint = "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
    elif at == "integer":
        hint = "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end."
    elif at == "float" and precision == 1:
        hint = ("Please answer the question requiring a floating-point number with one decimal place and provide "
                "the final value, e.g., 1.2, 1.3, 1.4, at the end.")
    elif at == "float" and precision == 2:
        hint = ("Please answer the question requiring a floating-point number with two decimal places and provide "
                "the final value, e.g., 1.23, 1.34, 1.45, at the end.")
    elif at == "list":
        hint = ("Please answer the question requiring a Python list as an answer and provide the final list, "
                "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.")
    else:
        hint = "Please answer the question and provide the final answer at the end."
    question = record["question"]
    if record.get("unit"):
        question = f"{question} (Unit: {record['unit']})"
    text = f"Hint: {hint}\nQuestion: {question}"
    if record.get("choices"):
        text += "\nChoices:\n" + "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(record["choices"]))
    return text


class MathVista(Benchmark):
    name = "mathvista"
    id_field = "pid"
    llm_use = "answer extraction (GPT-4, few-shot), then rules"

    def question(self, item: Item) -> str:
        return item.record.get("query") or build_query(item.record)

    def extract(self, response: str, item: Item, ctx: ScoringContext) -> tuple[str, str, str | None]:
        """(extraction, source, rewards rule or None)."""
        record = item.record
        how = None
        if ctx.mode != "official":
            multi_choice = record.get("question_type") == "multi_choice" and bool(record.get("choices"))
            # no answer: for multiple choice, what the reply offers (for the edit-distance mapping; see score)
            printed = program_output(official_response(response))
            if printed is not None and not ctx.wants_llm("last_number"):
                if printed == "":
                    return official_response(response) if multi_choice else "", "answer_rules", "no_answer"
                response = printed
            if multi_choice and is_option_echo(official_response(response), record["choices"]):
                if not ctx.wants_llm("whole_text"):
                    return official_response(response), "answer_rules", "no_answer"
            task = "choice" if record.get("question_type") == "multi_choice" else "math"
            found, how = rules_extract_with_source(response, task)
            if found is not None and not ctx.wants_llm(how):
                form = llm_form(found, record, response, how)
                if multi_choice and not form.strip():  # a hedge between two options, no option named
                    return found if how not in (None, "whole_text") else official_response(response), "answer_rules", "no_answer"
                source = "answer_format" if how == "answer_tag" and project_answer(response, task) else "answer_rules"
                return form, source, how
            if found is None and record.get("question_type") == "multi_choice" and record.get("choices"):
                letter = choice_from_prose(official_response(response), record["choices"], record.get("question"))
                if letter is not None and not ctx.wants_llm("whole_text"):
                    return letter, "answer_rules", "whole_text"
            if found is None and record.get("answer_type") in ("integer", "float"):
                number = number_from_prose(official_response(response), record.get("question"))  # "three objects left"
                if number is not None and not ctx.wants_llm("last_number"):
                    return number, "answer_rules", "last_number"
        found = quick_extract(response, record)
        if found is not None:
            return found, "benchmark_rules", None
        if ctx.mode in ("fallback", "official"):
            prompt = f"{DEMO_PROMPT.strip()}\n\n{self.question(item)}\n\n{response}\n\nExtracted answer: "
            return ctx.llm(prompt), "llm", how
        return "", "none", None

    def score_prediction(self, item: Item, prediction: dict[str, Any], ctx: ScoringContext) -> ItemResult:
        """A prediction with an ``extraction`` (the published output files: GPT-4's extraction beside the
        ``response``) is scored as ``calculate_score.py`` scores it: that text, exactly, through the official
        normalisation; the rules read ``response`` only when there is none."""
        extraction = prediction.get("extraction")
        if extraction is None:
            return super().score_prediction(item, prediction, ctx)
        r = item.record
        self.require(item, "answer", "question_type", "answer_type")
        normalized = normalize_extracted_answer(
            extraction, r.get("choices"), r["question_type"], r["answer_type"], precision_of(r)
        )
        return ItemResult(item.pid, extraction, normalized, safe_equal(normalized, r["answer"]), "published_extraction")

    def score(self, item: Item, response: str, ctx: ScoringContext) -> ItemResult:
        r = item.record
        self.require(item, "answer", "question_type", "answer_type")
        extracted, source, how = self.extract(response, item, ctx)
        normalized = normalize_extracted_answer(
            extracted, r.get("choices"), r["question_type"], r["answer_type"], precision_of(r)
        )
        multi_choice = r["question_type"] == "multi_choice"
        info: dict[str, Any] = {"last_resort": how} if how in LAST_RESORTS else {}
        if source != "llm" and (how == "no_answer" or (multi_choice and not str(extracted).strip())):
            # no answer: by default mapped onto the nearest option by edit distance, as calculate_score.py maps
            # GPT-4's extraction of such a reply; strict (or free form): wrong
            if not multi_choice or ctx.is_strict("no_answer"):
                normalized = None
            info["no_answer"] = "wrong" if normalized is None else "edit_distance"
        return ItemResult(item.pid, extracted, normalized, safe_equal(normalized, r["answer"]), source, info=info)

    def summarize(self, items: Sequence[Item], results: Sequence[ItemResult]) -> dict[str, Any]:
        breakdowns = {}
        for key in BREAKDOWN_KEYS:
            pairs = []
            for item, res in zip(items, results, strict=True):
                value = item.record.get(key, (item.record.get("metadata") or {}).get(key))
                if key == "skills":
                    pairs += [(skill, res.correct) for skill in (value or [])]
                elif value is not None:
                    pairs.append((value, res.correct))
            if pairs:
                breakdowns[key] = accuracy_table(pairs)
        marks = [r.info.get("no_answer") for r in results]
        no_answer = {  # replies in which the rules found no answer, and how they were scored
            "count": sum(m is not None for m in marks),
            "edit_distance": marks.count("edit_distance"),
            "edit_distance_correct": sum(1 for m, r in zip(marks, results, strict=True) if m == "edit_distance" and r.correct),
            "wrong": marks.count("wrong"),
        }
        return {"metrics": {"no_answer": no_answer}, "breakdowns": breakdowns}
