"""The machinery behind recipes, independent of what a recipe holds.

Why our own layer on top of pydantic: a typo in a 7B run's recipe must fail before the GPUs spin up, and the
error must say where (``stages[1].grpo.num_generaton``) and what was meant (``num_generations``). pydantic's
own messages give neither the suggestion nor the file. Recipes also compose: ``include:`` another file and
override parts of it, then apply dotted command-line overrides (``stages.0.max_steps=10``) on top.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the field path and the fix."""


class SubPathError(ValueError):
    """Raised by a validator about a key *inside* the field it validates (e.g. a pass-through dict), so the
    reported path can point at the key itself: ``stages[1].grpo.num_generaton``."""

    def __init__(self, subpath: str, message: str) -> None:
        super().__init__(f"{subpath}: {message}")
        self.subpath = subpath
        self.message = message


class StrictModel(BaseModel):
    """Base of every recipe section: unknown keys are errors, every field must carry a description."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        missing = [n for n, f in cls.model_fields.items() if not f.description]
        if missing:
            raise TypeError(f"{cls.__name__}: fields without a description: {', '.join(missing)}")


# ----------------------------------------------------------------------------------------------------------
# YAML with include
# ----------------------------------------------------------------------------------------------------------

def deep_merge(base: dict, override: dict) -> dict:
    """Merge ``override`` into a copy of ``base``: dicts merge recursively, anything else replaces.

    >>> deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]})
    {'a': {'b': 1, 'c': 3}, 'l': [2]}
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_with_includes(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a recipe file; ``include: other.yaml`` (or a list) is loaded first and this file overrides it.

    Lists are replaced, not concatenated, except ``stages``, which may be overridden per index with a
    mapping: ``stages: {1: {grpo: {max_steps: 5}}}`` changes only the second stage of the included recipe.
    """
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise RecipeError(f"{path}: include cycle: {chain}")
    if len(_seen) >= MAX_INCLUDE_DEPTH:  # Python's recursion limit would end it with a 1,000-frame traceback
        raise RecipeError(f"{_seen[0]}: includes nest deeper than {MAX_INCLUDE_DEPTH} files ({_seen[0].name} -> "
                          f"{_seen[1].name} -> ... -> {path.name}). Fix: include the recipes you need directly")
    data = _read_mapping(path)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise RecipeError(f"{path}: include: expected a file name or a list of file names")
    merged: dict = {}
    for inc in includes:
        merged = deep_merge(merged, load_yaml_with_includes(path.parent / inc, (*_seen, path)))
    return _merge_with_stage_patches(merged, data, path)


MAX_RECIPE_BYTES = 4 * 1024 * 1024
MAX_INCLUDE_DEPTH = 32
MAX_RECIPE_NODES = 100_000  # values in a recipe once YAML aliases are expanded (the tiny recipes: ~200)


def _too_big(data: Any, limit: int = MAX_RECIPE_NODES) -> bool:
    """Whether ``data`` holds more than ``limit`` values counting every alias use. YAML aliases share one
    object when loaded, but everything after (merging, overrides, validation, JSON) walks each use: 600 bytes
    of nested aliases (the "billion laughs") expand to 10^9 values and hung ``recipe check``. Stops counting
    at the limit, so the check itself is cheap."""
    count, todo = 0, [data]
    while todo:
        node = todo.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(node, dict):
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return False
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _read_mapping(path: Path) -> dict:
    """One recipe file as a mapping. Errors about a file that is not a recipe say so in one line and never
    quote it: ``include: /etc/shadow`` must not print the file back (YAML reads its lines as keys)."""
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: not a recipe ({size:,} bytes; recipes are small YAML files)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not a recipe (not UTF-8 text: byte {exc.start}); a recipe is a YAML file") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RecipeError(f"{path}: not valid YAML{where}: {problem}") from None
    if _too_big(data):
        raise RecipeError(f"{path}: not a recipe: more than {MAX_RECIPE_NODES:,} values once its YAML aliases "
                          "(*name) are expanded. Fix: write the values out, or use fewer nested aliases")
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: not a recipe: a recipe is a YAML mapping of fields, this file holds a "
                          f"{type(data).__name__}")
    bad = [k for k in data if not (isinstance(k, str) and _FIELD_NAME.match(k))]
    if bad:
        raise RecipeError(f"{path}: not a recipe: {len(bad)} of its {len(data)} top-level keys are not field names "
                          "(recipe keys look like name, model, stages)")
    _refuse_literal_secrets(data, str(path))
    return data


def _refuse_literal_secrets(data: Any, where: str) -> None:
    """A key written into a recipe would be copied into every run directory: refuse it, naming the field."""
    from visionr1.utils.secrets import find_literal_secrets

    found = find_literal_secrets(data)
    if found:
        raise RecipeError(
            f"{where}: {', '.join(found)}: looks like a literal secret (API key, token or password); recipes are "
            "copied into manifest.json, recipe.json and logs. Fix: put the key in an environment variable and "
            "name the variable instead (e.g. kwargs.api_key_env: MY_JUDGE_KEY)"
        )


def _merge_with_stage_patches(base: dict, override: dict, path: Path) -> dict:
    stages_patch = override.get("stages")
    if isinstance(stages_patch, dict) and isinstance(base.get("stages"), list):
        stages = [dict(s) for s in base["stages"]]
        for key, patch in stages_patch.items():
            idx = _stage_index(key, stages, path)
            stages[idx] = deep_merge(stages[idx], patch)
        override = {**override, "stages": stages}
    return deep_merge(base, override)


def _stage_index(key: Any, stages: list[dict], path: Path) -> int:
    """A stage patch key is an index or a stage name."""
    if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
        idx = int(key)
        if not -len(stages) <= idx < len(stages):
            raise RecipeError(f"{path}: stages.{key}: the included recipe has {len(stages)} stages")
        return idx
    names = [s.get("name") for s in stages]
    if key in names:
        return names.index(key)
    raise RecipeError(f"{path}: stages.{key}: no stage of that name; stages are {names}")


def resolve_path(p: str | None, base: Path) -> str | None:
    """Resolve a path written in a recipe against the recipe's directory.

    URLs and absolute paths are kept; a hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct`` stays as written when
    no such local path exists (paths starting with ``.`` are always local).

    >>> resolve_path("Qwen/Qwen2.5-VL-7B-Instruct", Path("/nonexistent"))
    'Qwen/Qwen2.5-VL-7B-Instruct'
    >>> resolve_path("./data", Path("/r"))
    '/r/data'
    """
    if p is None or "://" in p:
        return p
    q = Path(p).expanduser()
    if q.is_absolute():
        return str(q)
    cand = base / q
    return str(cand) if cand.exists() or p.startswith(".") else p


# ----------------------------------------------------------------------------------------------------------
# Dotted overrides
# ----------------------------------------------------------------------------------------------------------

def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.0.c=value`` overrides; values are parsed as YAML (``10``, ``true``, ``[a, b]``, ``null``).

    >>> apply_overrides({"stages": [{"max_steps": 100}]}, ["stages.0.max_steps=10", "seed=3"])
    {'stages': [{'max_steps': 10}], 'seed': 3}
    """
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r}: expected KEY=VALUE, e.g. stages.0.max_steps=10")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise RecipeError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        parts = key.strip().split(".")
        _refuse_literal_secrets({parts[-1]: value}, f"override {key.strip()!r}")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.lstrip("-").isdigit():
                    raise RecipeError(f"override {item!r}: {where}: expected a list index")
                idx = int(part)
                if not -len(node) <= idx < len(node):
                    raise RecipeError(f"override {item!r}: {where}: index out of range (list has {len(node)})")
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise RecipeError(f"override {item!r}: {where}: cannot descend into a {type(node).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------------
# Validation with readable errors
# ----------------------------------------------------------------------------------------------------------

def _loc_to_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: Sequence[Any], data: Any) -> type[BaseModel] | None:
    """Walk the schema along ``loc`` (following the data for discriminated unions) to find the model there."""
    current: Any = model
    node: Any = data
    for part in loc:
        current = _unwrap_to_model(current, node)
        if current is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                # tagged-union member names appear in loc (e.g. 'grpo'); skip them
                continue
            current = field.annotation
            node = node.get(part) if isinstance(node, dict) else None
    return _unwrap_to_model(current, node)


