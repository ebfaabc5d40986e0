"""Turn a recipe into a plan of stages, and check that every stage can run before any of them starts.

A 7B PTST run that dies at stage 3 because stage 3's generation batch is not divisible by its group size has
wasted a day of GPUs. So ``preflight`` loads every pending stage's data, builds its rewards and its TRL config
*with the real number of processes*, and checks what TRL would only notice mid-run; each problem is reported
with the stage, the reason and the fix, all at once.

The plan (``visionr1 train --dry-run``) needs neither model nor data: it shows every stage with the weights it
starts from, its directories, and the complete TRL config it will be given (runner defaults included). This
module is the one place TRL configs are built (a recipe's loading only checks keys and types), always for an
explicit number of processes; what TRL's ``__post_init__`` rejects comes back as a recipe error naming the
stage, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionr1.config.loader import TINY_PREFIX, run_dir_of
from visionr1.recipe import DPOStage, GRPOStage, SFTStage, TrainRecipe, trl_config_class
from visionr1.rewards.registry import check_reward_specs
from visionr1.training.loading import looks_local
from visionr1.training.token_budget import settings_problems

FINAL = "final"
AnyStage = SFTStage | GRPOStage | DPOStage


class PlanError(ValueError):
    """A recipe whose stages cannot run; the message lists every problem with its fix."""


def world_size_from_env() -> int:
    """Processes of this launch (``accelerate launch`` / ``torchrun`` set WORLD_SIZE). Read by the runner only:
    recipes and plans take the number of processes as an argument."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def stage_dir(run_dir: Path, stage: AnyStage) -> Path:
    return run_dir / stage.name


def final_dir(run_dir: Path, stage: AnyStage) -> Path:
    """Where a finished stage's weights (and processor) live; the next stage starts from here."""
    return stage_dir(run_dir, stage) / FINAL


def iteration_dir(run_dir: Path, stage: DPOStage, iteration: int) -> Path:
    """``RUN_DIR/<stage>/iter-<i>``: one DPO iteration's pairs, checkpoints and ``final/`` weights."""
    return stage_dir(run_dir, stage) / f"iter-{iteration}"


def start_path(recipe: TrainRecipe, index: int, run_dir: Path) -> str:
    """Weights stage ``index`` starts from: the model of the recipe, or the previous stage's final weights."""
    return recipe.model.path if index == 0 else str(final_dir(run_dir, recipe.stages[index - 1]))


def runner_defaults(recipe: TrainRecipe, stage: AnyStage) -> dict[str, Any]:
    """TRL settings visionr1 picks unless the recipe's section sets them: log every step (metrics.jsonl and
    the PTST plot are per step), checkpoint every 50 steps keeping two (resume after a kill), rich or line
    progress instead of tqdm. Vision datasets keep their image columns."""
    out: dict[str, Any] = {
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50,
        "save_total_limit": 2,
        "disable_tqdm": True,
        "run_name": f"{recipe.name}/{stage.name}",
    }
    if stage.type in ("sft", "dpo"):
        out["remove_unused_columns"] = False
    return out


def stage_values(recipe: TrainRecipe, stage: AnyStage) -> dict[str, Any]:
    """The values passed to the stage's TRL config: runner defaults, then the recipe section on top."""
    section = getattr(stage, stage.type)  # the sft: / grpo: / dpo: section
    values = {**runner_defaults(recipe, stage), **section, "report_to": list(recipe.report_to) or "none"}
    if isinstance(stage, GRPOStage):
        values["reward_weights"] = [r.weight for r in stage.rewards]
    return values


# ----------------------------------------------------------------------------------------------------------
# TRL configs: built here and only here
# ----------------------------------------------------------------------------------------------------------


def generation_batch(values: dict[str, Any], world_size: int) -> tuple[int, str]:
    """TRL's generation batch size for these GRPO values on ``world_size`` processes, and how it is made up.

    >>> generation_batch({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}, 2)
    (16, 'per_device_train_batch_size (2) x processes (2) x steps_per_generation (4)')
    """
    per_device = int(values.get("per_device_train_batch_size", 8))
    if values.get("generation_batch_size") is not None:
        return int(values["generation_batch_size"]), f"generation_batch_size ({values['generation_batch_size']})"
    steps = int(values.get("steps_per_generation") or values.get("gradient_accumulation_steps", 1))
    how = f"per_device_train_batch_size ({per_device}) x processes ({world_size}) x steps_per_generation ({steps})"
    return per_device * world_size * steps, how


