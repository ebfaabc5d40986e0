"""Token-budget micro-batches for the GRPO loss forward (the stage field ``max_tokens_per_micro_batch``).

Why: TRL cuts a generation batch into micro-batches of a fixed number of rows (``per_device_train_batch_size``),
each padded to the generation batch's longest prompt and longest completion. Real RL rows range from ~20 to ~1,500
prompt tokens (images included) and from tens to thousands of completion tokens, so a fixed row count either runs
out of memory on the long rows or wastes the short ones. With a budget, each of TRL's micro-batches is cut further
into *token-budget micro-batches*: rows sorted by length and packed greedily so that

    rows x (longest prompt + longest completion of those rows)  <=  max_tokens_per_micro_batch

-- what a padded forward of those rows computes, prompt and completion tokens and image tokens counted, once the
columns that are padding for every row of the micro-batch are cut off. ``per_device_train_batch_size`` stays the
bound on rows (and what TRL's generation batch is made of); set it high and let the budget decide.

Exact: the loss of every token-budget micro-batch is scaled so that their sum equals the loss TRL computes for the
whole micro-batch (:func:`loss_share`): the gradient after an optimizer step equals the fixed-count run's
(``tests/training/test_token_budget.py``, loss types grpo and dapo, within 1e-5). Cutting padding columns changes
no log-prob: attention masks them, and the Qwen-VL families compute positions from the attention mask.

Several processes: every process runs the same number of token-budget micro-batches (the largest any process
needs; the others split their biggest ones), because TRL's loss logs its metrics with collectives and DDP reduces
gradients in each backward: a process with fewer forwards would leave the others waiting forever.

What the budget does not change: generation (TRL's or vLLM's own batching), the old/reference log-prob forwards
(computed once per generation batch, in TRL's ``per_device_train_batch_size`` chunks), and how many optimizer steps
a generation batch makes. Per-micro-batch metrics TRL logs from the loss (``kl``, ``entropy``, ``clip_ratio``) are
averaged over the token-budget micro-batches, so they weight rows slightly differently than a fixed-count run's.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

# TRL loss types by how `_compute_loss` normalises one micro-batch (trl 1.16 GRPOTrainer._compute_loss):
PER_ROW = ("grpo", "sapo", "luspo", "dr_grpo")  # a mean (or sum / rows) over the micro-batch's rows
GLOBAL = ("dapo", "cispo", "vespo")  # divided by the generation batch's token count: a plain sum over rows
PER_TOKEN = ("bnpo",)  # divided by the micro-batch's own token count
PROMPT_KEYS = ("prompt_ids", "prompt_mask")


def row_lengths(inputs: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Each row's prompt tokens (image tokens included: they are placeholder ids in ``prompt_ids``) and completion
    tokens, as TRL's masks say."""
    return inputs["prompt_mask"].sum(1).tolist(), inputs["completion_mask"].sum(1).tolist()


def cost(rows: list[int], prompt: list[int], completion: list[int]) -> int:
    """Tokens a padded forward of ``rows`` computes: rows x (longest prompt + longest completion).

    >>> cost([0, 2], [5, 3, 9], [1, 7, 2])
    22
    """
    return len(rows) * (max(prompt[r] for r in rows) + max(completion[r] for r in rows))


def pack(prompt: list[int], completion: list[int], budget: int) -> list[list[int]]:
    """Rows packed greedily, longest first, into the fewest micro-batches found whose :func:`cost` fits ``budget``
    (a row longer than the budget alone gets a micro-batch of its own).

    >>> pack([10, 10, 2, 2, 2], [10, 2, 2, 2, 2], 24)
    [[0], [1, 2], [3, 4]]
    """
    order = sorted(range(len(prompt)), key=lambda r: (-(prompt[r] + completion[r]), r))
    batches: list[list[int]] = []
    for r in order:
        if batches and cost([*batches[-1], r], prompt, completion) <= budget:
            batches[-1].append(r)
        else:
            batches.append([r])
    return batches


