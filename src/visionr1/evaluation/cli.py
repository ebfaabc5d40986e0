"""``visionr1 eval score`` and ``visionr1 eval run`` (composed into the main app by `visionr1/cli.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionr1.cli_common import CpuThreadsOpt, command_app, console, fail, parse_cpu_threads

app = command_app(help="Score and run the multimodal math benchmarks.", no_args_is_help=True)

BenchmarkOpt = Annotated[
    str,
    typer.Option(
        "--benchmark", "-b",
        help="mathvista | mathverse | mmmath | mathvision | dynamath | wemath | synthetic",
    ),
]
DataOpt = Annotated[Path, typer.Option("--data", help="The benchmark's records as published: JSON, JSONL, parquet or a folder of them.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Directory for summary.json and items.jsonl.")]
JudgeUrlOpt = Annotated[
    str | None, typer.Option("--judge-url", help="OpenAI-compatible endpoint (…/v1) for LLM extraction/judging.")
]
JudgeModelOpt = Annotated[str | None, typer.Option("--judge-model", help="Model name the judge endpoint serves.")]
JudgeModeOpt = Annotated[
    str,
    typer.Option(
        "--judge-mode",
        help="fallback: LLM where rules find no answer or only a last resort (last number, whole text); "
        "official: LLM wherever the official pipeline uses one.",
    ),
]
JudgeKeyOpt = Annotated[
    str, typer.Option("--judge-api-key-env", help="Environment variable holding the judge's API key.")
]


def _judge(url: str | None, model: str | None, mode: str, key_env: str):
    if url is None and model is None:
        return None
    if not url or not model:
        fail("--judge-url and --judge-model go together (or leave both out to score by rules only)")
    from visionr1.evaluation.judge import EvalJudge, JudgeConfig

    try:
        return EvalJudge(JudgeConfig(base_url=url, model=model, mode=mode, api_key_env=key_env))  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc))


LenientOpt = Annotated[
    list[str] | None,
    typer.Option("--lenient", help="A named departure from the official result (repeatable), e.g. rewards_extraction; "
                 "see docs/evaluation.md."),
]
StrictOpt = Annotated[
    list[str] | None,
    typer.Option("--strict", help="A named reading stricter than the official result (repeatable), e.g. no_answer; "
                 "see docs/evaluation.md."),
]



@app.command("score")
def score_cmd(
    benchmark: BenchmarkOpt,
    data: DataOpt,
    predictions: Annotated[Path, typer.Option("--predictions", help='JSONL, one {"pid": ..., "response": ...} a line.')],
    output: OutputOpt,
    allow_unknown_ids: Annotated[
        bool, typer.Option("--allow-unknown-ids", help="Warn (instead of failing) on predictions for ids not in the data.")
    ] = False,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_mode: JudgeModeOpt = "fallback",
    judge_api_key_env: JudgeKeyOpt = "OPENAI_API_KEY",
    lenient: LenientOpt = None,
    strict: StrictOpt = None,
) -> None:
    """Score responses produced anywhere against a benchmark's records, as the official scripts do."""
    from visionr1.evaluation.judge import JudgeError
    from visionr1.evaluation.records import EvalError
    from visionr1.evaluation.score import score_predictions

    judge = _judge(judge_url, judge_model, judge_mode, judge_api_key_env)
    try:
        summary = score_predictions(
            benchmark, data, predictions, output, judge=judge, unknown="warn" if allow_unknown_ids else "error",
            leniencies=lenient or (), strict=strict or (),
        )
    except (EvalError, JudgeError) as exc:
        fail(str(exc))
    _report(summary, output)


