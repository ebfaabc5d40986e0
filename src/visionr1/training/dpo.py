"""An iterative DPO stage: the model samples K responses per prompt, the rewards rank them, best vs worst become
preference pairs, and TRL's DPOTrainer trains on them; the next iteration samples from the new weights.

This is Insight-V's iterative DPO (arXiv 2411.14432, section 3.3) on our pieces. Each iteration ``i`` of a stage
lives in ``RUN_DIR/<stage>/iter-<i>/``:

1. ``pairs.jsonl``: one preference pair per prompt whose K rewards are not all equal (those prompts give no pair;
   they are counted, ``no_pair_prompts``), in TRL's conversational preference format with the images saved
   beside it (``images/``) -- so the file can be fed back as a stage's ``pairs_file``. Each record also keeps
   the chosen and rejected rewards and the K rewards. ``sampling.json`` holds the iteration's sampling numbers;
   both are written atomically, ``pairs.jsonl`` last: it marks the sampling done, and a resumed iteration trains
   on the pairs it made before the kill instead of sampling new ones.
2. training: DPOTrainer from the previous iteration's ``final/`` (iteration 1: the stage's start weights),
   the reference model a frozen copy of the same weights (TRL refuses precomputed reference log-probs for image
   data), resuming from the iteration's last checkpoint with the checkpoint's weights (``StrictResumeMixin``).
3. ``final/``: written atomically with ``stage.json``, the iteration's record. An iteration with ``final/`` is
   never redone. The stage's own ``final/`` is the last iteration's (hard links, no copy) plus the stage record.

Departures from Insight-V: pairs are ranked by the recipe's rewards (the paper: a reward model), or by a scoring
agent when the rewards name ``llm_judge``; each iteration samples the next slice of the run's prompt stream
(``prompts_per_iteration``; ``training.data_order``) or, without it, every prompt again; the paper's numbers
(3 iterations, beta 0.1) are a recipe's business, nothing here is specific to them.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from visionr1.patches.transformers import StrictResumeMixin
from visionr1.training.callbacks import METRICS_FILE
from visionr1.training.checkpoints import checkpoint_step, last_checkpoint, trim_logs
from visionr1.training.data_order import dataset_key, stream_slice
from visionr1.training.plan import FINAL, iteration_dir, stage_config, world_size_from_env
from visionr1.training.stage import (
    STAGE_RECORD,
    StageRun,
    read_stage_record,
    ready,
    release,
    save_final,
)
from visionr1.utils.io import append_jsonl, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.jsonl"
SAMPLING_FILE = "sampling.json"
PAIR_COLUMNS = ["prompt", "chosen", "rejected", "images"]
# Columns of a prompt record the rewards may read (like GRPO's); the prompt and completions are passed apart.
REWARD_COLUMNS = ("solution", "task", "choices", "id", "question", "metadata")


class DPOError(ValueError):
    """A DPO stage that cannot go on (no pairs, a bad pairs file); the message names the fix."""


def _dpo_trainer_class() -> type:
    """TRL's DPOTrainer, resuming with the checkpoint's weights; built on first use (TRL imports are slow)."""
    from trl import DPOTrainer

    return type("VisionR1DPOTrainer", (StrictResumeMixin, DPOTrainer), {})


# ----------------------------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------------------------


def train_dpo(run: StageRun) -> dict[str, Any]:
    """Run every iteration of a DPO stage that has no ``final/`` yet; returns the stage's record."""
    stage = run.stage
    records: list[dict[str, Any]] = []
    start = run.start_path
    for i in range(1, stage.iterations + 1):
        final = iteration_dir(run.run_dir, stage, i) / FINAL
        if final.is_dir():  # finished by an earlier attempt: never redone
            record = read_stage_record(final)
            _say(f"{stage.name}: iteration {i} is finished ({final}), not redone")
        else:
            _report(run, records, {"iteration": i, "status": "running", "starts_from": start})
            steps_before = sum(int(r["global_step"]) for r in records)
            pairs = run.train_dataset if stage.pairs_file else sampled_pairs(run, i, start, steps_before)
            record = train_iteration(run, i, start, pairs, steps_before)
        records.append(record)
        _report(run, records[:-1], {**record, "status": "done"})
        start = str(final)
    return _finish(run, records)


def _say(text: str) -> None:
    from accelerate import PartialState
    from rich.console import Console

    if PartialState().is_main_process:
        Console(highlight=False).print(text)


