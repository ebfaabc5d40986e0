"""Rewards that cannot fail silently: every value a reward function returns is checked before GRPO uses it.

Why: TRL turns a reward's output into a float32 tensor and goes on. A NaN or inf (or a value like 1e300, which
is inf in float32) made the group's advantage NaN: the step logged ``reward null``, ``grad_norm`` 0, and the
run ended with rc 0 and unchanged weights. A wrong count was a mid-run traceback; a wrong type (a dict, a
string) a ``TypeError`` deep in torch. And a reward that scores every completion the same (the tiny random
model never writes the answer format: ``hard_format_result`` is 0 for all) gives every advantage 0: nothing is
learned, and nothing said so.

So each reward function is wrapped (:class:`CheckedReward`):
- its output must be one number (or ``None``: "does not apply", which TRL skips) per completion: otherwise
  :class:`RewardError`, one line naming the reward, what it returned and the fix;
- a non-finite value or one beyond ``MAX_ABS`` is an error naming the reward, the first bad row and its
  prompt id, or -- with the stage's ``reward_checks.non_finite: mask`` -- becomes ``None`` (ignored by TRL's
  sum) and is counted in the log (``rewards/NAME/non_finite``) and a warning;
- a call slower than ``reward_checks.slow_call_s`` is reported with the reward's name and its time.
:class:`NoSignalCallback` reports, once, a stage whose groups had all rewards equal (``frac_reward_zero_std`` at
or above ``reward_checks.no_signal_frac``) for ``reward_checks.no_signal_steps`` logged steps in a row, naming
the reward values seen, on the console and in the stage's manifest entry (``no_signal``).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_ABS = 1e6  # beyond it a group's reward variance overflows float32 (TRL's dtype) or drowns every other reward


class RewardError(ValueError):
    """A reward function returned something GRPO cannot learn from (one line: reward, row, fix)."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class CheckedReward:
    """``func`` with its output checked (see the module docstring). A plain class: pickles like ``func``."""

    def __init__(self, func: Callable[..., Any], non_finite: str = "error", slow_call_s: float | None = 60.0) -> None:
        self.func = func
        self.__name__ = getattr(func, "__name__", "reward")
        self.non_finite = non_finite
        self.slow_call_s = slow_call_s
        self.masked = 0
        self.slow_calls = 0
        self.seen: set[float] = set()  # distinct values of the last call (NoSignalCallback names them)

    def __call__(self, completions: Any = None, **kwargs: Any) -> list[float | None]:
        start = time.monotonic()
        out = self.func(completions, **kwargs)
        took = time.monotonic() - start
        if self.slow_call_s is not None and took > self.slow_call_s:
            self.slow_calls += 1
            log.warning("reward %s took %.1f s for %d completions (reward_checks.slow_call_s: %s; %d slow call(s) "
                        "so far): the step waits for it. Fix: make it faster (batch its work, cache), or raise the "
                        "limit", self.__name__, took, len(completions), self.slow_call_s, self.slow_calls)
        return self._checked(out, completions, kwargs)

    def _checked(self, out: Any, completions: Any, kwargs: dict[str, Any]) -> list[float | None]:
        n = len(completions)
        fix = "Fix: return a list with one float (or None) per completion"
        if isinstance(out, str | bytes | dict) or not hasattr(out, "__len__") or not hasattr(out, "__iter__"):
            raise RewardError(f"reward {self.__name__} returned {type(out).__name__} {_describe(out)} for {n} "
                              f"completions. {fix}")
        values = list(out.tolist() if hasattr(out, "tolist") else out)
        if len(values) != n:
            raise RewardError(f"reward {self.__name__} returned {len(values)} values for {n} completions. {fix}")
        ids = kwargs.get("id") or [None] * n
        checked: list[float | None] = []
        masked = 0
        for row, value in enumerate(values):
            if value is None:
                checked.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise RewardError(f"reward {self.__name__} returned {type(value).__name__} {_describe(value)} for "
                                  f"completion {row} of {n}{self._prompt(ids[row])}. {fix}")
            value = float(value)
            if math.isfinite(value) and abs(value) <= MAX_ABS:
                checked.append(value)
                continue
            if self.non_finite != "mask":
                raise RewardError(
                    f"reward {self.__name__} returned {value!r} for completion {row} of {n}{self._prompt(ids[row])} "
                    f"(rewards must be finite, |r| <= {MAX_ABS:g}: such a value makes the group's advantages NaN "
                    "and the step learns nothing). Fix: the reward function, or set the stage's "
                    "`reward_checks.non_finite: mask` to drop such values (counted in the log)")
            checked.append(None)
            masked += 1
        if masked:
            self.masked += masked
            log.warning("reward %s: %d non-finite value(s) masked in this batch (%d in all; reward_checks.non_finite: "
                        "mask)", self.__name__, masked, self.masked)
            if (log_metric := kwargs.get("log_metric")) is not None:
                log_metric(f"rewards/{self.__name__}/non_finite", float(masked))
        if len(self.seen) < 50:  # read (and cleared) by NoSignalCallback
            self.seen |= {round(v, 6) for v in checked if v is not None}
        return checked

    @staticmethod
    def _prompt(prompt_id: Any) -> str:
        return f" (prompt id {prompt_id})" if prompt_id is not None else ""

    def __repr__(self) -> str:
        return f"CheckedReward({self.func!r})"


