"""The one home of visionr1's overrides of other libraries' private code (accelerate, DeepSpeed, vLLM, TRL).

Each patch is applied by a function of a module here, only where it is needed (most only on a CPU, where the
libraries were never meant to run several processes or an engine), and is listed in :data:`PATCHES` with why it
exists, the test that pins it and the upstream report. A library upgrade that makes a patch useless or wrong
fails that test. (TRL's ``GRPOTrainer`` hooks that ``training/grpo.py`` and ``training/checkpoints.py`` override are
documented there; moving them here is tracked in the structure issue.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Patch:
    hook: str  # the library function or method replaced or wrapped
    where: str  # when it applies
    why: str
    test: str  # the test that pins it
    upstream: str  # the upstream issue / PR, or why none


PATCHES: list[Patch] = [
    Patch(
        hook="accelerate.state.PartialState._prepare_backend",
        where="a torchrun process on a machine without a GPU (patches.accelerate)",
        why="gives such a process no backend: every rank believed it was rank 0 of 1 (two runs writing one directory, "
            "DeepSpeed's batch assertion); now gloo and MULTI_CPU, without the cpu flag that would switch DeepSpeed off",
        test="tests/training/test_distributed.py, tests/training/test_engines.py",
        upstream="accelerate: none found (patches.accelerate.UPSTREAM)",
    ),
    Patch(
        hook="accelerate.state.AcceleratorState.__init__",
        where="the same processes, with ACCELERATE_USE_FSDP (patches.accelerate)",
        why="FSDP is promoted from GPU types only, so an FSDP config on a CPU trained as DDP; MULTI_CPU is promoted too",
        test="tests/training/test_engines.py::test_each_stage_ends_where_ddp_ends",
        upstream="accelerate: none found (patches.accelerate.UPSTREAM)",
    ),
    Patch(
        hook="model.get_output_embeddings (instance attribute of the model TRL's add_fused_lm_head patched)",
        where="FSDP2 runs, every trainer (patches.fsdp2)",
        why="TRL's fused LM head reads lm_head.weight and takes .full_tensor(), whose backward is a slice: the head's "
            "gradient was each rank's own, not the mean (2-process run: head 3e-4 off DDP); the head's unit is now "
            "unsharded first so FSDP's reduce-scatter averages it",
        test="tests/training/test_engines.py::test_fsdp2_gradients_equal_single_process_gradients",
        upstream="trl#6077 (the full_tensor call); verl#7427 (related)",
    ),
    Patch(
        hook="transformers.Trainer.model_accepts_loss_kwargs (set on the SFT trainer)",
        where="SFT stages whose loss is TRL's fused path (patches.trl)",
        why="Qwen-VL models declare accepts_loss_kwargs=False, so transformers never counted the global batch's tokens "
            "and TRL's SFT loss divided by each process's own: 2 processes ended 2.9e-4 from one process with the same "
            "global batch (gradient accumulation likewise)",
        test="tests/training/test_engines.py::test_ddp_equals_one_process_with_the_same_global_batch",
        upstream="trl: report drafted (patches.trl.UPSTREAM, docs/distributed.md)",
    ),
    Patch(
        hook="trl.GRPOTrainer._generate_and_score_completions and ._calculate_rewards (wrapped, a mixin of the trainer)",
        where="every GRPO stage's training batches (patches.grpo_sampling)",
        why="TRL has no hook between scoring and training: dynamic sampling drops all-equal-reward groups and merges "
            "refill rounds, difficulty filtering replaces filtered prompts, and the informative-group share, the "
            "generated tokens and the trained prompts' ids are logged (TRL's _metrics and _logs buffers)",
        test="tests/training/test_rollout_filter.py",
        upstream="trl: none filed (patches.grpo_sampling.UPSTREAM)",
    ),
]


def apply_to_trainer(trainer: Any) -> None:
    """The patches that depend on a built trainer (its engine, its loss); every stage calls this once."""
    from visionr1.patches.fsdp2 import patch_trainer
    from visionr1.patches.trl import count_sft_tokens_globally

    patch_trainer(trainer)
    count_sft_tokens_globally(trainer)