def _report(run: StageRun, done: list[dict[str, Any]], current: dict[str, Any]) -> None:
    """The manifest's per-iteration state (main process only), through the runner's ``run.report``."""
    if run.report is not None:
        run.report(iterations=[{**r, "status": "done"} for r in done] + [current])


def _finish(run: StageRun, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage's ``final/``: the last iteration's files (hard links) and the stage's ``stage.json``, renamed in
    place atomically like every ``final/``."""
    from accelerate import PartialState

    stage = run.stage
    last = iteration_dir(run.run_dir, stage, stage.iterations) / FINAL
    record: dict[str, Any] = {
        "global_step": sum(int(r["global_step"]) for r in records),
        "iterations": [{**r, "status": "done"} for r in records],
        "final_dir": str(run.stage_dir / FINAL),
        "distributed_type": records[-1].get("distributed_type"),
        "num_processes": records[-1].get("num_processes"),
    }
    if stage.prompts_per_iteration and stage.dataset is not None:
        record["data_order"] = _data_order(run)
    state = PartialState()
    if state.is_main_process:
        tmp = run.stage_dir / "final.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(last, tmp, copy_function=_link_or_copy)
        (tmp / STAGE_RECORD).unlink(missing_ok=True)  # a link to the iteration's record: replaced, not edited
        (tmp / STAGE_RECORD).write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, run.stage_dir / FINAL)
    state.wait_for_everyone()
    return record


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _data_order(run: StageRun) -> dict[str, Any]:
    """The slice of the run's prompt stream the stage's iterations sample (for the manifest and later stages)."""
    stage = run.stage
    return {"dataset": dataset_key(stage.dataset.model_dump(mode="json")), "offset": run.data_offset,
            "count": stage.prompts_per_iteration * stage.iterations, "seed": run.recipe.seed, "shuffle": True}


def iteration_prompts(run: StageRun, iteration: int) -> list[int]:
    """Rows of the stage's dataset that ``iteration`` samples: the next ``prompts_per_iteration`` of the run's
    prompt stream (continuing where the stages before it stopped), or every row when that is not set."""
    n = len(run.train_dataset)
    per = run.stage.prompts_per_iteration
    if per is None:
        return list(range(n))
    return stream_slice(n, run.recipe.seed, run.data_offset + (iteration - 1) * per, per)


# ----------------------------------------------------------------------------------------------------------
# 1. sampling -> pairs
# ----------------------------------------------------------------------------------------------------------


def best_and_worst(rewards: list[float]) -> tuple[int, int] | None:
    """Indices of the best and the worst of one prompt's K rewards (first occurrences), or None when all are
    equal: such a prompt says nothing about which response is better.

    >>> best_and_worst([0.0, 1.0, 0.5, 1.0]), best_and_worst([0.5, 0.5])
    ((1, 0), None)
    """
    hi, lo = max(rewards), min(rewards)
    if hi == lo:
        return None
    return rewards.index(hi), rewards.index(lo)


def score_samples(reward_funcs: Any, completions: list[str], rows: list[dict[str, Any]], k: int,
                  completion_ids: list[list[int]]) -> list[float]:
    """Weighted sum of the rewards of ``completions`` (``k`` per row, in order), called as TRL calls them:
    conversational completions, the prompt and the row's columns as keyword arguments. A reward's ``None``
    counts 0 (TRL's ``nansum``)."""
    kwargs = {c: [r.get(c) for r in rows for _ in range(k)] for c in REWARD_COLUMNS if c in rows[0]}
    prompts = [r["prompt"] for r in rows for _ in range(k)]
    conv = [[{"role": "assistant", "content": t}] for t in completions]
    total = [0.0] * len(completions)
    for func, weight in zip(reward_funcs.funcs, reward_funcs.weights, strict=True):
        values = _call_reward(func, conv, prompts=prompts, completion_ids=completion_ids, **kwargs)
        total = [t + weight * (float(v) if v is not None and math.isfinite(float(v)) else 0.0)
                 for t, v in zip(total, values, strict=True)]
    return total


def _call_reward(func: Any, completions: list[Any], **kwargs: Any) -> list[Any]:
    """One reward on a batch. Async rewards (``llm_judge``: a scoring agent behind an OpenAI-compatible endpoint)
    go through their synchronous ``score`` when they have one (it closes its client with its event loop), else
    run on an event loop of their own."""
    import inspect

    from visionr1.utils.chat import run_sync

    if inspect.iscoroutinefunction(type(func).__call__) and hasattr(func, "score"):
        return func.score(completions, **kwargs)
    out = func(completions, **kwargs)
    return run_sync(lambda: out) if inspect.isawaitable(out) else out


def sampled_pairs(run: StageRun, iteration: int, start: str, steps_before: int = 0) -> Any:
    """The iteration's pairs: read back when an earlier attempt made them, else sampled from ``start`` now (on
    the main process; the others wait) and written to ``pairs.jsonl``."""
    from accelerate import PartialState

    folder = iteration_dir(run.run_dir, run.stage, iteration)
    pairs = folder / PAIRS_FILE
    state = PartialState()
    if not pairs.is_file() and state.is_main_process:
        make_pairs(run, iteration, start, folder, steps_before)
    state.wait_for_everyone()
    return load_pairs(pairs)


def make_pairs(run: StageRun, iteration: int, start: str, folder: Path, steps_before: int = 0) -> dict[str, Any]:
    """Sample K responses per prompt from ``start``, rank them by the stage's rewards, write the pairs and the
    sampling numbers; returns those numbers. Raises :class:`DPOError` when no prompt gives a pair."""
    import torch

    from visionr1.data.prompts import generation_prompt_opens_think
    from visionr1.inference import default_device, generate_candidates
    from visionr1.rewards.registry import build_reward_funcs
    from visionr1.training.loading import load_model, load_processor

    stage, spec = run.stage, run.stage.sampling
    k = stage.samples_per_prompt
    rows = [run.train_dataset[j] for j in iteration_prompts(run, iteration)]
    # --- sample K responses per prompt from the iteration's start weights ----------------------------------------
    processor = load_processor(start, run.recipe.model)
    model = load_model(start, run.recipe.model, [], None).to(default_device()).eval()
    torch.manual_seed(run.recipe.seed * 1000 + iteration)
    groups = generate_candidates(
        model, processor, [r["prompt"] for r in rows], [r["images"] or [] for r in rows], n=k,
        max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, top_p=spec.top_p, batch_size=spec.batch_size,
    )
    del model
    gc.collect()
    release()
    # --- rank them: best vs worst of each prompt ------------------------------------------------------------------
    flat = [c for g in groups for c in g]
    funcs = build_reward_funcs(stage.rewards, think_prefilled=generation_prompt_opens_think(processor))
    rewards = score_samples(funcs, [c.text for c in flat], rows, k, [c.token_ids for c in flat])
    folder.mkdir(parents=True, exist_ok=True)
    records, no_pair = [], []
    for j, (row, group) in enumerate(zip(rows, groups, strict=True)):
        mine = rewards[j * k:(j + 1) * k]
        pick = best_and_worst(mine)
        if pick is None:
            no_pair.append(row.get("id", str(j)))
            continue
        best, worst = pick
        records.append({
            "id": row.get("id", str(j)), "prompt": _clean_messages(row["prompt"]),
            "images": _save_images(row["images"] or [], folder, f"{j:05d}"),
            "chosen": [{"role": "assistant", "content": group[best].text}],
            "rejected": [{"role": "assistant", "content": group[worst].text}],
            "chosen_reward": mine[best], "rejected_reward": mine[worst], "rewards": mine,
            "solution": row.get("solution"),
        })
    stats = {
        "iteration": iteration, "prompts": len(rows), "pairs": len(records), "no_pair_prompts": len(no_pair),
        "samples_per_prompt": k, "mean_reward": sum(rewards) / max(len(rewards), 1),
        "margin": sum(r["chosen_reward"] - r["rejected_reward"] for r in records) / max(len(records), 1),
    }
    if no_pair:
        log.warning("%s iteration %d: %d of %d prompts gave no pair (all %d rewards equal), e.g. %s", stage.name,
                    iteration, len(no_pair), len(rows), k, ", ".join(map(str, no_pair[:5])))
    if not records:
        raise DPOError(
            f"stage {stage.name}, iteration {iteration}: all {k} sampled responses of every one of the {len(rows)} "
            "prompts got the same reward, so there is no preference pair to train on. Fix: raise "
            "sampling.temperature or samples_per_prompt, or rank with rewards that separate responses (add a "
            "`format` or `accuracy` reward)"
        )
    atomic_write_json(folder / SAMPLING_FILE, {**stats, "no_pair_ids": no_pair}, "the iteration's sampling numbers")
    atomic_write_text(folder / PAIRS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                      "the iteration's preference pairs")  # last: its presence marks the sampling done
    info = run.info(iteration=iteration)
    append_jsonl(run.run_dir / METRICS_FILE, {"kind": "pairs", **info.tag(), "step": 0,
                                              "run_step": run.step_offset + steps_before,
                                              **{f"dpo/{key}": v for key, v in stats.items() if key != "iteration"}})
    return stats


def _clean_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canonical messages as JSON: image parts come back from Arrow as ``{"type": "image", "text": None}``."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in part.items() if v is not None} for part in content]
        out.append({"role": m["role"], "content": content})
    return out


def _save_images(images: list[Any], folder: Path, stem: str) -> list[str]:
    paths = []
    for n, image in enumerate(images):
        rel = f"images/{stem}-{n}.png"
        (folder / "images").mkdir(exist_ok=True)
        image.save(folder / rel)
        paths.append(rel)
    return paths


# ----------------------------------------------------------------------------------------------------------
# pairs files (ours and the user's): TRL's conversational preference format, images as paths
# ----------------------------------------------------------------------------------------------------------


def _messages(value: Any, role: str, where: str, field: str) -> list[dict[str, Any]]:
    """A prompt or response as messages whose content is a list of ``{"type", "text"}`` parts."""
    if isinstance(value, str):
        value = [{"role": role, "content": value}]
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        raise DPOError(f"{where}: field {field!r} must be a string or a list of {{role, content}} messages. Fix: "
                       f'e.g. "{field}": [{{"role": "{role}", "content": "..."}}]')
    out = []
    for m in value:
        content = m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list) or not all(isinstance(p, dict) and p.get("type") in ("text", "image") for p in parts):
            raise DPOError(f"{where}: field {field!r}: a message's content must be a string or a list of "
                           '{"type": "text", "text": ...} / {"type": "image"} parts')
        out.append({"role": m["role"], "content": [{"type": p["type"], "text": p.get("text")} for p in parts]})
    return out


def load_pairs(path: str | Path) -> Any:
    """A ``datasets.Dataset`` of preference pairs from a JSONL file: ``prompt`` (text or messages), ``chosen`` and
    ``rejected`` (text or assistant messages), ``images`` (paths relative to the file; one per ``{"type":
    "image"}`` part of the prompt; a text prompt gets its images in front). Errors name file, line and field."""
    from datasets import Dataset, Features, Image, List, Value
    from PIL import Image as PILImage

    from visionr1.utils.io import iter_jsonl

    path = Path(path)
    if not path.is_file():
        raise DPOError(f"{path}: no such pairs file")
    rows = []
    for lineno, obj, problem in iter_jsonl(path):
        where = f"{path}: line {lineno}"
        if problem is not None:
            raise DPOError(f"{path}: {problem}")
        missing = [f for f in ("prompt", "chosen", "rejected") if f not in obj]
        if missing:
            raise DPOError(f"{where}: missing field(s) {missing}. Fix: every pair needs prompt, chosen and rejected")
        images = obj.get("images") or []
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise DPOError(f"{where}: field 'images' must be a list of image paths")
        prompt = _messages(obj["prompt"], "user", where, "prompt")
        slots = sum(p["type"] == "image" for m in prompt for p in m["content"])
        if slots == 0 and images:  # a text prompt: its images go in front of the first user turn (TRL's rule)
            first = next(m for m in prompt if m["role"] == "user")
            first["content"] = [{"type": "image", "text": None} for _ in images] + first["content"]
        elif slots != len(images):
            raise DPOError(f"{where}: the prompt has {slots} image part(s) but 'images' lists {len(images)}. Fix: "
                           "one path per {\"type\": \"image\"} part, in order")
        loaded = []
        for p in images:
            file = (path.parent / p) if not Path(p).is_absolute() else Path(p)
            try:
                with PILImage.open(file) as im:
                    loaded.append(im.convert("RGB"))
            except OSError as exc:
                raise DPOError(f"{where}: field 'images': cannot open {file} ({exc})") from None
        rows.append({"id": str(obj.get("id", lineno)), "prompt": prompt, "images": loaded,
                     "chosen": _messages(obj["chosen"], "assistant", where, "chosen"),
                     "rejected": _messages(obj["rejected"], "assistant", where, "rejected")})
    if not rows:
        raise DPOError(f"{path}: no pairs. Fix: one JSON object per line with prompt, chosen, rejected, images")
    message = {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
    features = Features({"id": Value("string"), "prompt": List(message), "images": List(Image(mode="RGB")),
                         "chosen": List(message), "rejected": List(message)})
    return Dataset.from_list(rows, features=features)


# ----------------------------------------------------------------------------------------------------------
# 2. training on the pairs
# ----------------------------------------------------------------------------------------------------------


def weights_fingerprint(model: Any, per_tensor: int = 4096) -> str:
    """A digest of a model's weights, exact on a strided sample of each tensor (every name, shape and up to
    ``per_tensor`` values): what an iteration records of the weights it started from, cheap even at 7B."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // per_tensor)
        sample = flat[::step].to("cpu", torch.float32).contiguous()
        h.update(name.encode() + str(tuple(t.shape)).encode() + sample.numpy().tobytes())
    return h.hexdigest()[:16]


def training_pairs(pairs: Any, processor: Any) -> Any:
    """The pairs as DPOTrainer gets them: the columns its vision collator reads, and the eos after chosen and
    rejected where the chat template leaves the assistant turn open (GLM-4.1V), as SFT appends it
    (``sft.close_open_turns``): TRL appends it only to plain-text pairs, and without it DPO never teaches
    the model to stop."""
    from visionr1.training.sft import close_open_turns

    return close_open_turns(pairs.select_columns(PAIR_COLUMNS), processor, ("chosen", "rejected"))


def train_iteration(run: StageRun, iteration: int, start: str, pairs: Any, steps_before: int) -> dict[str, Any]:
    """DPO on ``pairs`` from ``start`` (resuming from the iteration's last checkpoint); saves ``iter-<i>/final``."""
    from accelerate import PartialState

    from visionr1.training.callbacks import COMPLETIONS_FILE
    from visionr1.training.loading import load_model

    folder = iteration_dir(run.run_dir, run.stage, iteration)
    main = PartialState().is_main_process
    resume = last_checkpoint(folder, cleanup=main)
    it = dataclasses.replace(run, stage_dir=folder, start_path=start, resume_from=resume,
                             step_offset=run.step_offset + steps_before)
    if main:  # the steps after the checkpoint are trained (and logged) again: their old rows go
        trim_logs(run.run_dir, run.stage.name, checkpoint_step(resume), (METRICS_FILE, COMPLETIONS_FILE), iteration=iteration)
    # --- policy, its frozen reference (LoRA: TRL disables the adapters instead), config --------------------------
    model, processor = it.load()
    start_weights = weights_fingerprint(model)
    ref = None
    if run.recipe.model.lora is None:
        ref = load_model(start, run.recipe.model, [], None).eval().requires_grad_(False)
    config = stage_config(run.recipe, run.stage, run.run_dir, world_size_from_env(), iteration=iteration)
    sampling = _read_json(folder / SAMPLING_FILE)

    # --- train --------------------------------------------------------------------------------------------------
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.run_dir / "tensorboard" / run.stage.name / f"iter-{iteration}")
    trainer = _dpo_trainer_class()(
        model=model, ref_model=ref, args=config, train_dataset=training_pairs(pairs, processor),
        processing_class=processor, callbacks=it.callbacks(it.info(iteration=iteration)),
    )
    ready(trainer, run)
    result = trainer.train(resume_from_checkpoint=resume)

    # --- save ---------------------------------------------------------------------------------------------------
    logs = [h for h in trainer.state.log_history if "loss" in h]
    record = {
        "iteration": iteration, "starts_from": start, "start_weights": start_weights, "resumed_from": resume,
        "global_step": trainer.state.global_step, "train_loss": result.training_loss, "pairs": len(pairs),
        **{k: sampling[k] for k in ("prompts", "no_pair_prompts", "mean_reward", "margin") if k in sampling},
        "dpo_accuracy": _mean(h.get("rewards/accuracies") for h in logs),
        "dpo_margin": _mean(h.get("rewards/margins") for h in logs),
        **run.distributed(trainer),
    }
    out = save_final(trainer, processor, it, record)
    del trainer, model, ref
    release()
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # a pairs_file stage samples nothing


def _mean(values: Any) -> float | None:
    xs = [float(v) for v in values if isinstance(v, int | float)]
    return sum(xs) / len(xs) if xs else None
