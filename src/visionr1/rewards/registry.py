"""Reward names -> functions, for recipes (``RewardSpec``: name, weight, kwargs) and the scoring CLI.

A name is a registered reward (``format``, ``accuracy``, ``hard_format_result``, ``iou``, ``length``,
``detection_map``, ``llm_judge``) or a plugin ``path/to/file.py:function`` (EasyR1 style) -- any function with
the TRL reward signature. Bound kwargs are checked against the function's signature, so a typo fails when the recipe is
loaded, naming the closest valid option, not in the middle of a run.

A plugin is ordinary Python: building the rewards *imports the file*, which runs its top-level code with the
user's permissions (as EasyR1 does). Only name plugins you trust. ``visionr1 train --dry-run`` does not import
it: :func:`check_reward_specs` parses the file (``ast``) to check that it exists, is valid Python and defines
the function, so a typo is caught without running anything.

Returned callables carry ``__name__`` = the reward's name (TRL logs each reward under it) and pickle cleanly
(plain classes, no closures), so they also work with TRL's multi-process setups.
"""

from __future__ import annotations

import ast
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


def _plugin_path(spec: str, base_dir: Path | None) -> tuple[Path, str]:
    path_str, _, func_name = spec.rpartition(":")
    path = Path(path_str).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ValueError(f"reward {spec!r}: file {path} not found (write it as path/to/file.py:function)")
    return path, func_name


def _top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names a module defines at its top level, and whether it may define more at import time
    (``from x import *``, a module ``__getattr__``, ``globals()`` writes) -- then only an import can tell."""
    names: set[str] = set()
    dynamic = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    dynamic = True
                else:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With):  # conditional definitions: look one level in
            sub = ast.Module(body=[n for n in ast.walk(node) if isinstance(n, ast.stmt) and n is not node], type_ignores=[])
            more, dyn = _top_level_names(sub)
            names |= more
            dynamic |= dyn
    dynamic |= "__getattr__" in names or "globals" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names, dynamic


def check_plugin(spec: str, base_dir: str | Path | None = None) -> None:
    """Check a ``file.py:function`` reward *without importing it* (importing runs the file's code): the file
    exists, parses, and defines the function. Raises ValueError naming the file and the fix."""
    path, func_name = _plugin_path(spec, Path(base_dir) if base_dir else None)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"reward {spec!r}: {path}:{exc.lineno}: not valid Python ({exc.msg})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"reward {spec!r}: cannot read {path} ({exc})") from None
    names, dynamic = _top_level_names(tree)
    if func_name not in names and not dynamic:
        funcs = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_"))
        close = difflib.get_close_matches(func_name, funcs, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"reward {spec!r}: {path} defines no {func_name!r}; {hint}(functions: {', '.join(funcs) or 'none'})")


def check_reward_specs(specs: Iterable[Any], base_dir: str | Path | None = None) -> None:
    """What ``--dry-run`` can check about rewards without running any code: names, plugin files and their
    functions, option names, and that no literal secret is bound. Raises ValueError listing every problem."""
    problems = []
    for spec in specs:
        name, _, kwargs = _spec_parts(spec)
        try:
            _refuse_secrets(name, kwargs)
            if name == "llm_judge":
                from visionr1.rewards.judge import LLMJudge

                _check_kwargs(name, LLMJudge.__init__, kwargs)
            elif name in REWARDS:
                _check_kwargs(name, REWARDS[name], kwargs)
            elif ".py:" in name:
                check_plugin(name, base_dir)
            else:
                get_reward_function(name)  # raises the unknown-name error with its suggestion
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))


def _refuse_secrets(name: str, kwargs: Mapping[str, Any]) -> None:
    from visionr1.utils.secrets import find_literal_secrets

    found = find_literal_secrets(dict(kwargs))
    if found:
        raise ValueError(
            f"reward {name!r}: kwargs.{', kwargs.'.join(found)} holds a literal secret, which would be written to "
            "manifest.json and recipe.json. Fix: export it in an environment variable and name that variable "
            "(llm_judge: kwargs.api_key_env: MY_JUDGE_KEY)"
        )


def _spec_parts(spec: Any) -> tuple[str, float, Mapping[str, Any]]:
    if isinstance(spec, str):
        return spec, 1.0, {}
    if isinstance(spec, Mapping):
        return spec["name"], spec.get("weight", 1.0), spec.get("kwargs") or {}
    return spec.name, spec.weight, spec.kwargs  # RewardSpec or anything shaped like it


def _load_plugin(spec: str, base_dir: Path | None) -> tuple[str, Callable]:
    path, func_name = _plugin_path(spec, base_dir)
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
    _refuse_secrets(name, kwargs)
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


def build_reward_funcs(specs: Iterable[Any], base_dir: str | Path | None = None,
                       think_prefilled: bool = False) -> RewardFuncs:
    """Reward callables and weights from recipe specs: ``RewardSpec`` objects, dicts with ``name`` /
    ``weight`` / ``kwargs``, or bare names. ``base_dir`` resolves relative plugin paths (the recipe's folder).
    ``think_prefilled``: the model's generation prompt opens ``<think>`` itself (Qwen3.5:
    ``data.prompts.generation_prompt_opens_think``), so every registered reward that reads the think block
    gets ``think_prefilled=True`` unless its kwargs set it.

    >>> build_reward_funcs(["format", {"name": "accuracy", "weight": 2.0}]).weights
    [1.0, 2.0]
    """
    funcs, weights, names = [], [], []
    for spec in specs:
        name, weight, kwargs = _spec_parts(spec)
        if think_prefilled and name in REWARDS and "think_prefilled" in inspect.signature(REWARDS[name]).parameters:
            kwargs = {"think_prefilled": True, **kwargs}
        fn = get_reward_function(name, _base_dir=base_dir, **kwargs)
        funcs.append(fn)
        weights.append(float(weight))
        names.append(fn.__name__)
    if not funcs:
        raise ValueError("no rewards configured: give at least one (Vision-R1 uses hard_format_result alone)")
    return RewardFuncs(funcs, weights, names)
