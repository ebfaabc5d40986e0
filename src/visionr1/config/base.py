"""The schema side of recipes, independent of what a recipe holds: strict sections, readable errors, explain.

Why our own layer on top of pydantic: a typo in a 7B run's recipe must fail before the GPUs spin up, and the
error must say where (``stages[1].grpo.num_generaton``) and what was meant (``num_generations``). pydantic's
own messages give neither the suggestion nor the file. Reading a recipe file (``include:``, dotted overrides,
paths relative to the file) is :mod:`visionr1.config.loader`'s.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Union

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


def parse_model(model: type[BaseModel], data: Any, source: str = "<recipe>", context: dict[str, Any] | None = None) -> Any:
    """Validate ``data`` against ``model``; raise :class:`RecipeError` with readable, located messages.
    ``context`` reaches every validator (the loader passes the recipe's directory: paths resolve against it)."""
    try:
        return model.model_validate(data, context=context)
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