def generation_batch_problem(values: dict[str, Any], world_size: int) -> str | None:
    """Why a GRPO section's batches cannot be formed on ``world_size`` processes (with the fix), or None.

    Every prompt's ``num_generations`` completions must land in one generation batch, and the generation
    batch must split evenly into per-process batches.

    >>> print(generation_batch_problem({"per_device_train_batch_size": 3, "num_generations": 2}, 1))
    generation batch 3 = per_device_train_batch_size (3) x processes (1) x steps_per_generation (1) is not divisible by num_generations (2). Fix: set per_device_train_batch_size to a multiple of 2 (e.g. 4), or choose num_generations dividing 3
    """

    k = int(values.get("num_generations", 8))
    per_device = int(values.get("per_device_train_batch_size", 8))
    gen, how = generation_batch(values, world_size)
    if values.get("generation_batch_size") is not None and gen % (per_device * world_size):
        return (
            f"generation_batch_size ({gen}) is not divisible by per_device_train_batch_size x processes "
            f"({per_device} x {world_size}). Fix: set generation_batch_size to a multiple of {per_device * world_size}"
            f" and of num_generations ({k}), or drop it (then it is per_device_train_batch_size x processes x "
            "steps_per_generation)"
        )
    if gen % k == 0:
        return None
    if values.get("generation_batch_size") is not None:
        fix = f"set generation_batch_size to a multiple of {math.lcm(k, per_device * world_size)}"
    else:
        steps = gen // (per_device * world_size)
        need = k // math.gcd(k, world_size * steps)
        fix = (
            f"set per_device_train_batch_size to a multiple of {need} (e.g. {per_device + (-per_device) % need}), "
            f"or choose num_generations dividing {gen}"
        )
    return f"generation batch {gen} = {how} is not divisible by num_generations ({k}). Fix: {fix}"


def build_trl_config(kind: str, values: dict[str, Any], output_dir: str, seed: int, world_size: int, check: bool = False):
    """Build TRL's config for a stage of ``kind`` (``sft``, ``grpo``, ``dpo``) that runs on ``world_size``
    processes; TRL's ``__post_init__`` raises what it finds wrong across fields.

    ``check`` builds it only to see what TRL says (``--dry-run``, the plan before a run): on one CPU, so a 7B
    recipe plans on a laptop (bf16/fp16 requests are dropped) and no GPU is touched. A ``TrainingArguments``
    sets up accelerate's device state when built, so a check build belongs in a process that is not one rank
    of a launch (a rank would open a process group); the runner's ranks build only their real configs. To
    check batch shapes for ``world_size`` processes in one, per-device batch sizes are scaled by
    ``world_size`` for the build and restored after (TRL derives the generation batch from them).
    """
    cls = trl_config_class(kind)
    kwargs = {"report_to": "none", **values}
    if not check:
        return cls(output_dir=output_dir, seed=seed, **kwargs)
    kwargs.pop("bf16", None)
    kwargs.pop("fp16", None)
    kwargs["use_cpu"] = True
    scaled = {}
    if world_size > 1:
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            scaled[key] = kwargs.get(key, defaults[key])
            kwargs[key] = scaled[key] * world_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = cls(output_dir=output_dir, seed=seed, **kwargs)
    for key, value in scaled.items():
        setattr(config, key, value)
    return config


def trl_rejection(recipe: TrainRecipe, stage: AnyStage, exc: Exception, world_size: int) -> str:
    """What TRL's config rejected, as a recipe error: the field (the first of the section TRL's message names),
    TRL's reason and the fix (our own where we know it, e.g. the GRPO generation batch)."""
    section = getattr(stage, stage.type)
    reason = " ".join(str(exc).split()).rstrip(".")
    named = sorted((m.start(), key) for key in section if (m := re.search(rf"\b{re.escape(key)}\b", reason)))
    index = next(i for i, s in enumerate(recipe.stages) if s.name == stage.name)
    where = f"stages[{index}].{stage.type}" + (f".{named[0][1]}" if named else "")
    fix = generation_batch_problem(stage_values(recipe, stage), world_size) if stage.type == "grpo" else None
    if fix and ". Fix: " in fix:
        fix = fix.split(". Fix: ", 1)[1]
    else:
        fix = f"change {where} to a value trl.{trl_config_class(stage.type).__name__} accepts"
    return f"{where}: rejected by trl.{trl_config_class(stage.type).__name__}: {reason}. Fix: {fix}"


