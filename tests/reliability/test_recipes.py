"""Recipes from careless or hostile hands: files that are not recipes (never echoed back), literal secrets
(refused, never printed), and ``file.py:function`` rewards checked at ``--dry-run`` without running them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.config.base import RecipeError
from visionr1.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
GRPO = REPO / "recipes" / "tiny" / "grpo.yaml"
SECRET = "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2"

# files that are not recipes, with a fragment of their content that must never appear in the error
NOT_RECIPES = {
    "shadow": ("".join(f"user{i}:$6$saltsalt$hashhash{i}:19000:0:99999:7:::\n" for i in range(30)), "hashhash"),
    "private_key": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
                    "-----END OPENSSH PRIVATE KEY-----\n", "b3BlbnNzaC1rZXkt"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "IHDR"),
    "latin1": ("name: caf\xe9\npassword: hunter2\n".encode("latin-1"), "hunter2"),
    "yaml_list": ("- root\n- secret-value-123\n", "secret-value-123"),
    "broken_yaml": ("name: x\nkey: [unclosed, topsecret-999\n", "topsecret-999"),
    "env_file": ("DB_PASSWORD=hunter2-db\nAWS_KEY=abc123\n", "hunter2-db"),
    "huge": ("a: " + "x" * (5 * 1024 * 1024) + "\n", "xxxxxxxxxx"),
}


def _write(path: Path, content) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("kind", list(NOT_RECIPES))
@pytest.mark.parametrize("how", ["include", "direct"])
def test_not_a_recipe_is_one_line_without_its_content(tmp_path, kind, how):
    """Before: `include: /etc/shadow` printed every line of the file as an 'unknown key'."""
    content, fragment = NOT_RECIPES[kind]
    target = _write(tmp_path / f"{kind}.txt", content)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"include: {target}\nname: x\n") if how == "include" else None
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe if how == "include" else target)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 300, msg
    assert fragment not in msg and str(target.resolve()) in msg
    res = CliRunner().invoke(app, ["recipe", "check", str(recipe if how == "include" else target)])
    assert res.exit_code == 2 and fragment not in res.output


def test_unknown_keys_are_capped_and_clipped(tmp_path):
    """A mapping of many long junk keys that look like field names still gives a short error."""
    keys = "".join(f"k{i}_{'a' * 200}: 1\n" for i in range(100))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"include: {GRPO}\n{keys}")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    lines = str(err.value).splitlines()
    assert len(lines) <= 23 and all(len(line) < 250 for line in lines) and "more" in lines[-1]


def _judge_recipe(tmp_path, **kwargs) -> Path:
    recipe = tmp_path / "judge.yaml"
    kw = {"base_url": "http://127.0.0.1:9/v1", "model": "judge", **kwargs}
    recipe.write_text(f"include: {GRPO}\nstages:\n  ptst-1:\n    rewards:\n"
                      f"      - {{name: llm_judge, kwargs: {json.dumps(kw)}}}\n")
    return recipe


@pytest.mark.parametrize("where", ["file", "override", "key_shaped_value"])
def test_literal_secret_in_a_recipe_is_refused_and_never_printed(tmp_path, where):
    """Before: kwargs.api_key went verbatim into manifest.json, recipe.json and the --dry-run output."""
    if where == "file":
        recipe, overrides = _judge_recipe(tmp_path, api_key=SECRET), []
    elif where == "override":
        recipe, overrides = _judge_recipe(tmp_path), [f"stages.ptst-1.rewards.0.kwargs.api_key={SECRET}"]
    else:
        recipe, overrides = _judge_recipe(tmp_path, headers={"Authorization": f"Bearer {SECRET}"}), []
    with pytest.raises(RecipeError, match="literal secret") as err:
        load_recipe(recipe, overrides)
    assert SECRET not in str(err.value) and "api_key_env" in str(err.value)
    res = CliRunner().invoke(app, ["train", str(recipe), *overrides, "--dry-run", "--plan-only", "-o", str(tmp_path / "run")])
    assert res.exit_code == 2 and "literal secret" in res.output and SECRET not in res.output
    assert not (tmp_path / "run").exists()


def test_key_from_the_named_env_var_only(tmp_path, monkeypatch):
    from visionr1.rewards.registry import build_reward_funcs

    recipe = _judge_recipe(tmp_path, api_key_env="REL_JUDGE_KEY")
    res = CliRunner().invoke(app, ["train", str(recipe), "--dry-run", "--plan-only", "-o", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["stages"][0]["rewards"][0]["kwargs"]["api_key_env"] == "REL_JUDGE_KEY"
    spec = {"name": "llm_judge", "kwargs": {"base_url": "http://h/v1", "model": "j", "api_key_env": "REL_JUDGE_KEY"}}
    monkeypatch.delenv("REL_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match="REL_JUDGE_KEY is not set"):
        build_reward_funcs([spec])
    monkeypatch.setenv("REL_JUDGE_KEY", SECRET)
    judge = build_reward_funcs([spec]).funcs[0]
    assert judge._key == SECRET
    with pytest.raises(ValueError, match="literal api_key is refused"):
        type(judge)(base_url="http://h/v1", model="j", api_key=SECRET)


def test_secrets_redacted_in_manifest_dry_run_and_errors(tmp_path, monkeypatch):
    """Defence in depth: whatever reaches a file or a message (an error quoting a key, an env secret) is
    redacted by the one helper."""
    from visionr1.training.manifest import Manifest
    from visionr1.utils.io import dumps_json

    monkeypatch.setenv("REL_SOME_API_KEY", "plain-looking-secret-value")
    data = {"stages": [{"name": "s", "error": f"HTTP 401: bad key {SECRET}; token plain-looking-secret-value"}],
            "recipe": {"kwargs": {"api_key": "abc", "token": "t0k3n-value", "api_key_env": "K"}},
            "url": "https://bob:hunter22@example.com/v1"}
    m = Manifest(tmp_path, data)
    m.save()
    text = (tmp_path / "manifest.json").read_text()
    for leak in (SECRET, "plain-looking-secret-value", "t0k3n-value", "hunter22", '"abc"'):
        assert leak not in text and leak not in dumps_json(data)
    saved = json.loads(text)
    assert saved["recipe"]["kwargs"]["api_key_env"] == "K" and saved["url"] == "https://<redacted>@example.com/v1"
    assert not list(tmp_path.glob("*.tmp*"))


# ----------------------------------------------------------------------------- plugins

PLUGIN = '''
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the plugin ran")  # a side effect at import

def score(completions, **kwargs):
    return [1.0 for _ in completions]
'''


@pytest.mark.parametrize("case, spec, expect", [
    ("ok", "plugin.py:score", None),
    ("missing_file", "nowhere.py:score", "not found"),
    ("missing_function", "plugin.py:scroe", "defines no 'scroe'; did you mean 'score'?"),
    ("syntax_error", "broken.py:score", "broken.py:1: not valid Python"),
])
def test_dry_run_checks_plugins_without_running_them(tmp_path, case, spec, expect):
    """Before: --dry-run accepted a missing plugin file; training imported it (running its code) only later."""
    (tmp_path / "plugin.py").write_text(PLUGIN)
    (tmp_path / "broken.py").write_text("def score(completions:\n    return []\n")
    recipe = tmp_path / "p.yaml"
    recipe.write_text(f"include: {GRPO}\nstages:\n  ptst-1:\n    rewards:\n      - {{name: {spec}}}\n")
    res = CliRunner().invoke(app, ["train", str(recipe), "--dry-run", "--plan-only", "-o", str(tmp_path / "run")])
    if expect is None:
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["stages"][0]["rewards"][0]["name"] == str(tmp_path / "plugin.py") + ":score"
    else:
        assert res.exit_code == 2 and expect in " ".join(res.output.split()), res.output
    assert not (tmp_path / "IMPORTED").exists()  # checked by parsing, never imported at --dry-run


def test_plugins_are_documented_as_running_code():
    res = CliRunner().invoke(app, ["recipe", "explain", "stages"], env={**os.environ, "COLUMNS": "400"})
    assert "RUNS ITS CODE" in res.output
    assert "runs its code" in (REPO / "README.md").read_text().lower()
