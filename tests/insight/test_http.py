"""The data generation against a real OpenAI-compatible server on loopback (a scripted step-writing model)
behind the cold start's fault-injecting proxy: replies that are no step, malformed completions, 500s and
unparseable ratings are recorded per record and never stop the run; a re-run retries what failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from visionr1.coldstart.store import JsonlLog
from visionr1.insight import load_insight_recipe, run_insight_data


def recipe(tmp_path: Path, data: Path, url: str, chains: int = 2, **over):
    backend = {"type": "openai", "base_url": url, "model": "step-model", "concurrency": 4, "max_retries": 1,
               "backoff_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 20}
    spec = {"name": "http", "input": {"format": "jsonl", "path": str(data)}, "backends": {"srv": backend},
            "reasoner": {"backend": "srv", "chains": chains, "max_steps": 4, "max_tokens": 64},
            "scorer": {"backend": "srv"}, **over}
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(spec))
    return path


MARKERS = {1: "WRONG", 2: "GARBAGE", 3: "BROKEN", 4: "POISON", 5: "NOSCORE"}


def test_http_generation_filters_and_records_every_bad_reply(tmp_path, records, step_model, step_proxy):
    data = records(tmp_path / "data", 8, MARKERS)
    step_proxy.poison = "POISON"
    out = tmp_path / "out"
    report = run_insight_data(load_insight_recipe(recipe(tmp_path, data, step_proxy.url)), out)
    recs = JsonlLog(out / "records.jsonl").latest()
    status = {rid: (r["status"], r["reason"]) for rid, r in recs.items()}
    assert status == {
        "rec-000": ("kept", "best_rated"), "rec-006": ("kept", "best_rated"), "rec-007": ("kept", "best_rated"),
        "rec-001": ("dropped", "no_correct_chain"),     # the answer filter (the reward library's scorer)
        "rec-002": ("dropped", "no_valid_chain"),       # prose instead of a JSON step: the chains are invalid
        "rec-005": ("dropped", "no_rated_chain"),       # the scoring agent replied no number
        "rec-003": ("failed", "step:bad_response"),     # a malformed chat completion
        "rec-004": ("failed", "step:http_500"),         # the server kept failing (after retries)
    }
    assert all(c["status"] == "invalid" and c["reason"] == "not_json" for c in recs["rec-002"]["chains"])
    kept = recs["rec-006"]
    best = kept["chains"][kept["best"]]
    assert best["answer"] == "1" and best["score"] == 87 and [s["next_action"] for s in best["steps"]] == ["continue", "summarize"]
    assert kept["generators"] == {"reasoner": "openai:step-model", "scorer": "openai:step-model"} and not kept["oracle"]
    # the second step's request carried the first step, the image as a data URL, the sampling settings
    second = next(b for b in step_model.bodies if "Step 1: Read the item" in json.dumps(b))
    assert second["temperature"] == 0.7 and second["max_tokens"] == 64
    assert second["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert report["kept"] == 3 and report["failed"] == {"step:bad_response": 1, "step:http_500": 1}
    calls = list(JsonlLog(out / "calls.jsonl"))
    assert any(not c["ok"] and c["reason"] == "http_500" for c in calls)
    assert all(c["completion_tokens"] is not None for c in calls if c["ok"])  # token usage recorded

    # the server is fixed: a re-run retries only the failed records; finished ones and cached replies are reused
    step_proxy.poison = None
    before = step_proxy.requests
    again = run_insight_data(load_insight_recipe(recipe(tmp_path, data, step_proxy.url)), out)
    assert again["this_run"]["processed"] == 2
    assert JsonlLog(out / "records.jsonl").latest()["rec-004"]["status"] == "kept"
    assert step_proxy.requests - before == again["this_run"]["requests"] == 2 * 2 + 2 + 2 * 1  # rec-004 and rec-003


def test_killed_run_resumes_without_asking_twice_for_a_saved_reply(tmp_path, records, step_model, step_proxy):
    data = records(tmp_path / "data", 10)
    step_proxy.delay = 0.05
    path = recipe(tmp_path, data, step_proxy.url, max_in_flight=2)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "visionr1", "insight", "data", str(path), "--output-dir", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while step_proxy.requests < 12 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = {c["id"] for c in JsonlLog(out / "calls.jsonl") if c.get("ok")}
    finished = len(JsonlLog(out / "records.jsonl").latest())
    assert saved and finished < 10  # killed mid-run
    before = step_proxy.requests
    report = run_insight_data(load_insight_recipe(path), out)
    assert report["complete"] and report["kept"] == 10
    assert report["this_run"]["processed"] == 10 - finished
    # every reply saved before the kill is replayed, never requested again (10 records x (2 chains x 2 steps
    # + 2 ratings) in all); what was in flight at the kill is asked again
    assert report["this_run"]["requests"] == step_proxy.requests - before == 10 * 6 - len(saved)