def stage_config(recipe: TrainRecipe, stage: AnyStage, run_dir: Path, world_size: int, check: bool = False,
                 source: str = "recipe", iteration: int | None = None):
    """The ``SFTConfig`` / ``GRPOConfig`` / ``DPOConfig`` of a stage on ``world_size`` processes (output_dir =
    the stage directory, or a DPO ``iteration``'s directory); what TRL rejects is a :class:`PlanError` naming
    the file, stage, field and fix."""
    out = stage_dir(run_dir, stage) if iteration is None else iteration_dir(run_dir, stage, iteration)
    try:
        return build_trl_config(
            stage.type, stage_values(recipe, stage), output_dir=str(out), seed=recipe.seed,
            world_size=world_size, check=check,
        )
    except (TypeError, ValueError) as exc:
        raise_if([(stage.name, trl_rejection(recipe, stage, exc, world_size))], source)


def plan_run(
    recipe: TrainRecipe, output_dir: str | os.PathLike | None, world_size: int, sample_images: bool = False,
    source: str = "recipe",
) -> dict[str, Any]:
    """The resolved plan for ``world_size`` processes per stage, as a JSON-able dict; touches neither model nor
    data (``sample_images``: reads the first records of each stage's data, where present, to show image tokens
    per image). Builds every stage's TRL config (a check build, see :func:`build_trl_config`), so whatever TRL
    would reject is a :class:`PlanError` listing every stage's problem."""
    from visionr1.data.budget import plan_image_budget

    run_dir = run_dir_of(recipe, output_dir)
    stages = []
    problems: list[tuple[str, str]] = []
    for i, stage in enumerate(recipe.stages):
        values = stage_values(recipe, stage)
        try:
            config = build_trl_config(stage.type, values, str(stage_dir(run_dir, stage)), recipe.seed, world_size,
                                      check=True).to_dict()
        except (TypeError, ValueError) as exc:
            problems.append((stage.name, trl_rejection(recipe, stage, exc, world_size)))
            continue
        if isinstance(stage, GRPOStage) and (msg := whole_groups_problem(stage, values, world_size)) is not None:
            problems.append((stage.name, msg))
            continue
        if isinstance(stage, GRPOStage) and (budget := settings_problems(values, stage.max_tokens_per_micro_batch)):
            problems += [(stage.name, msg) for msg in budget]
            continue
        # the check build is on CPU; report the precision the run will actually request
        for key in ("bf16", "fp16", "use_cpu"):
            if key in values:
                config[key] = values[key]
            elif key == "use_cpu":
                config[key] = False
        entry: dict[str, Any] = {
            "index": i,
            "name": stage.name,
            "type": stage.type,
            "starts_from": start_path(recipe, i, run_dir),
            "output_dir": str(stage_dir(run_dir, stage)),
            "final_dir": str(final_dir(run_dir, stage)),
            "dataset": stage.dataset.model_dump(mode="json") if stage.dataset else None,
            "eval_dataset": stage.eval_dataset.model_dump(mode="json") if stage.eval_dataset else None,
            "freeze": stage.freeze if stage.freeze is not None else recipe.model.freeze,
            "lora": recipe.model.lora.model_dump(mode="json") if recipe.model.lora else None,
            "trl_config_class": trl_config_class(stage.type).__name__,
            "trl_config": config,
        }
        if isinstance(stage, GRPOStage):
            try:  # names, options, plugin files (parsed, not imported), no literal keys
                check_reward_specs(stage.rewards)
            except ValueError as exc:  # one line, in --dry-run and in the run alike
                raise PlanError(f"{source}: stage {stage.name}: rewards: {exc}") from None
            gen, how = generation_batch(values, world_size)
            entry["rewards"] = [r.model_dump(mode="json") for r in stage.rewards]
            entry["share_images"] = stage.share_images  # one image encoding per group (patches.image_sharing)
            entry["max_tokens_per_micro_batch"] = stage.max_tokens_per_micro_batch  # training.token_budget
            entry["ptst"] = {
                "max_completion_length": config["max_completion_length"],
                "num_generations": config["num_generations"],
                "max_steps": config["max_steps"],
                "generation_batch_size": gen,
                "prompts_per_generation": gen // config["num_generations"] if gen % config["num_generations"] == 0 else None,
                "generation_batch_from": how,
            }
        if isinstance(stage, DPOStage):
            try:
                check_reward_specs(stage.rewards)
            except ValueError as exc:
                raise PlanError(f"{source}: stage {stage.name}: rewards: {exc}") from None
            entry["rewards"] = [r.model_dump(mode="json") for r in stage.rewards]
            entry["dpo"] = {
                "iterations": stage.iterations,
                "pairs": "from pairs_file" if stage.pairs_file else
                         f"best vs worst of {stage.samples_per_prompt} samples per prompt, by reward",
                "pairs_file": stage.pairs_file,
                "prompts_per_iteration": stage.prompts_per_iteration or "the whole dataset",
                "sampling": stage.sampling.model_dump(mode="json"),
                "iteration_dirs": [str(iteration_dir(run_dir, stage, k)) for k in range(1, stage.iterations + 1)],
                "final_is": "the last iteration's final weights",
            }
        stages.append(entry)
    raise_if(problems, source)
    return {
        "run": recipe.name,
        "run_dir": str(run_dir),
        "world_size": world_size,
        "model": recipe.model.model_dump(mode="json"),
        "image_budget": plan_image_budget(recipe, sample_data=sample_images),
        "seed": recipe.seed,
        "report_to": recipe.report_to,
        "logging": recipe.logging.model_dump(mode="json"),
        "stages": stages,
    }


