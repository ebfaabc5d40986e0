"""A cold-start SFT stage: TRL's SFTTrainer on prompt/completion pairs with their images.

Loss on the assistant turn only: canonical samples are prompt-completion pairs, and TRL's vision collator
masks the prompt (``completion_only_loss``, on by default for such data), so the model learns the
``<think>…</think><answer>…</answer>`` reply and not the question. A *curriculum* (LlamaV-o1: captions first,
then multi-step reasoning) is simply several SFT stages in the recipe, each from the previous one's weights.

``padding_free`` (the stage field): each micro-batch is packed into one row without padding, no attention across
samples (LLaMA-Factory's ``neat_packing``, per micro-batch: the loss is the unpacked one). TRL's own ``packing`` and
``padding_free`` refuse vision datasets (TRL 1.16), so the stage builds on TRL's padded vision batch instead
(``training.packing``).

Vision-R1's cold-start numbers (lr 5e-6, cosine, warmup 0.05, 2 epochs, cutoff 16384, bf16, global batch 32)
live in ``recipes/vision-r1-7b.yaml``; nothing here is specific to them.
"""

from __future__ import annotations

from typing import Any

from visionr1.patches.transformers import StrictResumeMixin
from visionr1.training.packing import padding_free
from visionr1.training.plan import stage_config, world_size_from_env
from visionr1.training.stage import StageRun, ready, save_final, tensorboard_dir

SFT_COLUMNS = ["prompt", "completion", "images"]


def _sft_trainer_class() -> type:
    """TRL's SFTTrainer, resuming with the checkpoint's weights (``StrictResumeMixin``) and, with ``padding_free``,
    each micro-batch packed into one row (``PaddingFreeSFTHooks``, listed in ``visionr1.patches``); built on first
    use so importing this module does not import TRL's trainers."""
    from trl import SFTTrainer

    from visionr1.patches.packing import PaddingFreeSFTHooks

    return type("VisionR1SFTTrainer", (StrictResumeMixin, PaddingFreeSFTHooks, SFTTrainer), {})


def train_sft(run: StageRun) -> dict[str, Any]:
    """Train one SFT stage (resuming from ``run.resume_from`` if set) and save its final weights."""
    trainer, processor = build_sft_trainer(run)
    result = trainer.train(resume_from_checkpoint=run.resume_from)

    # --- save --------------------------------------------------------------------------------------------------
    return save_final(trainer, processor, run, {"global_step": trainer.state.global_step, **run.distributed(trainer),
                                                "train_loss": result.training_loss})


def build_sft_trainer(run: StageRun) -> tuple[Any, Any]:
    """The stage's trainer and its processor, ready to train."""
    # --- model, processor, config --------------------------------------------------------------------------
    model, processor = run.load()
    config = stage_config(run.recipe, run.stage, run.run_dir, world_size_from_env())

    # --- data: only the columns the vision collator reads ------------------------------------------------------
    train = close_open_turns(run.train_dataset.select_columns(SFT_COLUMNS), processor)
    evals = run.eval_dataset.select_columns(SFT_COLUMNS) if _has_completions(run.eval_dataset) else None
    evals = close_open_turns(evals, processor) if evals is not None else None

    # --- trainer -----------------------------------------------------------------------------------------------
    tensorboard_dir(run)
    trainer = _sft_trainer_class()(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evals,
        processing_class=processor,
        callbacks=run.callbacks(run.info()),
    )
    trainer._padding_free = padding_free(run.stage, model)
    ready(trainer, run)
    return trainer, processor


def close_open_turns(dataset: Any, processor: Any, columns: tuple[str, ...] = ("completion",)) -> Any:
    """Append the tokenizer's eos to every response in ``columns`` (SFT: the completion; DPO: chosen and
    rejected) when the chat template leaves the assistant turn open (GLM-4.1V), so training teaches the model to
    stop; other templates close the turn themselves (``<|im_end|>``)."""
    from visionr1.data.prompts import assistant_turn_left_open, close_assistant_turn

    if not assistant_turn_left_open(processor):
        return dataset
    eos = processor.tokenizer.eos_token
    return dataset.map(lambda row: {c: close_assistant_turn(row[c], eos) for c in columns})


def _has_completions(dataset: Any) -> bool:
    return dataset is not None and "completion" in dataset.column_names and all(
        c is not None for c in dataset["completion"]
    )
