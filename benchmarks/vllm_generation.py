"""vLLM against transformers generation on this CPU, for the demo-size tiny Qwen2.5-VL (float32 on both sides):

1. generation throughput: one batch of image prompts x samples, a fixed number of new tokens each (vLLM
   ``ignore_eos``, transformers ``min_new_tokens``), both engines loaded once in this process, timed in
   interleaved rounds (``interleave.py``: rotated order, ratio within a round);
2. time per GRPO step: ``visionr1 train`` on the same stage with ``use_vllm: false`` and ``use_vllm: true,
   vllm_mode: colocate``, interleaved runs; the per-step time is TRL's ``step_time`` of the steps after the first
   (the first includes warm-up), and the run's wall time includes vLLM's engine start.

    PYTHONPATH=src VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/vllm_generation.py --rounds 3 \\
        --out benchmarks/results/vllm_generation.json

Needs vLLM (vllm-cpu here, see docs/distributed.md). Numbers: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from interleave import interleaved, load_average, markdown_table, summarise, timed_run  # noqa: E402


def _prompts(data: Path, n: int) -> tuple[list[list[dict]], list[list[Any]]]:
    from PIL import Image

    rows = [json.loads(line) for line in data.read_text().splitlines()][:n]
    prompts = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["question"]}]}] for r in rows]
    images = [[Image.open(data.parent / r["images"][0]).convert("RGB")] for r in rows]
    return prompts, images


def generation(model_dir: Path, data: Path, rounds: int, prompts: int, samples: int, tokens: int) -> dict[str, Any]:
    """Tokens per second of each engine on one batch, interleaved."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process: same CPUs, no IPC
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from visionr1.inference import prompt_texts
    from visionr1.patches.vllm import modality_limits
    from vllm import LLM, SamplingParams

    msgs, images = _prompts(data, prompts)
    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"
    texts = prompt_texts(processor, msgs)
    hf = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    t0 = time.perf_counter()
    llm = LLM(model=str(model_dir), dtype="float32", limit_mm_per_prompt=modality_limits([1]), max_model_len=2048,
              seed=0)
    engine_start = time.perf_counter() - t0
    params = SamplingParams(n=samples, max_tokens=tokens, ignore_eos=True, temperature=1.0, seed=0)
    requests = [{"prompt": t, "multi_modal_data": {"image": im}} for t, im in zip(texts, images, strict=True)]

    def run(name: str, _round: int) -> dict[str, Any]:
        load = load_average()
        start = time.perf_counter()
        if name == "vllm":
            outs = llm.generate(requests, params, use_tqdm=False)
            new = sum(len(c.token_ids) for o in outs for c in o.outputs)
        else:
            inputs = processor(text=texts, images=[im for ims in images for im in ims], padding=True,
                               return_tensors="pt")
            with torch.inference_mode():
                seq = hf.generate(**inputs, do_sample=True, temperature=1.0, max_new_tokens=tokens,
                                  min_new_tokens=tokens, num_return_sequences=samples,
                                  pad_token_id=processor.tokenizer.pad_token_id)
            new = (seq.shape[1] - inputs["input_ids"].shape[1]) * seq.shape[0]
        seconds = time.perf_counter() - start
        return {"seconds": round(seconds, 3), "new_tokens": new, "tokens_per_s": round(new / seconds, 1),
                "load_before": load}

    run("vllm", -1), run("transformers", -1)  # warm-up (vLLM compiles on its first shapes)
    results = interleaved(["transformers", "vllm"], rounds, run)
    return {"engine_start_s": round(engine_start, 1), "prompts": prompts, "samples": samples, "tokens": tokens,
            "runs": results, "summary": summarise(results, "transformers"),
            "tokens_per_s": summarise(results, "transformers", key="tokens_per_s")}


def grpo_steps(model_dir: Path, data: Path, rounds: int, steps: int, completion: int) -> dict[str, Any]:
    """Per-step and total time of `visionr1 train` with and without vLLM, interleaved runs."""
    tmp = Path(tempfile.mkdtemp(prefix="vllm-bench-"))
    base = [sys.executable, "-m", "visionr1", "train", str(REPO / "recipes/tiny/grpo.yaml"), f"model.path={model_dir}",
            f"stages.ptst-1.dataset.path={data}", f"stages.ptst-1.grpo.max_steps={steps}",
            f"stages.ptst-1.grpo.max_completion_length={completion}", "stages.ptst-1.grpo.save_steps=1000",
            "stages.ptst-1.grpo.per_device_train_batch_size=8"]  # 2 prompts x 4 generations per step
    extra = {"transformers": [], "vllm": ["stages.ptst-1.grpo.use_vllm=true", "stages.ptst-1.grpo.vllm_mode=colocate"]}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}

    def run(name: str, r: int) -> dict[str, Any]:
        out = tmp / f"{name}-{r}"
        res = timed_run([*base, *extra[name], "--output-dir", str(out)], env, cwd=str(REPO), timeout=900)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] if res["rc"] == 0 else []
        times = [row["step_time"] for row in rows if row.get("kind") == "train" and row.get("step_time")]
        res["step_times"] = times
        res["step_s"] = round(statistics.median(times[1:] or times), 3) if times else 0.0
        res["tokens_per_step"] = [row.get("completions/mean_length", 0) * 8 for row in rows if row.get("kind") == "train"]
        return res

    results = interleaved(["transformers", "vllm"], rounds, run)
    return {"steps": steps, "completion": completion, "runs": results, "wall": summarise(results, "transformers"),
            "step": summarise(results, "transformers", key="step_s")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--part", choices=["all", "generation", "grpo"], default="all")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from visionr1.models.tiny import get_tiny_model
    from visionr1.tasks.synthetic import make_synthetic

    work = Path(tempfile.mkdtemp(prefix="vllm-bench-data-"))
    model_dir = Path(get_tiny_model("qwen2_5_vl", "demo"))
    make_synthetic("counting", 32, 0, work)
    data = work / "train.jsonl"
    report: dict[str, Any] = {"model": "tiny:qwen2_5_vl/demo", "cpus": os.cpu_count()}
    if args.part in ("all", "grpo"):  # a subprocess per run: before this process holds an engine
        report["grpo"] = grpo_steps(model_dir, data, args.rounds, args.steps, args.tokens)
        print(markdown_table(report["grpo"]["step"], "transformers", unit="s/step"))
        print(markdown_table(report["grpo"]["wall"], "transformers", unit="s (run)"))
    if args.part in ("all", "generation"):
        report["generation"] = generation(model_dir, data, args.rounds, args.prompts, args.samples, args.tokens)
        print(f"vLLM engine start: {report['generation']['engine_start_s']} s")
        print(markdown_table(report["generation"]["tokens_per_s"], "transformers", unit="tokens/s"))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
