"""TRL's GRPO log-prob forward, padding-free (the stage field ``padding_free``; the logic in ``training.packing``).

TRL 1.16 computes every per-token log-prob of GRPO (the policy's in the loss, the old policy's and the reference
model's in ``_generate_and_score_completions``) in one private method, ``_get_per_token_logps_and_entropies``,
on the padded batch, and has no option to pack it (its ``padding_free`` exists for SFT on text only). So the method
is overridden, in a mixin put before ``GRPOTrainer`` in ``VisionR1GRPOTrainer``'s bases: with ``padding_free`` on it
calls ``training.packing.packed_logps_and_entropies`` (same arguments, same outputs), else TRL's own.
``compute_loss`` is wrapped only to log ``padded_token_share`` (padding positions / all positions of the loss
forward, every process) into TRL's ``_metrics`` buffer, beside ``informative_group_share``.

Test: ``tests/training/test_packing.py`` (log-probs and gradients equal the padded ones, the metric, the signature).
"""

from __future__ import annotations

from typing import Any

import torch

from visionr1.training.packing import packed_logps_and_entropies

UPSTREAM = ("huggingface/trl: GRPOTrainer has no padding-free / remove-padding log-prob forward (verl "
            "use_remove_padding); none filed from here")


class PaddingFreeHooks:
    """Put before ``GRPOTrainer`` in the bases; ``_padding_free`` is set by ``training.grpo``."""

    _padding_free: bool = False

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **vision: Any):
        if not self._padding_free:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **vision)
        return packed_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                                          compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss,
                                          autocast=self.accelerator.autocast(), **vision)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        real = int(mask.sum())
        positions = real if self._padding_free else mask.numel()  # packed: the row holds exactly the real tokens
        counts = self.accelerator.gather(torch.tensor([real, positions], device=mask.device).reshape(1, 2)).sum(0)
        self._metrics[mode]["padded_token_share"].append(1.0 - float(counts[0]) / max(float(counts[1]), 1.0))
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
