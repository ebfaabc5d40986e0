"""A GRPO stage: TRL's GRPOTrainer with verifiable rewards. PTST is several of these in a row.

Vision-R1's Progressive Thinking Suppression Training is nothing but stages whose ``max_completion_length``
grows while ``num_generations`` shrinks (4K x 16 -> 8K x 8), each from the previous stage's weights, with the
hard formatting result reward: a truncated answer has no ``</answer>`` and scores 0, which is what keeps early
thinking short. So this module runs *one* stage; the recipe's list of stages is the schedule.

Departures from the paper (it used EasyR1/veRL, no RL code released):
- TRL's defaults apply unless the recipe overrides them: ``loss_type`` "dapo" token-level normalisation
  (the recipes set ``loss_type: grpo`` to match the paper's sequence-mean GRPO), and per-group reward scaling.
- The KL term is TRL's k3 estimator with ``beta`` from the recipe (the paper: 0.01, k3), as in the paper.
- Prompts are never truncated (TRL 1.x has no prompt truncation): cutting a prompt with images cuts image
  tokens and breaks the forward pass ("image features and image tokens do not match").
- The prompt order is ours, not TRL's: one seeded stream through the RL data that the next stage continues
  (``training.data_order``); TRL's own shuffle would give every stage the same permutation.

Padding: the processor is switched to *left* padding for the stage. TRL left-pads the prompt ids it generates
from, but re-runs the processor (with the processor's own padding side) for the multimodal fields of the loss
forward; real Qwen-VL checkpoints ship ``padding_side="right"``, so ``mm_token_type_ids`` came out right-padded
against left-padded ids: Qwen's ``get_rope_index`` crashed on prompts of different lengths ("shape mismatch")
or, for small differences, silently computed wrong mRoPE positions (wrong log-probs, KL and ratios). TRL sets
left padding only when it loads the processor itself. The saved processor keeps the checkpoint's own side.
"""

from __future__ import annotations

import contextlib
from typing import Any

from trl import GRPOTrainer

from visionr1.patches.grpo_sampling import RolloutFilterHooks
from visionr1.patches.packing import PaddingFreeHooks
from visionr1.patches.token_budget import TokenBudgetHooks
from visionr1.patches.transformers import StrictResumeMixin
from visionr1.patches.trl import ImageSharingScope, TextOnlyImageLists
from visionr1.rewards.checked import check_rewards, no_signal_callback
from visionr1.training.callbacks import COMPLETIONS_FILE, CompletionsLog
from visionr1.training.data_order import dataset_key, prompts_needed, stream_slice
from visionr1.training.generation import ban_vision_tokens
from visionr1.training.packing import padding_free
from visionr1.training.plan import PlanError, stage_config, world_size_from_env
from visionr1.training.rollout_filter import RolloutFilter, RolloutFilterState, load_table, save_table
from visionr1.training.stage import StageRun, ready, save_final, tensorboard_dir

# Columns rewards may read (passed by TRL as keyword arguments); `completion` would be mistaken for SFT data.
GRPO_COLUMNS = ["prompt", "images", "solution", "task", "choices", "id", "question", "metadata"]


class AccuracyMetric:
    """The stage's first reward function, also logging ``accuracy`` for every generation batch through TRL's
    public ``log_metric`` reward argument (averaged per logging step, across processes, like TRL's own).

    Why: with ``hard_format_result`` alone, reward 0 hides whether the format or the answer failed. The metric
    is the one scorer's verdict (``rewards.scoring.correct_many``: one batched call per generation batch, the
    undecided answers checked symbolically in parallel), whatever rewards are optimised; it changes no reward.
    """

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__name__ = getattr(func, "__name__", "reward")  # TRL logs the reward under this name

    def __call__(self, completions: Any, **kwargs: Any) -> Any:
        log_metric = kwargs.get("log_metric")
        if log_metric is not None and kwargs.get("solution") is not None:
            from visionr1.rewards.scoring import correct_many

            n = len(completions)
            correct = correct_many(completions, kwargs["solution"], kwargs.get("task") or [None] * n,
                                   kwargs.get("choices") or [None] * n)
            log_metric("accuracy", sum(correct) / max(n, 1))
        return self.func(completions, **kwargs)


