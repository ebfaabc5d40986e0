"""Names with one meaning (issue 27): the option letters, the default image budget and the ``<answer>`` block
pattern are each defined once, and no module keeps a private copy under another name (a copy drifts: one
module's 26 letters against another's 8)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

ONE_HOME = {
    "LETTERS": "visionr1/rewards/extract.py",
    "ANSWER_BLOCK_RE": "visionr1/rewards/extract.py",
    "DEFAULT_MAX_PIXELS": "visionr1/data/spec.py",
}


def _module_assignments(path: Path) -> list[tuple[str, ast.expr]]:
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            found += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.append((node.target.id, node.value))
    return found


def _files() -> list[Path]:
    return sorted((SRC / "visionr1").rglob("*.py"))


def test_each_name_is_defined_in_its_one_home():
    where: dict[str, list[str]] = {name: [] for name in ONE_HOME}
    for path in _files():
        for name, _ in _module_assignments(path):
            if name in where:
                where[name].append(path.relative_to(SRC).as_posix())
    assert where == {name: [home] for name, home in ONE_HOME.items()}


def test_no_private_copy_of_the_letters_or_the_answer_pattern():
    copies = []
    for path in _files():
        rel = path.relative_to(SRC).as_posix()
        for name, value in _module_assignments(path):
            if (name, rel) in {(n, h) for n, h in ONE_HOME.items()}:
                continue
            text = ast.unparse(value)
            if "ABCDEFGHIJKLMNOPQRSTUVWXYZ" in text or "ascii_uppercase" in text:
                copies.append(f"{rel}: {name} = {text}")
            if "<answer>(.*?)</answer>" in text:
                copies.append(f"{rel}: {name} = {text}")
            if text.replace(" ", "") in ("512*28*28", "401408"):
                copies.append(f"{rel}: {name} = {text}")
    assert copies == [], "import the one definition instead:\n" + "\n".join(copies)


def test_the_users_of_the_letters_share_them():
    from visionr1.data import prompts
    from visionr1.evaluation.benchmarks import base
    from visionr1.rewards import extract, scoring

    assert prompts.LETTERS is base.LETTERS is scoring.LETTERS is extract.LETTERS
    assert prompts.ANSWER_BLOCK_RE is base.ANSWER_BLOCK_RE is extract.ANSWER_BLOCK_RE
    assert extract.ANSWER_BLOCK_RE.findall("<think>x</think><ANSWER> a\nb </ANSWER><answer>c</answer>") == [" a\nb ", "c"]


def test_every_schema_a_recipe_file_is_loaded_into_is_named_a_recipe():
    """``config.loader.load`` / ``validate`` read a file into a schema: each such schema is a *recipe* kind and is
    named ``...Recipe`` (``Recipe`` and ``Pipeline`` were two of them under other names). The one exception is a
    section read on its own: ``data inspect`` takes a bare dataset file as a ``DatasetSpec``, the schema of every
    stage's ``dataset:``."""
    loaded = set()
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("load", "validate")
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id[0].isupper()):
                loaded.add(node.args[0].id)
    assert {"TrainRecipe", "PipelineRecipe", "ColdstartRecipe"} <= loaded
    assert sorted(n for n in loaded if not n.endswith("Recipe")) == ["DatasetSpec"]
