"""What visionr1 costs on top of TRL: the same GRPO, SFT and generation work through visionr1 and without it.

    nice -n 5 python benchmarks/overhead.py                     # 5 interleaved rounds of each workload
    nice -n 5 python benchmarks/overhead.py --rounds 5 --only grpo --out runs/bench/overhead
    python benchmarks/overhead.py --smoke --out /tmp/overhead   # the tiniest settings, one round (tested)

Workloads, each side in a fresh process with one torch thread, the same seed, tiny Qwen2.5-VL (``--size``),
synthetic counting data with images, and the same TRL config:

- ``grpo``: ``visionr1 train RECIPE --cpu-threads 1`` (as a user runs it: the parent plans and checks, the
  stage trains in a child process) vs a bare ``trl.GRPOTrainer`` (``bare_trl.py``, shared with
  ``gpu/bench.py``); 8 prompts x 4 generations x 64 tokens per step by default.
- ``sft``: ``visionr1 train`` on an SFT recipe vs a bare ``trl.SFTTrainer``.
- ``eval``: ``visionr1 eval run --benchmark synthetic`` vs a bare ``model.generate`` loop over the same prompts,
  processor, batch size and greedy decoding.

The bare side's TRL config is built from what visionr1's planner passes TRL for the recipe
(``plan.stage_values``: the recipe section plus the runner's defaults), so the two cannot drift apart; after the
first round the config visionr1 actually trained with (``final/training_args.bin``) is compared with the bare
side's, key by key, and every difference is printed and kept in the report. The bare side gets the rows
visionr1 trains on, in visionr1's order: visionr1's data loader builds them once before the rounds (for GRPO the
stage's slice of the run's prompt stream, ``training.data_order``, with TRL's shuffle off as visionr1 sets it);
building prompts is data preparation, not what is compared. For ``eval`` the prompts and the resized images
come from the same loader (the images saved losslessly as PNG). Then the final weights of the two sides (and
the eval responses) are compared: the same work gives the same numbers.

Measured, separately:

- seconds per step, steady state, wall and CPU: one TrainerCallback on both sides, the step clock
  (``stepclock/sitecustomize.py``: added to every transformers Trainer of the run's processes, visionr1's stage
  child included, without changing either side), takes the wall-clock and process CPU time at the start of
  training and at every logging step (``logging_steps`` 1). So a step's time holds everything it costs, every
  callback and log line of ours included (metrics.jsonl, completions.jsonl, console lines, the accuracy
  metric); step 1 (warm-up) is left out. CPU seconds are the robust figure on a loaded machine (the wall time
  of one step there swings by +-20% with other jobs). TRL's own ``step_time`` is kept too.
- start-up: from process launch to the start of training (the clock's ``train_begin``): imports, planning,
  preflight, the stage's child process, model and data loading.
- peak RSS: ``ru_maxrss`` of the process tree from ``os.wait4`` (visionr1's stage child included).
- eval: generation seconds (the processor, ``generate`` and decoding of every batch, each side's own timer
  around the same span) and the whole command's wall time.

Ratios are taken within a round (interleave.py: rotated order) as bare / visionr1 seconds, i.e. visionr1's
speed relative to bare TRL (1.0: no overhead; the target is >= 0.97), then summarised as median and min-max.
The machine may be shared: the 1-minute load average before every run is kept. Writes ``overhead.json`` and
``overhead.md`` into ``--out``.
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
sys.path.insert(0, str(HERE))
from interleave import interleaved, load_average, timed_run  # noqa: E402

SIDES = ["visionr1", "bare"]
FULL = {"rounds": 5, "size": "demo", "grpo_steps": 6, "prompts": 8, "generations": 4, "completion": 64,
        "sft_steps": 24, "sft_batch": 4, "eval_items": 20, "eval_tokens": 64, "eval_batch": 4, "records": 80}
SMOKE = {"rounds": 1, "size": "test", "grpo_steps": 3, "prompts": 2, "generations": 2, "completion": 8,
         "sft_steps": 3, "sft_batch": 2, "eval_items": 4, "eval_tokens": 8, "eval_batch": 2, "records": 12}


# --- preparation: model, data, recipes, the bare side's inputs --------------------------------------------------
def recipes(cfg: dict[str, Any], model: Path, data: Path) -> dict[str, str]:
    grpo = (f"{{max_completion_length: {cfg['completion']}, num_generations: {cfg['generations']}, "
            f"per_device_train_batch_size: {2 * cfg['generations']}, gradient_accumulation_steps: {cfg['prompts'] // 2}, "
            f"max_steps: {cfg['grpo_steps']}, learning_rate: 1.0e-5, beta: 0.01, loss_type: grpo, temperature: 1.0, "
            "bf16: false, gradient_checkpointing: false, save_strategy: 'no'}")
    sft = (f"{{max_steps: {cfg['sft_steps']}, per_device_train_batch_size: {cfg['sft_batch']}, learning_rate: 1.0e-4, "
           "bf16: false, gradient_checkpointing: false, save_strategy: 'no'}")
    head = f"seed: 0\nmodel: {{path: {model}, dtype: float32}}\nreport_to: []\n"
    return {
        "grpo": f"name: overhead-grpo\n{head}stages:\n  - name: grpo\n    type: grpo\n"
                f"    dataset: {{format: jsonl, path: {data / 'train.jsonl'}}}\n"
                f"    rewards: [{{name: hard_format_result}}]\n    grpo: {grpo}\n",
        "sft": f"name: overhead-sft\n{head}stages:\n  - name: sft\n    type: sft\n"
               f"    dataset: {{format: jsonl, path: {data / 'train-sft.jsonl'}}}\n    sft: {sft}\n",
    }


def prepare(work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The tiny model, the data, both recipes, and what the bare sides get (config kwargs, rows, prompts)."""
    from visionr1.config.loader import run_dir_of
    from visionr1.data.loaders import load_samples
    from visionr1.models.tiny import build_tiny_model
    from visionr1.recipe import load_recipe
    from visionr1.tasks.synthetic import make_synthetic
    from visionr1.training.data_order import prompts_needed, stream_slice
    from visionr1.training.grpo import _reward_columns
    from visionr1.training.plan import stage_config, stage_dir, stage_values
    from visionr1.training.sft import SFT_COLUMNS

    data = make_synthetic("counting", cfg["records"], 0, work / "data", difficulty="medium", test_fraction=0.25)
    rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    sft_rows = [{**r, "completion": f"<think>{(r.get('metadata') or {}).get('reasoning', '')}</think>"
                                    f"<answer> Final Answer:{r['solution']} </answer>"} for r in rows]
    (data / "train-sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft_rows))
    model = build_tiny_model("qwen2_5_vl", cfg["size"], work / "model", seed=0)
    out: dict[str, Any] = {"model": str(model), "data": str(data), "recipes": {}, "bare": {}}
    for kind, text in recipes(cfg, model, data).items():
        path = work / f"{kind}.yaml"
        path.write_text(text)
        recipe = load_recipe(path)
        stage = recipe.stages[0]
        values = stage_values(recipe, stage)  # what the planner passes TRL
        config = stage_config(recipe, stage, run_dir_of(recipe, work / "plan"), world_size=1)
        dataset = load_samples(stage.dataset).dataset
        if kind == "grpo":
            train = _reward_columns(dataset)
            count = prompts_needed(config, len(train))
            train = train.select(stream_slice(len(train), recipe.seed, 0, count, config.shuffle_dataset is not False))
            values = {**values, "shuffle_dataset": False}  # as visionr1 sets it: the rows are in its order already
            # ... and its rollouts' ban on vision special tokens (training.generation): the same sampling both sides
            from transformers import AutoProcessor

            from visionr1.training.generation import ban_vision_tokens

            values["generation_kwargs"] = ban_vision_tokens(values.get("generation_kwargs"),
                                                            AutoProcessor.from_pretrained(model), use_vllm=False)
            rewards = [{"name": r.name, "kwargs": r.kwargs} for r in stage.rewards]
        else:
            train, rewards = dataset.select_columns(SFT_COLUMNS), []
        train.save_to_disk(str(work / f"rows-{kind}"))
        out["recipes"][kind] = str(path)
        out["bare"][kind] = {"kind": kind, "model": str(model), "rows": str(work / f"rows-{kind}"), "rewards": rewards,
                             "config": {"output_dir": "", "seed": recipe.seed, **values}, "stage": stage.name,
                             "planned_dir": str(stage_dir(run_dir_of(recipe, work / "plan"), stage))}
    out["bare"]["eval"] = prepare_prompts(work, data, model, cfg)
    return out


def prepare_prompts(work: Path, data: Path, model: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """``eval run``'s prompts and resized images for the first ``eval_items`` test records, as its data loader
    builds them (images as lossless PNG files)."""
    from visionr1.data.budget import saved_processor_budget
    from visionr1.data.spec import DEFAULT_TEMPLATE
    from visionr1.evaluation.benchmarks import get_benchmark
    from visionr1.evaluation.run import DEFAULT_MAX_PIXELS

    bench = get_benchmark("synthetic")
    items = bench.load(data / "test.jsonl", for_generation=True)[: cfg["eval_items"]]
    budget = saved_processor_budget(model)[1] or DEFAULT_MAX_PIXELS
    folder = work / "eval-prompts"
    folder.mkdir(parents=True, exist_ok=True)
    prompts = []
    for s in bench.samples(items, DEFAULT_TEMPLATE, budget, None):
        paths = []
        for j, img in enumerate(s.images):
            paths.append(str(folder / f"{s.pid}-{j}.png"))
            img.save(paths[-1])
        prompts.append({"pid": s.pid, "prompt": s.prompt, "images": paths})
    (folder / "prompts.json").write_text(json.dumps(prompts))
    cfg["eval_items"] = len(prompts)  # the test split may hold fewer: the report says what ran
    return {"kind": "eval", "model": str(model), "prompts": str(folder / "prompts.json"),
            "max_new_tokens": cfg["eval_tokens"], "batch_size": cfg["eval_batch"]}


# --- the bare sides (run as `overhead.py --worker SPEC.json`) ---------------------------------------------------
def bare_train(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # what `--cpu-threads 1` does on visionr1's side
    from bare_trl import StepLog, grpo_trainer, sft_trainer
    from datasets import load_from_disk

    logs = StepLog()
    rows = load_from_disk(spec["rows"])
    if spec["kind"] == "grpo":
        from trl import GRPOConfig

        from visionr1.rewards.registry import get_reward_function  # the reward functions are the workload

        config = GRPOConfig(**spec["config"])
        funcs = [get_reward_function(r["name"], **r["kwargs"]) for r in spec["rewards"]]
        trainer = grpo_trainer(spec["model"], config, funcs, rows, torch.float32, callbacks=[logs])
    else:
        from trl import SFTConfig

        config = SFTConfig(**spec["config"])
        trainer = sft_trainer(spec["model"], config, rows, torch.float32, callbacks=[logs])
    trainer.train()
    trainer.save_model(str(Path(config.output_dir) / "final"))
    return {"rows": logs.rows, "config": _jsonable(config.to_dict())}


def bare_generate(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(spec["model"], padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(spec["model"], dtype="auto").eval()
    prompts = json.loads(Path(spec["prompts"]).read_text())
    n, responses, seconds = spec["batch_size"], {}, 0.0
    for start in range(0, len(prompts), n):
        batch = prompts[start: start + n]
        images = [Image.open(p).convert("RGB") for b in batch for p in b["images"]]
        t0 = time.perf_counter()
        texts = [processor.apply_chat_template(b["prompt"], tokenize=False, add_generation_prompt=True) for b in batch]
        inputs = processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=spec["max_new_tokens"], do_sample=False,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        decoded = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        seconds += time.perf_counter() - t0
        responses.update({b["pid"]: d for b, d in zip(batch, decoded, strict=True)})
    return {"generation_seconds": seconds, "responses": responses}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


# --- one run of one side, and what it measured ---------------------------------------------------------------------
def base_env(clock: Path | None = None) -> dict[str, str]:
    """The environment of every run: no thread variables of our own, offline, this checkout's ``src`` first and,
    with ``clock``, the step clock (``stepclock/sitecustomize.py``) writing to that file."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "WORLD_SIZE")}
    paths = [str(HERE / "stepclock")] if clock else []
    paths += [str(HERE.parent / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if clock:
        env["VISIONR1_STEP_CLOCK"] = str(clock)
    return env


def run_side(kind: str, side: str, r: int, prep: dict[str, Any], work: Path) -> dict[str, Any]:
    """One fresh process of ``side`` on workload ``kind``; its timings, peak RSS and outputs."""
    out = work / f"{kind}-{side}-{r}"
    if side == "visionr1":
        cli = [sys.executable, "-m", "visionr1"]
        if kind == "eval":
            spec = prep["bare"]["eval"]
            cmd = [*cli, "eval", "run", "--benchmark", "synthetic", "--model", spec["model"],
                   "--data", str(Path(prep["data"]) / "test.jsonl"), "--output", str(out),
                   "--max-new-tokens", str(spec["max_new_tokens"]), "--batch-size", str(spec["batch_size"]),
                   "--limit", str(len(json.loads(Path(spec["prompts"]).read_text()))), "--temperature", "0",
                   "--cpu-threads", "1"]
        else:
            cmd = [*cli, "train", prep["recipes"][kind], "--output-dir", str(out), "--cpu-threads", "1"]
    else:
        spec = {**prep["bare"][kind]}
        if kind != "eval":
            spec["config"] = {**spec["config"], "output_dir": str(out)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out / "spec.json")]
    clock = work / f"{kind}-{side}-{r}.clock.jsonl"
    res = timed_run(cmd, base_env(clock if kind != "eval" else None), timeout=3600)
    res["dir"] = str(out)
    if res["rc"] == 0:
        res.update(figures(kind, side, out, clock, res["started"]))
    return res


def figures(kind: str, side: str, out: Path, clock: Path, started: float) -> dict[str, Any]:
    """Start-up and per-step seconds (training: the step clock), generation seconds (eval: each side's timer)."""
    if kind == "eval":
        result = out / ("summary.json" if side == "visionr1" else "result.json")
        return {"generation_seconds": json.loads(result.read_text())["generation_seconds"]}
    events = [json.loads(x) for x in clock.read_text().splitlines()]
    if side == "visionr1":  # TRL's own step_time, as logged
        rows = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    else:
        rows = [r for r in json.loads((out / "result.json").read_text())["rows"] if "train_runtime" not in r]
    return step_times(events, [r.get("step_time") for r in rows], started)


def step_times(events: list[dict[str, Any]], trl_step_times: list[float | None], started: float) -> dict[str, Any]:
    """Start-up, and wall / CPU seconds per step from the step clock's events (``train_begin``, then one ``log``
    per step); step 1 is the warm-up, left out of the steady-state medians.

    >>> ev = [{"event": "train_begin", "wall": 10.0, "cpu": 5.0}] + [
    ...     {"event": "log", "wall": w, "cpu": c} for w, c in ((12.0, 6.5), (13.0, 7.0), (14.5, 7.6), (15.5, 8.0))]
    >>> t = step_times(ev, [None] * 4, started=0.0)
    >>> t["startup_seconds"], t["steady_seconds_per_step"], t["steady_cpu_seconds_per_step"]
    (10.0, 1.0, 0.5)
    """
    begin = next(e for e in events if e["event"] == "train_begin")
    logs = [e for e in events if e["event"] == "log"]
    wall = [b["wall"] - a["wall"] for a, b in zip([begin, *logs], logs, strict=False)]
    cpu = [b["cpu"] - a["cpu"] for a, b in zip([begin, *logs], logs, strict=False)]
    trl = [t for t in trl_step_times[1:] if t is not None]
    return {"startup_seconds": round(begin["wall"] - started, 3), "first_step_seconds": round(wall[0], 3),
            "steady_seconds_per_step": round(statistics.median(wall[1:] or wall), 4),
            "steady_cpu_seconds_per_step": round(statistics.median(cpu[1:] or cpu), 4),
            "step_seconds": [round(x, 4) for x in wall], "step_cpu_seconds": [round(x, 4) for x in cpu],
            "trl_step_time": round(statistics.median(trl), 4) if trl else None, "steps": len(logs)}


# --- the checks: same config, same weights, same responses ---------------------------------------------------------
def config_differences(kind: str, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Keys whose values differ between the TRL config visionr1 trained with and the bare side's (paths aside)."""
    import torch

    ours = torch.load(Path(res["visionr1"]["dir"]) / kind / "final" / "training_args.bin", weights_only=False)
    ours = _jsonable(ours.to_dict())
    bare = json.loads((Path(res["bare"]["dir"]) / "result.json").read_text())["config"]
    skip = {"output_dir", "logging_dir"}
    return {k: {"visionr1": ours.get(k), "bare": bare.get(k)} for k in sorted(set(ours) | set(bare))
            if k not in skip and ours.get(k) != bare.get(k)}


def weight_differences(a: Path, b: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    if set(wa) != set(wb):
        return {"identical": False, "why": f"different tensors: {sorted(set(wa) ^ set(wb))[:5]}"}
    differ = [k for k in wa if not (wa[k].shape == wb[k].shape and bool((wa[k] == wb[k]).all()))]
    worst = max(((wa[k] - wb[k]).abs().max().item() for k in differ if wa[k].shape == wb[k].shape), default=0.0)
    return {"identical": not differ, "tensors": len(wa), "differing": len(differ), "max_abs_difference": worst}


def checks(kind: str, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if any(res[s].get("rc") for s in SIDES):
        return {"skipped": "a side failed"}
    if kind == "eval":
        ours = {}
        for line in (Path(res["visionr1"]["dir"]) / "predictions.jsonl").read_text().splitlines():
            row = json.loads(line)
            ours[str(row["pid"])] = row["response"]
        bare = json.loads((Path(res["bare"]["dir"]) / "result.json").read_text())["responses"]
        differ = sorted(p for p in bare if ours.get(p, "").strip() != bare[p].strip())
        return {"responses": len(bare), "identical_responses": len(bare) - len(differ), "differing": differ[:10]}
    return {"config_differences": config_differences(kind, res),
            "weights": weight_differences(Path(res["visionr1"]["dir"]) / kind / "final", Path(res["bare"]["dir"]) / "final")}


# --- summary ------------------------------------------------------------------------------------------------------
TRAIN_MEASURES = ["steady_seconds_per_step", "steady_cpu_seconds_per_step", "startup_seconds", "peak_rss_mib", "seconds",
                  "cpu_seconds"]
MEASURES = {"grpo": TRAIN_MEASURES, "sft": TRAIN_MEASURES,
            "eval": ["generation_seconds", "peak_rss_mib", "seconds", "cpu_seconds"]}
SPEED = {"grpo": "steady_seconds_per_step", "sft": "steady_seconds_per_step", "eval": "generation_seconds"}


def spread(values: list[float]) -> dict[str, float] | None:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)} if values else None


def summarise(kind: str, raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per measure: each side's median/min/max and the per-round ratio bare / visionr1 (speed ratio for times)."""
    pairs = [(v, b) for v, b in zip(raw["visionr1"], raw["bare"], strict=True) if v["rc"] == 0 and b["rc"] == 0]
    out: dict[str, Any] = {"pairs": len(pairs), "failed_runs": sum(r["rc"] != 0 for s in SIDES for r in raw[s])}
    for m in MEASURES[kind]:
        out[m] = {"visionr1": spread([v[m] for v, _ in pairs]), "bare": spread([b[m] for _, b in pairs]),
                  "ratio_bare_over_visionr1": spread([b[m] / v[m] for v, b in pairs if v[m]])}
    out["speed_ratio"] = out[SPEED[kind]]["ratio_bare_over_visionr1"]
    out["load_before"] = [r["load_before"] for s in SIDES for r in raw[s]]
    return out


WHAT = {"grpo": "GRPO, `visionr1 train` vs bare `trl.GRPOTrainer`", "sft": "SFT, `visionr1 train` vs bare `trl.SFTTrainer`",
        "eval": "generation, `visionr1 eval run` vs a bare `model.generate` loop"}
LABEL = {"steady_seconds_per_step": "seconds per step (steps 2..)", "steady_cpu_seconds_per_step": "CPU s per step (steps 2..)", "startup_seconds": "start-up s (launch to first step)",
         "peak_rss_mib": "peak RSS MiB", "seconds": "whole command s", "cpu_seconds": "whole command CPU s", "generation_seconds": "generation s"}


def _num(x: float) -> str:
    """Three significant digits, without exponents for the MiB figures.

    >>> _num(1517.3), _num(3.5234), _num(0.15912)
    ('1517', '3.52', '0.159')
    """
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def markdown(report: dict[str, Any]) -> str:
    cfg = report["settings"]
    lines = [f"# visionr1 vs bare TRL/transformers: {report['cores']} cores, 1 torch thread, tiny Qwen2.5-VL "
             f"`{cfg['size']}`, {cfg['rounds']} interleaved rounds\n",
             f"GRPO {cfg['grpo_steps']} steps of {cfg['prompts']} prompts x {cfg['generations']} generations x "
             f"{cfg['completion']} tokens; SFT {cfg['sft_steps']} steps of {cfg['sft_batch']}; eval {cfg['eval_items']} items, "
             f"{cfg['eval_tokens']} tokens, batch {cfg['eval_batch']}, greedy. Ratio = bare / visionr1 per round "
             "(for times: visionr1's speed relative to bare; 1.00 = no overhead), median (min-max).\n",
             "| workload | measure | visionr1 median (min-max) | bare median (min-max) | ratio bare/visionr1 |",
             "|---|---|---|---|---|"]
    for kind, w in report["workloads"].items():
        s = w["summary"]
        for m in MEASURES[kind]:
            v, b, r = s[m]["visionr1"], s[m]["bare"], s[m]["ratio_bare_over_visionr1"]
            if not (v and b and r):
                lines.append(f"| {kind} | {LABEL[m]} | failed | | |")
                continue
            lines.append(f"| {kind} | {LABEL[m]} | {_num(v['median'])} ({_num(v['min'])}-{_num(v['max'])}) | "
                         f"{_num(b['median'])} ({_num(b['min'])}-{_num(b['max'])}) | "
                         f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f}) |")
    lines.append("")
    for kind, w in report["workloads"].items():
        loads = w["summary"]["load_before"]
        lines.append(f"- **{WHAT[kind]}**: {w['summary']['pairs']} pairs, load average before runs "
                     f"{min(loads):.1f}-{max(loads):.1f}; checks: {json.dumps(w['checks'])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="Interleaved rounds (default 5; --smoke: 1).")
    ap.add_argument("--size", default=None, help="Tiny model preset: test | demo (default demo; --smoke: test).")
    ap.add_argument("--grpo-steps", type=int, default=None)
    ap.add_argument("--sft-steps", type=int, default=None)
    ap.add_argument("--eval-items", type=int, default=None)
    ap.add_argument("--only", nargs="+", choices=list(MEASURES), default=list(MEASURES))
    ap.add_argument("--smoke", action="store_true", help="The tiniest settings, one round: checks the code paths.")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/overhead"))
    ap.add_argument("--keep", type=Path, default=None, help="Work directory to keep (default: a temporary one).")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one bare side in this process
        spec = json.loads(args.worker.read_text())
        res = bare_generate(spec) if spec["kind"] == "eval" else bare_train(spec)
        (args.worker.parent / "result.json").write_text(json.dumps(res))
        return res

    cfg = dict(SMOKE if args.smoke else FULL)
    for key in ("rounds", "size", "grpo_steps", "sft_steps", "eval_items"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="visionr1-overhead-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prep = prepare(work, cfg)
        report: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "settings": cfg, "load_at_start": load_average(),
                                  "workloads": {}}
        for kind in args.only:
            print(f"== {kind}", flush=True)
            raw = interleaved(SIDES, cfg["rounds"], lambda side, r, kind=kind: run_side(kind, side, r, prep, work))
            for side in SIDES:
                for res in raw[side]:
                    if res["rc"]:
                        print(f"{kind} {side} failed:\n{res.get('output_tail', '')}", file=sys.stderr)
            first = {s: raw[s][0] for s in SIDES}
            report["workloads"][kind] = {"runs": raw, "summary": summarise(kind, raw), "checks": checks(kind, first)}
            diffs = report["workloads"][kind]["checks"].get("config_differences")
            if diffs:
                print(f"{kind}: TRL config differences (visionr1 vs bare): {json.dumps(diffs)}", flush=True)
        report["load_at_end"] = load_average()
    (args.out / "overhead.json").write_text(json.dumps(report, indent=2))
    (args.out / "overhead.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