# ----------------------------------------------------------------------------------------------------------
# preflight
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What preflight loaded for one pending stage, handed to the stage so nothing is loaded twice."""

    train: Any
    eval: Any = None
    skipped: list = field(default_factory=list)


def check_model_path(path: str) -> str | None:
    """The problem with a model path that does not exist, or None."""
    if path.startswith(TINY_PREFIX):
        return None
    if looks_local(path):
        if not Path(path).expanduser().exists():
            return (
                f"model path {path!r} does not exist; fix model.path (a local directory, a hub id like "
                "Qwen/Qwen2.5-VL-7B-Instruct, or tiny:qwen2_5_vl/test)"
            )
        if not (Path(path).expanduser() / "config.json").is_file():
            return f"model path {path!r} has no config.json; point model.path at a saved model directory"
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "0") in ("1", "true", "True"):
        return (
            f"model {path!r} is not in the local hub cache and HF_HUB_OFFLINE is set; download it first "
            f"(huggingface-cli download {path}) or unset HF_HUB_OFFLINE"
        )
    if (why := hub_unreachable()) is not None:  # else: minutes of retries, then a 160-line OSError
        return (f"model {path!r} is a hub id, but the hub cannot be reached ({why}) and it is not in the local "
                "cache: model.path must be a local model directory here. Fix: download it where the hub is "
                f"reachable (huggingface-cli download {path} --local-dir DIR) and set model.path=DIR")
    return None


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub (``HF_ENDPOINT``) cannot be reached, or None: one quick request, no retries."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{constants.ENDPOINT}: {getattr(exc, 'reason', None) or exc}"
    return None


def whole_groups_problem(stage: GRPOStage, values: dict[str, Any], world_size: int) -> str | None:
    """Dynamic sampling and difficulty filtering replace whole groups on each process (``training.rollout_filter``),
    so each process's share of a generation batch must hold whole groups.

    >>> from types import SimpleNamespace as S
    >>> stage = S(dynamic_sampling=S(enabled=True), difficulty_filter=S(enabled=False))
    >>> print(whole_groups_problem(stage, {"per_device_train_batch_size": 2, "num_generations": 4}, 2))
    dynamic_sampling needs whole groups on each process: per_device_train_batch_size (2) x steps_per_generation (1) = 2 rows is not a multiple of num_generations (4). Fix: set per_device_train_batch_size to a multiple of 4
    """
    used = [name for name in ("dynamic_sampling", "difficulty_filter") if getattr(stage, name).enabled]
    if not used:
        return None
    k = int(values.get("num_generations", 8))
    gen, _ = generation_batch(values, world_size)
    rows = gen // world_size
    if rows % k == 0:
        return None
    per_device = int(values.get("per_device_train_batch_size", 8))
    return (f"{' and '.join(used)} needs whole groups on each process: per_device_train_batch_size ({per_device}) x "
            f"steps_per_generation ({rows // per_device}) = {rows} rows is not a multiple of num_generations ({k}). "
            f"Fix: set per_device_train_batch_size to a multiple of {k}")


def check_stage_settings(recipe: TrainRecipe, stage: AnyStage, world_size: int) -> list[str]:
    """Problems visible from the recipe and the process count alone."""
    problems: list[str] = []
    values = stage_values(recipe, stage)
    if isinstance(stage, DPOStage):
        if values.get("precompute_ref_log_probs"):
            problems.append("dpo.precompute_ref_log_probs is not supported by TRL for image data. Fix: remove it "
                            "(the reference model is a frozen copy of the iteration's start weights)")
    elif isinstance(stage, GRPOStage):
        if (msg := generation_batch_problem(values, world_size)) is not None:
            problems.append(msg + " (every prompt's completions must land in the same batch)")
        elif (msg := whole_groups_problem(stage, values, world_size)) is not None:
            problems.append(msg)
        problems += settings_problems(values, stage.max_tokens_per_micro_batch)
        if values.get("use_vllm"):
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                problems.append("grpo.use_vllm is set but vllm is not installed. Fix: pip install 'visionr1[vllm]'")
    else:
        if values.get("assistant_only_loss"):
            problems.append(
                "sft.assistant_only_loss needs 'messages' data, but visionr1 feeds prompt/completion pairs, whose "
                "loss is already on the assistant turn only (completion_only_loss). Fix: remove assistant_only_loss"
            )
        for key in ("packing", "padding_free"):
            if values.get(key):
                problems.append(f"sft.{key} is not supported with images (TRL). Fix: remove it; the stage field "
                                "padding_free (beside sft:) packs each micro-batch without padding, exactly")
    return problems


def check_dataset(stage: AnyStage, dataset: Any, which: str) -> list[str]:
    """Columns a stage needs: GRPO rewards compare against ``solution``; SFT learns ``completion``."""
    problems = []
    where = f"{which} ({stage.dataset.format} {stage.dataset.path if which == 'dataset' else stage.eval_dataset.path})"
    if len(dataset) == 0:
        return [f"{where}: no records; check the path, split and limit"]
    cols = set(dataset.column_names)
    rl = stage.type in ("grpo", "dpo") or which == "eval_dataset"
    needed = ["prompt", "images", "solution"] if rl else ["prompt", "images", "completion"]
    missing = [c for c in needed if c not in cols]
    if missing:
        return [f"{where}: missing column(s) {missing}"]
    key = needed[-1]
    values = dataset[key]
    ids = dataset["id"] if "id" in cols else [str(i) for i in range(len(dataset))]
    bad = [ids[i] for i, v in enumerate(values) if v is None or (isinstance(v, str | list) and len(v) == 0)]
    if bad:
        fix = (
            "the rewards compare each completion with the record's solution: give every record an answer "
            "(geometry3k: `answer`, jsonl: `solution`) or drop those records"
            if key == "solution"
            else "SFT needs an assistant turn per record: use sharegpt data with a gpt/assistant reply, or "
            "generate one with the cold-start pipeline"
        )
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        problems.append(f"{where}: {len(bad)} record(s) without `{key}` ({shown}). Fix: {fix}")
    return problems


def check_prompt_lengths(stage: SFTStage, dataset: Any, processor: Any, max_length: int | None, n: int = 16,
                         family: Any = None) -> list[str]:
    """SFT truncates each sequence (prompt, then answer) to ``max_length``. Two checks:

    - the first ``n`` records through the processor itself (exact): a prompt whose tokens, images included,
      reach ``max_length`` would be cut inside an image ("image features and image tokens do not match");
    - *every* record, cheaply (:func:`sequence_lengths`: the text tokenised, each image's tokens from its size):
      a sequence longer than ``max_length`` loses the end of its answer -- all of it when the prompt alone
      fills ``max_length``, and then the record trains with loss 0. The first 16 records alone used to be checked.
    """
    if max_length is None or len(dataset) == 0:
        return []
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    for i in range(min(n, len(dataset))):
        row = dataset[i]
        prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
        text = apply_chat_template({"prompt": prompt}, processor)["prompt"]
        ids = processor(images=row["images"] or None, text=[text], return_tensors="pt")["input_ids"]
        if ids.shape[1] >= max_length:
            return [
                f"dataset record {row.get('id', i)}: prompt is {ids.shape[1]} tokens (images included) but "
                f"sft.max_length is {max_length}; truncation would cut image tokens. Fix: raise sft.max_length "
                "or lower model.max_pixels / dataset.max_pixels"
            ]
    if "completion" not in dataset.column_names:
        return []
    long = [(rid, p, c) for rid, p, c in sequence_lengths(dataset, processor, family) if p + c > max_length]
    if not long:
        return []
    rid, p, c = max(long, key=lambda x: x[1] + x[2])
    cut = "all of its answer" if p >= max_length else f"the last {p + c - max_length} of its {c} answer tokens"
    first = ", ".join(str(x[0]) for x in long[:5]) + (" ..." if len(long) > 5 else "")
    return [f"{len(long)} of {len(dataset)} records are longer than sft.max_length ({max_length}) and would be "
            f"truncated at the end, where the answer is ({first}); the longest, {rid}, is {p + c} tokens "
            f"({p} prompt incl. images + {c} answer): it would lose {cut}. Fix: raise sft.max_length, lower "
            "model.max_pixels, or drop those records"]


def sequence_lengths(dataset: Any, processor: Any, family: Any = None) -> list[tuple[Any, int, int]]:
    """(id, prompt tokens, answer tokens) of every record, cheaply: the chat-templated text through the
    tokenizer, and each image's tokens from its size -- the pixels are never processed. ``family``
    (a :class:`visionr1.models.families.Family`) counts them its own way: ``processor_image_tokens`` (Gemma 3's
    fixed tokens, InternVL's tiles) or ``image_tokens`` under the processor's pixel budget (GLM-4.1V counts an
    image as two frames); without a family, Qwen-VL's ``smart_resize``."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from visionr1.data.budget import image_tokens

    own = getattr(family, "processor_image_tokens", None)

    tok = getattr(processor, "tokenizer", processor)
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None) or {}
    budget = (size.get("shortest_edge") or getattr(ip, "min_pixels", None),
              size.get("longest_edge") or getattr(ip, "max_pixels", None),
              (getattr(ip, "patch_size", 14) or 14) * (getattr(ip, "merge_size", 2) or 2))
    out = []
    for i in range(len(dataset)):
        row = dataset[i]
        images = row.get("images") or []
        prompt = prepare_multimodal_messages(row["prompt"], images=images)
        completion = row.get("completion") or []
        text = apply_chat_template({"prompt": prompt, "completion": completion}, processor)
        extra = 0
        for img in images:
            if own is not None:  # the template writes one placeholder token per image: the rest is extra
                extra += own(processor, img.size[0], img.size[1]) - 1
            elif None in budget[:2]:  # an image processor without a pixel budget: ask it (slower, exact)
                grid = ip(images=[img], return_tensors="pt")["image_grid_thw"][0]
                extra += int(grid.prod()) // (getattr(ip, "merge_size", 2) ** 2) - 1
            elif family is not None and family.image_tokens is not None:
                extra += family.image_tokens(img.size[0], img.size[1], budget[0], budget[1]) - 1
            else:
                extra += image_tokens(img.size[0], img.size[1], budget[0], budget[1], budget[2]) - 1
        p = len(tok(text["prompt"], add_special_tokens=False)["input_ids"]) + extra
        c = len(tok(text.get("completion") or "", add_special_tokens=False)["input_ids"])
        out.append((row.get("id", i), p, c))
    return out


def raise_if(problems: list[tuple[str, str]], source: str) -> None:
    if problems:
        lines = "\n".join(f"  stage {name}: {msg}" for name, msg in problems)
        raise PlanError(f"{source}: the run cannot start:\n{lines}")
