"""Reading a recipe file, for every kind of recipe: the one module that does it.

A recipe kind (the training recipe, the pipeline recipe, the cold start's, Insight-V's data recipe, a bare
dataset section for ``data inspect``) is a pydantic schema; :func:`load` turns a file into one, in this order:

1. the YAML, after its ``include:`` files (this file overrides them; ``stages`` may be patched per stage);
2. stages with ``enabled: false`` dropped, so ``stages.0`` in an override is the first stage that runs;
3. the dotted command-line overrides (``stages.0.max_steps=10``, ``stages.ptst-2.grpo.beta=0``), then
   stages an override disabled dropped too;
4. validation against the schema, where every path the recipe writes is resolved against the recipe's
   directory by the type of its field: :data:`RecipePath` (a file or directory, or a hub id),
   :data:`ModelRef` (a model: a directory, a hub id or ``tiny:FAMILY/SIZE``), :data:`RecipeFile` (a file
   always next to the recipe), :data:`PluginRef` (a registered name or ``file.py:function``).

Why one module: the kinds used to do parts of this by hand, each its own way, and disagreed (a ``tiny:``
model was a path next to the recipe for one kind and not for another). A schema validated without a recipe
file (a command line's options, a stage's ``RUN/recipe.json`` already resolved) resolves nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationInfo

from visionr1.config.base import RecipeError, parse_model

M = TypeVar("M", bound=BaseModel)

# ----------------------------------------------------------------------------------------------------------
# Loading: a file -> a recipe of a kind
# ----------------------------------------------------------------------------------------------------------


def load(schema: type[M], path: str | Path, overrides: Sequence[str] = ()) -> M:
    """Read ``path`` (:func:`read_recipe`) and validate it as ``schema`` (:func:`validate`)."""
    return validate(schema, read_recipe(path, overrides), path)


def read_recipe(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The recipe file as a mapping: includes merged, disabled stages dropped, overrides applied
    (``stages.NAME.x=1`` accepted), then stages an override disabled dropped. Not validated yet."""
    path = Path(path)
    return override_recipe(_drop_disabled_stages(load_yaml_with_includes(path), path), overrides, path)


def override_recipe(data: dict[str, Any], overrides: Sequence[str], path: str | Path) -> dict[str, Any]:
    """``data`` read from ``path`` (:func:`read_recipe`) with the dotted ``overrides`` applied, for a command
    that looks at the file as written first (which kind of recipe it is) and reads it only once."""
    if not overrides:
        return data
    path = Path(path)
    data = apply_overrides(data, [_stage_name_to_index(o, data, path) for o in overrides])
    return _drop_disabled_stages(data, path)


def validate(schema: type[M], data: dict[str, Any], path: str | Path) -> M:
    """``data`` read from the recipe file ``path``, validated as ``schema``: its path-typed fields resolve
    against the file's directory; then the schema's ``after_load(source)``, if it has one, checks what needs
    the resolved paths (e.g. the cold start's prompt templates exist and hold their placeholders)."""
    recipe = parse_model(schema, data, source=str(path), context={RECIPE_DIR: Path(path).resolve().parent})
    after_load = getattr(recipe, "after_load", None)
    if after_load is not None:
        after_load(str(path))
    return recipe


def run_dir_of(recipe: Any, output_dir: str | os.PathLike | None = None) -> Path:
    """A run's directory: the command's ``--output-dir``, else the recipe's ``output_dir``, else
    ``runs/<name>``, from the current directory. ``recipe``: a validated recipe or its raw mapping.

    >>> run_dir_of({"name": "demo", "output_dir": "/tmp/x"}) == Path("/tmp/x")
    True
    """
    def get(key: str) -> Any:
        return recipe.get(key) if isinstance(recipe, Mapping) else getattr(recipe, key, None)

    return Path(output_dir or get("output_dir") or Path("runs") / str(get("name"))).expanduser().resolve()


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
# Stages: disabled ones dropped, named ones in overrides
# ----------------------------------------------------------------------------------------------------------


def _drop_disabled_stages(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Stages with ``enabled: false`` leave the recipe before overrides apply, so ``stages.0`` is the first
    stage that runs — the numbering ``--dry-run`` shows (and again after them: an override may disable one)."""
    if isinstance(data.get("stages"), list):
        kept = [s for s in data["stages"] if not (isinstance(s, dict) and s.get("enabled") is False)]
        if not kept and data["stages"]:
            raise RecipeError(f"{path}: stages: every stage has enabled: false; enable at least one")
        data = {**data, "stages": kept}
    return data


def _stage_name_to_index(override: str, data: dict, path: Path) -> str:
    """``stages.ptst-2.grpo.max_steps=5`` -> ``stages.1.grpo.max_steps=5`` (stage names survive reordering).

    >>> _stage_name_to_index("stages.b.x=1", {"stages": [{"name": "a"}, {"name": "b"}]}, Path("r.yaml"))
    'stages.1.x=1'
    """
    key, sep, value = override.partition("=")
    parts = key.strip().split(".")
    if len(parts) < 2 or parts[0] != "stages" or parts[1].lstrip("-").isdigit() or not sep:
        return override
    names = [s.get("name") for s in data.get("stages") or [] if isinstance(s, dict)]
    if parts[1] not in names:
        raise RecipeError(f"{path}: override {override!r}: no stage named {parts[1]!r}; stages are {names}")
    return ".".join(["stages", str(names.index(parts[1])), *parts[2:]]) + sep + value


# ----------------------------------------------------------------------------------------------------------
# Paths, resolved by the type of their field
# ----------------------------------------------------------------------------------------------------------

RECIPE_DIR = "recipe_dir"  # the validation context key: the directory of the recipe file being loaded
TINY_PREFIX = "tiny:"  # a tiny random model built locally (visionr1.models.tiny), never a path


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


def resolve_model(p: str, base: Path) -> str:
    """A model reference: ``tiny:FAMILY/SIZE`` as written (built locally when loaded), else as :func:`resolve_path`.

    >>> resolve_model("tiny:qwen2_5_vl/test", Path("/r")), resolve_model("./ckpt", Path("/r"))
    ('tiny:qwen2_5_vl/test', '/r/ckpt')
    """
    return p if p.startswith(TINY_PREFIX) else resolve_path(p, base)


def resolve_file(p: str, base: Path) -> str:
    """A file that belongs to the recipe (a prompt template): always relative to the recipe's directory.

    >>> resolve_file("prompts/step1.txt", Path("/r"))
    '/r/prompts/step1.txt'
    """
    return str(base / Path(p).expanduser())


def resolve_plugin(name: str, base: Path) -> str:
    """A registered name as written; ``file.py:function`` with its file resolved as :func:`resolve_path`.

    >>> resolve_plugin("./my_rewards.py:score", Path("/r")), resolve_plugin("accuracy", Path("/r"))
    ('/r/my_rewards.py:score', 'accuracy')
    """
    file, sep, func = name.rpartition(":")
    if not (sep and file.endswith(".py")):
        return name
    return f"{resolve_path(file, base)}:{func}"


def _resolved_by(resolve: Callable[[str, Path], str]) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get(RECIPE_DIR)
        return value if base is None else resolve(value, base)

    return AfterValidator(check)


RecipePath = Annotated[str, _resolved_by(resolve_path)]
ModelRef = Annotated[str, _resolved_by(resolve_model)]
RecipeFile = Annotated[str, _resolved_by(resolve_file)]
PluginRef = Annotated[str, _resolved_by(resolve_plugin)]
