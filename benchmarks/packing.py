"""What ``padding_free`` saves (src/visionr1/training/packing.py): padded-token share and loss forward+backward time,
padded vs packed, on a synthetic copy of MATH-V's prompt lengths with completions spread like a PTST run's.

    python benchmarks/packing.py --derive /work/shared/data/real/mathv_testmini_geo3k.parquet   # the length summary
    python benchmarks/packing.py                                   # share + timing, ~5 min on 2 shared cores
    python benchmarks/packing.py --rounds 5 --batches 12 --scale 16 --out runs/bench/packing

Lengths. ``--derive`` reads MATH-V testmini (304 real items) through visionr1's own geometry3k loader and writes only
the quantiles of its prompt lengths (``benchmarks/data/mathv_prompt_tokens.json``, committed; the data is not):
image tokens exactly as Qwen2.5-VL's processor counts them under the 7B recipe's budget (``smart_resize`` to
``model.max_pixels`` 589,824, 28 px per token), text tokens estimated at 3.6 characters per token (Qwen's real
BPE is not available offline here; the tiny models' ~950-token BPE would overcount) plus one per special token of
the chat template. The benchmark draws prompts from those quantiles (inverse CDF, linear between quantiles).
Completions: a log-normal clipped at the stage's ``max_completion_length`` L, with 38 % of samples truncated and a
mean of 77 % of L — how the cold-started model of our PTST ablation enters PTST
(benchmarks/results/ptst_ablation-medium.json, ``ci``: ``truncated_rate`` 0.383, 395 of 512 tokens), which is also
the paper's picture (the cold-start model "overthinks": 3,566 tokens on average). That law is narrow (5 % of the
completions below 0.32 L); a wide one (sigma 1.2, the same truncated share) is a sensitivity case for the share.

Share (full scale, no model): the 7B recipe's two PTST stages as TRL batches them per process: a generation batch of
``per_device_train_batch_size x steps_per_generation`` = 16 rows (one prompt x 16 at 4K, two prompts x 8 at 8K),
prompts left-padded and completions right-padded to the longest *of the generation batch* (TRL pads before it
splits), shuffled and split into micro-batches of 4 rows. Padded share = padding positions / positions computed.
Packed, a micro-batch is one row of its real tokens: 0 by construction (no alignment padding).

Time (``--scale``: every length divided by it, so that a CPU finishes): the loss forward+backward of one micro-batch,
TRL's own padded ``_get_per_token_logps_and_entropies`` against ``training.packing.packed_logps_and_entropies``, on
the demo-size tiny Qwen2.5-VL (text tokens stand in for image tokens: the vision tower's work is the same packed or
not), sdpa attention with transformers' block mask. Rounds alternate the order of the two (benchmarks/interleave.py
idea, in one process); the ratio packed/padded of the process's CPU seconds (one thread: the work done, whatever
the machine's load) and of the wall seconds is taken per round, reported as median and range. Writes
``packing.json`` into ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import load_average  # noqa: E402

HERE = Path(__file__).resolve().parent
LENGTHS = HERE / "data" / "mathv_prompt_tokens.json"
MAX_PIXELS, MIN_PIXELS, PIXELS_PER_TOKEN = 589_824, 3_136, 28 * 28
CHARS_PER_TOKEN = 3.6
QUANTILES = [i / 20 for i in range(21)]  # 0, 5, ..., 100 %
TRUNCATED, MEAN_FRACTION = 0.383, 0.77  # benchmarks/results/ptst_ablation-medium.json, the cold-started model
# The 7B recipe's PTST stages (recipes/vision-r1-7b.yaml), per process: generation batch rows, G, micro-batch rows.
STAGES = {"ptst-1 (4K x 16)": (4096, 16, 16, 4), "ptst-2 (8K x 8)": (8192, 8, 16, 4)}
# Cold-start SFT samples: the reply's length is log-normal with the cold-start model's mean generation length
# (paper: 3,566 tokens) and the PTST law's spread, cut at the 7B recipe's max_length 16,384 with the prompt.
SFT_MEAN_REPLY, SFT_MAX_LENGTH, SFT_ROWS = 3566, 16384, 4


# --- lengths -----------------------------------------------------------------------------------------------------


def image_tokens(width: int, height: int) -> int:
    """Qwen2-VL/2.5-VL image tokens under the 7B recipe's budget (transformers' ``smart_resize``, 28 px a token)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return (h // 28) * (w // 28)


def derive(parquet: Path) -> dict[str, Any]:
    """Quantiles of MATH-V's prompt tokens (image + text + template), read through visionr1's loader."""
    import numpy as np
    from transformers import AutoProcessor

    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec
    from visionr1.models import get_tiny_model

    data = load_samples(DatasetSpec(format="geometry3k", path=str(parquet))).dataset
    template = AutoProcessor.from_pretrained(get_tiny_model("qwen2_5_vl", "test"))
    totals, images, chars = [], [], []
    for row in data:
        text = template.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        text = text.replace("<|image_pad|>", "")
        special = re.findall(r"<\|[a-z_]+\|>", text)
        plain = re.sub(r"<\|[a-z_]+\|>", "", text)
        img = sum(image_tokens(*im.size) for im in row["images"])
        totals.append(img + len(special) + math.ceil(len(plain) / CHARS_PER_TOKEN))
        images.append(img)
        chars.append(len(plain))
    q = [float(x) for x in QUANTILES]
    return {
        "source": "MATH-V testmini (304 items, mathllm/MATH-V, MIT) via visionr1's geometry3k loader",
        "image_budget": {"max_pixels": MAX_PIXELS, "min_pixels": MIN_PIXELS, "tokens_per": "28x28 px"},
        "text_tokens": f"characters / {CHARS_PER_TOKEN} + one per chat-template special token (estimate)",
        "n": len(totals), "quantiles": q,
        "prompt_tokens": [float(x) for x in np.quantile(totals, q)],
        "image_tokens": [float(x) for x in np.quantile(images, q)],
        "text_characters": [float(x) for x in np.quantile(chars, q)],
        "text_only_share": sum(i == 0 for i in images) / len(images),
    }


def draw_prompts(summary: dict[str, Any], n: int, rng: random.Random) -> list[int]:
    """``n`` prompt lengths from the quantiles (inverse CDF, linear between quantiles)."""
    q, x = summary["quantiles"], summary["prompt_tokens"]
    out = []
    for _ in range(n):
        u = rng.random()
        i = min(int(u * (len(q) - 1)), len(q) - 2)
        t = (u - q[i]) / (q[i + 1] - q[i])
        out.append(max(1, round(x[i] + t * (x[i + 1] - x[i]))))
    return out


def completion_law(truncated: float = TRUNCATED, mean_fraction: float = MEAN_FRACTION) -> tuple[float, float]:
    """``(mu, sigma)`` of log(length / L) for a log-normal clipped at L with the given truncated share and mean/L."""
    z = statistics.NormalDist().inv_cdf(1 - truncated)  # P(X > L) = truncated  ->  mu = -z sigma

    def mean(sigma: float) -> float:  # E[min(X, L)] / L
        mu = -z * sigma
        phi = statistics.NormalDist().cdf
        return math.exp(mu + sigma**2 / 2) * phi((-mu - sigma**2) / sigma) + truncated

    lo, hi = 1e-3, 5.0
    for _ in range(100):  # mean falls as sigma grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) > mean_fraction else (lo, mid)
    return -z * lo, lo


WIDE_SIGMA = 1.2  # a sensitivity case: the same truncated share, lengths from tens of tokens to the limit


def draw_completions(limit: int, n: int, rng: random.Random, law: tuple[float, float] | None = None) -> list[int]:
    mu, sigma = law or completion_law()
    return [max(1, min(limit, round(limit * math.exp(rng.gauss(mu, sigma))))) for _ in range(n)]


class MicroBatch(NamedTuple):
    """(prompt, completion) lengths of a micro-batch's rows, and the widths TRL pads them to (prompt, completion)."""

    pairs: list[tuple[int, int]]
    width: tuple[int, int]

    @property
    def real(self) -> int:
        return sum(p + c for p, c in self.pairs)

    @property
    def positions(self) -> int:
        return len(self.pairs) * sum(self.width)


def micro_batches(summary: dict[str, Any], limit: int, g: int, rows: int, per_device: int, n_gen: int,
                  rng: random.Random, scale: int = 1, law: tuple[float, float] | None = None) -> list[MicroBatch]:
    """Micro-batches as TRL splits ``n_gen`` generation batches (padded to the generation batch, then shuffled)."""
    out = []
    for _ in range(n_gen):
        prompts = [p for p in draw_prompts(summary, rows // g, rng) for _ in range(g)]
        pairs = list(zip(prompts, draw_completions(limit, rows, rng, law), strict=True))
        if scale > 1:
            pairs = [(max(1, p // scale), max(1, c // scale)) for p, c in pairs]
        rng.shuffle(pairs)
        width = (max(p for p, _ in pairs), max(c for _, c in pairs))  # TRL pads the whole generation batch
        out += [MicroBatch(pairs[i:i + per_device], width) for i in range(0, rows, per_device)]
    return out


def padded_share(batches: list[MicroBatch]) -> float:
    return 1 - sum(b.real for b in batches) / sum(b.positions for b in batches)


# Qwen2.5-VL-7B's language model (config.json of Qwen/Qwen2.5-VL-7B-Instruct): the work per token of its linear layers
# and per (query, key) pair of its attention, forward; the LM head is left out (TRL's fused head scores the same
# completion tokens packed or not).
D, LAYERS, FF, HEADS, KV_HEADS = 3584, 28, 18944, 28, 4
LINEAR_FLOPS = 2 * LAYERS * (D * D * 2 + 2 * D * (D * KV_HEADS // HEADS) + 3 * D * FF)
ATTENTION_FLOPS = 2 * 2 * LAYERS * D  # QK^T and AV, per pair


def compute_ratios(batches: list[MicroBatch]) -> dict[str, float]:
    """Forward FLOPs of the 7B's language model, packed over padded, for the two attention kernels: flash attention
    (transformers unpads a padded batch for its attention, so only the linear layers see the padding; packed, varlen
    over the sequences) and sdpa (padded: each row's width squared; packed: the whole row's squared, masked)."""
    linear = {"padded": sum(b.positions for b in batches) * LINEAR_FLOPS,
              "packed": sum(b.real for b in batches) * LINEAR_FLOPS}
    causal = sum((p + c) ** 2 for b in batches for p, c in b.pairs) / 2 * ATTENTION_FLOPS
    sdpa_padded = sum(len(b.pairs) * sum(b.width) ** 2 for b in batches) * ATTENTION_FLOPS
    sdpa_packed = sum(b.real**2 for b in batches) * ATTENTION_FLOPS
    return {"flash_attention_varlen": round((linear["packed"] + causal) / (linear["padded"] + causal), 4),
            "sdpa_block_mask": round((linear["packed"] + sdpa_packed) / (linear["padded"] + sdpa_padded), 4)}


# --- timing ------------------------------------------------------------------------------------------------------


def tensors(batch: MicroBatch, vocab: int, rng: random.Random) -> dict[str, Any]:
    """TRL's layout of one micro-batch: prompts left-padded, completions right-padded, to the batch's widths."""
    import torch

    pw, cw = batch.width
    ids = torch.zeros(len(batch.pairs), pw + cw, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(batch.pairs):
        ids[i, pw - p:pw + c] = torch.tensor([rng.randrange(5, vocab) for _ in range(p + c)])
        mask[i, pw - p:pw + c] = 1
    return {"input_ids": ids, "attention_mask": mask, "logits_to_keep": cw}


def sft_batches(summary: dict[str, Any], n: int, rng: random.Random, scale: int = 1) -> list[MicroBatch]:
    """Micro-batches of ``SFT_ROWS`` cold-start samples; TRL's vision collator pads each to its own longest row."""
    _, sigma = completion_law()
    mu = math.log(SFT_MEAN_REPLY) - sigma**2 / 2
    out = []
    for _ in range(n):
        prompts = draw_prompts(summary, SFT_ROWS, rng)
        pairs = [(p, max(1, min(SFT_MAX_LENGTH - p, round(math.exp(rng.gauss(mu, sigma)))))) for p in prompts]
        pairs = [(max(1, p // scale), max(1, c // scale)) for p, c in pairs]
        out.append(MicroBatch(pairs, (0, max(p + c for p, c in pairs))))  # right-padded rows: one width
    return out


def sft_tensors(batch: MicroBatch, vocab: int, rng: random.Random) -> dict[str, Any]:
    import torch

    width = sum(batch.width)
    ids = torch.zeros(len(batch.pairs), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, c) in enumerate(batch.pairs):
        ids[i, :p + c] = torch.tensor([rng.randrange(5, vocab) for _ in range(p + c)])
        mask[i, :p + c] = 1
        labels[i, p:p + c] = ids[i, p:p + c]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def time_sft(model: Any, batch: dict[str, Any], packed: bool) -> tuple[float, float]:
    """Wall and CPU seconds of TRL's fused SFT loss forward (the loss summed over the reply tokens) and its backward."""
    from visionr1.training.packing import pack_batch

    model.zero_grad(set_to_none=True)
    start, cpu = time.perf_counter(), time.process_time()
    inputs = pack_batch(model, batch) if packed else {**batch, "use_cache": False}
    out = model(**inputs, fused_lm_head=True)
    (-out.log_probs.sum() / out.label_mask.sum()).backward()
    return time.perf_counter() - start, time.process_time() - cpu


def time_loss(model: Any, batch: dict[str, Any], packed: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one loss forward (completion log-probs, TRL's fused head) and its backward."""
    from trl import GRPOTrainer

    from visionr1.training.packing import packed_logps_and_entropies

    trl_forward = GRPOTrainer._get_per_token_logps_and_entropies.__wrapped__  # without TRL's profiling wrapper
    stub = SimpleNamespace(accelerator=SimpleNamespace(autocast=contextlib.nullcontext))
    model.zero_grad(set_to_none=True)
    start, cpu = time.perf_counter(), time.process_time()
    if packed:
        logps, _, _ = packed_logps_and_entropies(model, batch["input_ids"], batch["attention_mask"],
                                                 batch["logits_to_keep"])
    else:
        logps, _, _ = trl_forward(stub, model, batch["input_ids"], batch["attention_mask"], batch["logits_to_keep"])
    keep = batch["attention_mask"][:, -batch["logits_to_keep"]:]
    ((logps * keep).sum() / keep.sum()).backward()
    return time.perf_counter() - start, time.process_time() - cpu


def timing(summary: dict[str, Any], rounds: int, n_batches: int, scale: int, seed: int) -> dict[str, Any]:
    """GRPO's loss forward+backward and the SFT loss's, padded and packed, the order alternating per round."""
    import torch
    from transformers import AutoModelForImageTextToText
    from trl.trainer.utils import add_fused_lm_head

    from visionr1.models import get_tiny_model

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(get_tiny_model("qwen2_5_vl", "demo"),
                                                        attn_implementation="sdpa").float().train()
    add_fused_lm_head(model)
    vocab = model.config.get_text_config().vocab_size
    rng = random.Random(seed)
    limit, g, rows, per_device = STAGES["ptst-1 (4K x 16)"]
    grpo = micro_batches(summary, limit, g, rows, per_device, max(1, n_batches * per_device // rows), rng, scale)
    sft = sft_batches(summary, n_batches, rng, scale)
    work = {"grpo": (time_loss, [tensors(b, vocab, rng) for b in grpo]),
            "sft": (time_sft, [sft_tensors(b, vocab, rng) for b in sft])}
    for fn, data in work.values():  # warm-up, not timed
        fn(model, data[0], True), fn(model, data[0], False)
    out: dict[str, Any] = {}
    for name, (fn, data) in work.items():
        per_round = []
        for r in range(rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            wall, cpu = {True: 0.0, False: 0.0}, {True: 0.0, False: 0.0}
            load = load_average()
            for batch in data:  # each micro-batch both ways
                for packed in order:
                    w, c = fn(model, batch, packed)
                    wall[packed] += w
                    cpu[packed] += c
            per_round.append({"padded_cpu_s": round(cpu[False], 3), "packed_cpu_s": round(cpu[True], 3),
                              "cpu_ratio": round(cpu[True] / cpu[False], 3),
                              "wall_ratio": round(wall[True] / wall[False], 3), "load_1min": load})
        ratios = [r["cpu_ratio"] for r in per_round]
        walls = [r["wall_ratio"] for r in per_round]
        batches = grpo if name == "grpo" else sft
        out[name] = {"micro_batches": len(data), "rows_per_micro_batch": per_device if name == "grpo" else SFT_ROWS,
                     "padded_share_of_these_batches": round(padded_share(batches), 4),
                     "tokens_per_micro_batch_median": statistics.median(b.real for b in batches),
                     "rounds": per_round, "cpu_ratio_median": statistics.median(ratios),
                     "cpu_ratio_range": [min(ratios), max(ratios)], "wall_ratio_median": statistics.median(walls),
                     "wall_ratio_range": [min(walls), max(walls)]}
        print(name, json.dumps(out[name]), flush=True)
    return {"scale": f"every length / {scale}", "grpo_shape": "ptst-1 (4K x 16)",
            "model": "tiny qwen2_5_vl demo size (hidden 128, 4 layers), float32, sdpa, 1 thread", **out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--derive", type=Path, help="MATH-V parquet: write the prompt-length quantiles and stop")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batches", type=int, default=12, help="micro-batches timed per round")
    ap.add_argument("--scale", type=int, default=16, help="divide every length by this for the CPU timing")
    ap.add_argument("--samples", type=int, default=2000, help="generation batches drawn for the share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    if args.derive:
        LENGTHS.write_text(json.dumps(derive(args.derive), indent=1) + "\n")
        print(f"wrote {LENGTHS}")
        return 0

    import torch

    torch.set_num_threads(1)
    summary = json.loads(LENGTHS.read_text())
    rng = random.Random(args.seed)
    share = {}
    for name, (limit, g, rows, per_device) in STAGES.items():
        batches = micro_batches(summary, limit, g, rows, per_device, args.samples, rng)
        share[name] = {"padded": round(padded_share(batches), 4), "packed": 0.0,
                       "positions_ratio_packed_over_padded": round(1 - padded_share(batches), 4),
                       "flops_ratio_packed_over_padded_7b": compute_ratios(batches), "micro_batches": len(batches)}
        print(name, share[name], flush=True)
    z = statistics.NormalDist().inv_cdf(1 - TRUNCATED)
    for name, (limit, g, rows, per_device) in STAGES.items():  # sensitivity: a wider spread of completion lengths
        batches = micro_batches(summary, limit, g, rows, per_device, args.samples, rng, law=(-z * WIDE_SIGMA, WIDE_SIGMA))
        share[f"{name}, wide completions"] = {
            "padded": round(padded_share(batches), 4), "packed": 0.0,
            "flops_ratio_packed_over_padded_7b": compute_ratios(batches), "micro_batches": len(batches)}
        print(name, "wide", share[f"{name}, wide completions"], flush=True)
    sft = sft_batches(summary, args.samples, rng)
    share["sft (4 samples per micro-batch)"] = {
        "padded": round(padded_share(sft), 4), "packed": 0.0,
        "flops_ratio_packed_over_padded_7b": compute_ratios(sft), "micro_batches": len(sft)}
    print("sft", share["sft (4 samples per micro-batch)"], flush=True)
    mu, sigma = completion_law()
    quantiles = sorted(math.exp(mu + sigma * statistics.NormalDist().inv_cdf(p)) for p in (0.05, 0.5))
    result = {"lengths": {"prompts": str(LENGTHS.relative_to(HERE.parent)), "completion_log_normal": {
        "mu": round(mu, 4), "sigma": round(sigma, 4), "truncated": TRUNCATED, "mean_over_limit": MEAN_FRACTION,
        "p5_p50_over_limit": [round(q, 3) for q in quantiles], "wide_sigma": WIDE_SIGMA}},
        "share": share, "time": timing(summary, args.rounds, args.batches, args.scale, args.seed)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "packing.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
