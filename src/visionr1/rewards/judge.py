"""Optional LLM-judge reward for open-ended answers, through any OpenAI-compatible ``/v1/chat/completions``.

Off by default (no recipe uses it unless named ``llm_judge``). Why it looks the way it does:
- async (``async __call__``): TRL 1.16 awaits async reward functions on its own event loop, concurrently with
  the other rewards; ``score`` is a sync wrapper for the CLI and plain scripts;
- bounded concurrency (a semaphore), per-request timeouts, and retries with exponential backoff on network
  errors, 429 and 5xx -- a judge server under RL load is slow and flaky;
- ``rules_first``: rows the rule scorer already marks correct get 1.0 without a request, and rows with no
  extractable answer get 0.0: the judge only decides what rules cannot;
- failures are never silent: ``on_error="raise"`` (default) stops with the endpoint and the cause;
  ``"none"`` returns None for the row (TRL turns it into NaN and leaves it out of the sum), ``"zero"`` 0.0.

Configuration by arguments or environment: ``VISIONR1_JUDGE_BASE_URL`` (e.g. ``http://127.0.0.1:8000/v1``),
``VISIONR1_JUDGE_MODEL``, ``VISIONR1_JUDGE_API_KEY``.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Sequence
from typing import Any, Literal

from visionr1.rewards.extract import completion_text, extract_answer
from visionr1.rewards.scoring import completion_scores, passes, resolve_task

SYSTEM_PROMPT = (
    "You grade answers. Compare the candidate answer with the reference answer for the question. "
    "Reply with exactly one word: CORRECT if they mean the same thing, otherwise INCORRECT."
)
USER_TEMPLATE = "Question: {question}\nReference answer: {reference}\nCandidate answer: {candidate}"
MAX_FIELD_CHARS = 2000


class JudgeError(RuntimeError):
    """The judge endpoint could not give a verdict."""


def parse_verdict(text: str) -> float | None:
    """1.0 / 0.0 from the judge's reply, None when it says neither.

    >>> parse_verdict("CORRECT"), parse_verdict("Incorrect."), parse_verdict("maybe")
    (1.0, 0.0, None)
    """
    t = text.strip().lower()
    if re.search(r"\bincorrect\b|\bwrong\b|^no\b|^0\b", t):
        return 0.0
    if re.search(r"\bcorrect\b|^yes\b|^1\b", t):
        return 1.0
    return None


class LLMJudge:
    """An async reward function: ``await judge(completions=..., solution=..., question=...)``."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        rules_first: bool = True,
        on_error: Literal["raise", "none", "zero"] = "raise",
        max_tokens: int = 8,
    ) -> None:
        self.__name__ = "llm_judge"
        self.base_url = (base_url or os.environ.get("VISIONR1_JUDGE_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("VISIONR1_JUDGE_MODEL") or ""
        self.api_key = api_key or os.environ.get("VISIONR1_JUDGE_API_KEY")
        if not self.base_url or not self.model:
            raise ValueError(
                "llm_judge needs an endpoint and a model: set kwargs base_url (e.g. http://127.0.0.1:8000/v1) and "
                "model, or VISIONR1_JUDGE_BASE_URL and VISIONR1_JUDGE_MODEL"
            )
        if on_error not in ("raise", "none", "zero"):
            raise ValueError(f"llm_judge on_error must be raise, none or zero, not {on_error!r}")
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.rules_first = rules_first
        self.on_error = on_error
        self.max_tokens = max_tokens
        self.requests_sent = 0

    async def _ask(self, client: Any, sem: asyncio.Semaphore, question: str, reference: str, candidate: str) -> float:
        import httpx

        body = {
            "model": self.model,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": USER_TEMPLATE.format(
                        question=question[:MAX_FIELD_CHARS],
                        reference=reference[:MAX_FIELD_CHARS],
                        candidate=candidate[:MAX_FIELD_CHARS],
                    ),
                },
            ],
        }
        last_error = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            async with sem:
                self.requests_sent += 1
                try:
                    resp = await client.post(f"{self.base_url}/chat/completions", json=body)
                except httpx.HTTPError as exc:  # connect errors, timeouts: retry
                    last_error = f"{type(exc).__name__}: {exc}"
                    continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last_error = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:  # 4xx: wrong model name, key, URL -- retrying will not help
                raise JudgeError(f"llm_judge: {self.base_url} answered HTTP {resp.status_code}: {resp.text[:300]}")
            try:
                content = resp.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last_error = f"not an OpenAI chat completion: {resp.text[:200]!r}"
                continue
            verdict = parse_verdict(content)
            if verdict is not None:
                return verdict
            last_error = f"unparseable verdict {content[:100]!r}"
        raise JudgeError(f"llm_judge: no verdict from {self.base_url} after {self.max_retries + 1} attempts ({last_error})")

    async def __call__(
        self,
        completions: Sequence[Any],
        solution: Sequence[Any],
        task: Sequence[str | None] | str | None = None,
        choices: Sequence[Any] | None = None,
        question: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        import httpx

        n = len(completions)
        texts = [completion_text(c) for c in completions]
        sols = list(solution)
        tasks = [task] * n if task is None or isinstance(task, str) else list(task)
        chs = [None] * n if choices is None else list(choices)
        questions = [question] * n if question is None or isinstance(question, str) else list(question)
        results: list[float | None] = [None] * n
        todo: list[tuple[int, str]] = []
        rule_scores = completion_scores(texts, sols, tasks, chs) if self.rules_first else [0.0] * n
        for i in range(n):
            t = resolve_task(tasks[i], sols[i], chs[i])
            answer = extract_answer(texts[i], t)
            if answer is None:
                results[i] = 0.0
            elif self.rules_first and passes(rule_scores[i], t):
                results[i] = 1.0
            else:
                todo.append((i, answer))
        if not todo:
            return results
        sem = asyncio.Semaphore(self.max_concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.max_concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers, limits=limits) as client:
            outcomes = await asyncio.gather(
                *(self._ask(client, sem, str(questions[i] or ""), str(sols[i]), ans) for i, ans in todo),
                return_exceptions=True,
            )
        for (i, _), out in zip(todo, outcomes, strict=True):
            if isinstance(out, BaseException):
                if self.on_error == "raise":
                    raise out
                results[i] = 0.0 if self.on_error == "zero" else None
            else:
                results[i] = out
        return results

    def score(self, completions: Sequence[Any], solution: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """Synchronous ``__call__`` (runs its own event loop; in a thread if one is already running here)."""
        coro_args = dict(completions=completions, solution=solution, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self(**coro_args))
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = asyncio.run(self(**coro_args))
            except BaseException as exc:  # re-raised in the caller's thread
                box["err"] = exc

        th = threading.Thread(target=run)
        th.start()
        th.join()
        if "err" in box:
            raise box["err"]
        return box["out"]
