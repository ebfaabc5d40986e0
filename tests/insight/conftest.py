"""Fixtures of the Insight-V tests: a scripted OpenAI-compatible "model" on loopback (real HTTP, real client)
that writes structured steps the way an instructed MLLM would, and the cold start's fault-injecting proxy."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.coldstart.conftest import FaultProxy, write_records


class StepModel:
    """Answers ``/v1/chat/completions`` like a reasoning generator and a scoring agent.

    Step requests (the STEP_PROMPT): the number of steps already in the prompt decides the reply: step 1 reads
    the item number, step 2 summarizes with ``item % 5`` (the records' solution). Markers in a question change
    it: ``WRONG`` answers one too many, ``GARBAGE`` replies prose instead of JSON, ``BROKEN`` replies a chat
    completion whose ``message`` is a string (a malformed completion). Score requests: ``87``, or ``excellent``
    for ``NOSCORE``. Every request's body is kept, with a count per (question, kind, step).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict] = []
        self.seen: Counter = Counter()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                content = body["messages"][-1]["content"]
                text = content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")
                reply, raw = model.answer(text)
                with model.lock:
                    model.bodies.append(body)
                data = json.dumps(raw if raw is not None else {
                    "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": len(reply) // 4}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, text: str) -> tuple[str, dict | None]:
        item = int(re.search(r"\(item (\d+)\)", text).group(1))
        if "rating a reasoning process" in text:
            with self.lock:
                self.seen[(item, "score", 0)] += 1
            return ("excellent" if "NOSCORE" in text else "87"), None
        done = len(re.findall(r"^Step \d+:", text.split("Steps so far:")[1], re.M))
        with self.lock:
            self.seen[(item, "step", done)] += 1
        if "BROKEN" in text:
            return "", {"choices": [{"message": "not an object"}]}
        if "GARBAGE" in text:
            return "Sure! I think there are some squares.", None
        if done == 0:
            step = {"summary": "Read the item", "reasoning": f"The question is about item {item}.",
                    "next_action": "continue"}
        else:
            answer = item % 5 + (1 if "WRONG" in text else 0)
            step = {"summary": "Conclude", "reasoning": f"Item {item} shows {answer} squares. So the answer is {answer}.",
                    "next_action": "summarize", "answer": str(answer)}
        return "```json\n" + json.dumps(step) + "\n```", None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def step_model():
    m = StepModel()
    yield m
    m.close()


@pytest.fixture
def step_proxy(step_model):
    p = FaultProxy(step_model.url)
    yield p
    p.close()


@pytest.fixture
def records():
    return write_records
