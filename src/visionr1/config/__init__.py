"""Recipes: one YAML file per run, validated by pydantic, with `include:` and dotted overrides.

``base``: the schema side (strict sections, readable errors, explain); ``loader``: reading a recipe file
into a schema, the one module that does it.
"""

from visionr1.config.base import RecipeError, StrictModel, explain_model, parse_model
from visionr1.config.loader import apply_overrides, load, load_yaml_with_includes, read_recipe

__all__ = [
    "RecipeError",
    "StrictModel",
    "apply_overrides",
    "explain_model",
    "load",
    "load_yaml_with_includes",
    "parse_model",
    "read_recipe",
]
