"""The LLM judge against a real OpenAI-style HTTP server on loopback, and the score-rewards command."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.rewards.judge import JudgeError, LLMJudge


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like an OpenAI endpoint: CORRECT when the candidate contains the reference.
    Candidates starting with "flaky" get one HTTP 500 first; "slow" ones take 2 s; "bad" get HTTP 400."""

    lock = threading.Lock()
    active = 0
    max_active = 0
    requests = 0
    failed_once: set = set()

    def log_message(self, *args):
        pass

    def do_POST(self):
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        reference = user.split("Reference answer: ")[1].split("\n")[0]
        candidate = user.split("Candidate answer: ")[1]
        with cls.lock:
            cls.requests += 1
            cls.active += 1
            cls.max_active = max(cls.max_active, cls.active)
        try:
            time.sleep(2.0 if candidate.startswith("slow") else 0.05)
            if candidate.startswith("bad"):
                return self._send(400, {"error": {"message": "model not found"}})
            if candidate.startswith("flaky") and candidate not in cls.failed_once:
                cls.failed_once.add(candidate)
                return self._send(500, {"error": "overloaded"})
            verdict = "CORRECT" if reference.lower() in candidate.lower() else "INCORRECT"
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}}]})
        finally:
            with cls.lock:
                cls.active -= 1

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # the client hung up on a "slow" request: expected
        pass


@pytest.fixture
def server():
    FakeOpenAI.active = FakeOpenAI.max_active = FakeOpenAI.requests = 0
    FakeOpenAI.failed_once = set()
    srv = QuietServer(("127.0.0.1", 0), FakeOpenAI)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def ans(text):
    return f"<think>t</think><answer>{text}</answer>"


def test_judge_scores_with_bounded_concurrency_and_retries(server):
    judge = LLMJudge(base_url=server, model="judge", max_concurrency=3, timeout=5, backoff=0.01)
    comps = [ans(f"it is a big red cube number {i}") for i in range(10)] + [ans("blue ball"), ans("flaky red cube")]
    out = judge.score(comps, solution=["red cube"] * 12, task="free", question="What is it?")
    assert out == [1.0] * 10 + [0.0, 1.0]
    assert FakeOpenAI.max_active <= 3
    assert FakeOpenAI.requests == 13  # one retry for the flaky row


def test_judge_skips_what_rules_decide(server):
    judge = LLMJudge(base_url=server, model="judge", backoff=0.01)
    out = judge.score([ans("red cube"), "<think>never finished"], solution=["red cube", "red cube"], task="free")
    assert out == [1.0, 0.0] and FakeOpenAI.requests == 0


def test_judge_errors_and_timeouts(server):
    judge = LLMJudge(base_url=server, model="judge", backoff=0.01)
    with pytest.raises(JudgeError, match="HTTP 400"):
        judge.score([ans("bad answer")], solution=["x"], task="free")
    slow = LLMJudge(base_url=server, model="judge", timeout=0.3, max_retries=1, backoff=0.01, on_error="none")
    assert slow.score([ans("slow answer")], solution=["x"], task="free") == [None]
    with pytest.raises(JudgeError, match="after 2 attempts"):
        LLMJudge(base_url=server, model="judge", timeout=0.3, max_retries=1, backoff=0.01).score(
            [ans("slow answer")], solution=["x"], task="free"
        )


# ----------------------------------------------------------------------------- score-rewards

ROWS = [
    {"completion": ans("Final Answer: 4"), "solution": "4", "task": "math"},
    {"completion": [{"role": "assistant", "content": ans("(B)")}], "solution": "B", "task": "choice", "choices": ["1", "2"]},
    {"completion": "the answer is 3", "solution": "3", "task": "count", "id": "keep-me"},
    {"completion": ans("[0, 0, 10, 10]"), "solution": "[0, 0, 10, 20]", "task": "grounding"},
]


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


def test_score_rewards_cli(tmp_path):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    res = CliRunner().invoke(app, ["score-rewards", "--input", str(src), "--output", str(dst)])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["solution"] for o in out] == [r["solution"] for r in ROWS] and out[2]["id"] == "keep-me"
    assert [o["rewards"]["accuracy"] for o in out] == [1.0, 1.0, 1.0, 0.5]
    assert [o["rewards"]["format"] for o in out] == [1.0, 1.0, 0.0, 1.0]
    assert [o["rewards"]["hard_format_result"] for o in out] == [1.0, 1.0, 0.0, 1.0]


def test_score_rewards_cli_extra_reward_and_bad_lines(tmp_path):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS[:1], ['{"completion": "x"}', "not json", json.dumps({**ROWS[0], "task": "maths"})])
    runner = CliRunner()
    res = runner.invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst)])
    assert res.exit_code != 0 and "in.jsonl:2" in res.output and 'missing "solution"' in res.output
    assert not dst.exists()
    res = runner.invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst), "--skip-bad", "-r", "accuracy", "-r", "length"])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert len(out) == 4 and out[0]["rewards"]["accuracy"] == 1.0 and "length" in out[0]["rewards"]
    assert [o["rewards"] for o in out[1:]] == [None, None, None]
    assert "line 2" in out[1]["error"] and "invalid JSON" in out[2]["error"] and "maths" in out[3]["error"]
    res = runner.invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst), "-r", "acuracy"])
    assert res.exit_code != 0 and "did you mean 'accuracy'" in res.output