@app.command("run")
def run_cmd(
    benchmark: BenchmarkOpt,
    model: Annotated[
        str, typer.Option("--model", help="Model directory (a saved checkpoint), or tiny:FAMILY/SIZE as in recipes.")
    ],
    data: DataOpt,
    output: OutputOpt,
    max_new_tokens: Annotated[int, typer.Option(help="Most new tokens per response (Vision-R1: 16384).")] = 16384,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 for greedy (Vision-R1: 0.6).")] = 0.6,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling p (Vision-R1: 0.95).")] = 0.95,
    batch_size: Annotated[int, typer.Option(help="Prompts per generation batch.")] = 8,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N records.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    backend: Annotated[str, typer.Option(help="transformers | vllm (vllm must be installed).")] = "transformers",
    dtype: Annotated[str, typer.Option(help="auto | bfloat16 | float16 | float32.")] = "auto",
    device: Annotated[str | None, typer.Option(help="cuda, cuda:1, cpu, ... (default: cuda if available).")] = None,
    template: Annotated[
        str | None, typer.Option(help="User-turn template with {question} (and {choices}); default: the RL one.")
    ] = None,
    image_root: Annotated[Path | None, typer.Option(help="Folder relative image paths resolve against.")] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Image budget: images resized to at most this many pixels, the processor set to it "
                     "(default: the checkpoint processor's, else 401408)."),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Leave out (count, report) records whose images cannot be used.")
    ] = False,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_mode: JudgeModeOpt = "fallback",
    judge_api_key_env: JudgeKeyOpt = "OPENAI_API_KEY",
    cpu_threads: CpuThreadsOpt = None,
    strategy: Annotated[str, typer.Option(
        help="Inference-time strategy NAME[:key=value,...]: single | staged | beam:width=4,select=logprob|judge | "
             "best-of-n:n=4,select=logprob|judge|oracle | vote:n=4 | caption-first | insight-v; any: step_judge=true "
             "(docs/inference.md).")] = "single",
    summary_model: Annotated[str | None, typer.Option(
        "--summary-model", help="insight-v: the summary agent's checkpoint (or tiny:FAMILY/SIZE); default: --model "
        "plays both roles with the two prompts.")] = None,
    beam_width: Annotated[int | None, typer.Option(
        "--beam-width", min=1, help="beam: candidates per stage (= --strategy beam:width=N; alone it selects beam).")] = None,
    lenient: LenientOpt = None,
    strict: StrictOpt = None,
) -> None:
    """Generate responses (resuming an interrupted run in the same --output), then score them."""
    from rich.progress import Progress

    from visionr1.config.base import RecipeError, parse_model
    from visionr1.data.errors import DataError
    from visionr1.evaluation.judge import JudgeError
    from visionr1.evaluation.records import EvalError
    from visionr1.evaluation.run import run_benchmark
    from visionr1.evaluation.spec import DecodingConfig
    from visionr1.evaluation.strategies import parse_strategy, with_beam_width
    from visionr1.runtime import apply_cpu_threads, summary_line
    from visionr1.training.lock import RunLockedError, output_lock

    judge = _judge(judge_url, judge_model, judge_mode, judge_api_key_env)
    threads = apply_cpu_threads(parse_cpu_threads(cpu_threads) or "auto")
    console.print(f"eval run: {summary_line(threads)}", highlight=False)
    try:
        plan = with_beam_width(parse_strategy(strategy), strategy, beam_width)
        if summary_model is not None:
            if plan.name != "insight-v":
                raise EvalError(f"--summary-model is for --strategy insight-v (the summary agent), not {plan.name}")
            plan.summary_model = summary_model
        decoding = parse_model(DecodingConfig, {"max_new_tokens": max_new_tokens, "temperature": temperature,
                                                "top_p": top_p, "batch_size": batch_size, "seed": seed},
                               source="eval run options (--max-new-tokens, --temperature, --top-p, --batch-size)")
        with output_lock(output, "visionr1 eval run", directory=True), Progress(console=console, transient=True) as bar:
            task = bar.add_task("generating", total=None)
            summary = run_benchmark(
                benchmark, model, data, output, decoding, limit=limit, backend=backend, dtype=dtype, device=device,
                template=template, image_root=image_root, max_pixels=max_pixels, skip_bad=skip_bad, judge=judge,
                progress=lambda done, total: bar.update(task, completed=done, total=total), strategy=plan,
                leniencies=lenient or (), strict=strict or (),
            )
    except (EvalError, DataError, JudgeError, RecipeError, FileNotFoundError, ImportError, RunLockedError) as exc:
        fail(str(exc))
    if summary.get("resumed_from"):
        console.print(f"resumed: {summary['resumed_from']} responses were already in {output / 'predictions.jsonl'}")
    for bad in summary.get("skipped_bad_records", [])[:10]:
        console.print(f"[yellow]skipped[/] {bad['pid']}: {bad['reason']}", highlight=False)
    if summary.get("skipped_bad_records"):
        console.print(f"[yellow]warning:[/] {len(summary['skipped_bad_records'])} records skipped (--skip-bad), scored as wrong")
    _report(summary, output)
    if summary.get("strategy", {}).get("upper_bound"):
        console.print(f"[yellow]{summary['strategy']['note']}[/]")


@app.command("heldout")
def heldout_cmd(
    recipe: Annotated[Path, typer.Argument(help="Pipeline recipe with an eval section (e.g. recipes/demo.yaml).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. eval.samples=8 eval.max_new_tokens=256")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="The pipeline's run directory (default: the recipe's).")] = None,
    cpu_threads: CpuThreadsOpt = None,
) -> None:
    """A pipeline recipe's eval section alone (what `visionr1 run` does last): the base model and every stage's
    final weights on the held-out items (and/or the validation items: eval.split=validation|both), resuming per
    batch; results in RUN/eval/<stage>/summary.json (validation: RUN/eval-validation/<stage>/)."""
    from visionr1.config.base import RecipeError
    from visionr1.pipeline.config import load_pipeline
    from visionr1.pipeline.run import PipelineError, eval_section
    from visionr1.runtime import apply_cpu_threads, summary_line

    extra = [f"output_dir={output_dir.expanduser().resolve()}"] if output_dir else []
    try:
        pipeline = load_pipeline(recipe, [*(overrides or []), *extra])
        if pipeline.eval is None:
            raise RecipeError(f"{recipe}: no eval section (its sections: {', '.join(pipeline.sections()) or 'none'})")
        threads = apply_cpu_threads(parse_cpu_threads(cpu_threads) or pipeline.cpu_threads)
        console.print(f"eval heldout: {summary_line(threads)}", highlight=False)
        results = eval_section(pipeline, console, {})
    except (RecipeError, PipelineError) as exc:
        fail(str(exc))
    from visionr1.pipeline.run import EVAL_DIRS

    for split, stages in results.items():
        for name, r in stages.items():
            greedy = f", greedy {100 * r['greedy']['accuracy']:.1f}%" if "greedy" in r else ""
            console.print(f"{name}: accuracy {100 * r['accuracy']:.1f}%{greedy} (n={r['n']}, {split})", highlight=False)
        console.print(f"wrote {pipeline.run_dir / EVAL_DIRS[split] / 'summary.json'}", highlight=False)


def _report(summary: dict, output: Path) -> None:
    from visionr1.evaluation.score import print_summary

    print_summary(summary, console)
    missing = summary["missing_predictions"]["count"]
    if missing:
        console.print(f"[yellow]warning:[/] {missing} records had no prediction and were scored as wrong")
    unknown = summary["unknown_prediction_ids"]["count"]
    if unknown:
        console.print(f"[yellow]warning:[/] {unknown} predictions had ids not in the data and were ignored")
    console.print(f"wrote {output / 'summary.json'} and {output / 'items.jsonl'}")
