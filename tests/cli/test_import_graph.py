"""No import circle inside the package (issue 27): the modules of ``src/visionr1`` form a graph without cycles.

Why every import counts, deferred ones too: a circle hidden behind an import inside a function still means two
modules that cannot be understood (or moved) apart, and it breaks the day someone hoists the import to the top.
Laziness belongs at the CLI boundary, which loads commands by name (``importlib``), not by import statements.
Only ``if TYPE_CHECKING:`` blocks are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its code (``from pkg import sub`` names ``pkg.sub``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    found.add(f"{module}.{alias.name}")
                elif module in known:
                    found.add(module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    files = {_module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    return {name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", known)
            for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def test_the_package_has_no_import_circle():
    graph = import_graph(SRC, "visionr1")
    assert len(graph) > 50  # the walk found the package
    found = cycles(graph)
    detail = [f"{' <-> '.join(c)}: " + "; ".join(f"{a} imports {b}" for a in c for b in sorted(graph[a]) if b in c)
              for c in found]
    assert found == [], "import circles (move the shared code into a module both can import):\n" + "\n".join(detail)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(("files", "expected"), [
    # a circle hidden in a function, as tasks/detection <-> tasks/synthetic was
    ({"p/__init__.py": "", "p/a.py": "from p.b import f\n", "p/b.py": "def f():\n    from p.a import g\n"},
     [["p.a", "p.b"]]),
    # relative imports and `from pkg import module`, three modules long
    ({"p/__init__.py": "", "p/x/__init__.py": "", "p/x/a.py": "from . import b\n",
      "p/x/b.py": "from ..c import h\n", "p/c.py": "import p.x.a\n"}, [["p.c", "p.x.a", "p.x.b"]]),
    # TYPE_CHECKING imports never run: no circle
    ({"p/__init__.py": "", "p/a.py": "from p.b import f\n",
      "p/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.a import g\n"}, []),
    # a package importing its own module, and a name (not a module) from a package: no circle
    ({"p/__init__.py": "from p.a import f\n", "p/a.py": "def f():\n    pass\n", "p/b.py": "from p import f\n"}, []),
])
def test_the_walk_finds_circles_of_every_shape(tmp_path, files, expected):
    _write(tmp_path, files)
    assert cycles(import_graph(tmp_path, "p")) == expected
