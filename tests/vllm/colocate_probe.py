"""Run by tests/vllm/test_colocate.py in a process of its own (vLLM's colocate engine keeps process-wide
state): build the GRPO trainer `visionr1 train` builds, with `use_vllm: true, vllm_mode: colocate`, train two
steps and record, without changing what is trained, what the tests check:

- after each weight sync: the engine's parameters against the trainer's (mapped to vLLM's fused layout);
- each prompt sent to the engine: image tokens in the prompt the trainer scores (the processor's expansion)
  and in the prompt the engine sampled from (its own expansion), and the images sent with it;
- each generation batch: vLLM's sampling log-probs, the trainer's recomputed ones (same weights) and the
  reference model's (the initial weights), on the completion tokens;
- the `max_tokens` of every sampling request;
- the vision special tokens (training.generation.vision_tokens) in the sampled completions. With `--tempt`, the
  engine's sampling adds +100 to those tokens' logits (vLLM's `logit_bias`), so a ban that does not reach the
  engine shows in every completion (this changes what is trained: the other records are not for comparison then).

Usage: python colocate_probe.py RECIPE_OVERRIDES_JSON OUT_JSON [--tempt]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def engine_view(named: dict[str, torch.Tensor], engine: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainer's parameters as the engine lays them out: vLLM's names (its ``hf_to_vllm_mapper``) and its
    fused projections (``packed_modules_mapping``: q/k/v -> qkv_proj, gate/up -> gate_up_proj, concatenated
    along the output dimension in that order)."""
    mapper = engine.hf_to_vllm_mapper
    packed = {sub: (whole, i) for whole, subs in engine.packed_modules_mapping.items() for i, sub in enumerate(subs)
              if subs != [whole]}
    out: dict[str, torch.Tensor] = {}
    groups: dict[str, dict[int, torch.Tensor]] = {}
    for name, tensor in named.items():
        parts = mapper._map_name(name).split(".")
        hit = next(((i, packed[p]) for i, p in enumerate(parts) if p in packed), None)
        if hit is None:
            out[".".join(parts)] = tensor
            continue
        i, (whole, k) = hit
        parts[i] = whole
        groups.setdefault(".".join(parts), {})[k] = tensor
    for name, shards in groups.items():
        out[name] = torch.cat([shards[k] for k in sorted(shards)])
    return out


def main(overrides: list[str], out_path: Path, tempt: bool = False) -> None:
    from tests.training.conftest import TINY, first_grpo_trainer

    from visionr1.patches.vllm import engine_model, image_token_id
    from visionr1.recipe import load_recipe
    from visionr1.training.generation import vision_tokens

    recipe = load_recipe(TINY / "ptst.yaml", overrides)
    trainer, processor = first_grpo_trainer(recipe, out_path.parent / "probe-run")
    gen = trainer.vllm_generation
    engine = engine_model(gen.llm)
    pad = image_token_id(processor)
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    record: dict = {"syncs": [], "prompts": [], "engine": [], "batches": [], "max_tokens": [],
                    "engine_dtype": str(next(engine.parameters()).dtype)}
    vision_ids = set(processor.tokenizer.convert_tokens_to_ids(vision_tokens(processor)))
    record["vision_token_ids"] = sorted(vision_ids)
    if tempt:
        gen.generation_kwargs = {**gen.generation_kwargs, "logit_bias": {i: 100.0 for i in vision_ids}}

    sync = gen.sync_weights

    def sync_and_compare():
        sync()
        now = {n: p.detach() for n, p in trainer.model.named_parameters()}
        expected = engine_view(now, engine)
        got = dict(engine.named_parameters())
        same_names = sorted(expected) == sorted(got)
        diff = max((expected[n].to(got[n].dtype) - got[n]).abs().max().item() for n in got if n in expected)
        moved = max((now[n] - initial[n]).abs().max().item() for n in now)
        record["syncs"].append({"step": trainer.state.global_step, "same_names": same_names,
                                "missing": sorted(set(got) ^ set(expected))[:5], "max_abs_diff": diff,
                                "trainer_moved": moved})

    gen.sync_weights = sync_and_compare

    llm_generate = gen.llm.generate

    def engine_generate(requests, sampling_params=None, **kwargs):
        outputs = llm_generate(requests, sampling_params=sampling_params, **kwargs)
        record["max_tokens"].append(sampling_params.max_tokens)
        for req, out in zip(requests, outputs, strict=True):
            images = (req.get("multi_modal_data") or {}).get("image")
            n = 0 if images is None else len(images) if isinstance(images, list) else 1
            record["engine"].append({"images": n, "engine_tokens": list(out.prompt_token_ids).count(pad)})
        return outputs

    gen.llm.generate = engine_generate

    trl_generate = gen.generate  # the visionr1 wrapper around TRL's: it receives the trainer's expanded prompts

    def trainer_generate(prompts, images, *args, **kwargs):
        for ids, imgs in zip(prompts, images if images is not None else [None] * len(prompts), strict=True):
            n = 0 if not imgs else len(imgs) if isinstance(imgs, list) else 1
            record["prompts"].append({"images": n, "trainer_tokens": list(ids).count(pad)})
        return trl_generate(prompts, images, *args, **kwargs)

    gen.generate = trainer_generate

    score = trainer._generate_and_score_completions

    def score_and_record(inputs):
        out = score(inputs)
        mask = out["completion_mask"].bool()
        row = {"step": trainer.state.global_step, "tokens": int(mask.sum()),
               "vision_tokens": int(sum(int(t) in vision_ids for t in out["completion_ids"][mask]))}
        for key in ("sampling_per_token_logps", "old_per_token_logps", "ref_per_token_logps"):
            row[key] = [r[m].tolist() for r, m in zip(out[key], mask, strict=True)] if out.get(key) is not None else None
        record["batches"].append(row)
        return out

    trainer._generate_and_score_completions = score_and_record

    trainer.train()
    record["global_step"] = trainer.state.global_step
    out_path.write_text(json.dumps(record))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), Path(sys.argv[2]), tempt="--tempt" in sys.argv[3:])
