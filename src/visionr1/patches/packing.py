"""TRL's GRPO log-prob forward, padding-free (the stage field ``padding_free``; the logic in ``training.packing``).

TRL 1.16 computes every per-token log-prob of GRPO (the policy's in the loss, the old policy's and the reference
model's in ``_generate_and_score_completions``) in one private method, ``_get_per_token_logps_and_entropies``,
on the padded batch, and has no option to pack it (its ``padding_free`` exists for SFT on text only). So the method
is overridden, in a mixin put before ``GRPOTrainer`` in ``VisionR1GRPOTrainer``'s bases: with ``padding_free`` on it
calls ``training.packing.packed_logps_and_entropies`` (same arguments, same outputs), else TRL's own.
``compute_loss`` is wrapped only to log ``padded_token_share`` (padding positions / all positions of the loss
forward, every process) into TRL's ``_metrics`` buffer, beside ``informative_group_share``.

SFT (``PaddingFreeSFTHooks``): TRL 1.16 refuses its own ``packing`` and ``padding_free`` for vision datasets, so
``compute_loss`` packs TRL's padded vision batch (``training.packing.pack_batch``) before TRL's own loss; TRL then
counts the batch's tokens (its ``num_tokens`` metric, a private counter) as ``position_ids.size(1)``, the 1 of the
packed ``(4, 1, N)`` layout, so the counter is set to the real token count instead.

Test: ``tests/training/test_packing.py`` (log-probs, loss and gradients equal the padded ones, the metric, the
signatures).
"""

from __future__ import annotations

from typing import Any

import torch

from visionr1.training.packing import pack_batch, packed_logps_and_entropies

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
                                          autocast=self.accelerator.autocast, **vision)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        self._metrics[mode]["padded_token_share"].append(_share(self, mask, self._padding_free)[0])
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def _share(trainer: Any, mask: torch.Tensor, packed: bool) -> tuple[float, int]:
    """Padding positions / all positions of the loss forward, over every process; and the real tokens."""
    real = int(mask.sum())
    counts = trainer.accelerator.gather(torch.tensor([[real, real if packed else mask.numel()]], device=mask.device))
    counts = counts.reshape(-1, 2).sum(0)
    return 1.0 - float(counts[0]) / max(float(counts[1]), 1.0), int(counts[0])


class PaddingFreeSFTHooks:
    """Put before ``SFTTrainer`` in the bases; ``_padding_free`` is set by ``training.sft``."""

    _padding_free: bool = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        share, tokens = _share(self, inputs["attention_mask"], self._padding_free)
        self._metrics[mode]["padded_token_share"].append(share)
        if not self._padding_free:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        counted = self._total_train_tokens
        out = super().compute_loss(model, pack_batch(model, inputs), return_outputs=return_outputs,
                                   num_items_in_batch=num_items_in_batch)
        if mode == "train":  # TRL counted position_ids.size(1) per process (see the module docstring)
            self._total_train_tokens = counted + tokens // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return out
