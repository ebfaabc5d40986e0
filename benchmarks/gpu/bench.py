"""GRPO speed on one GPU, nothing downloaded: visionr1 vs bare TRL, transformers generation vs vLLM colocate.

    bash benchmarks/gpu/run.sh                       # one H100/H200, <= 8 minutes: results/gpu/<time>/
    python benchmarks/gpu/bench.py --models 3b 7b --completion-length 2048 --budget-s 1500   # longer
    python benchmarks/gpu/bench.py --cpu-smoke       # the same code paths, tiny config, CPU, < 60 s (tested)

What runs: a real-architecture Qwen2.5-VL-3B (and 7B with ``--models 3b 7b``) built from its published
config.json (values below) with random weights, our locally trained tokenizer padded to the real vocabulary
size (unreachable filler tokens, so the embedding and LM-head matmuls are the real 151,936 / 152,064 rows), the
real image processor settings, and synthetic images of exactly 1,280 image tokens (896 x 1120 px: 32 x 40 tokens
after the 2x2 merge), with prompt texts of 20 to 1,500 characters. Then GRPO steps at Vision-R1's group size (16
generations per prompt, one prompt per optimizer step, KL beta 0.01 so a reference model runs too) with the
completion length scaled down from 4,096 (``--completion-length``, default 1024) to fit the time, in each of:

- ``visionr1``: ``visionr1.training.runner.main`` on a recipe (our trainer subclass, callbacks, manifest);
- ``trl``: bare ``trl.GRPOTrainer`` with the very ``GRPOConfig`` visionr1 builds for that recipe, the same
  model files, dataset rows and reward function;
- each again with ``use_vllm: true, vllm_mode: colocate`` when ``vllm`` is importable.

Each configuration runs in its own process (clean CUDA memory, no vLLM state carried over), one after the
other; a configuration that would overrun ``--budget-s`` is skipped and says so. The first step of each is a
warm-up and is left out of the medians.

Reported per configuration: seconds per step (median of steps 2.., TRL's logged ``step_time``), tokens/s/GPU
(prompt + completion tokens of the step, as TRL counts them in ``num_tokens``, per second per process),
completion tokens/s, peak GPU memory (``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` of the
training process; vLLM's pool in colocate mode is allocated through torch as well), and MFU:

    MFU = FLOPs_step / (seconds_per_step x peak_FLOPs),   peak: bf16 dense (H100/H200 SXM 989 TFLOP/s; --peak-tflops)
    FLOPs_step = sum over the G sequences of one step, with P prompt tokens (text + image tokens), C completion
                 tokens, V = 4 x image tokens vision patches:
        generation   F_lm(P) + F_vis(V) + sum_{t=1..C} [2 N_lm + 4 L d (P + t)]
        reference    F_lm(P + C) + F_vis(V)                                   (beta > 0)
        policy       3 x [F_lm(P + C) + F_vis(V)]                             (forward + backward = 2 x forward)
    F_lm(s)  = 2 N_lm s + 2 L d s^2          (causal attention: QK^T and AV, half the s x s square each)
    F_vis(V) = 2 N_vis V + 4 d_v V (64 n_win + V n_full)   (64-patch windows; full-attention blocks see all V)
    N_lm: language-model parameters without the input embedding (the LM head counted), L layers, d = heads x
    head_dim; N_vis, d_v: the vision tower's. Model FLOPs only: the recompute of gradient checkpointing and the
    old-policy log-prob forward TRL may add are not counted, so MFU is a lower bound of hardware utilisation.
    P and C are the step's means (TRL's ``num_tokens`` and ``completions/mean_length``).
EasyR1's published 16-23% (7B, 8xH100) is veRL's actor-update MFU, which leaves out generation; this one is
for the whole step, generation included, so on a decode-bound step it is lower by construction.

Departures from a real run: random weights (completions are noise, almost always the full length: a fixed
workload), one GPU, the completion length, and no checkpoints saved during the steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# --- published configs ----------------------------------------------------------------------------------------
# Qwen2.5-VL-3B-Instruct: https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json
# Qwen2.5-VL-7B-Instruct: https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json
# (values as published; special-token ids come from our tokenizer instead, dtype bfloat16 as published).
_VISION = dict(depth=32, hidden_act="silu", hidden_size=1280, intermediate_size=3420, num_heads=16, in_chans=3,
               patch_size=14, spatial_merge_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
               tokens_per_second=2, temporal_patch_size=2)
_TEXT = dict(hidden_act="silu", max_position_embeddings=128000, max_window_layers=70, rms_norm_eps=1e-6,
             sliding_window=32768, use_sliding_window=False,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
MODELS: dict[str, dict[str, Any]] = {
    "3b": dict(text=dict(_TEXT, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                         num_attention_heads=16, num_key_value_heads=2, vocab_size=151936),
               vision=dict(_VISION, out_hidden_size=2048), tie_word_embeddings=True),
    "7b": dict(text=dict(_TEXT, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, vocab_size=152064),
               vision=dict(_VISION, out_hidden_size=3584), tie_word_embeddings=False),
    # --cpu-smoke: the same structure (window + full-attention vision blocks, mRoPE, tied head) at toy widths.
    "smoke": dict(text=dict(_TEXT, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, vocab_size=4096,
                            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}),
                  vision=dict(_VISION, depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                              fullatt_block_indexes=[1], out_hidden_size=64), tie_word_embeddings=True),
}
REAL_TOKENIZER_LEN = 151665  # len(tokenizer) of the real Qwen2.5-VL tokenizers (vocab_size pads it to 151936)
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.0}  # bf16 dense, SXM
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bare_trl.py: the bare-TRL side, shared with overhead.py


# --- model, tokenizer, data -----------------------------------------------------------------------------------
def scaled_tokenizer(out: Path, size: int):
    """Our BPE tokenizer (real pipeline and special tokens, ~950 learnt tokens) padded with unreachable filler
    tokens (``~<id>``: no merge produces them, they decode to text) to ``size`` entries."""
    from transformers import AutoTokenizer

    from visionr1.models.tiny import chat_template
    from visionr1.models.tokenizer import train_tokenizer

    tok = train_tokenizer("qwen2_5_vl")
    tok.chat_template = chat_template("qwen2_5_vl")
    tok.save_pretrained(out)
    data = json.loads((out / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    for i in range(len(tok), size):
        vocab[f"~{i}"] = i
    (out / "tokenizer.json").write_text(json.dumps(data))
    scaled = AutoTokenizer.from_pretrained(out)
    if len(scaled) != max(size, len(tok)):
        raise RuntimeError(f"scaled tokenizer has {len(scaled)} tokens, expected {size}")
    return scaled


def build_model(name: str, out: Path, device: str) -> Path:
    """Random-weight Qwen2.5-VL of the published shape, saved like a checkpoint (model, processor, tokenizer)."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from visionr1.models.tiny import chat_template

    if (out / "bench_model.json").is_file():
        return out
    spec = MODELS[name]
    out.mkdir(parents=True, exist_ok=True)
    tok = scaled_tokenizer(out, REAL_TOKENIZER_LEN if name != "smoke" else spec["text"]["vocab_size"] - 64)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                     "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = dict(spec["text"], bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=spec["vision"],
                              tie_word_embeddings=spec["tie_word_embeddings"], image_token_id=ids["<|image_pad|>"],
                              video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                              vision_end_token_id=ids["<|vision_end|>"])
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config.dtype = str(dtype).removeprefix("torch.")
    with torch.device(device):
        torch.manual_seed(0)
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    geometry = dict(patch_size=14, temporal_patch_size=2, merge_size=2, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    image = Qwen2VLImageProcessor(size={"shortest_edge": 3136, "longest_edge": 12845056}, **geometry)  # published
    video = Qwen2VLVideoProcessor(size={"shortest_edge": 3136, "longest_edge": 12845056}, **geometry)
    Qwen2_5_VLProcessor(image_processor=image, tokenizer=tok, video_processor=video,
                        chat_template=chat_template("qwen2_5_vl")).save_pretrained(out)
    model.save_pretrained(out)
    (out / "bench_model.json").write_text(json.dumps({"name": name, "shape": count_shape(model)}, indent=2))
    return out


def count_shape(model) -> dict[str, Any]:
    """What the FLOP formula needs: N_lm (no input embedding, head counted), N_vis, L, d, d_v, block kinds."""
    cfg = model.config
    text, vision = cfg.text_config, cfg.vision_config
    total = sum(p.numel() for p in model.parameters())
    n_vis = sum(p.numel() for p in model.model.visual.parameters())
    embed = model.get_input_embeddings().weight.numel()
    head = text.vocab_size * text.hidden_size
    n_lm = total - n_vis - embed + (head if cfg.tie_word_embeddings else 0)
    return {"total_parameters": total, "n_lm": n_lm, "n_vis": n_vis, "layers": text.num_hidden_layers,
            "d": text.num_attention_heads * (text.hidden_size // text.num_attention_heads),
            "d_v": vision.hidden_size, "vision_full_blocks": len(vision.fullatt_block_indexes),
            "vision_window_blocks": vision.depth - len(vision.fullatt_block_indexes)}


def make_data(out: Path, n: int, grid: tuple[int, int], seed: int = 0) -> Path:
    """``n`` jsonl records, one synthetic image each of exactly ``grid`` (h, w) image tokens, prompt texts of
    20 to 1,500 characters."""
    import random

    from PIL import Image, ImageDraw

    if (out / "train.jsonl").is_file():
        return out / "train.jsonl"
    rng = random.Random(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    h, w = grid[0] * 28, grid[1] * 28
    words = "the a circle square triangle red blue green left right above below how many shapes are there".split()
    rows = []
    for i in range(n):
        img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 12)):
            x, y, s = rng.randrange(w), rng.randrange(h), rng.randint(10, max(11, min(h, w) // 4))
            draw.rectangle([x, y, x + s, y + s], fill=tuple(rng.randrange(256) for _ in range(3)))
        img.save(out / "images" / f"{i}.png")
        target = int(20 * (1500 / 20) ** (i / max(1, n - 1)))  # 20 .. 1500 characters, log-spaced
        question = ""
        while len(question) < target:
            question += rng.choice(words) + " "
        rows.append({"id": f"bench-{i}", "task": "count", "question": question[:target].strip() + "?",
                     "images": [f"images/{i}.png"], "solution": str(rng.randint(1, 9)), "choices": None})
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out / "train.jsonl"


# --- one configuration (runs in its own process on a GPU) -----------------------------------------------------
def recipe_dict(a: dict[str, Any], vllm: bool) -> dict[str, Any]:
    gpu = a["device"] == "cuda"
    grpo = dict(max_completion_length=a["completion_length"], num_generations=a["generations"],
                per_device_train_batch_size=a["micro_batch"],
                gradient_accumulation_steps=a["generations"] // a["micro_batch"],
                max_steps=a["steps"], learning_rate=1e-6, beta=0.01, loss_type="grpo", temperature=1.0,
                bf16=gpu, gradient_checkpointing=gpu, save_strategy="no", logging_steps=1)
    if vllm:
        # the KV cache is sized for prompt (<= ~2K tokens: 1,280 image tokens + text) + completion, not 128K
        grpo.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3,
                    vllm_max_model_length=a["completion_length"] + 2560)
    return {
        "name": f"bench-{a['model']}", "seed": 0,
        "model": {"path": a["model_dir"], "dtype": "bfloat16" if gpu else "float32",
                  "attn_implementation": a["attn"]},
        "report_to": [], "logging": {"completions_per_log": 0, "progress": "lines", "plot": False},
        "stages": [{"name": "grpo", "type": "grpo", "rewards": [{"name": "hard_format_result"}], "grpo": grpo,
                    "dataset": {"format": "jsonl", "path": a["data"], "max_pixels": 1280 * 28 * 28 * 4}}],
    }


def run_one(a: dict[str, Any]) -> dict[str, Any]:
    """Train ``a['steps']`` GRPO steps the ``a['path']`` way; per-step logs and peak memory."""
    import resource

    import torch

    from visionr1.recipe import TrainRecipe

    vllm = a["generation"] == "vllm"
    recipe = TrainRecipe.model_validate(recipe_dict(a, vllm))  # every path in it is absolute
    run_dir = Path(a["work"]) / f"run-{a['name']}"
    if a["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if a["path"] == "visionr1":
        from visionr1.training.runner import main

        main(recipe, output_dir=run_dir, source="gpu bench")
        rows = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    else:
        from bare_trl import StepLog, grpo_trainer

        from visionr1.data.loaders import load_samples
        from visionr1.rewards.registry import build_reward_funcs
        from visionr1.training.grpo import _reward_columns
        from visionr1.training.plan import stage_config

        stage = recipe.stages[0]
        config = stage_config(recipe, stage, run_dir, world_size=1)  # the GRPOConfig visionr1 would train with
        logs = StepLog()
        trainer = grpo_trainer(a["model_dir"], config, build_reward_funcs(stage.rewards).funcs,
                               _reward_columns(load_samples(stage.dataset).dataset),
                               torch.bfloat16 if a["device"] == "cuda" else torch.float32, a["attn"], [logs])
        trainer.train()
        rows = [r for r in logs.rows if "train_runtime" not in r]  # the end-of-training summary
    out = {"wall_s": round(time.perf_counter() - t0, 2), "rows": rows,
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if a["device"] == "cuda":
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        out["gpu"] = torch.cuda.get_device_name()
    return out


# --- figures ----------------------------------------------------------------------------------------------------
def step_flops(shape: dict[str, Any], g: int, p: float, c: float, patches: int, beta: float) -> float:
    """FLOPs of one GRPO step by the docstring's formula (per process)."""
    n, L, d = shape["n_lm"], shape["layers"], shape["d"]

    def f_lm(s: float) -> float:
        return 2 * n * s + 2 * L * d * s * s

    f_vis = 2 * shape["n_vis"] * patches + 4 * shape["d_v"] * patches * (
        64 * shape["vision_window_blocks"] + patches * shape["vision_full_blocks"])
    decode = 2 * n * c + 4 * L * d * (p * c + c * (c + 1) / 2)
    generation = f_lm(p) + f_vis + decode
    reference = (f_lm(p + c) + f_vis) if beta > 0 else 0.0
    policy = 3 * (f_lm(p + c) + f_vis)
    return g * (generation + reference + policy)


def summarise(result: dict[str, Any], shape: dict[str, Any], a: dict[str, Any], peak_tflops: float | None) -> dict[str, Any]:
    rows = [r for r in result["rows"] if "step_time" in r or "num_tokens" in r]
    times = [r["step_time"] for r in rows if r.get("step_time") is not None]
    tokens = [r["num_tokens"] for r in rows if r.get("num_tokens") is not None]
    per_step_tokens = [b - a_ for a_, b in zip([0, *tokens], tokens, strict=False)]
    lengths = [r["completions/mean_length"] for r in rows if r.get("completions/mean_length") is not None]
    measured = slice(1, None) if len(times) > 1 else slice(0, None)  # step 1 is the warm-up
    sec = statistics.median(times[measured]) if times else None
    tok = statistics.median(per_step_tokens[measured]) if per_step_tokens else None
    c = statistics.median(lengths[measured]) if lengths else None
    g = a["generations"]
    out: dict[str, Any] = {
        "seconds_per_step": round(sec, 3) if sec else None,
        "seconds_per_step_min_max": [round(min(times[measured]), 3), round(max(times[measured]), 3)] if times else None,
        "steps_measured": len(times[measured]),
        "tokens_per_s_per_gpu": round(tok / sec, 1) if sec and tok else None,
        "completion_tokens_per_s_per_gpu": round(g * c / sec, 1) if sec and c else None,
        "mean_completion_tokens": c, "mean_prompt_tokens": round(tok / g - c, 1) if tok and c else None,
        **{k: result.get(k) for k in ("peak_allocated_gib", "peak_reserved_gib", "peak_rss_gib", "wall_s", "gpu")},
    }
    if sec and tok and c:
        flops = step_flops(shape, g, tok / g - c, c, 4 * a["image_tokens"], beta=0.01)
        out["tflops_per_step"] = round(flops / 1e12, 6)
        out["mfu"] = round(flops / (sec * peak_tflops * 1e12), 4) if peak_tflops else None
    return out


def peak_for(gpu: str | None, override: float | None) -> float | None:
    """Peak bf16 dense TFLOP/s of ``gpu`` by its name (PCIe H100: 756), or ``override``."""
    if override:
        return override
    if gpu and "H100" in gpu and "PCIe" in gpu:
        return 756.0
    return next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)


def _memory(s: dict[str, Any]) -> str:
    if s.get("peak_allocated_gib") is not None:
        return f"{s['peak_allocated_gib']} (reserved {s['peak_reserved_gib']})"
    return f"RSS {s['peak_rss_gib']}"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# GRPO on one GPU: {report['device_name']}, {report['generations']} generations x "
             f"{report['completion_length']} tokens, {report['image_tokens']} image tokens, {report['steps']} steps\n",
             "| model | configuration | s/step (min-max) | tokens/s/GPU | completion tok/s | peak memory GiB | MFU | "
             "vs bare TRL |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['model']} | {r['name']} | {r.get('skipped') or 'failed: ' + r['error'][:80]} |||||||")
            continue
        s = r["summary"]
        base = next((b for b in report["results"] if b["model"] == r["model"] and b["path"] == "trl"
                     and b["generation"] == r["generation"] and "summary" in b), None)
        ratio = (base["summary"]["seconds_per_step"] / s["seconds_per_step"]
                 if base and s["seconds_per_step"] and base["summary"]["seconds_per_step"] else None)
        mm = s["seconds_per_step_min_max"] or ["-", "-"]
        mfu = f"{100 * s['mfu']:.1f}%" if s.get("mfu") is not None else "-"
        lines.append(f"| {r['model']} | {r['name']} | {s['seconds_per_step']} ({mm[0]}-{mm[1]}) | "
                     f"{s['tokens_per_s_per_gpu']} | {s['completion_tokens_per_s_per_gpu']} | "
                     f"{_memory(s)} | {mfu} | {f'{ratio:.2f}x' if ratio else '-'} |")
    lines.append("\nMFU counts the whole step (generation included); see benchmarks/gpu/bench.py for the formula. "
                 "'vs bare TRL' is TRL's seconds per step over this one (>1: faster than TRL).")
    return "\n".join(lines)


# --- orchestration ------------------------------------------------------------------------------------------------
def configurations(models: list[str], vllm: bool) -> list[dict[str, str]]:
    out = []
    for m in models:
        for gen in (["transformers", "vllm"] if vllm else ["transformers"]):
            for path in ("visionr1", "trl"):
                out.append({"model": m, "path": path, "generation": gen, "name": f"{path}+{gen}"})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["3b"], choices=["3b", "7b"])
    ap.add_argument("--completion-length", type=int, default=1024, help="Vision-R1: 4096 (scaled down to fit time).")
    ap.add_argument("--generations", type=int, default=16)
    ap.add_argument("--micro-batch", type=int, default=4, help="Sequences per forward/backward (generations / this "
                    "= gradient accumulation steps: one prompt per optimizer step).")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps per configuration (the first is a warm-up).")
    ap.add_argument("--image-grid", type=int, nargs=2, default=[32, 40], help="Image tokens (h w): 32 x 40 = 1280.")
    ap.add_argument("--budget-s", type=float, default=420, help="Skip configurations that would end after this.")
    ap.add_argument("--peak-tflops", type=float, default=None, help="Peak bf16 TFLOP/s (default: by GPU name).")
    ap.add_argument("--results", type=Path, default=None, help="Default: results/gpu/<UTC time>.")
    ap.add_argument("--no-vllm", action="store_true", help="Leave out the vLLM colocate configurations.")
    ap.add_argument("--cpu-smoke", action="store_true", help="Tiny config on CPU, in-process, < 60 s.")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one configuration in this process: read its arguments, write its result
        spec = json.loads(args.worker.read_text())
        try:
            res = run_one(spec)
        except Exception as exc:  # noqa: BLE001 - recorded in the report, the other configurations go on
            res = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        args.worker.with_suffix(".out.json").write_text(json.dumps(res))
        return res

    t_start = time.perf_counter()
    import importlib.util

    import torch

    smoke = args.cpu_smoke
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        sys.exit("error: no CUDA device; run with --cpu-smoke to check the code paths on a CPU")
    if smoke:
        args.models, args.completion_length, args.generations, args.micro_batch = ["smoke"], 8, 4, 2
        args.steps, args.image_grid = 2, [2, 2]
    results = args.results or Path("results/gpu") / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    work = results / "work"
    has_vllm = importlib.util.find_spec("vllm") is not None and not args.no_vllm and not smoke
    attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") and not smoke else "sdpa"
    image_tokens = args.image_grid[0] * args.image_grid[1]
    data = make_data(work / "data", 4 * args.steps + 4, tuple(args.image_grid))
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = peak_for(device_name, args.peak_tflops)
    report: dict[str, Any] = {
        "device_name": device_name, "peak_tflops": peak, "attn_implementation": attn, "vllm": has_vllm,
        "completion_length": args.completion_length, "generations": args.generations, "steps": args.steps,
        "micro_batch": args.micro_batch, "image_tokens": image_tokens, "results": [],
        "versions": {m: _version(m) for m in ("torch", "transformers", "trl", "vllm", "flash_attn", "visionr1")},
    }
    print(f"[bench] {device_name}, attention {attn}, vLLM {'yes' if has_vllm else 'no'} -> {results}", flush=True)
    shapes = {}
    for m in args.models:
        t0 = time.perf_counter()
        model_dir = build_model(m, work / f"model-{m}", device)
        shapes[m] = json.loads((model_dir / "bench_model.json").read_text())["shape"]
        print(f"[bench] built {m}: {shapes[m]['total_parameters'] / 1e9:.2f}B parameters in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    last = 0.0
    for cfg in configurations(args.models, has_vllm):
        spec = {**cfg, "device": device, "model_dir": str(work / f"model-{cfg['model']}"), "data": str(data),
                "work": str(work), "attn": attn, "completion_length": args.completion_length,
                "generations": args.generations, "micro_batch": args.micro_batch, "steps": args.steps,
                "image_tokens": image_tokens}
        spec["name"] = f"{cfg['model']}-{cfg['name']}"
        entry: dict[str, Any] = dict(cfg)
        elapsed = time.perf_counter() - t_start
        if not smoke and elapsed + max(last, 60) > args.budget_s:
            entry["skipped"] = f"time budget ({elapsed:.0f} s used of {args.budget_s:.0f} s)"
            report["results"].append(entry)
            continue
        t0 = time.perf_counter()
        if smoke:
            try:
                res = run_one(spec)
            except Exception as exc:  # noqa: BLE001
                res = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        else:
            res = _subprocess(spec, work)
        last = time.perf_counter() - t0
        if "error" in res:
            entry["error"] = res["error"]
        else:
            entry["summary"] = summarise(res, shapes[cfg["model"]], spec, peak)
        report["results"].append(entry)
        print(f"[bench] {spec['name']}: {entry.get('summary') or entry.get('error')}", flush=True)
        (results / "results.json").write_text(json.dumps(report, indent=2))  # kept if the hard timeout hits
        (results / "results.md").write_text(markdown(report) + "\n")
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    (results / "results.json").write_text(json.dumps(report, indent=2))
    (results / "results.md").write_text(markdown(report) + "\n")
    print(markdown(report), flush=True)
    return report


def _subprocess(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    path = work / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(path)], env=env,
                          stdout=sys.stdout, stderr=subprocess.STDOUT)
    out = path.with_suffix(".out.json")
    if not out.is_file():
        return {"error": f"worker exited with {proc.returncode} before writing a result"}
    return json.loads(out.read_text())


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