class VisionR1GRPOTrainer(StrictResumeMixin, ImageSharingScope, TextOnlyImageLists, RolloutFilterHooks,
                          TokenBudgetHooks, PaddingFreeHooks, GRPOTrainer):
    """GRPOTrainer plus what TRL lacks, nothing else; each piece is a patch of ``visionr1.patches`` (listed, with
    its test and upstream report, in ``visionr1.patches.PATCHES``):

    - resume with the checkpoint's weights, and checkpoints recorded before older ones are rotated away
      (``patches.transformers.StrictResumeMixin``);
    - each image processed and encoded once per group (``patches.trl.ImageSharingScope``, the stage's
      ``share_images``);
    - batches that mix image and text-only prompts (``patches.trl.TextOnlyImageLists``);
    - dynamic sampling, difficulty filtering and the informative-group metrics
      (``patches.grpo_sampling.RolloutFilterHooks``; the logic in ``training.rollout_filter``);
    - the log-prob forwards packed without padding (the stage's ``padding_free``: ``patches.packing.PaddingFreeHooks``;
      the logic in ``training.packing``) and ``padded_token_share`` logged each step;
    - the loss over token-budget micro-batches (the stage's ``max_tokens_per_micro_batch``:
      ``patches.token_budget.TokenBudgetHooks``; the logic in ``training.token_budget``).

    The sampled completions go to ``RUN_DIR/completions.jsonl`` through a callback
    (``training.callbacks.CompletionsLog``), not an override.
    """

    def __init__(self, *args: Any, share_images: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._share_images = share_images


def train_grpo(run: StageRun) -> dict[str, Any]:
    """Train one GRPO stage (resuming from ``run.resume_from`` if set) and save its final weights."""
    trainer, processor, order = build_grpo_trainer(run)
    trainer.train(resume_from_checkpoint=run.resume_from)

    # --- save: the processor as the checkpoint had it, the difficulty table for the next stages ---------------
    processor.tokenizer.padding_side = order.pop("saved_padding_side")
    rollout = trainer._rollout_filter
    order["refills"] = rollout.state.cursor  # stream positions drawn after the slice; the next stage starts after them
    if run.stage.difficulty_filter.enabled and trainer.accelerator.is_main_process:
        save_table(run.stage_dir, order["dataset"], rollout.state.table)
    options = run.stage.dynamic_sampling.enabled or run.stage.difficulty_filter.enabled
    return save_final(trainer, processor, run, {"global_step": trainer.state.global_step, "data_order": order,
                                                **({"rollout_filter": rollout.record()} if options else {}),
                                                **run.distributed(trainer)})


def build_grpo_trainer(run: StageRun) -> tuple[VisionR1GRPOTrainer, Any, dict[str, Any]]:
    """The stage's trainer, its processor, and the slice of the prompt stream it trains on (for the manifest)."""
    from visionr1.data.prompts import generation_prompt_opens_think
    from visionr1.rewards.registry import build_reward_funcs

    # --- model, processor (left padding, see the module docstring), config ------------------------------------
    model, processor = run.load()
    saved_side = processor.tokenizer.padding_side
    processor.tokenizer.padding_side = "left"
    config = stage_config(run.recipe, run.stage, run.run_dir, world_size_from_env())
    config.generation_kwargs = ban_vision_tokens(config.generation_kwargs, processor, config.use_vllm)

    # --- rewards: functions and their weights (TRL sums them, weighted) -------------------------------------
    # weights: config.reward_weights (plan.stage_values); a template that opens <think> itself: think_prefilled
    reward_funcs = build_reward_funcs(run.stage.rewards, think_prefilled=generation_prompt_opens_think(processor)).funcs
    checks = run.stage.reward_checks
    reward_funcs = check_rewards(reward_funcs, non_finite=checks.non_finite, slow_call_s=checks.slow_call_s)
    no_signal = no_signal_callback(list(reward_funcs), run.stage.name, checks.no_signal_steps, checks.no_signal_frac,
                                   report=run.report)
    reward_funcs[0] = AccuracyMetric(reward_funcs[0])

    # --- data: the stage's slice of the run's prompt stream, plus the columns rewards read -------------------
    train = _reward_columns(run.train_dataset)
    stream = train
    order = {"dataset": dataset_key(run.stage.dataset.model_dump(mode="json")), "offset": run.data_offset,
             "count": prompts_needed(config, len(train)), "seed": run.recipe.seed,
             "shuffle": config.shuffle_dataset is not False}
    train = train.select(stream_slice(len(train), order["seed"], order["offset"], order["count"], order["shuffle"]))
    config.shuffle_dataset = False  # the order above is the order trained
    evals = _reward_columns(run.eval_dataset) if run.eval_dataset is not None and config.eval_strategy != "no" else None

    # --- trainer -----------------------------------------------------------------------------------------------
    tensorboard_dir(run)
    info = run.info(max_completion_length=config.max_completion_length, num_generations=config.num_generations)
    with _vllm_patches(config, model, processor, train, evals):
        trainer = VisionR1GRPOTrainer(
            model=model,
            reward_funcs=reward_funcs,
            args=config,
            train_dataset=train,
            eval_dataset=evals,
            processing_class=processor,
            callbacks=[*run.callbacks(info), no_signal],
            share_images=run.stage.share_images,
        )
    trainer.add_callback(CompletionsLog(trainer, run.run_dir / COMPLETIONS_FILE, info,
                                        run.recipe.logging.completions_per_log))
    if config.use_vllm:
        from visionr1.patches.vllm import patch_colocate_generation

        patch_colocate_generation(trainer.vllm_generation, processor)
    trainer._padding_free = padding_free(run.stage, model)
    trainer._rollout_filter = _rollout_filter(run, stream, order, config)
    trainer.add_callback(trainer._rollout_filter.state)  # saved in each checkpoint's trainer_state.json
    _token_budget(trainer, run)
    ready(trainer, run)
    return trainer, processor, {**order, "saved_padding_side": saved_side}


def _vllm_patches(config: Any, model: Any, processor: Any, train: Any, evals: Any) -> Any:
    """With ``use_vllm``: vLLM's CPU backend keeps its linear weights (or TRL's sync cannot reach them) and the
    engine TRL builds gets the stage's modality limits, pixel budget and, without mixed precision, the model's
    dtype (``visionr1.patches.vllm``)."""
    if not config.use_vllm:
        return contextlib.nullcontext()
    from visionr1.patches.vllm import (
        engine_defaults,
        engine_kwargs,
        keep_cpu_linear_weights,
        read_token_id_logprobs,
    )

    if config.vllm_mode == "server":
        read_token_id_logprobs()
        return contextlib.nullcontext()
    keep_cpu_linear_weights()
    dtype = None if (config.bf16 or config.fp16) else next(model.parameters()).dtype
    return engine_defaults(engine_kwargs(processor, [train, evals], dtype))


def _rollout_filter(run: StageRun, stream: Any, order: dict[str, Any], config: Any) -> RolloutFilter:
    """The stage's dynamic sampling / difficulty filter, drawing after the stage's slice; its state restored from
    the checkpoint resumed (same prompts drawn again), else the table of the latest earlier stage."""
    state = RolloutFilterState()
    if not (run.resume_from and state.restore(run.resume_from)):
        earlier = [s.name for s in run.recipe.stages[:run.index]]
        state.table = load_table(run.run_dir, earlier, order["dataset"]) if run.stage.difficulty_filter.enabled else {}
    return RolloutFilter(stream, order["offset"] + order["count"], order["seed"], order["shuffle"],
                         run.stage.dynamic_sampling, run.stage.difficulty_filter, state)


def _token_budget(trainer: VisionR1GRPOTrainer, run: StageRun) -> None:
    """The stage's ``max_tokens_per_micro_batch`` on the trainer, refused (one line) where it cannot be exact."""
    from visionr1.training.token_budget import trainer_problem

    budget = run.stage.max_tokens_per_micro_batch
    if budget is not None and (problem := trainer_problem(trainer)) is not None:
        raise PlanError(f"stage {run.stage.name}: {problem}")
    trainer._token_budget = budget


def _reward_columns(dataset: Any) -> Any:
    if dataset is None:
        return None
    return dataset.select_columns([c for c in GRPO_COLUMNS if c in dataset.column_names])