def _unwrap_to_model(tp: Any, node: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _unwrap_to_model(args[0], node)
    if origin in (list, Sequence, tuple) and args:
        return args[0] if not _is_union(args[0]) else args[0]
    if _is_union(tp):
        models = [a for a in (_unwrap_to_model(a, node) for a in args) if a is not None]
        if isinstance(node, dict):
            for m in models:
                if isinstance(m, type) and issubclass(m, BaseModel):
                    tag = _literal_tag(m)
                    if tag and node.get(tag[0]) in tag[1]:
                        return m
        return models[0] if len(models) == 1 else (models or [None])[0]
    return tp if origin in (list,) else None


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _literal_tag(model: type[BaseModel]) -> tuple[str, tuple] | None:
    for name in ("type", "format", "kind", "name"):
        f = model.model_fields.get(name)
        if f is not None and typing.get_origin(f.annotation) is Literal:
            return name, typing.get_args(f.annotation)
    return None


def format_validation_error(exc: ValidationError, model: type[BaseModel], data: Any, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = _drop_union_tags(list(err["loc"]), data)
        path = _loc_to_path(loc)
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, SubPathError):
            lines.append(f"{path}.{inner.subpath}: {inner.message}")
            continue
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1], data)
            key = str(loc[-1])
            path = path if len(path) <= 80 else path[:77] + "..."  # a key is user text: never echo a whole file
            hint = ""
            if parent is not None:
                close = difflib.get_close_matches(key, list(parent.model_fields), n=1, cutoff=0.6)
                if close:
                    hint = f"; did you mean {close[0]}?"
                else:
                    hint = f"; valid keys: {', '.join(parent.model_fields)}"
            lines.append(f"{path}: unknown key{hint}")
        else:
            got = err.get("input")
            got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path or '<root>'}: {msg}{got_s}")
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[:MAX_ERROR_LINES], f"... and {len(lines) - MAX_ERROR_LINES} more"]
    return f"{source}: invalid recipe:\n  " + "\n  ".join(lines)


