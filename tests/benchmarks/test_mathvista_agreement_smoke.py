"""Smoke run of benchmarks/mathvista_agreement.py on the committed slice of published MathVista outputs
(benchmarks/data/mathvista_published/minigpt4.json, 109 items): it reproduces the published verdicts through
our port of calculate_score.py and prints one well-formed line per file, the mean gap and the artefact counts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "benchmarks" / "data" / "mathvista_published" / "minigpt4.json"


def test_agreement_script_reports_per_file_gap_and_mean():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mathvista_agreement.py"), str(SLICE)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    ).stdout
    line = re.search(
        r"minigpt4\.json: n=(\d+) official=([\d.]+)% \(true_false reproduced (\d+)/(\d+)\) rules=([\d.]+)% "
        r"gap=([+-][\d.]+) points agreement=(\d+)/(\d+)", out)
    assert line, out
    n, official, reproduced, n2, rules, gap, agree, n3 = line.groups()
    assert int(n) == int(n2) == int(n3) == 109 and int(reproduced) == 109  # the transcription is exact
    assert 0 <= float(official) <= 100 and 0 <= float(rules) <= 100
    assert abs(float(rules) - float(official) - float(gap)) < 0.06 and int(agree) <= 109
    assert re.search(r"^mean_gap_points=[+-][\d.]+ over 1 files", out, re.M), out
    art = re.search(r"artefacts=(\d+) \(disagreeing (\d+)\) gap_excl_artefacts=([+-][\d.]+) over (\d+)", line.string)
    assert art and int(art.group(1)) + int(art.group(4)) == 109 and int(art.group(2)) <= int(art.group(1)), out
    assert re.search(r"^pooled: n=109 .* artefacts=\d+ gap_excl_artefacts=[+-][\d.]+ over \d+$", out, re.M), out
