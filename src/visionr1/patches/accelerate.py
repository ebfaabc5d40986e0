"""accelerate 1.15 on a machine without an accelerator: DDP, FSDP2 and DeepSpeed ZeRO-3 over gloo.

accelerate was written for one accelerator per process, and on a CPU it gets three things wrong, each of which
made a multi-process run do something other than its plan without a word:

1. A process started by ``torchrun`` (``LOCAL_RANK`` set, ``WORLD_SIZE`` > 1) on a machine with no GPU gets *no*
   backend unless ``ACCELERATE_USE_CPU`` is set: ``PartialState._prepare_backend`` returns ``(None, NO)`` and every
   rank believes it is rank 0 of 1 — two independent single-process runs writing one directory (and DeepSpeed's
   batch-size assertion fails). Fix: such a process gets gloo and ``MULTI_CPU``, as ``ACCELERATE_USE_CPU`` would
   give it, but *without* the ``cpu`` flag, which would also switch DeepSpeed off.
2. ``AcceleratorState`` promotes a run to ``FSDP`` only from a GPU-like distributed type, so an FSDP config on a
   CPU silently trains as DDP. Fix: ``MULTI_CPU`` with ``ACCELERATE_USE_FSDP`` set and an FSDP plugin becomes
   ``FSDP`` (FSDP2's ``fully_shard`` runs on gloo).
3. DeepSpeed picks its accelerator when first imported; on a CPU it must be told (``DS_ACCELERATOR=cpu``), and its
   ``comm`` is initialised with the gloo backend by fix 1 (accelerate's DeepSpeed branch passes ``self.backend``).

Nothing here runs where CUDA (or any accelerator torch knows) is available: there accelerate is right as it is.
Upstream: accelerate never selects FSDP or DeepSpeed for CPU processes (``state.py``: the FSDP promotion lists GPU
types only; ``_prepare_backend`` gives a device-less torchrun rank no backend); see :data:`UPSTREAM`.
"""

from __future__ import annotations

import os

import torch

UPSTREAM = ("huggingface/accelerate: no issue found for CPU FSDP/DeepSpeed selection (state.py); the nearest is "
            "Lightning-AI/pytorch-lightning#21812 (FSDP on CPU for CI). Report: docs/distributed.md, 'Upstream reports'")
_APPLIED = "_visionr1_cpu_shims"


def has_accelerator() -> bool:
    """Whether torch sees a GPU-like device (CUDA/ROCm, XPU, MPS is not a distributed device)."""
    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def _launched_rank() -> bool:
    return int(os.environ.get("LOCAL_RANK", "-1")) != -1 and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def apply_cpu_distributed_shims() -> bool:
    """Patch accelerate's state so a torchrun process on a CPU machine runs the distributed type its launch asked
    for (DDP, FSDP, DeepSpeed) over gloo. Returns whether the shims are active. Call before the first
    ``PartialState`` / ``Accelerator`` (TrainingArguments creates one) and before DeepSpeed is imported."""
    if has_accelerator() or not _launched_rank():
        return False
    from accelerate import state as acc_state
    from accelerate.utils import DistributedType

    if getattr(acc_state, _APPLIED, False):
        return True
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")

    original_prepare = acc_state.PartialState._prepare_backend

    def _prepare_backend(self, cpu: bool = False, sagemaker_dp: bool = False, backend: str | None = None):
        got_backend, got_type = original_prepare(self, cpu, sagemaker_dp, backend)
        if got_type == DistributedType.NO and _launched_rank():
            return "gloo", DistributedType.MULTI_CPU  # fix 1
        return got_backend, got_type

    original_init = acc_state.AcceleratorState.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if self.distributed_type == DistributedType.MULTI_CPU and _flag("ACCELERATE_USE_FSDP") and plugin is not None:
            self.distributed_type = DistributedType.FSDP  # fix 2
            if self._mixed_precision != "no":
                plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = plugin
            # as accelerate's own promotion does: every later AcceleratorState() copies PartialState's fields back
            acc_state.PartialState._shared_state["distributed_type"] = self.distributed_type

    acc_state.PartialState._prepare_backend = _prepare_backend
    acc_state.AcceleratorState.__init__ = __init__
    setattr(acc_state, _APPLIED, True)
    return True
