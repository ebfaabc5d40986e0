"""The shared OpenAI-compatible client (cold start, llm_judge reward, evaluation judge) against a REAL HTTP
server on loopback that trickles, floods, answers malformed JSON, or echoes the key back."""

from __future__ import annotations

import asyncio
import json
import resource
import time

import pytest
from PIL import Image

from visionr1.coldstart import load_coldstart_recipe, run_coldstart
from visionr1.coldstart.backends import GenerationError, GenRequest, OpenAIBackend
from visionr1.coldstart.config import OpenAIBackendSpec
from visionr1.coldstart.store import JsonlLog
from visionr1.evaluation.judge import EvalJudge, JudgeConfig
from visionr1.evaluation.judge import JudgeError as EvalJudgeError
from visionr1.rewards.judge import JudgeError, LLMJudge

SECRET = "sk-live-0123456789abcdefGHIJ"
# server behaviours (tests/reliability/conftest.py) that are not a chat completion
MALFORMED = ["message_is_string", "content_is_list", "usage_is_string", "usage_tokens_not_int", "choices_empty",
             "not_json", "body_is_list"]


def generate(url, images=(), **spec):
    spec = {"base_url": url, "model": "m", "backoff_s": 0.01, "backoff_max_s": 0.02, "max_retries": 0, **spec}
    b = OpenAIBackend("srv", OpenAIBackendSpec(**spec))
    req = GenRequest(record_id="r", step="pseudo_cot", text="How many?", images=list(images), max_tokens=4)

    async def go():
        try:
            return await b.generate(req)
        finally:
            await b.aclose()

    return asyncio.run(go())


def test_trickling_server_hits_the_total_deadline(bad_server):
    """1 byte/s: every read is quick, the request is not. Before: it ran for minutes (per-read timeout only)."""
    bad_server.behaviour = "trickle"
    start = time.monotonic()
    with pytest.raises(GenerationError) as err:
        generate(bad_server.url, timeout_s=1.5)
    assert err.value.reason == "timeout" and time.monotonic() - start < 5
    judge = LLMJudge(base_url=bad_server.url, model="j", timeout=1.0, max_retries=0, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(JudgeError, match="timeout"):
        judge.score(["<answer>a blue thing</answer>"], solution=["red"], task="free")
    assert time.monotonic() - start < 5
    eval_judge = EvalJudge(JudgeConfig(bad_server.url, "j", timeout_s=1.0, max_retries=0))
    start = time.monotonic()
    with pytest.raises(EvalJudgeError, match="timeout"):
        eval_judge.complete("q")
    assert time.monotonic() - start < 5


def test_huge_body_is_cut_at_the_cap_not_held_in_memory(bad_server):
    """A 50 MB body: the client stops reading at the cap (1 MiB here) and says so; memory stays flat."""
    bad_server.behaviour = "huge"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GenerationError) as err:
        generate(bad_server.url, max_response_mb=1.0, timeout_s=30)
    assert err.value.reason == "response_too_large" and "1,048,576" in err.value.detail
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 40, f"peak RSS grew {grown_mb:.0f} MB for a capped body"
    time.sleep(0.2)
    assert bad_server.bytes_sent < 20 * (1 << 20)  # the server was cut off long before its 50 MB


@pytest.mark.parametrize("behaviour", MALFORMED)
def test_malformed_completions_are_bad_response(bad_server, behaviour):
    bad_server.behaviour = behaviour
    with pytest.raises(GenerationError) as err:
        generate(bad_server.url)
    assert err.value.reason == "bad_response", err.value
    assert "AttributeError" not in str(err.value)


def test_well_formed_completion_still_parses(bad_server):
    gen = generate(bad_server.url, images=[Image.new("RGB", (28, 2000))])
    assert gen.text.endswith("Final Answer: 3") and (gen.prompt_tokens, gen.completion_tokens) == (5, 7)


def _records(d, n):
    (d / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        size = [(28, 28), (40, 600), (300, 20)][i % 3]
        Image.new("RGB", size, (i * 40 % 256, 90, 200)).save(d / "images" / f"r{i}.png")
        q = "How many squares? " + "Look closely. " * (i * 40)
        lines.append(json.dumps({"id": f"r{i}", "task": "count", "question": q, "images": [f"images/r{i}.png"],
                                 "solution": "3", "choices": None, "metadata": {}}))
    (d / "train.jsonl").write_text("\n".join(lines) + "\n")
    return d / "train.jsonl"


def _recipe(tmp_path, url, **backend):
    data = _records(tmp_path / "data", 3)
    b = {"type": "openai", "base_url": url, "model": "m", "concurrency": 2, "max_retries": 0, "backoff_s": 0.01,
         "timeout_s": 10, **backend}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({"name": "faults", "input": {"format": "jsonl", "path": str(data)}, "backends": {"srv": b},
                                **{s: {"backend": "srv", "max_tokens": 8} for s in ("pseudo_cot", "description", "reasoning")}}))
    return load_coldstart_recipe(path)


@pytest.mark.parametrize("behaviour", ["message_is_string", "content_is_list", "usage_is_string"])
def test_pipeline_records_bad_response_for_every_record(tmp_path, bad_server, behaviour):
    """Before: an AttributeError per record, recorded as reason 'error' and the evidence thrown away."""
    bad_server.behaviour = behaviour
    report = run_coldstart(_recipe(tmp_path, bad_server.url), output_dir=tmp_path / "out")
    records = JsonlLog(tmp_path / "out" / "records.jsonl").latest()
    assert {(r["status"], r["step"], r["reason"]) for r in records.values()} == {("failed", "pseudo_cot", "bad_response")}
    assert report["failed"] == {"pseudo_cot:bad_response": 3}


def test_key_echoed_by_the_server_is_redacted_everywhere(tmp_path, bad_server, monkeypatch, capsys):
    monkeypatch.setenv("REL_BACKEND_KEY", SECRET)
    bad_server.behaviour = "echo_key"
    out = tmp_path / "out"
    run_coldstart(_recipe(tmp_path, bad_server.url, api_key_env="REL_BACKEND_KEY"), output_dir=out)
    assert bad_server.last_auth == f"Bearer {SECRET}"  # it was sent ...
    records = JsonlLog(out / "records.jsonl").latest()
    assert {r["reason"] for r in records.values()} == {"http_401"} and "<redacted>" in records["r0"]["detail"]
    for f in [*out.rglob("*.json"), *out.rglob("*.jsonl")]:  # ... and is in no file
        assert SECRET not in f.read_text(), f
    assert SECRET not in capsys.readouterr().out
    monkeypatch.setenv("REL_JUDGE_KEY", SECRET)
    judge = LLMJudge(base_url=bad_server.url, model="j", api_key_env="REL_JUDGE_KEY", backoff=0.01)
    with pytest.raises(JudgeError) as err:
        judge.score(["<answer>blue</answer>"], solution=["red"], task="free")
    assert SECRET not in str(err.value) and "HTTP 401" in str(err.value)
    with pytest.raises(EvalJudgeError) as err:
        EvalJudge(JudgeConfig(bad_server.url, "j", api_key_env="REL_JUDGE_KEY")).complete("q")
    assert SECRET not in str(err.value) and "HTTP 401" in str(err.value)
