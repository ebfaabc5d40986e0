"""Recipes: one YAML file per run, validated by pydantic, with `include:` and dotted overrides."""

from visionr1.config.base import (
    RecipeError,
    StrictModel,
    apply_overrides,
    explain_model,
    load_yaml_with_includes,
    parse_model,
)

__all__ = [
    "RecipeError",
    "StrictModel",
    "apply_overrides",
    "explain_model",
    "load_yaml_with_includes",
    "parse_model",
]