def check_rewards(funcs: list[Callable[..., Any]], non_finite: str = "error",
                  slow_call_s: float | None = 60.0) -> list[Callable[..., Any]]:
    """Each reward function wrapped in :class:`CheckedReward` (async ones are left to TRL as they are)."""
    import inspect

    out: list[Callable[..., Any]] = []
    for func in funcs:
        inner = getattr(func, "func", func)
        if inspect.iscoroutinefunction(inner) or inspect.iscoroutinefunction(type(inner).__call__):
            out.append(func)
        else:
            out.append(CheckedReward(func, non_finite=non_finite, slow_call_s=slow_call_s))
    return out


def no_signal_callback(rewards: list[Any], stage: str, steps: int = 5, frac: float = 0.9,
                       report: Callable[..., None] | None = None) -> Any:
    """A ``TrainerCallback`` that reports, once, ``steps`` logged steps in a row with ``frac_reward_zero_std``
    >= ``frac`` (see the module docstring). ``report(no_signal=...)`` records it in the stage's manifest entry."""
    from transformers import TrainerCallback

    class NoSignalCallback(TrainerCallback):
        def __init__(self) -> None:
            self.run = 0
            self.values: dict[str, set[float]] = {}
            self.reported = False

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            zero = (logs or {}).get("frac_reward_zero_std")
            if zero is None or self.reported:
                return
            if zero < frac:
                self.run, self.values = 0, {}
                for r in rewards:
                    if hasattr(r, "seen"):
                        r.seen = set()
                return
            self.run += 1
            for r in rewards:
                self.values.setdefault(r.__name__, set()).update(getattr(r, "seen", set()))
                if hasattr(r, "seen"):
                    r.seen = set()
            if self.run < steps:
                return
            self.reported = True
            seen = "; ".join(f"{name}: {sorted(v)[:6]}" for name, v in self.values.items())
            message = (f"stage {stage}: no learning signal: in {self.run} logged steps in a row (to step "
                       f"{state.global_step}), {zero:.0%} or more of the groups scored all their completions the same "
                       f"(frac_reward_zero_std >= {frac}), so their advantages are 0 and the weights do not move. "
                       f"Reward values seen: {seen}. Fix: a reward that tells completions apart at this model's "
                       "level (e.g. a format or partial-credit reward), more num_generations, or a warmer "
                       "temperature")
            log.warning(message)
            if state.is_world_process_zero and report is not None:
                report(no_signal={"step": state.global_step, "steps": self.run, "values": {
                    k: sorted(v)[:20] for k, v in self.values.items()}, "message": message})

    return NoSignalCallback()
