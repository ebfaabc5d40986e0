"""What SFT, GRPO and DPO stages share: their context, their callbacks, and how a finished stage saves its weights.

A stage's final weights go to ``RUN_DIR/<stage>/final`` (model + processor), written to ``final.tmp`` first and
renamed when complete: the rename is what marks a stage finished, so a kill can never leave a half-written
``final/`` that the next stage would start from. ``final/stage.json`` (written before the rename) holds what the
manifest records for a finished stage, so a kill between the rename and the manifest update loses nothing: the
next run marks the stage done from it (``runner``). LoRA stages merge their adapters into the starting weights
there, so every stage hands plain weights to the next.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionr1.recipe import DPOStage, GRPOStage, SFTStage, TrainRecipe
from visionr1.training.callbacks import MetricsLogger, StageInfo, progress_callbacks
from visionr1.training.checkpoints import WEIGHT_FILES
from visionr1.training.loading import load_model, load_processor, merge_lora_into
from visionr1.training.plan import PlanError


@dataclass
class StageRun:
    recipe: TrainRecipe
    stage: SFTStage | GRPOStage | DPOStage
    index: int
    run_dir: Path
    stage_dir: Path
    start_path: str  # resolved weights this stage starts from
    resume_from: str | None  # checkpoint of this stage to resume from
    step_offset: int  # optimizer steps of the stages before this one (for run-wide step numbers)
    train_dataset: Any
    eval_dataset: Any = None
    data_offset: int = 0  # GRPO, DPO: where this stage's slice of the run's prompt stream starts (training.data_order)
    report: Callable[..., None] | None = None  # DPO: records per-iteration state in the manifest (main process)

    @property
    def freeze(self) -> list[str]:
        return list(self.stage.freeze if self.stage.freeze is not None else self.recipe.model.freeze)

    def info(self, **extra: Any) -> StageInfo:
        return StageInfo(self.stage.name, self.index, self.stage.type, self.step_offset, **extra)

    def load(self):
        """(model, processor) for this stage."""
        processor = load_processor(self.start_path, self.recipe.model)
        model = load_model(self.start_path, self.recipe.model, self.freeze, self.recipe.model.lora)
        return model, processor

    @staticmethod
    def distributed(trainer: Any) -> dict[str, Any]:
        """How the stage actually ran (for the manifest): accelerate's distributed type and process count."""
        acc = trainer.accelerator
        return {"distributed_type": str(acc.distributed_type).split(".")[-1], "num_processes": acc.num_processes}

    def callbacks(self, info: StageInfo) -> list:
        return [
            MetricsLogger(self.run_dir, info),
            *progress_callbacks(self.recipe.logging.progress, info, sys.stdout.isatty()),
        ]


