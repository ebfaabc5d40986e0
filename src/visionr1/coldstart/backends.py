"""Generation backends of the cold-start steps: OpenAI-compatible HTTP, local transformers, oracle.

Every backend takes a :class:`GenRequest` and returns the shared client's :class:`ChatReply`, or raises :class:`GenerationError`
with a short reason code (``timeout``, ``http_500``, ``connection_error``, ``bad_response``,
``response_too_large``, ...). The pipeline records that reason for the record and goes on: a failing record
never stops a run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionr1.coldstart.config import LocalBackendSpec, OpenAIBackendSpec, OracleBackendSpec
from visionr1.config.base import RecipeError
from visionr1.utils.chat import RETRYABLE_STATUS, ChatClient, ChatError, ChatReply, api_key_from_env

__all__ = ["RETRYABLE_STATUS", "ChatReply", "GenRequest", "GenerationError", "build_backend"]


@dataclass
class GenRequest:
    record_id: str
    step: str
    text: str
    images: list = field(default_factory=list)  # PIL images; empty for the text-only reasoner
    system: str | None = None
    max_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)  # the record's metadata (the oracle reads it)
    solution: str = ""


class GenerationError(Exception):
    """A request that failed for good (after retries); ``reason`` is a short code the report counts."""

    def __init__(self, reason: str, detail: str = "", attempts: int = 1) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.attempts = reason, detail, attempts


def image_data_url(image, fmt: str = "png") -> str:
    """A PIL image as a ``data:`` URL (how OpenAI-compatible servers take inline images)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ----------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# ----------------------------------------------------------------------------------------------------------


class OpenAIBackend:
    """``POST {base_url}/chat/completions`` through the shared :class:`visionr1.utils.chat.ChatClient`: bounded
    concurrency, retries, a total deadline per request (``timeout_s``), a response body cap, strict parsing."""

    is_oracle = False

    def __init__(self, name: str, spec: OpenAIBackendSpec, *, sleep=asyncio.sleep, jitter=random.random) -> None:
        self.name, self.spec = name, spec
        self.label = f"openai:{spec.model}"
        try:
            key = api_key_from_env(spec.api_key_env, f"backends.{name}.api_key_env")
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
        self._chat = ChatClient(
            spec.base_url, api_key=key, timeout_s=spec.timeout_s, max_retries=spec.max_retries,
            backoff_s=spec.backoff_s, backoff_max_s=spec.backoff_max_s, concurrency=spec.concurrency,
            max_response_bytes=int(spec.max_response_mb * 1024 * 1024), sleep=sleep, jitter=jitter,
        )

    async def body(self, req: GenRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        if req.images:
            urls = await asyncio.to_thread(lambda: [image_data_url(im, self.spec.image_format) for im in req.images])
            content: Any = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
            content.append({"type": "text", "text": req.text})
        else:
            content = req.text  # plain string: text-only endpoints (DeepSeek's API) reject content lists
        messages.append({"role": "user", "content": content})
        return {
            **self.spec.extra_body,
            "model": self.spec.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }

    async def generate(self, req: GenRequest) -> ChatReply:
        body = await self.body(req)
        try:
            r = await self._chat.complete(body)
        except ChatError as exc:
            raise GenerationError(exc.reason, exc.detail, exc.attempts) from None
        return r

    async def aclose(self) -> None:
        await self._chat.aclose()


# ----------------------------------------------------------------------------------------------------------
# Local transformers (visionr1.inference), batched
# ----------------------------------------------------------------------------------------------------------


class LocalBackend:
    """In-process model. Requests from concurrent records are gathered into batches (same sampling settings)
    and run through ``visionr1.inference.generate`` in a worker thread, one batch at a time."""

    is_oracle = False

    def __init__(self, name: str, spec: LocalBackendSpec) -> None:
        from visionr1.config.loader import TINY_PREFIX

        self.name, self.spec = name, spec
        tiny = spec.model.startswith(TINY_PREFIX)  # built (once, cached) when first used, as recipes' tiny: paths
        if not tiny and not (Path(spec.model) / "config.json").is_file():
            raise RecipeError(f"backends.{name}.model: {spec.model} is not a model directory (no config.json); "
                              "the local backend loads saved checkpoints or tiny:FAMILY/SIZE (serve hub models "
                              "with an openai backend)")
        self.label = f"local:{spec.model if tiny else Path(spec.model).name}"
        self._model = self._processor = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def _load(self) -> None:
        from visionr1.inference import load_model_and_processor
        from visionr1.training.loading import resolve_model_path

        path = resolve_model_path(self.spec.model)
        self._model, self._processor = load_model_and_processor(path, dtype=self.spec.dtype, device=self.spec.device)

    async def generate(self, req: GenRequest) -> ChatReply:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((req, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.spec.batch_wait_s
            while len(batch) < self.spec.batch_size:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, deadline - time.monotonic())))
                except TimeoutError:
                    break
            groups: dict[tuple, list] = {}
            for req, fut in batch:
                groups.setdefault((req.max_tokens, req.temperature, req.top_p), []).append((req, fut))
            for items in groups.values():
                try:
                    gens = await asyncio.to_thread(self._generate_batch, [r for r, _ in items])
                except Exception as exc:  # noqa: BLE001 - one bad batch fails its records, not the run
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(GenerationError("local_error", f"{type(exc).__name__}: {exc}"))
                    continue
                for (_, fut), gen in zip(items, gens, strict=True):
                    if not fut.done():
                        fut.set_result(gen)

    def _generate_batch(self, reqs: list[GenRequest]) -> list[ChatReply]:
        from visionr1.inference import generate

        if self._model is None:
            self._load()
        start = time.monotonic()
        prompts = []
        for r in reqs:  # canonical prompt messages (docs/CONTRACTS.md)
            system = [{"role": "system", "content": [{"type": "text", "text": r.system}]}] if r.system else []
            content = [{"type": "image"} for _ in r.images] + [{"type": "text", "text": r.text}]
            prompts.append(system + [{"role": "user", "content": content}])
        r0 = reqs[0]
        outs = generate(
            self._model, self._processor, prompts, [list(r.images) for r in reqs],
            max_new_tokens=r0.max_tokens, temperature=r0.temperature, top_p=r0.top_p, batch_size=len(reqs),
        )
        latency = time.monotonic() - start
        # prompt tokens are not reported by visionr1.inference: left None (the report says so)
        return [
            ChatReply(text=o.text, finish_reason="length" if o.truncated else "stop",
                       completion_tokens=o.num_tokens, latency_s=latency)
            for o in outs
        ]

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


