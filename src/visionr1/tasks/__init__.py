"""Synthetic visual-reasoning tasks (counting, arithmetic, choice, grounding, spatial) drawn with Pillow."""

from visionr1.tasks.scene import DIFFICULTIES, Difficulty
from visionr1.tasks.synthetic import TASKS, make_synthetic, sample_item

__all__ = ["DIFFICULTIES", "TASKS", "Difficulty", "make_synthetic", "sample_item"]
