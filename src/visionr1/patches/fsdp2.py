"""FSDP2 and TRL's fused LM head: the head's gradient must be averaged over the processes like every other.

accelerate's FSDP2 wrapping puts ``[final_norm, lm_head]`` in a unit of their own. TRL's fused LM-head loss
(``trl.trainer.utils.add_fused_lm_head``, used by SFT, GRPO and DPO) never calls ``lm_head``: it reads
``lm_head.weight``, finds a sharded ``DTensor`` and calls ``.full_tensor()``. The backward of that all-gather is a
plain slice (DTensor assumes a replicated gradient is the same on every rank), so each process's shard receives
only its own process's gradient instead of the mean; every other parameter goes through FSDP's reduce-scatter
and is averaged. A 2-process run's head drifted from DDP's by ~3e-4 after two steps while the rest agreed to 1e-6.

Fix: the model's ``get_output_embeddings`` (which the fused forward calls to find the head) first *unshards* the
head's FSDP unit, as the unit's own forward hook would, so the forward reads the plain unsharded weight, its
gradient accumulates there, and FSDP's post-backward reduce-scatters (averages) it with the rest of the unit.
Test: ``tests/training/test_engines.py`` compares every parameter's gradient with the single-process result.
"""

from __future__ import annotations

from typing import Any

UPSTREAM = ("huggingface/trl#6077 introduced the one-time lm_head.weight.full_tensor() (for speed); its backward is "
            "a slice, not a mean, under accelerate's tail FSDP2 unit. Related: verl-project/verl#7427 (fused untied "
            "heads under FSDP2, moved into the root unit). Report to TRL: docs/distributed.md, 'Upstream reports'")


def gather_fused_lm_head(model: Any) -> None:
    """Make ``model.get_output_embeddings()`` unshard the head's FSDP2 unit before returning it (no-op when the
    head is not sharded). Call on the model TRL patched, before or after ``accelerator.prepare``."""
    original = model.get_output_embeddings
    if getattr(original, "_visionr1_unshards", False):
        return

    def get_output_embeddings() -> Any:
        head = original()
        weight = getattr(head, "weight", None)
        if weight is not None and type(weight).__name__ == "DTensor" and hasattr(head, "unshard"):
            head.unshard()  # FSDPModule.unshard: all-gather and register the unsharded parameters
        return head

    get_output_embeddings._visionr1_unshards = True
    model.get_output_embeddings = get_output_embeddings


def patch_trainer(trainer: Any) -> None:
    """Apply :func:`gather_fused_lm_head` to a TRL trainer's model when the run is FSDP2 (the trainers call TRL's
    ``add_fused_lm_head`` in their ``__init__``, on the PEFT base model when there is one)."""
    if not getattr(trainer.accelerator, "is_fsdp2", False):
        return
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    gather_fused_lm_head(base)
