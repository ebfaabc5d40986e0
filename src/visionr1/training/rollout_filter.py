"""Which groups a GRPO generation batch trains on: DAPO's dynamic sampling and online difficulty filtering.

Why: a group whose rewards are all equal has zero advantage, so it carries no policy gradient (only the KL term):
with PTST's 0/1 ``hard_format_result`` reward, groups that all fail or all succeed are common, and a batch of them
trains on nothing (a new user's run showed ``frac_reward_zero_std`` 1.0 on every step).

- **Dynamic sampling** (``dynamic_sampling``, DAPO / verl ``filter_groups``): after a generation batch is scored,
  its all-equal groups are dropped and fresh prompts are generated and scored, round after round, until every
  process holds as many informative groups as the batch had groups, or ``max_refill_rounds`` is reached; then the
  batch is completed with all-equal groups (zero advantage: they change nothing but the KL term), a warning says
  so and the manifest counts it (never a hang).
- **Difficulty filtering** (``difficulty_filter``, EasyR1 ``filter_low`` / ``filter_high``): every scored group
  adds its pass rate to its prompt's row of a table; a prompt whose mean pass rate over its last ``last_k``
  appearances is <= ``low`` or >= ``high`` is replaced, before generation, by the next prompt of the stream, in
  later epochs and in later stages (the table is saved in the stage directory, ``difficulty.json``).

Where the fresh prompts come from: the stage's slice of the run's seeded prompt stream (``training.data_order``)
is what TRL's sampler feeds; fresh prompts are the stream's next positions *after* that slice, drawn by a cursor.
The cursor, the table and the counts live in :class:`RolloutFilterState`, saved in every checkpoint's
``trainer_state.json`` (transformers' ``ExportableState``) and restored on resume, so a resumed stage draws the
same prompts; the manifest records the positions drawn (``data_order.refills``) and the next stage's slice starts
after them.

Several processes: TRL gathers every process's rewards before normalising them, so every process sees the same
global reward tensor, hence the same per-group spreads and the same decisions; prompt ids are gathered too. Each
process keeps its own rows (each process holds whole groups: the stage checks that
``per_device_train_batch_size x steps_per_generation`` is a multiple of ``num_generations``), so the global batch
is the union of the processes' picks, and they all run the same number of rounds (TRL's collectives stay in step).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from visionr1.patches.trl import completion_buffers, step_metrics
from visionr1.training.data_order import stream_slice
from visionr1.utils.io import atomic_write_text

log = logging.getLogger(__name__)

TABLE_FILE = "difficulty.json"
SPREAD_EPS = 1e-6  # a group is informative when its rewards differ by more than this
PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded
FULL_KEYS = ("token_type_ids", "mm_token_type_ids")  # prompt part left-padded, completion part right-padded


class RolloutFilterState(TrainerCallback, ExportableState):
    """The cursor into the prompt stream, the pass-rate table and the counts: saved with each checkpoint."""

    def __init__(self, cursor: int = 0, table: dict[str, list[float]] | None = None,
                 counts: dict[str, int] | None = None) -> None:
        self.cursor = cursor
        self.table = dict(table or {})
        self.counts = {"refill_rounds": 0, "groups_dropped": 0, "bound_reached": 0, "prompts_skipped": 0,
                       "groups_generated": 0, "groups_trained": 0, **(counts or {})}

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"cursor": self.cursor, "table": self.table, "counts": self.counts}}

    def restore(self, checkpoint: str | Path) -> bool:
        """Take the state saved in ``checkpoint/trainer_state.json``; False when it holds none (older run)."""
        saved = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("stateful_callbacks", {})
        attributes = (saved.get(type(self).__name__) or {}).get("attributes")
        if not attributes:
            return False
        self.cursor, self.table, self.counts = attributes["cursor"], attributes["table"], attributes["counts"]
        return True


def group_spreads(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Max minus min of each group's finite rewards (0 for a group with fewer than two).

    >>> group_spreads(torch.tensor([1., 1., 0., 1., float("nan"), 2.]), 2).tolist()
    [0.0, 1.0, 0.0]
    """
    grouped = rewards.view(-1, num_generations).float()
    finite = torch.isfinite(grouped)
    high = torch.where(finite, grouped, torch.full_like(grouped, -torch.inf)).max(dim=1).values
    low = torch.where(finite, grouped, torch.full_like(grouped, torch.inf)).min(dim=1).values
    spread = high - low
    return torch.where(finite.sum(dim=1) >= 2, spread, torch.zeros_like(spread))