MAX_ERROR_LINES = 20


_TAG_FIELDS = ("type", "format", "kind")


def _drop_union_tags(loc: list[Any], data: Any) -> list[Any]:
    """pydantic puts a discriminated union's tag into the location (``stages.1.grpo.x``); users never wrote
    it, so drop it: ``stages[1].x``. Works for unions in lists and in plain fields alike."""
    out: list[Any] = []
    node = data
    i = 0
    while i < len(loc):
        part = loc[i]
        out.append(part)
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(node, dict) and isinstance(nxt, str) and nxt in (node.get(t) for t in _TAG_FIELDS):
            i += 1  # skip the tag
        i += 1
    return out


def parse_model(model: type[BaseModel], data: Any, source: str = "<recipe>") -> Any:
    """Validate ``data`` against ``model``; raise :class:`RecipeError` with readable, located messages."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, model, data, source)) from None


# ----------------------------------------------------------------------------------------------------------
# explain
# ----------------------------------------------------------------------------------------------------------

def explain_model(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(path, type, default, description)`` for every field, recursing into nested sections."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        yield path, _type_name(field.annotation), default, field.description or ""
        for sub, suffix in _nested_models(field.annotation):
            yield from explain_model(sub, f"{path}{suffix}.")


def _nested_models(tp: Any) -> list[tuple[type[BaseModel], str]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [(tp, "")]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _nested_models(args[0])
    if origin is list and args:
        return [(m, "[]" + s) for m, s in _nested_models(args[0])]
    if origin is dict and len(args) == 2:
        return [(m, "{}" + s) for m, s in _nested_models(args[1])]
    if _is_union(tp):
        out = []
        for a in args:
            for m, s in _nested_models(a):
                tag = _literal_tag(m)
                n_models = sum(1 for a in args if _nested_models(a))
                label = f"<{tag[0]}={tag[1][0]}>" if tag and n_models > 1 else ""
                out.append((m, s + label))
        return out
    return []


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is list and args:
        return f"list[{_type_name(args[0])}]"
    if _is_union(tp):
        return " | ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "None"
    s = str(tp).replace("typing.", "")
    for mod in ("visionr1.config.", "visionr1.data.spec.", "visionr1.recipe."):
        s = s.replace(mod, "")
    return s
