"""Synthetic visual-reasoning tasks (counting, arithmetic, choice, grounding, spatial) drawn with Pillow."""

from visionr1.tasks.scene import DIFFICULTIES, Difficulty
from visionr1.tasks.synthetic import SYNTHETIC_TASKS, make_synthetic, sample_item

__all__ = ["DIFFICULTIES", "SYNTHETIC_TASKS", "Difficulty", "make_synthetic", "sample_item"]