def pass_rates(rewards: torch.Tensor, num_generations: int, pass_reward: float) -> list[float]:
    """Share of each group's samples whose reward is >= ``pass_reward`` (unscorable samples fail).

    >>> pass_rates(torch.tensor([1., 0., 1., 1.]), 2, 1.0)
    [0.5, 1.0]
    """
    grouped = rewards.view(-1, num_generations).float()
    return [float(x) for x in (torch.nan_to_num(grouped, nan=-torch.inf) >= pass_reward).float().mean(dim=1)]


def is_skipped(rates: list[float] | None, spec: Any) -> bool:
    """A prompt is skipped once its last ``last_k`` pass rates average <= ``low`` or >= ``high``.

    >>> from types import SimpleNamespace as S
    >>> spec = S(last_k=2, low=0.0, high=1.0)
    >>> is_skipped([1.0], spec), is_skipped([0.5, 1.0, 1.0], spec), is_skipped([0.0, 1.0], spec)
    (False, True, False)
    """
    if not rates or len(rates) < spec.last_k:
        return False
    mean = sum(rates[-spec.last_k:]) / spec.last_k
    return mean <= spec.low or mean >= spec.high


def merge_outputs(outputs: list[dict[str, Any]], picks: list[tuple[int, int]], pad_token_id: int) -> dict[str, Any]:
    """The rows ``picks`` (``(output index, row)``) of several of TRL's ``_generate_and_score_completions`` outputs
    as one output: prompts left-padded and completions right-padded to the longest picked, images carried with
    their rows (TRL's own ``split_pixel_values_by_grid``). ``num_items_in_batch`` is left to the caller (global)."""
    from trl.trainer.utils import split_pixel_values_by_grid

    split = [split_pixel_values_by_grid(o) for o in outputs]
    prompt_len = max(s["prompt_ids"].size(1) for s in split)
    completion_len = max(s["completion_ids"].size(1) for s in split)
    merged: dict[str, Any] = {}
    for key, first in split[0].items():
        if key == "num_items_in_batch":
            continue
        values = [s[key] for s in split]
        if isinstance(first, list):
            merged[key] = [values[o][r] for o, r in picks]
            continue
        if not isinstance(first, torch.Tensor) or first.dim() == 0:
            raise ValueError(f"dynamic_sampling cannot merge TRL's batch field {key!r} ({type(first).__name__}). "
                             "Fix: set dynamic_sampling.enabled: false for this stage")
        rows = []
        for o, r in picks:
            row = values[o][r]
            if row.dim() == 1 and key in PROMPT_KEYS:
                row = _pad(row, prompt_len, pad_token_id if key == "prompt_ids" else 0, left=True)
            elif row.dim() == 1 and key in FULL_KEYS:
                cut = split[o]["prompt_ids"].size(1)
                row = torch.cat([_pad(row[:cut], prompt_len, 0, left=True), _pad(row[cut:], completion_len, 0, left=False)])
            elif row.dim() == 1 and values[o].size(1) == split[o]["completion_ids"].size(1):
                row = _pad(row, completion_len, pad_token_id if key == "completion_ids" else 0, left=False)
            rows.append(row)
        shapes = {tuple(x.shape) for x in rows}
        if len(shapes) > 1:
            raise ValueError(f"dynamic_sampling cannot merge TRL's batch field {key!r} (row shapes {sorted(shapes)}). "
                             "Fix: set dynamic_sampling.enabled: false for this stage")
        merged[key] = torch.stack(rows)
    if isinstance(merged.get("pixel_values"), list):
        merged["pixel_values"] = torch.cat(merged["pixel_values"], dim=0)
    for key in ("image_grid_thw", "image_position_ids", "pixel_attention_mask", "spatial_shapes", "image_sizes"):
        if isinstance(merged.get(key), list):
            merged[key] = torch.cat(merged[key], dim=0)
    return merged


