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

import os
import time
from dataclasses import dataclass
from typing import Literal

import httpx

JudgeMode = Literal["off", "fallback", "official"]
JUDGE_MODES = ("off", "fallback", "official")


class JudgeError(RuntimeError):
    """The judge endpoint failed after its retries; the message names the endpoint and the status."""


@dataclass
class JudgeConfig:
    base_url: str  # e.g. https://api.openai.com/v1 or http://localhost:8000/v1
    model: str  # the model name the endpoint serves
    mode: JudgeMode = "fallback"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (may be unset)
    timeout_s: float = 60.0
    max_retries: int = 3
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.mode not in JUDGE_MODES:
            raise ValueError(f"judge mode {self.mode!r}: expected one of {JUDGE_MODES}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge url {self.base_url!r}: expected http(s)://host[:port]/v1")


class LLMJudge:
    """A small synchronous client: one prompt in, the completion text out, with retries on 429/5xx."""

    def __init__(self, config: JudgeConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s, transport=transport
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
        last = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(min(2.0**attempt, 30.0))
            try:
                resp = self._client.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise JudgeError(
                    f"judge {self.config.base_url}: HTTP {resp.status_code}: {resp.text[:200]} "
                    f"(check --judge-url, --judge-model and the key in ${self.config.api_key_env})"
                )
            try:
                text = resp.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise JudgeError(f"judge {self.config.base_url}: not an OpenAI chat completion: {resp.text[:200]}") from None
            self.calls += 1
            return text.strip()
        raise JudgeError(f"judge {self.config.base_url}: gave up after {self.config.max_retries + 1} tries ({last})")

    def close(self) -> None:
        self._client.close()

    def describe(self) -> dict:
        return {"url": self.config.base_url, "model": self.config.model, "mode": self.config.mode, "calls": self.calls}
