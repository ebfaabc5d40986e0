"""transformers' ``Trainer`` resumes Qwen-VL checkpoints without their weights: three protected hooks overridden.

``save_pretrained`` writes Qwen-VL weights under their legacy names (``visual.*``, ``model.layers.*``) while the
model in memory names them ``model.visual.*``, ``model.language_model.*``. ``from_pretrained`` maps the names back;
``Trainer._load_from_checkpoint`` does not: it calls ``model.load_state_dict(state_dict, False)``, and
``_issue_warnings_after_load`` logs "There were missing keys in the checkpoint model loaded" (56 of 57 tensors)
and goes on, so a resumed stage silently continued from the stage's *start* weights with the checkpoint's
optimizer state.

:class:`StrictResumeMixin` (put before the TRL trainer class in the bases):

- ``_load_from_checkpoint``: a plain (not DeepSpeed, FSDP or PEFT) checkpoint is loaded through
  ``from_pretrained``, the one loader that knows the name mapping, and copied in with every key accounted for
  (``training.checkpoints.load_checkpoint_weights``). DeepSpeed, FSDP and PEFT checkpoints keep transformers' own
  loaders (they store in-memory names and are not affected).
- ``_issue_warnings_after_load``: a load that leaves keys missing is an error naming the checkpoint and the keys,
  never a warning.
- ``_save_checkpoint``: saves as transformers does, then records the checkpoint's files
  (``training.checkpoints.write_record``: it is complete from then on), and only then rotates older checkpoints
  away, so a stop at any moment leaves a complete checkpoint on disk. transformers rotates inside
  ``_save_checkpoint``, before any callback (``on_save``) could record the new one.

Tests: ``tests/training/test_resume.py`` (the signatures; transformers' own resume still loses the weights, i.e. the
patch is still needed; a killed run resumed ends with the uninterrupted run's weights) and
``tests/reliability/test_checkpoints.py`` (a save cut short is never loaded). Upstream: :data:`UPSTREAM` (drafted).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from visionr1.training.checkpoints import (
    WEIGHT_FILES,
    load_checkpoint_weights,
    raise_on_missing,
    write_record,
)

log = logging.getLogger(__name__)

UPSTREAM = """\
huggingface/transformers -- report drafted here, not filed (no network from this project's machines).

Title: Trainer resume loads a Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint with almost no weights (legacy key names,
strict=False), with only a warning

Repro (transformers 5.23, torch CPU):
    from transformers import AutoModelForImageTextToText, Trainer, TrainingArguments
    model = AutoModelForImageTextToText.from_pretrained(TINY_QWEN2_5_VL)   # any Qwen-VL checkpoint
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.5)
    model.save_pretrained("ckpt")              # written as visual.*, model.layers.* (legacy names)
    fresh = AutoModelForImageTextToText.from_pretrained(TINY_QWEN2_5_VL)
    Trainer(model=fresh, args=TrainingArguments("out", report_to=[]))._load_from_checkpoint("ckpt")
    # -> "There were missing keys in the checkpoint model loaded: [model.visual.*, model.language_model.*]" and
    #    "unexpected keys: [visual.*, model.layers.*]": 1 of 57 tensors loaded (lm_head.weight) on a 2-layer test
    #    model; `fresh` keeps its initial weights, and trainer.train(resume_from_checkpoint=...) goes on with the
    #    checkpoint's optimizer state.

Cause: Trainer._load_from_checkpoint reads the safetensors file and calls model.load_state_dict(state_dict, False);
the checkpoint-key conversion that from_pretrained applies (the model's conversion mapping) is not applied there,
and _issue_warnings_after_load only logs the missing keys.

Proposed fix: load the state dict through the same key conversion as from_pretrained (e.g. a helper shared by both
paths), and raise when keys other than _keys_to_ignore_on_save/tied weights are missing after a resume: a resume
that silently restarts from the initial weights is never what the user asked for.
"""


class StrictResumeMixin:
    """Put before the TRL trainer class: ``class T(StrictResumeMixin, GRPOTrainer)`` (see the module docstring)."""

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = model if model is not None else self.model
        plain = not (
            getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)
            or hasattr(model, "peft_config")
        )
        if plain and any((Path(resume_from_checkpoint) / f).is_file() for f in WEIGHT_FILES):
            log.info("loading the weights of %s", resume_from_checkpoint)
            load_checkpoint_weights(model, resume_from_checkpoint)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        raise_on_missing(load_result, "checkpoint")

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Save as transformers does, then record the checkpoint's files (it is complete from then on), and
        only then rotate older checkpoints away: a stop at any moment leaves a complete one on disk."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
        from transformers.trainer_utils import rotate_checkpoints as rotate

        limit = self.args.save_total_limit
        self.args.save_total_limit = None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's files (RNG states) are written
        if self.args.should_save:
            run_dir = self._get_output_dir(trial=trial)
            write_record(Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}", self.state.global_step)
            rotate(output_dir=run_dir, save_total_limit=limit, best_model_checkpoint=self.state.best_model_checkpoint,
                   use_mtime=True)
