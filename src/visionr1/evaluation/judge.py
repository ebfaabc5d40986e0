"""An optional LLM for answer extraction and judging, through any OpenAI-compatible chat endpoint.

Why optional: the official MathVista pipeline extracts every answer with GPT-4, and MathVerse also judges
every answer with one; reproducing that needs an endpoint and money, and the rules agree with the judge to
within ~1-6 points (research.md). So rules are the default; a judge can either fill in where the rules find
no answer (``fallback``) or do what the official pipeline does with an LLM for every item (``official``).
Either way the summary counts how many items needed it, so two numbers are never compared unknowingly.

Any server speaking ``POST {base_url}/chat/completions`` works: OpenAI, vLLM's or SGLang's server, a local
proxy. The key is read from an environment variable (``--judge-api-key-env``), never from the command line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import httpx

from visionr1.utils.chat import RETRYABLE_STATUS, ChatClient, ChatError, JudgeError, api_key_from_env

JudgeMode = Literal["off", "fallback", "official"]
JUDGE_MODES = ("off", "fallback", "official")


@dataclass
class JudgeConfig:
    base_url: str  # e.g. https://api.openai.com/v1 or http://localhost:8000/v1
    model: str  # the model name the endpoint serves
    mode: JudgeMode = "fallback"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (may be unset)
    timeout_s: float = 60.0  # total deadline of one request
    max_retries: int = 3
    backoff_s: float = 2.0  # first retry delay; doubles each retry (jittered)
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.mode not in JUDGE_MODES:
            raise ValueError(f"judge mode {self.mode!r}: expected one of {JUDGE_MODES}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge url {self.base_url!r}: expected http(s)://host[:port]/v1")


async def _blocking_sleep(seconds: float) -> None:
    # the synchronous judge runs one request per event loop, so blocking it blocks nothing else
    time.sleep(seconds)


class EvalJudge:
    """A small synchronous client: one prompt in, the completion text out. Requests go through the shared
    :class:`visionr1.utils.chat.ChatClient` (total deadline, body cap, retries on 429/5xx, redacted errors)."""

    def __init__(self, config: JudgeConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = api_key_from_env(config.api_key_env, "--judge-api-key-env", required=False)
        self._chat = ChatClient(
            config.base_url, api_key=key, timeout_s=config.timeout_s, max_retries=config.max_retries,
            backoff_s=config.backoff_s, concurrency=1, sleep=_blocking_sleep, transport=transport,
        )
        self.calls = 0  # requests that returned a completion

    @property
    def mode(self) -> JudgeMode:
        return self.config.mode

    def complete(self, prompt: str) -> str:
        body = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        }
        try:
            reply = self._chat.complete_sync(body)
        except ChatError as exc:
            if exc.status is not None and exc.status < 500 and exc.status not in RETRYABLE_STATUS and exc.status != 200:
                raise JudgeError(
                    f"judge {self.config.base_url}: {exc.detail} "
                    f"(check --judge-url, --judge-model and the key in ${self.config.api_key_env})"
                ) from None
            if exc.reason in ("bad_response", "response_too_large"):
                raise JudgeError(f"judge {self.config.base_url}: not an OpenAI chat completion: {exc.detail}") from None
            raise JudgeError(f"judge {self.config.base_url}: gave up after {exc.attempts} tries ({exc.reason}: {exc.detail})") from None
        self.calls += 1
        return reply.text.strip()

    def close(self) -> None:
        """Nothing to release: each request runs in its own short-lived client."""

    def describe(self) -> dict:
        return {"url": self.config.base_url, "model": self.config.model, "mode": self.config.mode, "calls": self.calls}
