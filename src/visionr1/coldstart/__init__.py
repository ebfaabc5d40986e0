"""Cold-start data by modality bridging (Vision-R1-cold): pseudo-CoT -> description -> text reasoner -> filters.

Entry points: ``load_coldstart_recipe(path, overrides)`` and ``run_coldstart(recipe, output_dir)``; the CLI is
``visionr1 coldstart RECIPE.yaml``. Heavy imports (torch, transformers) happen only in the local backend.
"""

from visionr1.coldstart.config import ColdstartRecipe, load_coldstart_recipe
from visionr1.coldstart.pipeline import run_coldstart

__all__ = ["ColdstartRecipe", "load_coldstart_recipe", "run_coldstart"]
