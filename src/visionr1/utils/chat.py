"""The one OpenAI-compatible chat client: cold-start backends, the ``llm_judge`` reward and the evaluation
judge all ``POST {base_url}/chat/completions`` through :class:`ChatClient`.

What it guarantees, and why each is here (each was a bug while three copies existed):
- a **total deadline per request** (``timeout_s``): ``httpx.Timeout(t)`` bounds each socket read, so a server
  trickling one byte a second never timed out; the whole exchange now runs under ``asyncio.timeout``;
- a **response body cap** (``max_response_bytes``): a 50 MB body used to be held in memory and written to
  disk; the body is streamed and the request fails as ``response_too_large`` once over the cap;
- **strict parsing**: a ``message`` that is a string, ``content`` that is a list, or a ``usage`` of the wrong
  type is a ``bad_response`` naming the field, never an ``AttributeError`` that loses the record;
- **retries** with exponential backoff and jitter on connection errors, timeouts, 408/409/425/429 and 5xx
  (``Retry-After`` honoured), never on other 4xx, where retrying cannot help;
- **secrets**: the key comes only from the environment variable named by ``api_key_env``; every error detail
  (a server may echo the key in its error body) is passed through :func:`visionr1.utils.secrets.redact_text`.

Departures from the ``openai`` client library: no dependency on it (any server, plain httpx), and
``content`` must be a string -- list-of-parts replies are refused rather than guessed at.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from visionr1.utils.secrets import redact_text, register_secret_env

# 408 request timeout, 409 conflict (some gateways), 425 too early, 429 rate limit, and every 5xx.
RETRYABLE_STATUS = {408, 409, 425, 429}
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a 16K-token reasoning reply is ~100 KB
DETAIL_CHARS = 300


class ChatError(Exception):
    """A request that failed for good (after retries). ``reason`` is a short code reports count
    (``timeout``, ``http_500``, ``connection_error``, ``bad_response``, ``response_too_large``), ``detail``
    the redacted evidence, ``status`` the last HTTP status (None when there was none)."""

    def __init__(self, reason: str, detail: str = "", attempts: int = 1, status: int | None = None) -> None:
        detail = redact_text(detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.attempts, self.status = reason, detail, attempts, status


class JudgeError(RuntimeError):
    """A judge endpoint (the ``llm_judge`` reward, the evaluation's :class:`~visionr1.evaluation.judge.EvalJudge`)
    gave no usable reply after its retries; the message names the endpoint, the cause and what to check."""


@dataclass
class ChatReply:
    text: str
    reasoning: str | None = None  # a server's separate reasoning_content (DeepSeek-R1 API, vLLM reasoning parser)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    latency_s: float = 0.0


def api_key_from_env(env_name: str | None, where: str, required: bool = True) -> str | None:
    """The key in environment variable ``env_name`` (registered for redaction). ``required``: an unset
    variable that the config names explicitly is an error, not a silent unauthenticated request."""
    if not env_name:
        return None
    register_secret_env(env_name)
    key = os.environ.get(env_name)
    if not key and required:
        raise ValueError(
            f"{where}: environment variable {env_name} is not set; export {env_name}=<key> "
            "(or set api_key_env: null for a server without auth)"
        )
    return key or None


def _typed(obj: Any, key: str, types: tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
        return value
    names = " or ".join(t.__name__ for t in types)
    raise ValueError(f"{where}.{key} is a {type(value).__name__}, expected {names} or null")


def parse_chat_completion(raw: bytes) -> ChatReply:
    """A reply from the bytes of a chat completion; ``ChatError('bad_response')`` naming the bad field.

    >>> parse_chat_completion(b'{"choices": [{"message": {"content": "4"}, "finish_reason": "stop"}]}').text
    '4'
    >>> parse_chat_completion(b'{"choices": [{"message": "4"}]}')
    Traceback (most recent call last):
    ...
    visionr1.utils.chat.ChatError: bad_response: choices[0].message is a str, expected an object
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChatError("bad_response", f"not JSON ({exc}): {raw[:DETAIL_CHARS]!r}") from None
    try:
        if not isinstance(data, dict):
            raise ValueError(f"the body is a {type(data).__name__}, expected an object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"choices is {type(choices).__name__ if choices is not None else 'missing'}, "
                             "expected a non-empty list")
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ValueError(f"choices[0] is a {type(choice).__name__}, expected an object")
        msg = choice.get("message")
        if not isinstance(msg, dict):
            raise ValueError(f"choices[0].message is a {type(msg).__name__}, expected an object")
        where = "choices[0].message"
        content = _typed(msg, "content", (str,), where)
        reasoning = _typed(msg, "reasoning_content", (str,), where) or _typed(msg, "reasoning", (str,), where)
        finish = _typed(choice, "finish_reason", (str,), "choices[0]")
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise ValueError(f"usage is a {type(usage).__name__}, expected an object")
        usage = usage or {}
        prompt_tokens = _typed(usage, "prompt_tokens", (int,), "usage")
        completion_tokens = _typed(usage, "completion_tokens", (int,), "usage")
    except ValueError as exc:
        raise ChatError("bad_response", str(exc)) from None
    return ChatReply(text=content or "", reasoning=reasoning or None, finish_reason=finish,
                     prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


class ChatClient:
    """``POST {base_url}/chat/completions`` with a total deadline, a body cap, retries and bounded concurrency.

    The httpx client and the semaphore belong to the event loop that first uses them; :meth:`aclose` drops
    them, and :meth:`complete_sync` runs one request in a loop of its own (for synchronous callers).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0, max_retries: int = 3,
                 backoff_s: float = 1.0, backoff_max_s: float = 30.0, concurrency: int = 8,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, jitter: Callable[[], float] = random.random,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.max_retries = float(timeout_s), max(0, int(max_retries))
        self.backoff_s, self.backoff_max_s = float(backoff_s), float(backoff_max_s)
        self.concurrency, self.max_response_bytes = max(1, int(concurrency)), int(max_response_bytes)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._sleep, self._jitter, self._transport = sleep, jitter, transport
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests_sent = 0

    def _ensure(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/", headers=self._headers, transport=self._transport,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 30.0)),
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            )
            self._sem, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._client, self._sem

    async def complete(self, body: dict[str, Any]) -> ChatReply:
        """One chat completion (retried as the class says); raises :class:`ChatError`."""
        client, sem = self._ensure()
        start = time.monotonic()
        for attempt in range(1, self.max_retries + 2):
            retry_after = None
            try:
                async with sem:
                    self.requests_sent += 1
                    async with asyncio.timeout(self.timeout_s):
                        status, headers, raw = await self._post(client, body)
            except (TimeoutError, httpx.TimeoutException) as exc:
                reason, detail, status = "timeout", f"no complete answer within {self.timeout_s:g}s ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                reason, detail, status = "connection_error", f"{type(exc).__name__}: {exc}", None
            except ChatError as exc:  # body over the cap: the same request gets the same body
                exc.attempts = attempt
                raise
            else:
                if status == 200:
                    try:
                        reply = parse_chat_completion(raw)
                    except ChatError as exc:
                        exc.attempts, exc.status = attempt, status
                        raise
                    reply.attempts, reply.latency_s = attempt, time.monotonic() - start
                    return reply
                reason, detail = f"http_{status}", raw[:DETAIL_CHARS].decode("utf-8", "replace")
                if status < 500 and status not in RETRYABLE_STATUS:
                    raise ChatError(reason, f"HTTP {status}: {detail}", attempt, status)
                retry_after = _retry_after(headers)
            if attempt > self.max_retries:
                raise ChatError(reason, f"{detail} (after {attempt} attempts)", attempt, status)
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + 0.5 * self._jitter())
            if retry_after is not None:
                delay = min(self.backoff_max_s, max(delay, retry_after))
            await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        cap = self.max_response_bytes
        async with client.stream("POST", "chat/completions", json=body) as resp:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise ChatError("response_too_large", f"the server announced {int(declared):,} bytes; "
                                f"the cap is {cap:,} (max_response_bytes)", status=resp.status_code)
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise ChatError("response_too_large", f"the body passed the cap of {cap:,} bytes "
                                    "(max_response_bytes)", status=resp.status_code)
                chunks.append(chunk)
            return resp.status_code, resp.headers, b"".join(chunks)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._sem, self._loop = self._client, None, None, None
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone: nothing left to close
                pass

    def complete_sync(self, body: dict[str, Any]) -> ChatReply:
        """:meth:`complete` for synchronous code (its own event loop; in a thread if one runs here)."""

        async def once() -> ChatReply:
            try:
                return await self.complete(body)
            finally:
                await self.aclose()

        return run_sync(once)


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def run_sync(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from synchronous code, even when an event loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["err"] = exc

    th = threading.Thread(target=run)
    th.start()
    th.join()
    if "err" in box:
        raise box["err"]
    return box["out"]
