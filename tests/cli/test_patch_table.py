"""Every row of the patch table (visionr1.patches.PATCHES) says why, where and what upstream says, and names tests
that exist: a library upgrade that makes a patch wrong fails a named test, and the table cannot cite one that is
gone. And no module outside visionr1.patches touches the private code of TRL's or transformers' trainers, so the
table cannot miss such a patch."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from visionr1.patches import PATCHES

REPO = Path(__file__).resolve().parents[2]


def test_every_patch_names_tests_that_exist():
    assert len(PATCHES) >= 10
    for patch in PATCHES:
        assert patch.hook and patch.where and patch.why and patch.upstream, patch
        refs = [r for r in re.split(r",\s*", patch.test) if r]
        assert refs, patch.hook
        for ref in refs:
            path, _, name = ref.partition("::")
            source = (REPO / path).read_text()  # the file exists
            if name:
                assert f"def {name.split('[')[0]}(" in source, f"{patch.hook}: {ref} names no test"


# The trainers whose private code visionr1 may touch only from visionr1.patches (read as source: no import of TRL).
LIBRARY_TRAINERS = (("transformers", "trainer.py"), ("trl", "trainer/grpo_trainer.py"),
                    ("trl", "trainer/sft_trainer.py"), ("trl", "trainer/dpo_trainer.py"))


def _library_private_names() -> set[str]:
    """The private methods (``def _x`` in a class) and instance attributes (``self._x = ...``) of those trainers."""
    names: set[str] = set()
    for package, rel in LIBRARY_TRAINERS:
        path = Path(importlib.util.find_spec(package).submodule_search_locations[0]) / rel
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names |= {f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id == "self"):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_private_trainer_code_is_touched_outside_patches():
    private = _library_private_names()
    assert {"_generate", "_logs", "_metrics", "_load_from_checkpoint", "_save_checkpoint"} <= private
    found = []
    package = REPO / "src" / "visionr1"
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] == "patches":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):  # an override: a method of ours named like one of theirs
                found += [f"{path.name}:{f.lineno} def {f.name}" for f in node.body
                          if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name in private]
            elif isinstance(node, ast.Attribute) and node.attr in private:  # a read or write of theirs
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not found, f"private TRL/transformers trainer code used outside visionr1.patches (move it there, with a " \
                      f"row in PATCHES): {found}"
