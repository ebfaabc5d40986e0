"""Fixtures of the cold-start tests: a real OpenAI-compatible server (`transformers serve` with the tiny
Qwen2.5-VL), a fault-injecting HTTP proxy in front of it, and small input datasets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serve_url(tiny_model_dir, tmp_path_factory):
    """`transformers serve` on loopback with the tiny model preloaded; yields its /v1 base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", str(tiny_model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`transformers serve` exited with {proc.returncode} (needs fastapi, uvicorn, openai: "
                            f"pip install -e '.[dev]'):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`transformers serve` not up after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/v1"
        # warm up (the first generation pays one-off costs) so per-request timeouts in the tests are meaningful
        httpx.post(f"{url}/chat/completions", timeout=120,
                   json={"model": str(tiny_model_dir), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class FaultProxy:
    """Forwards /v1/chat/completions to a real server, injecting faults:

    - ``script``: statuses answered (instead of forwarding) to the next requests, one each (500, 429, 400 ...);
    - ``poison``: requests whose body contains this text always get a 500;
    - ``hang``: requests whose body contains this text get no answer for ``hang_s`` seconds;
    - ``delay``: seconds added before forwarding every request.
    It counts requests and statuses, and keeps the last request's body and headers.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.script: list[int] = []
        self.poison: str | None = None
        self.hang: str | None = None
        self.hang_s = 5.0
        self.delay = 0.0
        self.requests = 0
        self.statuses: Counter = Counter()
        self.last_body: dict | None = None
        self.last_headers: dict = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                text = raw.decode("utf-8", "replace")
                with proxy.lock:
                    proxy.requests += 1
                    proxy.last_body, proxy.last_headers = json.loads(raw), dict(self.headers)
                    scripted = proxy.script.pop(0) if proxy.script else None
                try:
                    if scripted is not None:
                        return self.reply(scripted, {"error": f"injected {scripted}"}, {"Retry-After": "0"} if scripted == 429 else {})
                    if proxy.poison and proxy.poison in text:
                        return self.reply(500, {"error": "injected: poisoned record"})
                    if proxy.hang and proxy.hang in text:
                        time.sleep(proxy.hang_s)
                        return self.reply(504, {"error": "too late"})
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    r = httpx.post(proxy.upstream + self.path.removeprefix("/v1"), content=raw,
                                   headers={"content-type": "application/json"}, timeout=120)
                    self.reply(r.status_code, r.content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): fine

            def reply(self, status: int, body, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                with proxy.lock:
                    proxy.statuses[status] += 1
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(serve_url):
    p = FaultProxy(serve_url)
    yield p
    p.close()


def write_records(d: Path, n: int, markers: dict[int, str] | None = None) -> Path:
    """``n`` counting records in the canonical jsonl format (one 112x112 image each); ``markers`` puts a word
    into chosen questions so the proxy can single them out."""
    (d / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rid = f"rec-{i:03d}"
        Image.new("RGB", (112, 112), ((40 * i) % 256, 120, 200)).save(d / "images" / f"{rid}.png")
        q = f"How many squares are there? (item {i})" + (f" {markers[i]}" if markers and i in markers else "")
        lines.append(json.dumps({"id": rid, "task": "count", "question": q, "images": [f"images/{rid}.png"],
                                 "solution": str(i % 5), "choices": None, "metadata": {}}))
    path = d / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def http_recipe(data: Path, url: str, model: str, **backend) -> str:
    """A cold-start recipe (YAML text) whose three steps use one OpenAI-compatible backend."""
    b = {"type": "openai", "base_url": url, "model": model, "concurrency": 2, "max_retries": 2,
         "backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 30, **backend}
    return json.dumps({
        "name": "http-test",
        "input": {"format": "jsonl", "path": str(data)},
        "backends": {"srv": b},
        "pseudo_cot": {"backend": "srv", "max_tokens": 8},
        "description": {"backend": "srv", "max_tokens": 8},
        "reasoning": {"backend": "srv", "max_tokens": 8},
    })


@pytest.fixture
def make_records():
    return write_records


@pytest.fixture
def make_http_recipe():
    return http_recipe
