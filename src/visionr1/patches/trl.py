"""TRL's trainers: where visionr1 reaches into them, and why (each piece listed in ``visionr1.patches.PATCHES``).

1. **SFT: the loss normalised by the tokens of the whole global batch**, as TRL intends (:func:`count_sft_tokens_globally`).
   TRL's ``SFTTrainer.compute_loss`` (the fused LM-head path) divides the summed token loss by ``num_items_in_batch``,
   the label tokens of every process and every accumulation step, and multiplies by the process count, so that DDP's
   gradient mean and the accumulation sum give the loss of one large batch. But transformers computes
   ``num_items_in_batch`` only when ``Trainer.model_accepts_loss_kwargs`` is true, and Qwen2-VL / Qwen2.5-VL / Qwen3-VL
   declare ``accepts_loss_kwargs = False`` (their own loss takes no such argument). TRL never passes it to the model
   in the fused path, yet it lost the count: each process divided by its own tokens, so a 2-process run weighted each
   process's tokens by the inverse of that process's count (measured: 2.9e-4 from one process with the same global
   batch after 2 steps at lr 1e-4, every parameter), and so did gradient accumulation. Fix: for the fused SFT loss (no
   ``compute_loss_func``, no label smoothing), ``model_accepts_loss_kwargs`` is set true on the trainer, which is what
   makes transformers count the tokens; the model itself still receives none. Test:
   ``tests/training/test_engines.py::test_ddp_equals_one_process_with_the_same_global_batch``.

2. **GRPO: batches that mix image and text-only prompts** (:class:`TextOnlyImageLists`, overrides ``_generate``).
   TRL 1.16's ``_tokenize_prompts`` gives a text-only prompt the image list ``None`` when another prompt of the batch
   has images; ``_generate`` returns that list as the 7th value of its tuple, and ``_generate_and_score_completions``
   hands it to the processor, which refuses the whole batch ("only a single or a list of entries is supported but
   got type=<class 'NoneType'>"). An empty list is what the processor takes for "no image". Real RL data mixes both.
   No public hook sees the list between ``_generate`` and the processor (``rollout_func`` replaces generation
   altogether and returns no images). Tests: ``tests/training/test_real_shapes.py`` trains on such batches;
   ``tests/training/test_resume.py::test_the_overridden_transformers_hooks_still_exist`` pins the tuple and
   ``tests/training/test_units.py::test_text_only_prompts_get_an_empty_image_list`` the behaviour. Upstream:
   :data:`UPSTREAM_TEXT_ONLY_IMAGES` (drafted).

3. **GRPO: each image encoded once per group** (:class:`ImageSharingScope`, wraps ``_generate_and_score_completions``
   and ``compute_loss``): the batch's generation, processor calls and log-prob forwards, and the loss forward, run
   inside ``patches.image_sharing.share_images``. Both methods must be wrapped: the scope must cover the processor
   calls TRL makes inline and end before anything else (saving, evaluation bookkeeping) sees the model, and a
   callback's ``on_step_begin``/``on_step_end`` would miss evaluation's generation and leave the wrappers installed
   when a step raises. Test: ``tests/training/test_image_sharing.py``.

4. **GRPO: the sampled completions** (:func:`completion_buffers`, :func:`step_metrics`). TRL keeps the rows of the
   last generation batch (prompt, completion, every reward function's reward, advantage, ``log_extra`` columns) in
   its private ``_logs`` buffers and the step's averages in ``_metrics``; its public reward arguments
   (``log_metric``, ``log_extra``) write into them but nothing public reads them back, and no public hook sees the
   advantages or, after dynamic sampling, the rows actually trained. ``completions.jsonl`` (written by the
   ``training.callbacks.CompletionsLog`` callback, a public ``on_log`` hook) and the rollout filter
   (``training.rollout_filter``, see ``patches.grpo_sampling``) read and write them through these two functions only.
   Test: ``tests/training/test_padding.py`` (the buffers' keys, on every family) and
   ``tests/training/test_rollout_filter.py`` (the file's rows are the rows trained).
"""

from __future__ import annotations

import contextlib
from typing import Any

from visionr1.patches.image_sharing import share_images

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


UPSTREAM_TEXT_ONLY_IMAGES = """\
huggingface/trl -- report drafted here, not filed (no network from this project's machines).

Title: GRPOTrainer fails on a VLM batch that mixes prompts with and without images ("only a single or a list of
entries is supported but got type=<class 'NoneType'>")

Repro (TRL 1.16.0, transformers 5.23, any Qwen2-VL / Qwen2.5-VL / Qwen3-VL model):
    dataset = Dataset.from_list([
        {"prompt": [{"role": "user", "content": "What is shown?"}], "images": [Image.new("RGB", (64, 64))]},
        {"prompt": [{"role": "user", "content": "What is 2 + 2?"}], "images": []},
    ])
    GRPOTrainer(model=QWEN_VL, reward_funcs=len_reward, train_dataset=dataset,
                args=GRPOConfig(per_device_train_batch_size=4, num_generations=2, max_completion_length=8)).train()
    # TypeError from the image processor in _generate_and_score_completions

Cause: GRPOTrainer._tokenize_prompts collects each prompt's images and appends
`prompt_images if prompt_images else None`; when the batch has images at all, that list (with None for the
text-only prompts) is returned by _generate and passed to `self.processing_class(images=images, ...)`, and the
image processor rejects None entries. An empty list works: the processor takes it for "no image".

Proposed fix: in _tokenize_prompts, `images.append(prompt_images)` (keep `images = images if has_images else None`
for all-text batches), so a text-only prompt in a mixed batch has [] -- what the dataset path already produces.

Related: huggingface/trl#6967 (Online DPO fails on mixed image / text-only batches; fix huggingface/trl#6968, open).
"""


def completion_buffers(trainer: Any) -> dict[str, Any]:
    """TRL's ``GRPOTrainer._logs``: the rows of the last generation batch, every process gathered (``prompt``,
    ``completion``, ``rewards`` by function, ``advantages``, ``extra`` columns, ``images``; see the module docstring)."""
    return trainer._logs


def step_metrics(trainer: Any, mode: str = "train") -> Any:
    """TRL's ``GRPOTrainer._metrics[mode]``: name -> the values averaged at the next log (see the module docstring)."""
    return trainer._metrics[mode]


class TextOnlyImageLists:
    """Put before ``GRPOTrainer`` in the bases: text-only prompts of a batch with images get ``[]``, not ``None``
    (see the module docstring, item 2)."""

    IMAGES = 6  # the position of the image lists in the tuple TRL 1.16's _generate returns

    def _generate(self, prompts: list):
        out = super()._generate(prompts)
        images = out[self.IMAGES]
        if images is not None and any(images) and any(im is None for im in images):
            out = (*out[:self.IMAGES], [im if im is not None else [] for im in images], *out[self.IMAGES + 1:])
        return out


class ImageSharingScope:
    """Put before ``GRPOTrainer`` in the bases: the batch scoring and the loss forward process and encode each
    unique image once (see the module docstring, item 3); ``_share_images`` (the stage's ``share_images``) turns it
    off."""

    _share_images: bool = True

    def _sharing(self):
        if not self._share_images:
            return contextlib.nullcontext()
        return share_images(self.processing_class, [self.model, self.ref_model])

    def _generate_and_score_completions(self, inputs: list) -> dict[str, Any]:
        with self._sharing():
            return super()._generate_and_score_completions(inputs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with self._sharing():
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
