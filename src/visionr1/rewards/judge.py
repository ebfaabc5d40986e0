"""Optional LLM-judge reward for open-ended answers, through any OpenAI-compatible ``/v1/chat/completions``.

Off by default (no recipe uses it unless named ``llm_judge``). Why it looks the way it does:
- async (``async __call__``): TRL 1.16 awaits async reward functions on its own event loop, concurrently with
  the other rewards; ``score`` is a sync wrapper for the CLI and plain scripts;
- requests go through the shared :class:`visionr1.utils.chat.ChatClient`: bounded concurrency, a total
  deadline per request, a response body cap, retries with exponential backoff on network errors, 429 and
  5xx -- a judge server under RL load is slow and flaky;
- ``rules_first``: rows the rule scorer already marks correct get 1.0 without a request, and rows with no
  extractable answer get 0.0: the judge only decides what rules cannot;
- failures are never silent: ``on_error="raise"`` (default) stops with the endpoint and the cause;
  ``"none"`` returns None for the row (TRL turns it into NaN and leaves it out of the sum), ``"zero"`` 0.0.

- the key is never an argument: ``api_key_env`` names the environment variable holding it (default
  ``VISIONR1_JUDGE_API_KEY``, which may be unset for a server without auth; a variable named explicitly must
  be set). A key written into a recipe would be copied into ``manifest.json`` and ``recipe.json``, so
  ``api_key`` is refused with the fix; error bodies are redacted before they reach a message.

Configuration by arguments or environment: ``VISIONR1_JUDGE_BASE_URL`` (e.g. ``http://127.0.0.1:8000/v1``),
``VISIONR1_JUDGE_MODEL``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from typing import Any, Literal

from visionr1.rewards.extract import completion_text, extract_answer
from visionr1.rewards.scoring import completion_scores, passes, resolve_task
from visionr1.utils.chat import ChatClient, ChatError, JudgeError, api_key_from_env, run_sync

DEFAULT_KEY_ENV = "VISIONR1_JUDGE_API_KEY"
LITERAL_KEY_ERROR = (
    "llm_judge: a literal api_key is refused (it would be written to manifest.json, recipe.json and the "
    "--dry-run output). Fix: export the key in an environment variable and name it: kwargs.api_key_env: MY_JUDGE_KEY"
)

SYSTEM_PROMPT = (
    "You grade answers. Compare the candidate answer with the reference answer for the question. "
    "Reply with exactly one word: CORRECT if they mean the same thing, otherwise INCORRECT."
)
USER_TEMPLATE = "Question: {question}\nReference answer: {reference}\nCandidate answer: {candidate}"
MAX_FIELD_CHARS = 2000


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
        api_key_env: str | None = DEFAULT_KEY_ENV,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        rules_first: bool = True,
        on_error: Literal["raise", "none", "zero"] = "raise",
        max_tokens: int = 8,
        **unknown: Any,
    ) -> None:
        if "api_key" in unknown:
            raise ValueError(LITERAL_KEY_ERROR)
        if unknown:
            raise TypeError(f"llm_judge has no option {next(iter(unknown))!r}")
        self.__name__ = "llm_judge"
        self.base_url = (base_url or os.environ.get("VISIONR1_JUDGE_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("VISIONR1_JUDGE_MODEL") or ""
        self.api_key_env = api_key_env
        # a variable the recipe names must exist; the default one is optional (servers without auth)
        self._key = api_key_from_env(api_key_env, "llm_judge kwargs.api_key_env", required=api_key_env != DEFAULT_KEY_ENV)
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
        self._chat: ChatClient | None = None
        self._owns_loop = False

    @property
    def requests_sent(self) -> int:
        return self._chat.requests_sent if self._chat is not None else 0

    def __getstate__(self) -> dict[str, Any]:  # picklable for TRL's multi-process setups: no live client
        return {**self.__dict__, "_chat": None}

    def _client(self) -> ChatClient:
        if self._chat is None:
            self._chat = ChatClient(self.base_url, api_key=self._key, timeout_s=self.timeout, max_retries=self.max_retries,
                                    backoff_s=self.backoff, concurrency=self.max_concurrency)
        return self._chat

    async def _ask(self, question: str, reference: str, candidate: str) -> float:
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
        try:
            reply = await self._client().complete(body)
        except ChatError as exc:  # 4xx at once (wrong model, key, URL), the rest after the client's retries
            raise JudgeError(f"llm_judge: no verdict from {self.base_url}: {exc.reason}: {exc.detail}") from None
        verdict = parse_verdict(reply.text)
        if verdict is None:  # temperature 0: asking again would get the same reply
            raise JudgeError(f"llm_judge: unparseable verdict from {self.base_url}: {reply.text[:100]!r}")
        return verdict

    async def __call__(
        self,
        completions: Sequence[Any],
        solution: Sequence[Any],
        task: Sequence[str | None] | str | None = None,
        choices: Sequence[Any] | None = None,
        question: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
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
        try:
            outcomes = await asyncio.gather(
                *(self._ask(str(questions[i] or ""), str(sols[i]), ans) for i, ans in todo), return_exceptions=True,
            )
        finally:
            if self._chat is not None and self._owns_loop:
                await self._chat.aclose()
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

        async def once() -> list[float | None]:
            self._owns_loop = True  # this loop ends with the call: close the client with it
            try:
                return await self(completions=completions, solution=solution, **kwargs)
            finally:
                self._owns_loop = False

        return run_sync(once)