def split_to(batches: list[list[int]], count: int) -> list[list[int]]:
    """``batches`` cut into exactly ``count`` (>= their number, <= their rows): the micro-batch with the most rows is
    halved (it stays within the budget: fewer rows, no longer ones) until there are ``count``.

    >>> split_to([[0, 1, 2, 3], [4]], 3)
    [[0, 1], [2, 3], [4]]
    """
    out = [list(b) for b in batches]
    while len(out) < count:
        i = max(range(len(out)), key=lambda j: len(out[j]))
        if len(out[i]) < 2:
            raise ValueError(f"cannot cut {sum(map(len, batches))} rows into {count} micro-batches")
        half = len(out[i]) // 2
        out[i:i + 1] = [out[i][:half], out[i][half:]]
    return out


def select_rows(inputs: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """TRL's micro-batch ``inputs`` restricted to ``rows``, its images with them (TRL's own pixel split), minus the
    leading prompt columns and trailing completion columns that are padding for every one of those rows."""
    from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

    n = inputs["prompt_ids"].size(0)
    p_width, c_width = inputs["prompt_ids"].size(1), inputs["completion_ids"].size(1)
    index = torch.tensor(rows, device=inputs["prompt_ids"].device)
    prompt_used = inputs["prompt_mask"].index_select(0, index).sum(0) > 0
    completion_used = inputs["completion_mask"].index_select(0, index).sum(0) > 0
    lead = int(prompt_used.long().argmax()) if bool(prompt_used.any()) else p_width - 1  # left padding
    keep = int(completion_used.nonzero().max()) + 1 if bool(completion_used.any()) else 1  # right padding

    out: dict[str, Any] = {}
    for key, value in split_pixel_values_by_grid(inputs).items():
        if isinstance(value, list) and len(value) == n:
            out[key] = [value[r] for r in rows]
        elif not isinstance(value, torch.Tensor) or value.dim() == 0 or value.size(0) != n:
            out[key] = value  # num_items_in_batch (global), None, ...
        else:
            value = value.index_select(0, index.to(value.device))
            if value.dim() >= 2 and key in PROMPT_KEYS:
                value = value[:, lead:]
            elif value.dim() >= 2 and value.size(1) == p_width + c_width:  # token_type_ids, mm_token_type_ids
                value = torch.cat([value[:, lead:p_width], value[:, p_width:p_width + keep]], dim=1)
            elif value.dim() >= 2 and value.size(1) == c_width:  # completion ids, masks, per-token log-probs
                value = value[:, :keep]
            out[key] = value
    return unsplit_pixel_values_by_grid(out)


def loss_share(loss_type: str, inputs: dict[str, Any], part: dict[str, Any]) -> float:
    """The factor that turns TRL's loss of the token-budget micro-batch ``part`` into its share of TRL's loss of the
    whole micro-batch ``inputs``, so the shares sum to it (per TRL's normalisation for ``loss_type``).

    >>> full = {"completion_mask": torch.ones(4, 3)}
    >>> part = {"completion_mask": torch.tensor([[1., 1., 0.]])}
    >>> loss_share("grpo", full, part), loss_share("dapo", full, part), loss_share("bnpo", full, part)
    (0.25, 1.0, 0.16666666666666666)
    """
    if loss_type in GLOBAL:
        return 1.0
    if loss_type in PER_ROW:
        return part["completion_mask"].size(0) / inputs["completion_mask"].size(0)
    if loss_type in PER_TOKEN:
        return max(float(_loss_mask(part).sum()), 1.0) / max(float(_loss_mask(inputs).sum()), 1.0)
    raise ValueError(f"max_tokens_per_micro_batch does not know how TRL normalises loss_type {loss_type!r}. "
                     "Fix: use loss_type grpo, dapo, bnpo, dr_grpo, sapo, luspo, cispo or vespo, or drop "
                     "max_tokens_per_micro_batch")


def _loss_mask(inputs: dict[str, Any]) -> torch.Tensor:
    mask = inputs["completion_mask"]
    return mask * inputs["tool_mask"] if inputs.get("tool_mask") is not None else mask


def micro_batches(inputs: dict[str, Any], budget: int, accelerator: Any = None) -> list[list[int]]:
    """The token-budget micro-batches (lists of row indices) of TRL's micro-batch ``inputs``, as many on this
    process as on the process that needs the most (``accelerator``: gathers each process's count)."""
    prompt, completion = row_lengths(inputs)
    batches = pack(prompt, completion, budget)
    over = [r for b in batches for r in b if prompt[r] + completion[r] > budget]
    if over:
        log.warning("max_tokens_per_micro_batch (%d) is below a row of %d tokens (%d prompt incl. images + %d "
                    "completion): it runs alone, over the budget. Fix: raise max_tokens_per_micro_batch", budget,
                    prompt[over[0]] + completion[over[0]], prompt[over[0]], completion[over[0]])
    count = len(batches)
    if accelerator is not None and accelerator.num_processes > 1:
        mine = torch.tensor([count], device=inputs["prompt_ids"].device)
        count = int(accelerator.gather(mine).max())
    return split_to(batches, count)


def settings_problems(values: dict[str, Any], budget: int | None) -> list[str]:
    """What makes a GRPO section's loss under ``budget`` differ from the fixed-count loss, or a budget no row fits
    (``values``: the stage's GRPOConfig values). Checked by the plan, before any model is loaded.

    >>> print(settings_problems({"max_completion_length": 512}, 400)[0])
    max_tokens_per_micro_batch (400) is below one sequence: max_completion_length (512) plus its prompt. Fix: raise max_tokens_per_micro_batch above 512 + the longest prompt's tokens (images included)
    """
    if budget is None:
        return []
    problems = []
    longest = int(values.get("max_completion_length", 256))
    if budget <= longest:
        problems.append(f"max_tokens_per_micro_batch ({budget}) is below one sequence: max_completion_length "
                        f"({longest}) plus its prompt. Fix: raise max_tokens_per_micro_batch above {longest} + "
                        "the longest prompt's tokens (images included)")
    loss_type = values.get("loss_type", "dapo")
    if loss_type not in (*PER_ROW, *GLOBAL, *PER_TOKEN):
        problems.append(f"max_tokens_per_micro_batch: loss_type {loss_type!r} is not known to it. Fix: drop "
                        "max_tokens_per_micro_batch")
    not_exact = [name for name, on in (
        ("entropy_coef", float(values.get("entropy_coef", 0.0) or 0.0) != 0.0),
        ("use_adaptive_entropy", bool(values.get("use_adaptive_entropy"))),
        ("top_entropy_quantile", float(values.get("top_entropy_quantile", 1.0)) < 1.0),
    ) if on]
    if not_exact:
        problems.append(f"max_tokens_per_micro_batch cannot be combined with {', '.join(not_exact)}: TRL computes "
                        "them per micro-batch (a token mean or quantile), so smaller micro-batches would change the "
                        "loss. Fix: drop max_tokens_per_micro_batch, or those settings")
    return problems


def longest_prompt_problem(lengths: list[tuple[Any, int, int]], budget: int, max_completion_length: int) -> str | None:
    """``lengths``: (id, prompt tokens incl. images, _) per record (``plan.sequence_lengths``); the problem when the
    longest prompt with a full-length completion does not fit ``budget``.

    >>> longest_prompt_problem([("a", 30, 0), ("b", 90, 0)], 100, 16)
    'max_tokens_per_micro_batch (100) is below the longest sequence: record b, 90 prompt tokens (images included) + max_completion_length 16 = 106. Fix: raise max_tokens_per_micro_batch to at least 106, or lower model.max_pixels'
    """
    if not lengths:
        return None
    rid, p, _ = max(lengths, key=lambda x: x[1])
    if p + max_completion_length <= budget:
        return None
    return (f"max_tokens_per_micro_batch ({budget}) is below the longest sequence: record {rid}, {p} prompt tokens "
            f"(images included) + max_completion_length {max_completion_length} = {p + max_completion_length}. Fix: "
            f"raise max_tokens_per_micro_batch to at least {p + max_completion_length}, or lower model.max_pixels")


def trainer_problem(trainer: Any) -> str | None:
    """What the built trainer has that the plan could not see and the budget cannot reproduce exactly, or None."""
    from accelerate.utils import DistributedType

    if trainer.accelerator.distributed_type == DistributedType.DEEPSPEED:
        return ("max_tokens_per_micro_batch is not supported with DeepSpeed (its engine steps the optimizer inside "
                "the backward at an accumulation boundary, so extra backwards would step it twice). Fix: use a DDP "
                "or FSDP2 accelerate config, or drop max_tokens_per_micro_batch")
    if getattr(trainer, "aux_loss_enabled", False):
        return ("max_tokens_per_micro_batch cannot be combined with the MoE router's aux loss (a mean per "
                "micro-batch). Fix: set router_aux_loss_coef: 0, or drop max_tokens_per_micro_batch")
    return None
