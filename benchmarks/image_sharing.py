"""What encoding each image once per GRPO group saves (``share_images``, src/visionr1/patches/image_sharing.py).

    python benchmarks/image_sharing.py                   # 3 interleaved pairs, 3 GRPO steps each, ~15 min on 2 cores
    python benchmarks/image_sharing.py --rounds 5 --steps 4 --out runs/bench/image-sharing

The workload is the one the sharing is for: 8 prompts x 8 generations per step (one generation batch of 64 rows,
``per_device_train_batch_size: 64``), one 448x448 image per prompt (256 image tokens each), 32 completion tokens,
``beta: 0.01`` (so a reference model forward too), on the ``demo``-size tiny Qwen2.5-VL. Each run is a fresh
process that builds the stage's trainer the way ``visionr1 train`` does (``training.grpo.build_grpo_trainer``) and
trains ``--steps`` steps; the first step is a warm-up and is not timed. Runs alternate sharing on / off, the order
rotated each round (benchmarks/interleave.py), and the s/step ratio on/off is taken within a round.

Measured inside each run: every processor call (``processor.__call__``: the text and the images, hashing included),
every ``get_image_features`` call (the vision tower, with the deduplication's own cost), split into calls without
grad (generation prefill, old and reference log-probs) and with grad (loss forward), and the wall time of each step.
The machine may be shared: the 1-minute load average before every run is recorded. Writes
``image_sharing.json`` and ``image_sharing.md`` into ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import interleaved, load_average, markdown_table, summarise  # noqa: E402

CONFIGS = ("sharing on", "sharing off")
IMAGE = 448  # px: (448 / 14)^2 / 4 = 256 image tokens
RECIPE = """\
name: bench-image-sharing
seed: 0
model: {{path: {model}, dtype: float32, max_pixels: {pixels}}}
report_to: []
logging: {{completions_per_log: 0, progress: none, plot: false}}
cpu_threads: 1
stages:
  - name: grpo
    type: grpo
    share_images: {share}
    dataset: {{format: jsonl, path: {data}}}
    rewards: [{{name: hard_format_result}}]
    grpo: {{max_completion_length: 32, num_generations: 8, per_device_train_batch_size: 64, max_steps: {steps},
           learning_rate: 1.0e-5, beta: 0.01, temperature: 1.0, loss_type: grpo, bf16: false,
           gradient_checkpointing: false, save_strategy: "no"}}
