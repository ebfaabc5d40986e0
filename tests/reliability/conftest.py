"""Fixtures of the reliability tests: a real HTTP server on loopback that misbehaves on demand, and a way to
run a command on a real tiny (or read-only) filesystem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def completion(content="<think>ok</think> Final Answer: 3", usage=None):
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
    body["usage"] = usage if usage is not None else {"prompt_tokens": 5, "completion_tokens": 7}
    return body


class MisbehavingServer:
    """``POST /v1/chat/completions`` answered by ``self.behaviour`` (a name from ``BEHAVIOURS`` or a callable
    ``handler -> None``). Counts requests and bytes sent; keeps the last Authorization header."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.requests = 0
        self.bytes_sent = 0
        self.last_auth = None
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with srv.lock:
                    srv.requests += 1
                    srv.last_auth = self.headers.get("authorization")
                try:
                    BEHAVIOURS[srv.behaviour](self, srv) if isinstance(srv.behaviour, str) else srv.behaviour(self, srv)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what the deadline / body cap tests want

            def send(self, status: int, data: bytes, chunked: bool = False) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if chunked:
                    self.send_header("transfer-encoding", "chunked")
                else:
                    self.send_header("content-length", str(len(data)))
                self.end_headers()
                if not chunked:
                    self.wfile.write(data)
                    with srv.lock:
                        srv.bytes_sent += len(data)

            def chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                with srv.lock:
                    srv.bytes_sent += len(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(obj):
    return lambda h, s: h.send(200, json.dumps(obj).encode())


def _trickle(h, s):
    """A valid completion, one byte a second (each read arrives well within any read timeout)."""
    data = json.dumps(completion()).encode()
    h.send(200, b"", chunked=True)
    for b in data:
        h.chunk(bytes([b]))
        time.sleep(1.0)


def _huge(h, s):
    """50 MB of body, chunked (no content-length to refuse it by)."""
    h.send(200, b"", chunked=True)
    h.chunk(b'{"choices": [{"message": {"content": "')
    block = b"x" * (1 << 20)
    for _ in range(50):
        h.chunk(block)
    h.chunk(b'"}}]}')
    h.wfile.write(b"0\r\n\r\n")


def _echo_key(h, s):
    """A 401 whose body echoes the key it was sent (some gateways do)."""
    h.send(401, json.dumps({"error": f"invalid api key {s.last_auth}"}).encode())


BEHAVIOURS = {
    "ok": _json(completion()),
    "message_is_string": _json({"choices": [{"message": "3"}]}),
    "content_is_list": _json({"choices": [{"message": {"content": [{"type": "text", "text": "3"}]}}]}),
    "usage_is_string": _json(completion(usage="many")),
    "usage_tokens_not_int": _json(completion(usage={"prompt_tokens": "5", "completion_tokens": 7})),
    "choices_empty": _json({"choices": []}),
    "not_json": lambda h, s: h.send(200, b"<html>gateway</html>"),
    "body_is_list": _json([1, 2]),
    "trickle": _trickle,
    "huge": _huge,
    "echo_key": _echo_key,
}


@pytest.fixture
def bad_server():
    srv = MisbehavingServer()
    yield srv
    srv.close()


# ----------------------------------------------------------------------------------------------------------
# real small / read-only filesystems (a tmpfs in a private mount namespace: no root needed where user
# namespaces are allowed; skipped where they are not)
# ----------------------------------------------------------------------------------------------------------


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /tmp && true"],
                           capture_output=True, timeout=20)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def small_fs():
    """``small_fs(mount_dir, argv, size_kb=64, readonly=False, prepare=None)``: run ``argv`` with a fresh
    tmpfs of ``size_kb`` mounted on ``mount_dir`` (``prepare``, a shell snippet, runs in it first; then it
    is remounted read-only if asked). Returns the CompletedProcess; the tmpfs vanishes with the command."""
    if not _can_unshare():
        pytest.skip("needs unshare -Urm (user + mount namespaces) for a real tiny or read-only filesystem")

    def run(mount_dir: Path, argv: list[str], size_kb: int = 64, readonly: bool = False, prepare: str = "",
            timeout: int = 120) -> subprocess.CompletedProcess:
        mount_dir.mkdir(parents=True, exist_ok=True)
        script = f'mount -t tmpfs -o size={size_kb}k tmpfs "$0" && cd / && {prepare or "true"}'
        if readonly:
            script += ' && mount -o remount,ro "$0"'
        script += ' && exec "$@"'
        return subprocess.run(["unshare", "-Urm", "sh", "-c", script, str(mount_dir), *argv],
                              capture_output=True, text=True, timeout=timeout)

    return run



# ----------------------------------------------------------------------------------------------------------
# a real, saved training run to damage or change: 2 SFT steps of the `test`-size tiny model, a checkpoint after
# each (built once per session; tests work on copies)
# ----------------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
VISIONR1 = str(Path(sys.executable).with_name("visionr1"))


def train_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    for var in ("WORLD_SIZE", "VISIONR1_RESUME_FROM", "VISIONR1_ALLOW_CHANGED"):
        env.pop(var, None)
    return env


class SFTRun:
    """``run`` (finished), ``model``, ``data`` (its jsonl), ``cmd(run_dir, *extra)``, ``unfinished(tmp)``."""

    def __init__(self, run: Path, model: Path, data: Path) -> None:
        self.run, self.model, self.data = run, model, data

    def cmd(self, run: Path, *extra: str, data: Path | None = None) -> list[str]:
        return [sys.executable, VISIONR1, "train", str(REPO / "recipes" / "tiny" / "sft.yaml"), f"model.path={self.model}",
                f"stages.sft.dataset.path={data or self.data}", "stages.sft.sft.max_steps=2",
                "stages.sft.sft.save_steps=1", "--output-dir", str(run), *extra]

    def train(self, run: Path, *extra: str, data: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(run, *extra, data=data), cwd=REPO, env=train_env(), capture_output=True,
                              text=True, timeout=300)

    def unfinished(self, tmp_path: Path) -> Path:
        """A copy of the run as a stop after checkpoint-2 leaves it: no final/, the stage to resume."""
        run = tmp_path / "run"
        shutil.copytree(self.run, run)
        shutil.rmtree(run / "sft" / "final")
        (run / ".lock").unlink(missing_ok=True)
        return run


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory, tiny_model_dir) -> SFTRun:
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("sft-run")
    make_synthetic("counting", 6, 0, root / "data")
    rows = [json.loads(line) for line in (root / "data" / "train.jsonl").read_text().splitlines()]
    sft = [{**r, "completion": f"<think>count</think><answer> Final Answer:{r['solution']} </answer>"} for r in rows]
    (root / "data" / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    saved = SFTRun(root / "run", tiny_model_dir, root / "data" / "sft.jsonl")
    out = saved.train(saved.run)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return saved