def tensorboard_dir(run: StageRun) -> None:
    """TRL's TensorBoard callback reads this variable when the trainer is built: one folder per stage."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.run_dir / "tensorboard" / run.stage.name)


STAGE_RECORD = "stage.json"


def save_final(trainer: Any, processor: Any, run: StageRun, record: dict[str, Any]) -> dict[str, Any]:
    """Write the stage's final weights atomically, with ``record`` (what the manifest keeps of the stage) as
    ``final/stage.json``; returns the record with ``final_dir``. Every process must call this (ZeRO-3 gathers
    weights)."""
    final = run.stage_dir / "final"
    tmp = run.stage_dir / "final.tmp"
    accelerator = trainer.accelerator
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    if _sharded_fsdp(accelerator):
        # transformers saves nothing for a SHARDED_STATE_DICT run (its checkpoints hold shards only); final/ must
        # be a model the next stage and `eval` load, so the full weights are gathered here (every rank takes part)
        state = accelerator.get_state_dict(trainer.model)
        if accelerator.is_main_process:
            accelerator.unwrap_model(trainer.model).save_pretrained(str(tmp), state_dict=state)
    else:
        trainer.save_model(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if run.recipe.model.lora is not None:
            merged = run.stage_dir / "final.merged"
            if merged.exists():
                shutil.rmtree(merged)
            merge_lora_into(run.start_path, tmp, merged, run.recipe.model)
            (merged / "adapter").mkdir()
            for f in tmp.iterdir():  # keep the adapters too, for inspection
                shutil.move(str(f), merged / "adapter" / f.name)
            shutil.rmtree(tmp)
            merged.rename(tmp)
        if not any((tmp / name).is_file() for name in WEIGHT_FILES):  # (LoRA: the merged weights)
            raise RuntimeError(f"stage {run.stage.name}: saving the final weights to {tmp} wrote no weights file "
                               f"({', '.join(WEIGHT_FILES)}); the stage is not marked done")
        processor.save_pretrained(str(tmp))
        record = {**record, "final_dir": str(final)}
        (tmp / STAGE_RECORD).write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return {**record, "final_dir": str(final)}


def _sharded_fsdp(accelerator: Any) -> bool:
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    return accelerator.distributed_type.name == "FSDP" and plugin is not None and "FULL" not in str(plugin.state_dict_type)


def read_stage_record(final: Path) -> dict[str, Any]:
    """What a finished stage recorded in ``final/stage.json`` (``{}`` for a ``final/`` written without one)."""
    try:
        return json.loads((final / STAGE_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def ready(trainer: Any, run: StageRun) -> None:
    """What every stage's trainer needs once built: the check that it runs the processes and engine its plan
    resolved (:func:`check_engine`), no raw log printing (with tqdm disabled, transformers prints every log dict;
    metrics.jsonl and our console lines already show them), and the patches that depend on the trainer's engine
    and loss (``patches.apply_to_trainer``)."""
    from transformers.trainer_callback import PrinterCallback

    from visionr1.patches import apply_to_trainer

    check_engine(trainer.accelerator, run)
    trainer.remove_callback(PrinterCallback)
    apply_to_trainer(trainer)


class EngineMismatch(PlanError):
    """A stage whose processes are not the ones its plan resolved (count, distributed type)."""


def engine_of(accelerator: Any) -> str:
    """accelerate's distributed type as a plan names it: DEEPSPEED, FSDP, DDP (any other multi-process type) or NO."""
    kind = str(accelerator.distributed_type).split(".")[-1]
    return kind if kind in ("DEEPSPEED", "FSDP", "NO") else "DDP"


def check_engine(accelerator: Any, run: StageRun) -> None:
    """Refuse to train a stage whose world size or engine differs from its plan: a launch config that accelerate
    routes to its single-process launcher, a ``--multi_gpu`` run whose processes each believe they are rank 0 of 1,
    an FSDP or DeepSpeed config that silently became DDP. A stage that ``visionr1 train`` launched is held to the
    recipe's ``launch`` section; a process started some other way, to its own launch (``WORLD_SIZE``)."""
    from visionr1.training.launch import is_stage_child, planned_engine
    from visionr1.training.plan import world_size_from_env

    launch = run.recipe.launch
    own = is_stage_child()
    want_n = launch.num_processes if own else world_size_from_env()
    want = planned_engine(launch) if (own or launch.config_file) else None
    got_n, got = accelerator.num_processes, engine_of(accelerator)
    if want is not None and want_n > 1 and want == "NO":
        want = "DDP"
    if got_n == want_n and (want is None or got == want or (want == "NO" and got_n == 1)):
        return
    planned = f"{want_n} process(es)" + (f", {want}" if want else "")
    source = f" ({launch.config_file})" if launch.config_file else ""
    raise EngineMismatch(
        f"stage {run.stage.name}: the plan is {planned}{source}, but this process runs in {got_n} process(es) as "
        f"{got}. Nothing was trained. Fix: launch the stage through `visionr1 train` with launch.num_processes and "
        "launch.config_file (configs/accelerate/cpu-*.yaml on a machine without a GPU), not by hand"
    )


def release() -> None:
    """Free a finished stage's model and optimizer (the caller dropped its references) before the next stage."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