"""


def prepare(work: Path, n: int = 32) -> dict[str, Path]:
    """``n`` RL records with one IMAGE x IMAGE image each (a background and a few rectangles to count), and the
    demo-size tiny Qwen2.5-VL saved like a checkpoint."""
    from PIL import Image, ImageDraw

    from visionr1.models.tiny import build_tiny_model

    (work / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        img = Image.new("RGB", (IMAGE, IMAGE), (20 + 7 * i % 200, 90, 160))
        draw = ImageDraw.Draw(img)
        for k in range(1 + i % 5):
            x = 30 + 80 * k
            draw.rectangle([x, 40 + 9 * i % 300, x + 50, 100 + 9 * i % 300], fill=(250, 30 + 40 * k, 20))
        img.save(work / "images" / f"{i}.png")
        rows.append({"id": f"bench-{i}", "images": [f"images/{i}.png"], "task": "count",
                     "question": "<image>How many red rectangles are there? " + "Look carefully. " * (i % 4),
                     "solution": str(1 + i % 5)})
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = build_tiny_model("qwen2_5_vl", "demo", work / "model", seed=0)
    return {"data": data, "model": model}


# --- one run (a fresh process) ----------------------------------------------------------------------------------


def worker(work: Path, share: bool, steps: int, out: Path) -> None:
    """Train ``steps`` steps with sharing on or off, timing the processor, the vision tower and each step."""
    import torch
    from transformers import TrainerCallback

    from visionr1.patches.image_sharing import vision_modules
    from visionr1.recipe import load_recipe
    from visionr1.training import grpo
    from visionr1.training.loading import resolve_model_path
    from visionr1.training.runner import preflight
    from visionr1.training.stage import StageRun

    recipe_path = work / f"grpo-{share}.yaml"
    recipe_path.write_text(RECIPE.format(model=work / "model", pixels=IMAGE * IMAGE, data=work / "train.jsonl",
                                         share=str(share).lower(), steps=steps))
    recipe = load_recipe(recipe_path)
    torch.set_num_threads(1)
    run_dir = work / f"run-{share}-{os.getpid()}"
    prepared = preflight(recipe, run_dir, 1, [0])
    run = StageRun(recipe=recipe, stage=recipe.stages[0], index=0, run_dir=run_dir, stage_dir=run_dir / "grpo",
                   start_path=resolve_model_path(recipe.model.path), resume_from=None, step_offset=0,
                   train_dataset=prepared[0].train)
    timings: dict[str, list[float]] = {"processor_ms": [], "vision_nograd_ms": [], "vision_grad_ms": [],
                                       "vision_rows": [], "step_s": []}

    def timed(fn: Any, on_call: Any) -> Any:
        @functools.wraps(fn)  # generate() reads get_image_features' signature
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            on_call(1e3 * (time.perf_counter() - t0), args)
            return result
        return call

    trainer, processor, _ = grpo.build_grpo_trainer(run)
    proc_cls = type(processor)
    proc_cls.__call__ = timed(proc_cls.__call__, lambda ms, _a: timings["processor_ms"].append(ms))

    def vision_call(ms: float, _args: tuple) -> None:
        timings["vision_grad_ms" if torch.is_grad_enabled() else "vision_nograd_ms"].append(ms)

    for m in vision_modules([trainer.model, trainer.ref_model]):  # rows the tower itself encodes
        m.visual.register_forward_pre_hook(lambda _m, a: timings["vision_rows"].append(int(a[0].shape[0])))

    real_sharing = type(trainer)._sharing

    @contextlib.contextmanager
    def timed_sharing(self: Any):  # the timer wraps whatever get_image_features is inside the (shared) scope
        with real_sharing(self):
            modules = vision_modules([self.model, self.ref_model])
            saved = [m.__dict__.get("get_image_features") for m in modules]
            for m in modules:
                m.get_image_features = timed(m.get_image_features, vision_call)
            try:
                yield
            finally:
                for m, s in zip(modules, saved, strict=True):
                    m.__dict__.pop("get_image_features")
                    if s is not None:
                        m.get_image_features = s

    type(trainer)._sharing = timed_sharing

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            timings["step_s"].append(time.perf_counter() - self.t0)

    trainer.add_callback(StepTimer())
    trainer.train()
    out.write_text(json.dumps(timings))


def _med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def run_once(work: Path, share: bool, steps: int) -> dict[str, Any]:
    import subprocess

    out = work / f"timings-{share}-{time.time_ns()}.json"
    load = load_average()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "WORLD_SIZE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--worker", "on" if share else "off", "--work", str(work),
                           "--steps", str(steps), "--worker-out", str(out)], env=env, capture_output=True, text=True)
    if proc.returncode:
        return {"rc": proc.returncode, "seconds": 0.0, "load_before": load, "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    t = json.loads(out.read_text())
    timed_steps = t["step_s"][1:]  # the first step warms caches up
    return {
        "rc": 0, "load_before": load, "seconds": round(statistics.median(timed_steps), 3), "step_s": t["step_s"],
        "processor_ms_per_call": _med(t["processor_ms"]), "processor_calls": len(t["processor_ms"]),
        "vision_nograd_ms_per_call": _med(t["vision_nograd_ms"]), "vision_grad_ms_per_call": _med(t["vision_grad_ms"]),
        "vision_calls": len(t["vision_rows"]), "vision_rows_per_call": _med(t["vision_rows"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved pairs (sharing on, sharing off).")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps per run; the first is not timed.")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--worker", choices=["on", "off"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.work, args.worker == "on", args.steps, args.worker_out)
        return
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is not timed)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="visionr1-image-sharing-") as tmp:
        work = Path(tmp)
        prepare(work)
        raw = interleaved(list(CONFIGS), args.rounds, lambda name, _r: run_once(work, name == "sharing on", args.steps))
    failed = [r for runs in raw.values() for r in runs if r["rc"]]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed; the first:\n{failed[0]['output_tail']}")
    summary = summarise(raw, "sharing off")
    report = {"cores": len(os.sched_getaffinity(0)), "rounds": args.rounds, "steps_per_run": args.steps,
              "workload": "8 prompts x 8 generations, 448x448 image (256 tokens) per prompt, 32 completion tokens, "
                          "beta 0.01, demo-size tiny Qwen2.5-VL, 1 torch thread",
              "runs": raw, "summary": summary}
    for key in ("processor_ms_per_call", "vision_nograd_ms_per_call", "vision_grad_ms_per_call",
                "vision_rows_per_call", "processor_calls", "vision_calls"):
        report.setdefault("per_call", {})[key] = {c: _med([r[key] for r in raw[c] if r[key] is not None]) for c in CONFIGS}
    (args.out / "image_sharing.json").write_text(json.dumps(report, indent=2))
    pc = report["per_call"]
    md = [f"# Image sharing: {report['cores']} cores, {args.rounds} interleaved pairs\n", report["workload"] + "\n",
          "## Seconds per GRPO step (median of the timed steps of each run)\n",
          markdown_table(summary, "sharing off"), "",
          "## Per call (median over runs of each run's median)\n",
          "| | sharing on | sharing off |", "|---|---|---|"]
    for key, label in (("processor_ms_per_call", "processor ms per call"),
                       ("vision_nograd_ms_per_call", "vision tower ms per call, no grad (prefill, old/ref log-probs)"),
                       ("vision_grad_ms_per_call", "vision tower ms per call, loss forward"),
                       ("vision_rows_per_call", "pixel_values rows per vision call"),
                       ("processor_calls", "processor calls per run"), ("vision_calls", "vision calls per run")):
        md.append(f"| {label} | {pc[key]['sharing on']} | {pc[key]['sharing off']} |")
    (args.out / "image_sharing.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
