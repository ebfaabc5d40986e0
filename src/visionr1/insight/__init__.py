"""Insight-V (arXiv 2411.14432): structured long-chain reasoning data, a reasoning agent and a summary agent.

``visionr1 insight data RECIPE`` (:func:`run_insight_data`) writes the two SFT sets; ``visionr1 eval run
--strategy insight-v`` runs the two agents. The iterative DPO stage lives in ``visionr1.training``.
"""

from visionr1.insight.config import InsightDataRecipe, load_insight_recipe
from visionr1.insight.pipeline import run_insight_data

__all__ = ["InsightDataRecipe", "load_insight_recipe", "run_insight_data"]