def _pad(row: torch.Tensor, length: int, value: int, left: bool) -> torch.Tensor:
    extra = length - row.size(0)
    if extra <= 0:
        return row
    fill = row.new_full((extra,), value)
    return torch.cat([fill, row] if left else [row, fill])


class RolloutFilter:
    """Runs one training generation batch through TRL's scoring, round after round (see the module docstring).

    ``source``: the stage's whole RL dataset (the stream's records); ``stream``: ``(seed, offset + count, shuffle)``,
    where the stage's slice ends; ``state``: the persisted :class:`RolloutFilterState`."""

    def __init__(self, source: Any, stream_start: int, seed: int, shuffle: bool, dynamic: Any, difficulty: Any,
                 state: RolloutFilterState) -> None:
        self.source, self.stream_start, self.seed, self.shuffle = source, stream_start, seed, shuffle
        self.dynamic, self.difficulty, self.state = dynamic, difficulty, state
        self.ids = list(source["id"]) if "id" in source.column_names else None
        if difficulty.enabled and self.ids is None:
            raise ValueError("difficulty_filter needs the records' `id` column (the table is keyed by it). "
                             "Fix: give the records ids, or set difficulty_filter.enabled: false")

    # --- the stream after the stage's slice -----------------------------------------------------------------
    def draw(self, n: int) -> list[int]:
        """The next ``n`` dataset indices after the slice, skipping filtered prompts (if every prompt of the dataset
        is filtered -- each one skipped once in this draw -- the next prompt is taken anyway, with a warning). A run of
        skips as long as the dataset is not that: across an epoch boundary the filtered prompts at the end of one
        epoch and the start of the next follow each other."""
        size = len(self.source)
        out: list[int] = []
        while len(out) < n:
            skipped: set[int] = set()
            while True:
                index = stream_slice(size, self.seed, self.stream_start + self.state.cursor, 1, self.shuffle)[0]
                self.state.cursor += 1
                if not self._skipped(index):
                    break
                self.state.counts["prompts_skipped"] += 1
                skipped.add(index)
                if len(skipped) >= size:
                    log.warning("difficulty_filter: every prompt of the dataset is filtered; training on %s anyway "
                                "(lower difficulty_filter.last_k, or widen low/high)", self.ids[index])
                    break
            out.append(index)
        return out

    def _skipped(self, index: int) -> bool:
        return bool(self.difficulty.enabled and self.ids is not None
                    and is_skipped(self.state.table.get(str(self.ids[index])), self.difficulty))

    def _rows(self, indices: list[int], num_generations: int) -> list[dict[str, Any]]:
        records = [self.source[i] for i in indices]  # each record (its images) decoded once, as rows G times
        return [dict(r) for r in records for _ in range(num_generations)]

    # --- one generation batch -------------------------------------------------------------------------------
    def generate(self, trainer: Any, inputs: list[dict[str, Any]], score: Any) -> dict[str, Any]:
        """``score``: TRL's ``_generate_and_score_completions``; returns the batch to train on (this process's)."""
        from accelerate.utils import gather_object

        acc = trainer.accelerator
        g = trainer.num_generations
        if not (self.dynamic.enabled or self.difficulty.enabled):
            return self._observe(trainer, inputs, score)
        k = len(inputs) // g
        procs, me = acc.num_processes, acc.process_index
        inputs = self._replace_skipped(inputs, g, k, procs, me)

        outputs, logs, informative, tokens = [], [], [], 0
        chosen: list[list[tuple[int, int]]] = [[] for _ in range(procs)]
        refills = 0
        while True:
            out = score(inputs)
            rewards = _summed(trainer)
            ids = gather_object([str(r.get("id")) for r in inputs[::g]])
            mask = out["completion_mask"]
            tokens += int(acc.gather(mask.sum().reshape(1)).sum().item())
            spreads = group_spreads(rewards, g)
            good = (spreads > SPREAD_EPS).tolist()
            self._update_table(ids, pass_rates(rewards, g, self.difficulty.pass_reward))
            outputs.append(out)
            logs.append({**_snapshot(completion_buffers(trainer), len(rewards)), "id": [x for x in ids for _ in range(g)]})
            informative.append(good)
            self.state.counts["groups_generated"] += len(good)
            r = len(outputs) - 1
            for q in range(procs):
                for j in range(k):
                    if len(chosen[q]) < k and (good[q * k + j] or not self.dynamic.enabled):
                        chosen[q].append((r, j))
            short = [k - len(c) for c in chosen]
            if not any(short) or refills >= self.dynamic.max_refill_rounds:
                break
            refills += 1
            self.state.counts["refill_rounds"] += 1
            drawn = self.draw(procs * k)
            inputs = self._rows(drawn[me * k:(me + 1) * k], g)

        if procs > 1 and len(set(gather_object([repr(chosen)]))) > 1:  # TRL gathered the rewards: cannot happen
            raise RuntimeError("dynamic_sampling: the processes chose different batches (their gathered rewards "
                               "differ); report this with the run's manifest")
        if any(short):  # the bound: complete each process's batch with all-equal groups, first generated first
            self.state.counts["bound_reached"] += 1
            log.warning("dynamic_sampling: after %d refill round(s) %d of %d groups are informative; training the rest "
                        "with all-equal groups (zero advantage). Raise dynamic_sampling.max_refill_rounds, or enable "
                        "difficulty_filter to skip prompts that are always or never solved",
                        refills, procs * k - sum(short), procs * k)
            for q in range(procs):
                spare = [(r, j) for r in range(len(outputs)) for j in range(k)
                         if not informative[r][q * k + j] and (r, j) not in chosen[q]]
                chosen[q] += spare[:k - len(chosen[q])]

        trained = sum(informative[r][q * k + j] for q in range(procs) for r, j in chosen[q])
        self.state.counts["groups_trained"] += procs * k
        self.state.counts["groups_dropped"] += sum(
            not informative[r][q * k + j] for r in range(len(outputs)) for q in range(procs) for j in range(k)
        ) - sum(not informative[r][q * k + j] for q in range(procs) for r, j in chosen[q])
        metrics = step_metrics(trainer)
        metrics["informative_group_share/before"].append(sum(informative[0]) / (procs * k))
        metrics["informative_group_share"].append(trained / (procs * k))
        metrics["generated_tokens"].append(float(tokens))
        if self.dynamic.enabled:
            metrics["dynamic_sampling/refill_rounds"].append(float(refills))

        global_rows = [(r, (q * k + j) * g + i) for q in range(procs) for r, j in chosen[q] for i in range(g)]
        _rebuild_logs(completion_buffers(trainer), logs, global_rows)
        if len(outputs) == 1 and chosen[me] == [(0, j) for j in range(k)]:
            return outputs[0]
        local = [(r, j * g + i) for r, j in chosen[me] for i in range(g)]
        merged = merge_outputs(outputs, local, trainer.processing_class.tokenizer.pad_token_id
                               if hasattr(trainer.processing_class, "tokenizer") else trainer.processing_class.pad_token_id)
        loss_mask = merged["completion_mask"] * merged["tool_mask"] if "tool_mask" in merged else merged["completion_mask"]
        merged["num_items_in_batch"] = acc.gather(loss_mask.sum().reshape(1)).sum()
        return merged

    def _observe(self, trainer: Any, inputs: list[dict[str, Any]], score: Any) -> dict[str, Any]:
        """Both options off: TRL's batch as it is, with the metrics and the prompt ids (a process's rows may then
        hold part of a group, so the ids are gathered per row)."""
        from accelerate.utils import gather_object

        out = score(inputs)
        row_ids = gather_object([str(r.get("id")) for r in inputs])
        share = float((group_spreads(_summed(trainer), trainer.num_generations) > SPREAD_EPS).float().mean())
        tokens = trainer.accelerator.gather(out["completion_mask"].sum().reshape(1)).sum().item()
        metrics = step_metrics(trainer)
        metrics["informative_group_share/before"].append(share)
        metrics["informative_group_share"].append(share)
        metrics["generated_tokens"].append(float(tokens))
        completion_buffers(trainer)["extra"]["id"].extend(row_ids)
        return out

    def _replace_skipped(self, inputs: list[dict[str, Any]], g: int, k: int, procs: int, me: int) -> list[dict[str, Any]]:
        """Groups of filtered prompts replaced by the stream's next unfiltered prompts (same on every process)."""
        if not self.difficulty.enabled:
            return inputs
        from accelerate.utils import gather_object

        ids = gather_object([str(r.get("id")) for r in inputs[::g]])
        out = list(inputs)
        for n, prompt_id in enumerate(ids):
            if not is_skipped(self.state.table.get(prompt_id), self.difficulty):
                continue
            self.state.counts["prompts_skipped"] += 1
            (index,) = self.draw(1)
            if n // k == me:
                j = n % k
                out[j * g:(j + 1) * g] = self._rows([index], g)
        return out

    def _update_table(self, ids: list[str], rates: list[float]) -> None:
        keep = self.difficulty.last_k
        for prompt_id, rate in zip(ids, rates, strict=True):
            self.state.table[prompt_id] = ([*self.state.table.get(prompt_id, []), rate])[-keep:]

    # --- what the manifest and the next stage keep ------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        skipped = [p for p, rates in self.state.table.items() if is_skipped(rates, self.difficulty)]
        rec: dict[str, Any] = {"refill_prompts": self.state.cursor, **self.state.counts}
        if self.difficulty.enabled:
            rec["table_prompts"] = len(self.state.table)
            rec["filtered_now"] = len(skipped)
        return rec


