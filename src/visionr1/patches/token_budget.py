"""TRL's GRPO loss run over token-budget micro-batches (the stage field ``max_tokens_per_micro_batch``).

TRL 1.16 feeds ``compute_loss`` one micro-batch of ``per_device_train_batch_size`` rows per ``training_step`` and
lets transformers' ``Trainer.training_step`` call ``accelerator.backward`` once on what it returns; the number of
``training_step`` calls per optimizer step is fixed by the Trainer's loop. The least invasive place to cut a
micro-batch by tokens is therefore ``compute_loss``: for each token-budget micro-batch but the last it runs TRL's
loss and ``accelerator.backward`` itself (what ``Trainer.training_step`` would do with it: TRL's loss is already
scaled for gradient accumulation, ``loss_is_scaled_for_ga``), and returns the last one's loss, plus the detached
sum of the others (so the logged loss is the micro-batch's), for the Trainer's own backward.

Depends on TRL's private normalisation (``GRPOTrainer._compute_loss`` per ``loss_type``, mirrored in
``training.token_budget.loss_share``) and on ``Trainer.training_step`` calling ``compute_loss`` then
``accelerator.backward`` with no loss rescaling (``loss_is_scaled_for_ga``). Test:
``tests/training/test_token_budget.py`` (gradients equal the fixed-count run's; the hooks still exist).
Not with DeepSpeed: its engine steps the optimizer inside every backward at an accumulation boundary.
"""

from __future__ import annotations

UPSTREAM = "huggingface/trl: no token-budget micro-batches in GRPOTrainer (verl use_dynamic_bsz); none filed from here"


class TokenBudgetHooks:
    """Put before ``GRPOTrainer`` in the bases; ``_token_budget`` is set by ``training.grpo`` (None: TRL's batches)."""

    _token_budget: int | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        budget = self._token_budget
        if budget is None or return_outputs or not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        from visionr1.training.token_budget import loss_share, micro_batches, select_rows

        batches = micro_batches(inputs, budget, self.accelerator)
        self._metrics["train"]["token_budget/micro_batches"].append(float(len(batches)))
        if len(batches) == 1:  # every process agreed on one: TRL's micro-batch as it is
            return super().compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        done = None
        for i, rows in enumerate(batches):
            part = select_rows(inputs, rows)
            loss = super().compute_loss(model, part, num_items_in_batch=num_items_in_batch)
            loss = loss * loss_share(self.loss_type, inputs, part)
            if i == len(batches) - 1:
                return loss + done
            self.accelerator.backward(loss)
            done = loss.detach() if done is None else done + loss.detach()
        raise AssertionError("unreachable")
