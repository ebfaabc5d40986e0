"""The OpenAI-compatible backend and the pipeline against a REAL server: `transformers serve` with the tiny
Qwen2.5-VL on loopback, behind a proxy that injects 500s, 429s, poisoned records and hangs."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from PIL import Image

from visionr1.coldstart import load_coldstart_recipe, run_coldstart
from visionr1.coldstart.backends import GenerationError, GenRequest, OpenAIBackend
from visionr1.coldstart.config import OpenAIBackendSpec
from visionr1.coldstart.store import JsonlLog

pytestmark = pytest.mark.slow


def backend(url, model, **kw):
    spec = OpenAIBackendSpec(base_url=url, model=model, backoff_s=0.01, backoff_max_s=0.05, timeout_s=30, **kw)
    return OpenAIBackend("srv", spec)


def one_request(b, images=True):
    im = Image.new("RGB", (112, 112), (255, 0, 0))
    req = GenRequest(record_id="r", step="pseudo_cot", text="How many?", images=[im] if images else [], max_tokens=4)

    async def go():
        try:
            return await b.generate(req)
        finally:
            await b.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("script, attempts", [([500], 2), ([500, 503, 429], 4)])
def test_retries_server_errors_then_succeeds(proxy, tiny_model_dir, script, attempts):
    proxy.script = list(script)
    gen = one_request(backend(proxy.url, str(tiny_model_dir), max_retries=5))
    assert gen.attempts == attempts
    assert gen.text and gen.completion_tokens and gen.prompt_tokens  # token usage recorded
    assert proxy.statuses[200] == 1 and proxy.requests == attempts
    # the image went as a data URL, the text after it
    content = proxy.last_body["messages"][-1]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[1] == {"type": "text", "text": "How many?"}


def test_gives_up_after_max_retries_and_does_not_retry_client_errors(proxy, tiny_model_dir):
    proxy.script = [500, 500, 500]
    with pytest.raises(GenerationError) as err:
        one_request(backend(proxy.url, str(tiny_model_dir), max_retries=2))
    assert err.value.reason == "http_500" and err.value.attempts == 3
    proxy.script, proxy.requests = [400], 0
    with pytest.raises(GenerationError) as err:
        one_request(backend(proxy.url, str(tiny_model_dir), max_retries=5))
    assert err.value.reason == "http_400" and err.value.attempts == 1 and proxy.requests == 1


def test_api_key_from_env_and_text_only_content(proxy, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CS_TEST_KEY", "sekret")
    one_request(backend(proxy.url, str(tiny_model_dir), api_key_env="CS_TEST_KEY"), images=False)
    assert proxy.last_headers.get("Authorization") == "Bearer sekret"
    assert proxy.last_body["messages"][-1]["content"] == "How many?"  # a plain string for text-only requests


def test_connection_error_is_a_reason_not_a_crash():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(GenerationError) as err:
        one_request(backend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1))
    assert err.value.reason == "connection_error" and err.value.attempts == 2


def test_failing_records_are_recorded_with_reasons_and_retried_on_rerun(tmp_path, proxy, tiny_model_dir, make_records, make_http_recipe):
    data = make_records(tmp_path / "data", 6, markers={1: "POISON", 4: "HANG"})
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(make_http_recipe(data, proxy.url, str(tiny_model_dir), timeout_s=3.0, max_retries=1))
    proxy.poison, proxy.hang, proxy.hang_s = "POISON", "HANG", 4.0
    out = tmp_path / "out"
    report = run_coldstart(load_coldstart_recipe(recipe_path), output_dir=out)

    records = JsonlLog(out / "records.jsonl").latest()
    assert len(records) == 6  # nothing silently dropped
    poisoned, hung = records["rec-001"], records["rec-004"]
    assert (poisoned["status"], poisoned["step"], poisoned["reason"]) == ("failed", "pseudo_cot", "http_500")
    assert "after 2 attempts" in poisoned["detail"]
    assert (hung["status"], hung["step"], hung["reason"]) == ("failed", "pseudo_cot", "timeout")
    assert report["failed"] == {"pseudo_cot:http_500": 1, "pseudo_cot:timeout": 1}
    others = [r for k, r in records.items() if k not in ("rec-001", "rec-004")]
    assert all(r["status"] in ("kept", "dropped") for r in others)  # the tiny model writes noise: dropped
    assert report["kept"] + sum(report["dropped"].values()) == 4
    assert report["tokens"]["pseudo_cot"]["prompt_tokens"] > 0 and report["tokens"]["reasoning"]["completion_tokens"] > 0

    # a re-run retries only the two failed records: 3 requests each, nothing else is asked again
    proxy.poison = proxy.hang = None
    before = proxy.requests
    report2 = run_coldstart(load_coldstart_recipe(recipe_path), output_dir=out)
    assert proxy.requests - before == 6
    assert report2["failed"] == {} and report2["complete"]
    assert report2["this_run"] == {**report2["this_run"], "processed": 2, "skipped_finished": 4}


def test_resume_after_sigkill(tmp_path, proxy, tiny_model_dir, make_records, make_http_recipe):
    """Kill the real `visionr1 coldstart` process mid-run; the same command finishes the job without
    asking the server again for anything already saved."""
    n = 10
    data = make_records(tmp_path / "data", n)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(make_http_recipe(data, proxy.url, str(tiny_model_dir), concurrency=2))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from visionr1.cli import app; app()", "coldstart", str(recipe_path), "--output-dir", str(out)]
    proxy.delay = 0.25  # slow enough to be caught mid-run

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while _lines(out / "records.jsonl") < 3:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no record finished in 90 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sum(_ok_steps(out, s) for s in ("pseudo_cot", "description", "reasoning"))
    finished_before = _lines(out / "records.jsonl")
    assert 3 <= finished_before < n, "the kill came too late to test a resume"

    proxy.delay = 0.0
    before = proxy.requests
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert proxy.requests - before == 3 * n - saved  # only the missing step results were requested
    for step in ("pseudo_cot", "description", "reasoning"):
        per_id = Counter(e["id"] for e in JsonlLog(out / "steps" / f"{step}.jsonl") if e.get("ok"))
        assert set(per_id) == {f"rec-{i:03d}" for i in range(n)} and max(per_id.values()) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["finished"] == n
    assert report["this_run"]["skipped_finished"] == finished_before


def test_ctrl_c_saves_everything_and_writes_a_partial_report(tmp_path, proxy, tiny_model_dir, make_records, make_http_recipe):
    n = 8
    data = make_records(tmp_path / "data", n)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(make_http_recipe(data, proxy.url, str(tiny_model_dir), concurrency=1))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from visionr1.cli import app; app()", "coldstart", str(recipe_path), "--output-dir", str(out)]
    proxy.delay = 1.0  # 24 requests one at a time: >= 24 s, so the SIGINT lands mid-run even on a fast, idle host
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    while _lines(out / "records.jsonl") < 1:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "run the same command again to resume" in " ".join(output.split())  # rich wraps lines
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and report["finished"] == _lines(out / "records.jsonl") < n
    assert report["pending"] == n - report["finished"]


def test_throughput_against_local_server(tmp_path, proxy, tiny_model_dir, capsys, make_records, make_http_recipe):
    """records/s through all three steps against `transformers serve` + tiny model (printed for the notes)."""
    n = 12
    data = make_records(tmp_path / "data", n)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(make_http_recipe(data, proxy.url, str(tiny_model_dir), concurrency=4))
    recipe = load_coldstart_recipe(recipe_path, ["pseudo_cot.max_tokens=32", "description.max_tokens=32", "reasoning.max_tokens=64"])
    report = run_coldstart(recipe, output_dir=tmp_path / "out")
    run = report["this_run"]
    assert run["processed"] == n and run["records_per_s"] > 0
    with capsys.disabled():
        print(f"\n[coldstart throughput] transformers serve + tiny Qwen2.5-VL (CPU), 3 requests/record, "
              f"concurrency 4: {run['records_per_s']:.2f} records/s ({n} records in {run['elapsed_s']:.1f} s)")


def _lines(path) -> int:
    return sum(1 for _ in JsonlLog(path)) if path.exists() else 0


def _ok_steps(out, step) -> int:
    return sum(1 for e in JsonlLog(out / "steps" / f"{step}.jsonl") if e.get("ok"))
