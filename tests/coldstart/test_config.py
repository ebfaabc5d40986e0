"""The cold-start recipe: shipped recipes load; typos, unknown backends and broken templates fail early with
the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionr1.coldstart.backends import OpenAIBackend
from visionr1.coldstart.config import load_coldstart_recipe, resolve_templates
from visionr1.coldstart.pipeline import step_fingerprints
from visionr1.config.base import RecipeError

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes" / "coldstart").glob("*.yaml"))

BASE = """
name: t
input: {format: jsonl, path: data.jsonl}
backends:
  mllm: {type: openai, base_url: "http://127.0.0.1:8000/v1", model: m}
  r1: {type: openai, base_url: "http://127.0.0.1:8001/v1", model: r, api_key_env: CS_TEST_MISSING_KEY}
pseudo_cot: {backend: mllm}
description: {backend: mllm}
reasoning: {backend: r1}
"""


@pytest.fixture
def base(tmp_path):
    p = tmp_path / "base.yaml"
    p.write_text(BASE)
    return p


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_load(path):
    r = load_coldstart_recipe(path)
    assert set(resolve_templates(r)) == {"pseudo_cot", "description", "reasoning"}
    assert path.read_text().startswith("#")  # starts with the command that runs it


def test_two_shipped_recipes_real_and_demo():
    names = {p.name for p in RECIPES}
    assert {"vision_r1_cold.yaml", "synthetic_oracle.yaml"} <= names
    real = load_coldstart_recipe(RECIPES[[p.name for p in RECIPES].index("vision_r1_cold.yaml")])
    assert real.backends["r1"].api_key_env == "DEEPSEEK_API_KEY" and real.backends["qwen72b"].type == "openai"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("reasoning.backend=r2", "reasoning.backend: unknown backend 'r2'; did you mean r1?"),
        ("reasoning.max_token=10", "reasoning.max_token: unknown key; did you mean max_tokens?"),
        ("description.variant=fancy", "description.variant: Input should be 'detailed', 'formal' or 'caption_first'"),
        ("backends.mllm.concurency=4", "backends.mllm.concurency: unknown key; did you mean concurrency?"),
        ("filters.min_think_char=3", "filters.min_think_char: unknown key; did you mean min_think_chars?"),
        ("backends.mllm.type=vllm", "backends.mllm.type: unknown type 'vllm'; one of openai, local, oracle"),
        ("input.pth=x", "input.pth: unknown key; did you mean path?"),
        ("input.prompt.templat=x", "input.prompt.templat: unknown key; did you mean template?"),
        ("input.format=csv", "input.format: unknown format 'csv'; one of geometry3k, sharegpt"),
        ("backends.mllm.timeout_s=-1", "backends.mllm.timeout_s: Input should be greater than 0 (got -1)"),
        ("pseudo_cot.prompt=Describe {question}", "pseudo_cot: template (pseudo_cot.prompt) lacks {answer}"),
    ],
)
def test_errors_name_the_field_and_the_fix(base, override, expected):
    with pytest.raises(RecipeError) as err:
        load_coldstart_recipe(base, [override])
    assert expected in str(err.value)
    assert str(base) in str(err.value)


def test_prompt_file_relative_to_recipe_and_latex_braces_survive(base, tmp_path):
    (tmp_path / "p.txt").write_text("{description}\nQ: {question}{choices} Put it in \\boxed{}.")
    r = load_coldstart_recipe(base, ["reasoning.prompt_file=p.txt"])
    assert resolve_templates(r)["reasoning"].endswith("\\boxed{}.")
    with pytest.raises(RecipeError, match="prompt_file: file not found"):
        load_coldstart_recipe(base, ["reasoning.prompt_file=nope.txt"])
    with pytest.raises(RecipeError, match="not both"):
        load_coldstart_recipe(base, ["reasoning.prompt_file=p.txt", "reasoning.prompt='{description} {question}'"])


def test_missing_api_key_env_names_the_variable(base, monkeypatch):
    r = load_coldstart_recipe(base)
    monkeypatch.delenv("CS_TEST_MISSING_KEY", raising=False)
    with pytest.raises(RecipeError, match="CS_TEST_MISSING_KEY is not set"):
        OpenAIBackend("r1", r.backends["r1"])


def test_fingerprints_change_with_what_shapes_the_output_only(base):
    fp = step_fingerprints(load_coldstart_recipe(base), resolve_templates(load_coldstart_recipe(base)))

    def fps(*ov):
        r = load_coldstart_recipe(base, list(ov))
        return step_fingerprints(r, resolve_templates(r))

    # driving knobs (host, concurrency, timeouts) keep finished work valid
    assert fps("backends.mllm.concurrency=99", "backends.mllm.base_url=http://other:1/v1", "backends.r1.timeout_s=5") == fp
    # a different step-2 template invalidates steps 2 and 3, not step 1
    changed = fps("description.variant=formal")
    assert changed["pseudo_cot"] == fp["pseudo_cot"] and changed["description"] != fp["description"]
    assert changed["reasoning"] != fp["reasoning"]
    assert fps("reasoning.temperature=0.6")["description"] == fp["description"]


def test_oracle_needs_synthetic_records(base):
    with pytest.raises(RecipeError, match="oracle backend needs synthetic records"):
        load_coldstart_recipe(base, ["backends.o={type: oracle}", "reasoning.backend=o", "input.format=geometry3k"])
