"""Reward names -> functions, for recipes (``RewardSpec``: name, weight, kwargs) and the scoring CLI.

A name is a registered reward (``format``, ``accuracy``, ``hard_format_result``, ``iou``, ``length``,
``detection_map``, ``llm_judge``) or a plugin ``path/to/file.py:function`` (EasyR1 style) -- any function with
the TRL reward signature. Bound kwargs are checked against the function's signature, so a typo fails when the recipe is
loaded, naming the closest valid option, not in the middle of a run.

Returned callables carry ``__name__`` = the reward's name (TRL logs each reward under it) and pickle cleanly
(plain classes, no closures), so they also work with TRL's multi-process setups.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from visionr1.rewards.detection import detection_map_reward
from visionr1.rewards.functions import (
    accuracy_reward,
    format_reward,
    hard_format_result_reward,
    iou_reward,
    length_reward,
)

REWARDS: dict[str, Callable[..., list[float]]] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "hard_format_result": hard_format_result_reward,
    "iou": iou_reward,
    "length": length_reward,
    "detection_map": detection_map_reward,
}
ALL_NAMES = (*REWARDS, "llm_judge")
DEFAULT_REWARDS = ("format", "accuracy", "hard_format_result")


class NamedReward:
    """A reward function with bound keyword arguments and a ``__name__`` for TRL's logs."""

    def __init__(self, name: str, func: Callable[..., list[float]], kwargs: Mapping[str, Any] | None = None):
        self.__name__ = name
        self.func = func
        self.kwargs = dict(kwargs or {})

    def __call__(self, completions: Any = None, **kwargs: Any) -> list[float]:
        return self.func(completions, **{**kwargs, **self.kwargs})

    def __repr__(self) -> str:
        return f"NamedReward({self.__name__!r}, {self.kwargs!r})"


class RewardFuncs(NamedTuple):
    """What ``build_reward_funcs`` returns: pass ``funcs`` as ``reward_funcs`` and ``weights`` as
    ``GRPOConfig.reward_weights``; ``names`` label them."""

    funcs: list[Callable[..., Any]]
    weights: list[float]
    names: list[str]


def _check_kwargs(name: str, func: Callable, kwargs: Mapping[str, Any]) -> None:
    params = inspect.signature(func).parameters
    named = [p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL) and p not in ("completions", "self")]
    for key in kwargs:
        if key not in named:
            close = difflib.get_close_matches(key, named, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"reward {name!r} has no option {key!r}{hint} (options: {', '.join(named) or 'none'})")


def _load_plugin(spec: str, base_dir: Path | None) -> tuple[str, Callable]:
    path_str, _, func_name = spec.rpartition(":")
    path = Path(path_str).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ValueError(f"reward {spec!r}: file {path} not found (write it as path/to/file.py:function)")
    mod_name = "visionr1_reward_plugin_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    mod_spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    func = getattr(module, func_name, None)
    if not callable(func):
        funcs = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        raise ValueError(f"reward {spec!r}: {path} has no function {func_name!r} (functions: {', '.join(funcs)})")
    return func_name, func


def get_reward_function(name: str, _base_dir: str | Path | None = None, **kwargs: Any) -> Callable[..., Any]:
    """The reward callable for a registered name or ``file.py:function``, with ``kwargs`` bound.

    >>> get_reward_function("length", per_token=0.01)(["a b c"])
    [0.03]
    """
    if name == "llm_judge":
        from visionr1.rewards.judge import LLMJudge

        _check_kwargs(name, LLMJudge.__init__, kwargs)
        return LLMJudge(**kwargs)
    if name in REWARDS:
        func = REWARDS[name]
    elif ".py:" in name:
        name, func = _load_plugin(name, Path(_base_dir) if _base_dir else None)
    else:
        close = difflib.get_close_matches(name, ALL_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown reward {name!r}: {hint}use one of {', '.join(ALL_NAMES)} or path/to/file.py:function")
    _check_kwargs(name, func, kwargs)
    return NamedReward(name, func, kwargs)


def build_reward_funcs(specs: Iterable[Any], base_dir: str | Path | None = None) -> RewardFuncs:
    """Reward callables and weights from recipe specs: ``RewardSpec`` objects, dicts with ``name`` /
    ``weight`` / ``kwargs``, or bare names. ``base_dir`` resolves relative plugin paths (the recipe's folder).

    >>> build_reward_funcs(["format", {"name": "accuracy", "weight": 2.0}]).weights
    [1.0, 2.0]
    """
    funcs, weights, names = [], [], []
    for spec in specs:
        if isinstance(spec, str):
            name, weight, kwargs = spec, 1.0, {}
        elif isinstance(spec, Mapping):
            name, weight, kwargs = spec["name"], spec.get("weight", 1.0), spec.get("kwargs") or {}
        else:  # RewardSpec or anything shaped like it
            name, weight, kwargs = spec.name, spec.weight, spec.kwargs
        fn = get_reward_function(name, _base_dir=base_dir, **kwargs)
        funcs.append(fn)
        weights.append(float(weight))
        names.append(fn.__name__)
    if not funcs:
        raise ValueError("no rewards configured: give at least one (Vision-R1 uses hard_format_result alone)")
    return RewardFuncs(funcs, weights, names)
