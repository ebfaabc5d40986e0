"""Run under `torchrun --nproc_per_node 2` (tests/training/test_engines.py): per-parameter gradients of TRL's fused
LM-head loss under FSDP2 (accelerate's wrapping: lm_head in a unit of its own) against the same loss on one
process over both ranks' batches (what DDP computes). Prints one JSON line on rank 0:
{"max_abs": {...per parameter...}, "scale": ...}. argv[1]: tiny model dir; argv[2]: "fix" or "nofix"."""

import json
import sys

import torch

from visionr1.patches.accelerate import apply_cpu_distributed_shims

apply_cpu_distributed_shims()

from accelerate import Accelerator  # noqa: E402
from transformers import AutoModelForImageTextToText  # noqa: E402
from trl.trainer.utils import add_fused_lm_head  # noqa: E402

from visionr1.patches.fsdp2 import gather_fused_lm_head  # noqa: E402


def loss_of(model, ids):
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids, fused_lm_head=True)
    return out.loss


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    acc = Accelerator()
    assert acc.is_fsdp2, acc.distributed_type
    torch.manual_seed(0)
    batches = [torch.randint(0, 200, (2, 12)) for _ in range(acc.num_processes)]  # same on every rank

    reference = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    add_fused_lm_head(reference)
    sum(loss_of(reference, b) for b in batches).div(len(batches)).backward()  # DDP: mean over ranks
    ref = {n: p.grad.detach().clone() for n, p in reference.named_parameters() if p.grad is not None}

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    add_fused_lm_head(model)
    if mode == "fix":
        gather_fused_lm_head(model)
    model, _ = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.0))
    loss_of(model, batches[acc.process_index]).backward()
    got = {}
    for n, p in model.named_parameters():
        if p.grad is not None:
            g = p.grad
            got[n] = g.full_tensor() if hasattr(g, "full_tensor") else g
    if acc.is_main_process:
        diffs = {n: (got[n] - ref[n]).abs().max().item() for n in ref if n in got}
        print(json.dumps({"max_abs": diffs, "missing": sorted(set(ref) - set(got)),
                          "scale": max(g.abs().max().item() for g in ref.values())}))
    acc.wait_for_everyone()


if __name__ == "__main__":
    main()
