"""The order a GRPO stage sees its prompts in: one seeded stream through the RL data, continued across stages.

Why: TRL's sampler shuffles with ``args.seed``, and every stage of a run has the same seed, so each PTST stage
drew the same permutation and stage 2 re-trained stage 1's prompts first, in the same order (the demo trained
on 480 unique prompts, not 720). Vision-R1 runs its stages over one pass of its ~10K RL prompts.

What we do instead: the run has one stream of prompt indices per RL dataset, epoch after epoch, each epoch a
permutation seeded by ``(recipe seed, epoch)``. A stage takes the next ``count`` indices of the stream, where
``count`` is exactly what TRL's sampler will consume for the stage's ``max_steps`` (see :func:`prompts_needed`),
and TRL is told not to shuffle again (``shuffle_dataset=False``). Stages over *different* datasets each start
their own stream. The offset and count are recorded in the manifest per stage: a resumed stage takes the same
slice (it depends only on the finished stages before it), and TRL's resume then skips the batches it already
trained on, in this fixed order.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np


def dataset_key(spec_dict: dict[str, Any]) -> str:
    """Identity of an RL dataset for the stream: stages with equal dataset sections share one stream.

    >>> dataset_key({"path": "a.jsonl", "format": "jsonl"}) == dataset_key({"format": "jsonl", "path": "a.jsonl"})
    True
    """
    return hashlib.sha256(json.dumps(spec_dict, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prompts_needed(config: Any, dataset_size: int) -> int:
    """Prompt indices TRL's ``RepeatSampler`` consumes for a stage of ``config`` (a built ``GRPOConfig``).

    One generation round takes ``generation_batch_size / num_generations`` prompts (all processes together) and
    serves ``steps_per_generation * num_iterations`` micro-batches; an optimizer step is
    ``gradient_accumulation_steps`` micro-batches. Without ``max_steps`` the stage runs whole epochs.

    >>> from types import SimpleNamespace as C
    >>> prompts_needed(C(max_steps=100, gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1,
    ...                  generation_batch_size=16, num_generations=4, num_train_epochs=1), 1000)
    400
    """
    if config.max_steps is None or config.max_steps <= 0:
        return math.ceil(config.num_train_epochs) * dataset_size
    per_round = config.generation_batch_size // config.num_generations
    micro = config.max_steps * config.gradient_accumulation_steps
    rounds = math.ceil(micro / (config.steps_per_generation * config.num_iterations))
    return rounds * per_round


def stream_slice(dataset_size: int, seed: int, offset: int, count: int, shuffle: bool = True) -> list[int]:
    """Indices ``offset .. offset + count`` of the run's stream through a dataset of ``dataset_size`` records.

    The stream is epoch 0's permutation, then epoch 1's, ...; each epoch is seeded by ``(seed, epoch)``, so any
    slice is reproducible on its own. ``shuffle=False`` streams 0, 1, 2, ... (the recipe's
    ``shuffle_dataset: false``), still continuing across stages.

    >>> a, b = stream_slice(10, 0, 0, 6), stream_slice(10, 0, 6, 4)
    >>> sorted(a + b) == list(range(10))        # two stages over 10 prompts: no prompt seen twice
    True
    >>> stream_slice(4, 0, 2, 4, shuffle=False)  # crosses into the second epoch
    [2, 3, 0, 1]
    """
    if dataset_size <= 0 or count <= 0:
        return []
    out: list[int] = []
    epoch, pos = divmod(offset, dataset_size)
    while len(out) < count:
        order = np.random.default_rng([seed, epoch]).permutation(dataset_size) if shuffle else np.arange(dataset_size)
        take = order[pos: pos + count - len(out)]
        out.extend(int(i) for i in take)
        epoch, pos = epoch + 1, 0
    return out


def stage_offset(earlier: list[dict[str, Any] | None], key: str) -> int:
    """Where a stage's slice starts: the prompts the earlier stages took from the same dataset's stream.

    ``earlier`` holds the ``data_order`` records (manifest) of the stages before this one, ``None`` for SFT;
    ``refills`` are the positions a GRPO stage drew after its slice (``training.rollout_filter``).

    >>> stage_offset([{"dataset": "k", "count": 8, "refills": 2}, None, {"dataset": "other", "count": 3}], "k")
    10
    """
    return sum(int(r["count"]) + int(r.get("refills", 0)) for r in earlier if r and r.get("dataset") == key)
