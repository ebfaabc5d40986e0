"""A pipeline's eval section evaluates a benchmark (issue 24, item 6): ``eval: {benchmark: mathvision, data: ...}``
(with ``columns`` and the leniencies) scores every checkpoint by the benchmark's official rules as
``eval run -b`` does; ``--dry-run`` checks the records before anything trains; a stage's ``eval_dataset``
summary names what it evaluated. The model is a stand-in (only the wiring is under test)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from visionr1.config.base import RecipeError
from visionr1.pipeline import run as pipeline_run
from visionr1.pipeline.config import load_pipeline
from visionr1.pipeline.run import PipelineError, plan


class _Generator:
    calls = 0

    def __init__(self, model_path, decoding, backend, dtype, device):
        self.processor = None

    def __call__(self, prompts, images):
        from visionr1.inference import Generation

        type(self).calls += len(prompts)
        return [Generation("<think>hm</think><answer> Final Answer:A </answer>", 5, False) for _ in prompts]


@pytest.fixture
def mathv(tmp_path, monkeypatch):
    """MATH-V records whose answer column is named ``gt`` (eval.columns maps it), and a stand-in model."""
    from tests.varied import write_mathv

    import visionr1.evaluation.run as run

    monkeypatch.setattr(run, "Generator", _Generator)
    path = write_mathv(tmp_path / "mathv", 5, 0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**{k: v for k, v in r.items() if k != "answer"}, "gt": r["answer"]}) + "\n"
                            for r in rows))
    (tmp_path / "model").mkdir()
    return path, rows


def _recipe(tmp_path: Path, data: Path, extra: str = "", overrides=()) -> object:
    text = (f"name: bench-eval\nmodel: {{path: {tmp_path / 'model'}}}\n"
            f"eval: {{benchmark: mathvision, data: {data}, columns: {{answer: gt}}, lenient: [rewards_extraction], "
            f"max_new_tokens: 4, batch_size: 2{extra}}}\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_pipeline(path, [f"output_dir={tmp_path / 'run'}", *overrides])


def test_eval_section_scores_each_checkpoint_by_the_benchmarks_official_rules(tmp_path, mathv):
    data, rows = mathv
    p = _recipe(tmp_path, data)
    buf = io.StringIO()
    out = pipeline_run.main(p, console=Console(file=buf, width=200))
    base = out["eval"]["heldout"]["base"]
    assert base["benchmark"] == "mathvision" and base["n"] == 5 and base["leniencies"] == ["rewards_extraction"]
    right = sum(r["answer"] == "A" for r in rows)  # every response answers A, in the Vision-R1-cold format
    assert base["correct"] == right
    summary = json.loads((p.run_dir / "eval" / "base" / "summary.json").read_text())
    assert summary["benchmark"] == "mathvision" and summary["scoring"]["extraction"]["answer_format"] == 5
    assert json.loads((p.run_dir / "eval" / "summary.json").read_text())["base"]["benchmark"] == "mathvision"
    assert "eval base: mathvision" in buf.getvalue()


def test_dry_run_checks_the_benchmark_records_before_training(tmp_path, mathv):
    data, _ = mathv
    assert plan(_recipe(tmp_path, data))["eval"]["check"] == {"records": 5}
    with pytest.raises(PipelineError, match=r"no column 'solution_text' \(eval.columns maps 'answer' to it\)"):
        plan(_recipe(tmp_path, data, overrides=["eval.columns.answer=solution_text"]))
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": "1", "question": "q", "options": []}) + "\n")
    with pytest.raises(PipelineError, match=r"record 1: missing field\(s\) \['answer'\]"):
        plan(_recipe(tmp_path, bare, overrides=["eval.columns={}"]))
    with pytest.raises(PipelineError, match="not found; set eval.data to the mathvision records"):
        plan(_recipe(tmp_path, tmp_path / "nowhere.jsonl"))


@pytest.mark.parametrize(
    "overrides,says",
    [
        (["eval.benchmark=mathvison"], "unknown benchmark 'mathvison': did you mean 'mathvision'"),
        (["eval.lenient=[everything]"], "unknown leniency"),
        (["eval.split=both"], "a benchmark is evaluated on its own records"),
        (["eval.benchmark=null"], "eval.columns applies to a benchmark's scoring: set eval.benchmark"),
    ],
)
def test_eval_section_options_are_checked_when_the_recipe_loads(tmp_path, mathv, overrides, says):
    data, _ = mathv
    with pytest.raises(RecipeError, match=says):
        _recipe(tmp_path, data, overrides=overrides)


def test_a_stage_eval_summary_names_its_benchmark(tmp_path, monkeypatch):
    import visionr1.inference as inference
    from visionr1.data.spec import DatasetSpec
    from visionr1.evaluation.run import dataset_benchmark, eval_line, evaluate_samples
    from visionr1.inference import Generation

    monkeypatch.setattr(inference, "generate", lambda model, processor, prompts, images, **kw:
                        [Generation("<think>a</think><answer>4</answer>", 7, False) for _ in prompts])

    class Model:
        training = False

        def eval(self):
            return self

    rows = [{"id": str(i), "prompt": [{"role": "user", "content": "q"}], "images": [], "solution": str(4 + i % 2),
             "task": "math", "choices": None} for i in range(4)]
    name = dataset_benchmark(DatasetSpec(format="mathv", path=str(tmp_path / "testmini.jsonl")))
    scores = evaluate_samples(Model(), rows, processor=object(), output_dir=tmp_path / "eval", benchmark=name)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["benchmark"] == "mathvision" and summary["scored_by"] == "rewards" and summary["accuracy"] == 0.5
    assert eval_line("grpo", scores).startswith("eval grpo: mathvision (4 items, rewards' scorer): accuracy 50.0%")