def _summed(trainer: Any) -> torch.Tensor:
    """The weighted reward of every row of every process (NaN where no reward function scored it), as TRL sums it."""
    per_func = trainer._scored_rewards
    rewards = (per_func * trainer.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
    return rewards


def _snapshot(logs: dict[str, Any], n: int) -> dict[str, Any]:
    """This round's rows of TRL's ``_logs`` buffers (each holds one generation batch: ``maxlen`` = its rows)."""
    snap: dict[str, Any] = {}
    for key in ("prompt", "completion", "advantages", "images"):
        if len(logs[key]) >= n:
            snap[key] = list(logs[key])[-n:]
    snap["rewards"] = {name: list(v)[-n:] for name, v in logs["rewards"].items()}
    snap["extra"] = {name: list(v)[-n:] for name, v in logs["extra"].items() if name != "id" and len(v) >= n}
    return snap


def _rebuild_logs(logs: dict[str, Any], rounds: list[dict[str, Any]], rows: list[tuple[int, int]]) -> None:
    """TRL's ``_logs`` buffers hold the rows trained (for ``completions.jsonl``), not the last round generated,
    plus their prompt ids (an ``extra`` column, which TRL's own completion tables show too)."""
    for key in ("prompt", "completion", "advantages", "images"):
        if all(key in r for r in rounds):
            logs[key].clear()
            logs[key].extend(rounds[r][key][i] for r, i in rows)
    for name in rounds[0]["extra"]:
        if all(name in r["extra"] for r in rounds):
            logs["extra"][name].clear()
            logs["extra"][name].extend(rounds[r]["extra"][name][i] for r, i in rows)
    logs["extra"]["id"].clear()
    logs["extra"]["id"].extend(rounds[r]["id"][i] for r, i in rows)
    for name in rounds[0]["rewards"]:
        logs["rewards"][name].clear()
        logs["rewards"][name].extend(rounds[r]["rewards"][name][i] for r, i in rows)


def load_table(run_dir: Path, earlier: list[str], dataset: str) -> dict[str, list[float]]:
    """The table the latest earlier stage over the same dataset saved (``<stage>/difficulty.json``), else empty."""
    for name in reversed(earlier):
        path = Path(run_dir) / name / TABLE_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("dataset") == dataset:
                return saved["table"]
    return {}


def save_table(stage_dir: Path, dataset: str, table: dict[str, list[float]]) -> None:
    atomic_write_text(Path(stage_dir) / TABLE_FILE, json.dumps({"dataset": dataset, "table": table}),
                      "the difficulty table")
