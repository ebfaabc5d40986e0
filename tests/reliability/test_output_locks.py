"""Two commands on one output: the second refuses at once, naming the first, instead of interleaving lines.
`score-rewards` is run twice for real (the first held up by a slow reward); `eval run` meets a real holder of
its output directory's lock (a process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "visionr1", *args]


def test_two_score_rewards_on_one_output(tmp_path):
    n = 40
    rows = [{"completion": f"<think>t</think><answer>{i}</answer>", "solution": str(i % 3), "task": "count"} for i in range(n)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "slow.py").write_text(textwrap.dedent("""
        import time
        def slow(completions, **kwargs):
            time.sleep(0.5)
            return [0.0] * len(completions)
    """))
    args = ["score-rewards", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
            "-r", f"{tmp_path / 'slow.py'}:slow", "--batch-size", "4"]
    first = subprocess.Popen(_cli(*args), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "out.jsonl.tmp").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(_cli(*args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:]
    said = " ".join(second.stderr.split())
    assert second.returncode == 2 and "Traceback" not in said, said[-2000:]
    assert "another `visionr1 score-rewards` is running" in said and f"PID {first.pid}" in said, said
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == n  # one line per input, not two
    assert not (tmp_path / ".out.jsonl.lock").exists()  # released


def test_eval_run_takes_its_output_directory_lock(tmp_path):
    out_dir = tmp_path / "eval"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from visionr1.training.lock import output_lock
            with output_lock({str(out_dir)!r}, "visionr1 eval run", directory=True):
                print("held", flush=True)
                time.sleep(60)
        """)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "data.jsonl").write_text(json.dumps({"id": "1", "question": "1+1?", "answer": "2"}) + "\n")
        res = subprocess.run(_cli("eval", "run", "--benchmark", "mathvista", "--model", "tiny:qwen2_5_vl/test",
                                  "--data", str(tmp_path / "data.jsonl"), "--output", str(out_dir)),
                             cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        said = " ".join((res.stdout + res.stderr).split())
        assert res.returncode == 2 and "Traceback" not in said, said[-2000:]
        assert "another `visionr1 eval run` is running on this run directory" in said and f"PID {holder.pid}" in said
    finally:
        holder.kill()
        holder.wait()
