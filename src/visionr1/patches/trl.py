"""TRL's SFT loss on vision-language models: normalised by the tokens of the whole global batch, as TRL intends.

TRL's ``SFTTrainer.compute_loss`` (the fused LM-head path) divides the summed token loss by ``num_items_in_batch``,
the label tokens of every process and every accumulation step, and multiplies by the process count, so that DDP's
gradient mean and the accumulation sum give the loss of one large batch. But transformers computes
``num_items_in_batch`` only when ``Trainer.model_accepts_loss_kwargs`` is true, and Qwen2-VL / Qwen2.5-VL / Qwen3-VL
declare ``accepts_loss_kwargs = False`` (their own loss takes no such argument). TRL never passes it to the model
in the fused path, yet it lost the count: each process divided by its own tokens, so a 2-process run weighted each
process's tokens by the inverse of that process's count (measured: 2.9e-4 from one process with the same global
batch after 2 steps at lr 1e-4, every parameter), and so did gradient accumulation.

Fix: for the fused SFT loss (no ``compute_loss_func``, no label smoothing), ``model_accepts_loss_kwargs`` is set
true on the trainer, which is what makes transformers count the tokens; the model itself still receives none.
Test: ``tests/training/test_engines.py::test_ddp_equals_one_process_with_the_same_global_batch``.
"""

from __future__ import annotations

from typing import Any

UPSTREAM = ("huggingface/trl: SFTTrainer's fused loss relies on num_items_in_batch, which transformers computes only "
            "when model_accepts_loss_kwargs; VLMs declare accepts_loss_kwargs=False. Report: docs/distributed.md")


def count_sft_tokens_globally(trainer: Any) -> None:
    """Let transformers count the global batch's label tokens for TRL's fused SFT loss (see the module docstring)."""
    from trl import SFTTrainer

    if not isinstance(trainer, SFTTrainer) or trainer.model_accepts_loss_kwargs:
        return
    if trainer.compute_loss_func is not None or getattr(trainer, "label_smoother", None) is not None:
        return  # those paths compute the loss from the model's logits, TRL's own way
    trainer.model_accepts_loss_kwargs = True
