"""The CLI's layout: commands imported lazily, one module per stage, no import cycle, the same commands listed.

Each check runs in a fresh interpreter, since what matters is what ends up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import COMMANDS, app

SRC = Path(__file__).resolve().parents[2] / "src"

# `visionr1 --help` as it was before the commands became lazy (names and order).
LISTED = ["coldstart", "demo", "make-tiny-model", "make-synthetic", "score-rewards", "train", "recipe", "data", "eval", "insight",
          "run"]  # `run` (the pipeline recipe) added after
GROUPS = {"recipe": ["explain", "check"], "data": ["inspect"], "eval": ["score", "run", "heldout"], "insight": ["data"]}


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON value."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _modules_after(argv: list[str]) -> list[str]:
    return _fresh(
        "import json, sys\n"
        "from visionr1.cli import app\n"
        f"try:\n    app({argv!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('visionr1', 'torch', 'transformers')))))"
    )


def test_help_lists_the_same_commands_in_the_same_order():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    positions = [result.output.find(f"│ {name} ") for name in LISTED]
    assert -1 not in positions, result.output
    assert positions == sorted(positions)
    assert list(COMMANDS) == LISTED
    for group, subs in GROUPS.items():
        out = CliRunner().invoke(app, [group, "--help"]).output
        assert all(f"│ {s} " in out for s in subs), out


def test_train_imports_only_the_training_command():
    modules = _modules_after(["train", "--help"])
    assert "visionr1.training.cli" in modules
    for other in ("visionr1.coldstart", "visionr1.evaluation", "visionr1.demo", "visionr1.rewards", "visionr1.tasks",
                  "visionr1.data", "visionr1.models", "torch", "transformers"):
        assert not any(m == other or m.startswith(other + ".") for m in modules), (other, modules)


@pytest.mark.parametrize("name", ["coldstart", "eval", "make-synthetic"])
def test_each_command_imports_its_own_package_only(name):
    package = {"coldstart": "visionr1.coldstart", "eval": "visionr1.evaluation", "make-synthetic": "visionr1.tasks"}
    modules = _modules_after([name, "--help"])
    assert any(m.startswith(package[name]) for m in modules)
    others = {"visionr1.training", *package.values()} - {package[name]}
    assert not [m for m in modules if m.split(".")[0:2] in [o.split(".") for o in others]], modules


def test_command_modules_do_not_import_the_main_app():
    """No cycle: every command module imports on its own, without pulling in visionr1.cli."""
    targets = sorted({t.partition(":")[0] for t in COMMANDS.values()} - {"visionr1.cli"})
    found = _fresh(
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for m in {targets!r}:\n"
        "    importlib.import_module(m)\n"
        "    out[m] = 'visionr1.cli' in sys.modules\n"
        "print(json.dumps(out))"
    )
    assert found == dict.fromkeys(targets, False)


def test_every_registered_name_resolves_to_a_command_of_that_name():
    import typer

    group = typer.main.get_command(app)
    for name in COMMANDS:
        command = group.get_command(None, name)
        assert command is not None and command.name == name
        assert (name in GROUPS) == hasattr(command, "list_commands"), name


def test_make_synthetic_moved_to_the_tasks_package():
    assert COMMANDS["make-synthetic"].startswith("visionr1.tasks.cli:")
    from visionr1.models import cli as models_cli

    assert [c.name for c in models_cli.app.registered_commands] == ["make-tiny-model"]


def test_a_typo_still_gets_a_suggestion():
    result = CliRunner().invoke(app, ["trian"])
    assert result.exit_code == 2 and "Did you mean 'train'?" in result.output


# Names that once meant different things in different modules (issue 14, item 5); each now has one definition.
ONE_MEANING = ["LLMJudge", "JudgeError", "Generation", "RawRecord", "parse_box", "TASKS", "format_choices",
               "strip_thinking", "atomic_write_text", "package_versions", "git_info",
               "run_dir_of", "TINY_PREFIX", "resolve_path"]  # issue 27: one recipe loader (config/loader.py)


def test_shared_names_are_defined_once():
    import ast

    defined: dict[str, list[str]] = {name: [] for name in ONE_MEANING}
    for path in sorted((SRC / "visionr1").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) else [
                t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
            for name in names:
                if name in defined:
                    defined[name].append(str(path.relative_to(SRC)))
    assert {n: where for n, where in defined.items() if len(where) > 1} == {}
    assert all(defined[n] for n in ONE_MEANING), defined  # and each still exists
