"""Which section of a recipe file a command takes: ``visionr1 train`` the model + stages of a pipeline recipe
(or a training recipe), ``visionr1 coldstart`` its coldstart section (or a cold-start recipe).

The file is read once (:func:`visionr1.config.loader.read_recipe`) and validated as the kind it holds. Apart
from :mod:`visionr1.pipeline.config` (imported only for a pipeline recipe) so that a plain training recipe
costs no import of the cold-start package; nothing here is imported by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionr1.config.base import RecipeError
from visionr1.config.loader import override_recipe, read_recipe, validate

if TYPE_CHECKING:
    from visionr1.coldstart.config import ColdstartRecipe
    from visionr1.recipe import TrainRecipe

# Keys only a pipeline has: a recipe holding one of them is a pipeline recipe (else a training or cold-start one).
PIPELINE_KEYS = ("data", "tiny_model", "coldstart", "eval")


def is_pipeline(raw: dict[str, Any]) -> bool:
    return any(key in raw for key in PIPELINE_KEYS)


def is_pipeline_file(path: str | Path) -> bool:
    """Whether the recipe file ``path`` (with its includes) is a pipeline recipe."""
    return is_pipeline(read_recipe(path))


def load_training_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainRecipe:
    """``visionr1 train``'s recipe: a training recipe, or a pipeline recipe's model + stages sections."""
    from visionr1.recipe import TrainRecipe

    return _own_or_section(path, overrides, TrainRecipe, "stages", "a stages section: nothing to train",
                           lambda p: p.training_recipe())


def load_coldstart_section(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ColdstartRecipe:
    """``visionr1 coldstart``'s recipe: a cold-start recipe, or a pipeline recipe's coldstart section."""
    from visionr1.coldstart.config import ColdstartRecipe

    return _own_or_section(path, overrides, ColdstartRecipe, "coldstart", "a coldstart section",
                           lambda p: p.coldstart)


def output_dir_overrides(path: str | Path, overrides: list[str] | tuple[str, ...],
                         output_dir: str | Path | None) -> tuple[list[str], Path | None]:
    """``--output-dir X`` of a command given a pipeline recipe moves the *whole pipeline* to X, as ``visionr1 run
    -o X`` does: every section then reads the outputs of the one before it under X (``train PIPELINE -o X`` trained
    into X while reading the model and data of ``runs/<name>``, another run's). Returns the overrides to load with
    and the output directory left for the command (None for a pipeline: its section's own directory under X)."""
    if output_dir is None or not is_pipeline_file(path):
        return list(overrides), Path(output_dir) if output_dir is not None else None
    return [*overrides, f"output_dir={Path(output_dir).expanduser().resolve()}"], None


def _own_or_section(path: str | Path, overrides: list[str] | tuple[str, ...], own: Any, section: str,
                    missing: str, pick: Any) -> Any:
    """A command's own kind of recipe, or its section of a pipeline recipe (an error naming what is missing)."""
    written = read_recipe(path)  # its kind is the file's, whatever the overrides add
    raw = override_recipe(written, overrides, path)
    if not is_pipeline(written):
        return validate(own, raw, path)
    from visionr1.pipeline.config import PipelineRecipe

    pipeline = validate(PipelineRecipe, raw, path)
    if getattr(pipeline, section) is None:
        raise RecipeError(f"{path}: a pipeline recipe without {missing} "
                          f"(its sections: {', '.join(pipeline.sections()) or 'none'})")
    return pick(pipeline)


def pipeline_hint(path: str | Path, exc: Exception) -> str:
    """For ``visionr1 train PIPELINE`` whose data or model are not there yet: the command that makes them."""
    try:
        pipeline = is_pipeline_file(path)
    except RecipeError:
        return ""
    if not pipeline or "does not exist" not in str(exc) and "no such file" not in str(exc):
        return ""
    return (f"\n  (a pipeline recipe: its earlier sections make the stages' data and model; "
            f"run them with `visionr1 run {path}`, which trains too)")
