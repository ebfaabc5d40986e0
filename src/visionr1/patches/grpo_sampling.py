"""Two TRL ``GRPOTrainer`` hooks wrapped for dynamic sampling, difficulty filtering and their metrics.

TRL 1.16 scores a generation batch in one private method, ``_generate_and_score_completions`` (generation, rewards,
advantages, old/reference log-probs, logging), and offers no hook to look at the rewards or to drop and replace
groups before they are trained on. So:

- ``_calculate_rewards`` is wrapped to keep its result (the rewards of every process, gathered: TRL gathers them
  before normalising per group) on the trainer as ``_scored_rewards``; nothing is changed.
- ``_generate_and_score_completions`` is wrapped, in training only, by ``training.rollout_filter.RolloutFilter``:
  it calls TRL's method once per generation round and returns TRL's own output (one round, every group kept) or
  the kept rows of several rounds merged. It also writes TRL's ``_metrics["train"]`` buffer (the averages logged
  per step: ``informative_group_share``, ``generated_tokens``) and rewrites the ``_logs`` buffers (the rows trained,
  with their prompt ids) that ``completions.jsonl`` reads.

The wrappers live here, a mixin before ``GRPOTrainer`` in ``VisionR1GRPOTrainer``'s bases, because they must be
methods of the trainer (TRL calls them through ``self``). Test: ``tests/training/test_rollout_filter.py`` (the
signatures, the trained prompts, the bound, resume, two processes).
"""

from __future__ import annotations

from typing import Any

UPSTREAM = ("huggingface/trl: no dynamic sampling / group filtering in GRPOTrainer (DAPO's filter_groups); "
            "none filed from here")


class RolloutFilterHooks:
    """Put before ``GRPOTrainer`` in the bases; ``_rollout_filter`` is set by ``training.grpo``."""

    _rollout_filter: Any = None
    _scored_rewards: Any = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._scored_rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._scored_rewards

    def _generate_and_score_completions(self, inputs):
        score = super()._generate_and_score_completions
        if self._rollout_filter is None or not self.model.training:
            return score(inputs)
        return self._rollout_filter.generate(self, inputs, score)
