"""Rules-only MathVista scoring vs the official GPT-4 extraction, on published model outputs.

    python benchmarks/mathvista_agreement.py results/*/output_*.json      # files as lupantech/MathVista publishes
    python benchmarks/mathvista_agreement.py --strict no_answer results/*/output_*.json   # the strict reading

Each published item carries the record (``choices``, ``answer_type``, ``precision``, ``answer``...), the model's
``response`` (``execution`` for program-of-thought outputs: the printed result is what the official extraction
read), GPT-4's ``extraction`` and the official ``true_false``. Per file it prints:

- official: accuracy of GPT-4's extraction through our port of ``calculate_score.py`` (and how often that
  reproduces the published ``true_false``);
- rules: accuracy of our rules-only scoring of the same responses (``eval score`` without a judge; with
  ``--strict NAME`` as ``eval score --strict NAME``: ``no_answer`` scores a multiple-choice reply without an
  answer wrong instead of mapping it onto the nearest option by edit distance);
- gap = rules - official, and the item-level agreement of the two verdicts, with a few disagreements;
- artefacts: items where GPT-4's extraction is not a reading of the response (``official_artefact``), and the
  gap over the remaining items.

The last lines are ``mean_gap_points=X`` over the files given, then the same excluding artefacts, and the
pooled figures over all items.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from visionr1.evaluation.benchmarks.base import STRICT, Item, ScoringContext
from visionr1.evaluation.benchmarks.mathvista import (
    MathVista,
    is_option_echo,
    normalize_extracted_answer,
    precision_of,
    safe_equal,
)

_NUM = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty").split()
_ORDINALS = ("zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
             "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()
_NUMBER_OPTION = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*[^\d\s.]{0,3}\s*")  # "20°", "4.00米", "14cm"


def _appears(value: str, text: str) -> bool:
    """``value`` occurs in ``text`` as a whole token (case-insensitive; not inside a longer word or number);
    for a number, also some number in ``text`` of the same value ("13" and "13.00"; "13.2" and
    "13.200000000000003", rounding to the value's decimals when it has some), or, for 0-20, its word or
    ordinal ("two", "fourth")."""
    if not value:
        return False
    if re.search(r"(?<![A-Za-z0-9.])" + re.escape(value) + r"(?![A-Za-z0-9]|\.\d)", text, re.I):
        return True
    try:
        target = float(value.replace(",", ""))
    except ValueError:
        return False
    decimals = len(value.split(".")[1]) if "." in value else None
    for m in _NUM.findall(text):
        x = float(m.replace(",", ""))
        if x == target or (decimals and round(x, decimals) == target):
            return True
    if target.is_integer() and 0 <= target <= 20:
        words = f"{_WORDS[int(target)]}|{_ORDINALS[int(target)]}"
        return re.search(rf"\b(?:{words})\b", text, re.I) is not None
    return False


def _names_option(ext: str, choices: list) -> bool:
    """The extraction is an option's text (ignoring case), or a number equal to the one number of an option
    that is just a number and a short unit ("20" for "20°"), so the edit-distance mapping is exact."""
    if any(ext.lower() == str(c).strip().lower() for c in choices):
        return True
    try:
        target = float(ext)
    except ValueError:
        return False
    hits = [c for c in choices if (m := _NUMBER_OPTION.fullmatch(str(c))) and float(m.group(1)) == target]
    return len(hits) == 1


def official_artefact(rec: dict, text: str) -> str | None:
    """Why GPT-4's extraction is not a reading of the response, or None when it is one.

    - ``"edit-distance"``: a multiple-choice extraction that is neither an option letter in range (bare or in
      parentheses, as ``normalize_extracted_answer`` reads it) nor an option (``_names_option``), so
      calculate_score.py maps it onto the nearest option by edit distance ("N/A" -> "0-5", "125.0" -> "25°");
    - ``"option-list"``: the scored text only lists labelled options ("(C) Yes\n(D) No", "(E) 70°\n(F) 75°
      ..."; ``is_option_echo``), and GPT-4 picks one of them: the reply states no answer to read;
    - ``"absent"``: an extraction that yields a value (an option, or a free-form answer that
      ``normalize_extracted_answer`` does not turn into None) which appears nowhere in the scored text (the
      execution output when there is one, else the response): neither the extraction itself nor, for an
      option letter, the letter or the option's text occurs there (``_appears``). For Yes/No options this
      is only tested when the text is at most three words (a bare reply or a printed result): a longer reply
      may answer by restating the comparison, which a reader maps to Yes or No.

    An empty extraction, or a free-form one that yields no value ("N/A" for an integer answer), is never an
    artefact: it claims no answer, and scores wrong as "no answer" does."""
    ext = str(rec.get("extraction") or "").strip()
    if not ext:
        return None
    if rec["question_type"] != "multi_choice" and normalize_extracted_answer(
        ext, None, rec["question_type"], rec["answer_type"], precision_of(rec)
    ) is None:
        return None
    candidates = [ext]
    if rec["question_type"] == "multi_choice":
        choices = list(rec.get("choices") or [])
        if is_option_echo(text, choices):
            return "option-list"
        options = [chr(ord("A") + i) for i in range(len(choices))]
        letter = re.findall(r"\(([a-zA-Z])\)", ext)
        key = letter[0].upper() if letter else ext
        if key in options:
            candidates += [key, choices[options.index(key)]]
        elif not _names_option(ext, choices):
            return "edit-distance"
        if sorted(str(c).strip().lower() for c in choices) == ["no", "yes"] and len(text.split()) > 3:
            return None
    if not any(_appears(c, text) for c in candidates):
        return "absent"
    return None


def load(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {str(r["pid"]): r for r in data}


def compare(path: Path, show: int = 5, strict: frozenset[str] = frozenset()) -> dict:
    bench, ctx = MathVista(), ScoringContext(strict=strict)
    items = load(path)
    official = rules = reproduced = agree = 0
    flagged = flagged_disagree = official_clean = rules_clean = 0
    shown = 0
    for pid, rec in items.items():
        response = rec.get("execution") if rec.get("execution") not in (None, "") else rec.get("response") or ""
        norm = normalize_extracted_answer(
            rec.get("extraction"), rec.get("choices"), rec["question_type"], rec["answer_type"], precision_of(rec)
        )
        off = safe_equal(norm, rec["answer"])
        res = bench.score(Item(pid, rec, path), str(response), ctx)
        official += off
        rules += res.correct
        reproduced += off == bool(rec.get("true_false", off))
        agree += off == res.correct
        why = official_artefact(rec, str(response))
        if why:
            flagged += 1
            flagged_disagree += off != res.correct
        else:
            official_clean += off
            rules_clean += res.correct
        if off != res.correct and shown < show:
            shown += 1
            print(f"  pid {pid}: official {rec.get('extraction')!r} -> {off}; rules {res.extracted!r} -> {res.correct}"
                  + (f" [official {why}]" if why else ""))
    n = len(items)
    gap = 100 * (rules - official) / n
    clean = n - flagged
    gap_clean = 100 * (rules_clean - official_clean) / clean if clean else 0.0
    print(
        f"{path.parent.name}/{path.name}: n={n} official={100 * official / n:.1f}% (true_false reproduced "
        f"{reproduced}/{n}) rules={100 * rules / n:.1f}% gap={gap:+.1f} points agreement={agree}/{n} "
        f"artefacts={flagged} (disagreeing {flagged_disagree}) gap_excl_artefacts={gap_clean:+.1f} over {clean}"
    )
    return dict(n=n, official=official, rules=rules, agree=agree, gap=gap, flagged=flagged,
                clean=clean, official_clean=official_clean, rules_clean=rules_clean, gap_clean=gap_clean)


def main(paths: list[Path], show: int = 5, strict: frozenset[str] = frozenset()) -> float:
    print(f"rules mode: {'strict ' + ', '.join(sorted(strict)) if strict else 'default'}")
    rows = [compare(p, show, strict) for p in paths]
    k = len(rows)
    mean = sum(r["gap"] for r in rows) / k
    print(f"mean_gap_points={mean:+.2f} over {k} files (mean |gap| {sum(abs(r['gap']) for r in rows) / k:.2f})")
    print(f"mean_gap_excl_artefacts={sum(r['gap_clean'] for r in rows) / k:+.2f} over {k} files")
    n, clean = sum(r["n"] for r in rows), sum(r["clean"] for r in rows)
    print(
        f"pooled: n={n} official={100 * sum(r['official'] for r in rows) / n:.1f}% "
        f"rules={100 * sum(r['rules'] for r in rows) / n:.1f}% "
        f"gap={100 * sum(r['rules'] - r['official'] for r in rows) / n:+.2f} agreement={sum(r['agree'] for r in rows)}/{n}"
        f" artefacts={n - clean} gap_excl_artefacts="
        f"{100 * sum(r['rules_clean'] - r['official_clean'] for r in rows) / max(clean, 1):+.2f} over {clean}"
    )
    return mean


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--show", type=int, default=5, help="disagreements printed per file")
    ap.add_argument("--strict", action="append", default=[], choices=sorted(STRICT),
                    help="score the rules with this strict option (repeatable), as eval score --strict does")
    args = ap.parse_args()
    main(args.files, args.show, frozenset(args.strict))