# ----------------------------------------------------------------------------------------------------------
# Oracle (synthetic tasks only)
# ----------------------------------------------------------------------------------------------------------


# R1-style reflection openers; Vision-R1-cold's thinking is full of them ("Wait" 585,719 times in 200K samples).
REFLECTION_OPENERS = (
    "Wait, let me check that again.",
    "Hmm, let me look at the image once more to be sure.",
    "Alternatively, let me verify it another way.",
)


class OracleBackend:
    """Returns the synthetic scene's ground truth instead of generating: its description (steps 1-2) and its
    rule-derived reasoning (steps 1 and 3). Honest only for the embedded demo; every record and the report
    say ``oracle``. It needs no model, so the whole pipeline runs in seconds on a laptop."""

    is_oracle = True
    label = "oracle"

    def __init__(self, name: str, spec: OracleBackendSpec) -> None:
        self.name, self.spec = name, spec

    async def generate(self, req: GenRequest) -> ChatReply:
        md = req.metadata or {}
        desc, reasoning = md.get("description"), md.get("reasoning")
        if not desc or not reasoning:
            raise GenerationError(
                "oracle_missing_metadata",
                f"record {req.record_id} has no metadata.description / metadata.reasoning: the oracle backend "
                "works only on visionr1.tasks.synthetic records",
            )
        if req.step == "pseudo_cot":
            text = f"{desc}\n\n{reasoning}"
        elif req.step == "description":
            text = desc
        else:
            thinking = reasoning + "".join(
                f"\n\n{REFLECTION_OPENERS[i % len(REFLECTION_OPENERS)]}\n{reasoning}"
                for i in range(self._reflections(req.record_id))
            )
            text = f"<think>\n{thinking}\n</think>\n\nFinal Answer: {req.solution}"
        return ChatReply(text=text, finish_reason="stop", attempts=1)

    def _reflections(self, record_id: str) -> int:
        """How many re-checks this record's thinking gets: uniform in 0..max_reflections, fixed by the id."""
        if not self.spec.max_reflections:
            return 0
        digest = hashlib.sha256(record_id.encode()).digest()
        return digest[0] % (self.spec.max_reflections + 1)

    async def aclose(self) -> None:
        return None


def build_backend(name: str, spec) -> OpenAIBackend | LocalBackend | OracleBackend:
    if isinstance(spec, OpenAIBackendSpec):
        return OpenAIBackend(name, spec)
    if isinstance(spec, LocalBackendSpec):
        return LocalBackend(name, spec)
    return OracleBackend(name, spec)
