"""The docs cannot drift from the code (issue 27): every relative link names a file (and heading) that exists, every
``visionr1 ...`` command line names a command and options the CLI has, and every recipe such a line names loads
with the overrides it gives.

Read: README.md, docs/*.md, benchmarks/README.md (links and commands) and the header comments of recipes/**.yaml
(commands). Commands come from shell code blocks and from inline code that starts with ``visionr1``; they are
parsed with the CLI's own click app (no process per command) and the recipes loaded in-process, as
``visionr1 recipe check`` loads them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from visionr1.cli import app

REPO = Path(__file__).resolve().parents[2]

# Pages written on other branches of the same release (issue 28: distributed training and vLLM; issue 25:
# reliability guarantees). The README links them; until they arrive a link to them may dangle, nothing else may.

SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```([\w-]*)\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
REPO_PATH = re.compile(r"(?<![\w./-])((?:recipes|configs|docs|benchmarks|src|tests)/[\w./{},*<>-]*[\w*}/])")
BARE_MD = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
WRAPPERS = {"nice", "time", "-n"}
COMMAND_START = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*=\S+\s+)*(nice -n \d+ )?(\S*/)?(visionr1|python|make|accelerate|bash)\b")


def doc_files(repo: Path = REPO) -> list[Path]:
    files = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return files + [p for p in [repo / "benchmarks" / "README.md"] if p.exists()]


def recipe_files(repo: Path = REPO) -> list[Path]:
    return sorted((repo / "recipes").rglob("*.yaml"))


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    argv: tuple[str, ...]  # after `visionr1`


# ------------------------------------------------------------------------------------------------ reading docs


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """(prose lines, code lines with their block's language), each with its 1-based line number."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str, str]] = []
    lang: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence.group(2).lower()
            continue
        if lang is None:
            prose.append((number, line))
        else:
            code.append((number, line, lang))
    return prose, code


def links(path: Path) -> list[tuple[int, str]]:
    prose, _ = split_markdown(path.read_text())
    found = []
    for number, line in prose:
        line = INLINE_CODE.sub("", line)
        found += [(number, m.group(1)) for m in LINK.finditer(line)]
    return found


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    prose, _ = split_markdown(path.read_text())
    anchors: set[str] = set()
    for _, line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).replace("`", "").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(path: Path, repo: Path = REPO) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        rel = dest.relative_to(repo).as_posix() if dest.is_relative_to(repo) else str(dest)
        if not dest.exists():
            problems.append(f"{path.relative_to(repo)}:{number}: link to {target!r}: no such file {rel}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest):
            problems.append(f"{path.relative_to(repo)}:{number}: link to {target!r}: {rel} has no heading #{anchor}")
    return problems


def _segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``||``, ``;``, ``|``, ``&``; comments dropped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _visionr1_argv(tokens: list[str]) -> list[str] | None:
    """The arguments after ``visionr1`` (or ``python -m visionr1``), when this simple command runs it."""
    i = 0
    while i < len(tokens) and (ENV_ASSIGNMENT.match(tokens[i]) or tokens[i] in WRAPPERS or tokens[i].isdigit()):
        i += 1
    rest = tokens[i:]
    if rest and (rest[0] == "visionr1" or rest[0].endswith("/visionr1")):
        return rest[1:]
    if len(rest) >= 3 and Path(rest[0]).name.startswith("python") and rest[1:3] == ["-m", "visionr1"]:
        return rest[3:]
    return None


def _shell_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Lines with their backslash continuations joined, numbered by their first line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        start, text = pending if pending else (number, "")
        text += line
        if line.rstrip().endswith("\\"):
            pending = (start, text.rstrip()[:-1] + " ")
        else:
            pending = None
            joined.append((start, text))
    if pending:
        joined.append(pending)
    return joined


def commands_in(path: Path, repo: Path = REPO) -> tuple[list[Command], list[str]]:
    """The ``visionr1`` command lines of a Markdown file or a recipe header, and lines that do not parse."""
    rel = path.relative_to(repo).as_posix()
    if path.suffix == ".md":
        prose, code = split_markdown(path.read_text())
        shell = _shell_lines([(n, line) for n, line, lang in code if lang in SHELL_BLOCKS])
        inline = [(n, m.group(2).strip()) for n, line in prose for m in INLINE_CODE.finditer(line)
                  if re.match(r"^(\.venv/bin/)?visionr1(\s|$)", m.group(2).strip())]
    else:  # a recipe: the comment lines before the first key
        header = []
        continued = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.startswith("#"):
                break
            text = line.lstrip("#").strip()
            if continued or COMMAND_START.match(text):  # prose comment lines are not commands
                header.append((n, text))
            continued = text.endswith("\\")
        shell, inline = _shell_lines(header), []
    found: list[Command] = []
    unparsable: list[str] = []
    for number, line in [*shell, *inline]:
        try:
            segments = _segments(line)
        except ValueError as exc:
            if "visionr1" in line:
                unparsable.append(f"{rel}:{number}: {exc}: {line.strip()}")
            continue
        for tokens in segments:
            argv = _visionr1_argv(tokens)
            if argv is not None:
                found.append(Command(f"{rel}:{number}", tuple(argv)))
    return found, unparsable


def doc_recipes(path: Path, repo: Path = REPO) -> dict[str, str]:
    """Recipes a doc shows in full: a ``yaml`` block with a ``stages:`` key, named by the first ``*.yaml`` file
    of the paragraph before it (``Save this as `my-vision-r1.yaml` ...``) that is not a file of the repository
    (a shown recipe never stands in for a shipped one)."""
    found: dict[str, str] = {}
    paragraph: list[str] = []  # the prose paragraph being read, or the last one when a blank line ended it
    block: list[str] | None = None
    ended = False
    for line in path.read_text().splitlines():
        fence = FENCE.match(line)
        if fence and block is None:
            if fence.group(2).lower() == "yaml":
                block = []
            else:
                paragraph = []
            continue
        if fence:
            text = "\n".join(block) + "\n"
            names = [n for n in re.findall(r"`([\w./-]+\.yaml)`", " ".join(paragraph)) if not (repo / n).exists()]
            if names and re.search(r"^stages:", text, re.M):
                found[names[0]] = text
            block, paragraph = None, []
            continue
        if block is not None:
            block.append(line)
        elif not line.strip():
            ended = True
        else:
            paragraph = [line] if ended else [*paragraph, line]
            ended = False
    return found


# ------------------------------------------------------------------------------------------------ checking commands


def _placeholder(token: str) -> str | None:
    """Doc notation for optional parts: ``[--output-dir DIR]`` -> ``--output-dir DIR``; ``[overrides]``, ``...``
    -> nothing. A token with ``=`` is an override or ``--opt=value``, kept whole (``model.freeze=[a, b]``)."""
    if "=" in token:
        return token
    if token.startswith("[") and token.endswith("]") and not token.startswith("[-"):
        return None
    token = token.strip("[]")
    return None if token in ("", "...", "…") else token


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # duck-typed: typer ships its own copy of click


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def resolve(argv: tuple[str, ...], group: Any) -> tuple[Any, list[str], list[str], str]:
    """(the leaf command, its arguments, the problems, its full name)."""
    command = group
    name = "visionr1"
    args = [t for t in (_placeholder(a) for a in argv) if t is not None]
    problems: list[str] = []
    while _is_group(command):
        options = _options(command)
        while args and args[0].startswith("-"):
            if args[0].split("=")[0] not in options:
                problems.append(f"`{name}` has no option {args[0]} (it has {', '.join(sorted(options))})")
            args.pop(0)
        if not args:
            return None, [], problems, name
        sub = command.get_command(command.make_context(name, [], resilient_parsing=True), args[0])
        if sub is None:
            known = ", ".join(command.list_commands(None))
            problems.append(f"`{name}` has no command {args[0]!r} (it has {known})")
            return None, [], problems, name
        name += f" {args.pop(0)}"
        command = sub
    options = _options(command)
    for arg in args:
        if re.match(r"^--?[A-Za-z]", arg) and arg.split("=")[0] not in options:
            problems.append(f"`{name}` has no option {arg.split('=')[0]} (it has {', '.join(sorted(options))})")
    return command, args, problems, name


def _recipe_and_overrides(command: Any, name: str, args: list[str],
                          defined: dict[str, Path]) -> tuple[Path, list[str]] | None:
    """The recipe file a command line names (relative to the repository) and its overrides, when it names one."""
    try:
        ctx = command.make_context(name, list(args), resilient_parsing=True)
    except Exception:  # noqa: BLE001 - a line the parser refuses was reported by resolve()
        return None
    recipe, overrides = ctx.params.get("recipe"), list(ctx.params.get("overrides") or [])
    if name == "visionr1 demo":
        if recipe is not None and "=" in str(recipe) and not (REPO / str(recipe)).is_file():
            overrides, recipe = [str(recipe), *overrides], None
        recipe = recipe or Path("recipes/demo.yaml")
    if recipe is not None and str(recipe) in defined:
        return defined[str(recipe)], overrides
    if recipe is None or not (REPO / str(recipe)).is_file():
        return None
    return Path(recipe), overrides


def recipe_problem(name: str, recipe: Path, overrides: list[str]) -> str | None:
    """Load the recipe as the command would (``recipe check`` for the training and pipeline commands)."""
    from visionr1.config.base import RecipeError

    try:
        if name == "visionr1 coldstart":
            from visionr1.pipeline.load import load_coldstart_section

            load_coldstart_section(recipe, overrides)
        elif name == "visionr1 insight data":
            from visionr1.insight.config import load_insight_recipe

            load_insight_recipe(recipe, overrides)
        elif name in ("visionr1 train", "visionr1 run", "visionr1 demo", "visionr1 recipe check"):
            result = CliRunner().invoke(app, ["recipe", "check", str(recipe), *overrides])
            if result.exit_code != 0:
                return " ".join(result.output.split())[:600]
    except (RecipeError, ValueError) as exc:
        return " ".join(str(exc).split())[:600]
    return None


def check_commands(commands: list[Command], defined: dict[str, Path] | None = None) -> list[str]:
    """Problems of the command lines; ``defined``: recipes the docs show in full, written out to files."""
    group = typer.main.get_command(app)
    problems: list[str] = []
    loads: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for cmd in commands:
        leaf, args, found, name = resolve(cmd.argv, group)
        problems += [f"{cmd.where}: {p}" for p in found]
        if leaf is None or found:
            continue
        named = _recipe_and_overrides(leaf, name, args, defined or {})
        if named is not None:
            loads.setdefault((name, str(named[0]), tuple(named[1])), []).append(cmd.where)
    for (name, recipe, overrides), where in loads.items():
        problem = recipe_problem(name, Path(recipe), list(overrides))
        if problem:
            problems.append(f"{where[0]}: `{name} {recipe} {' '.join(overrides)}` does not load: {problem}")
    return problems


def _expand(pattern: str) -> list[str]:
    """``a-{1,2}.json`` -> ``a-1.json``, ``a-2.json`` (shell brace expansion, one level)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    return [pattern] if not m else [pattern[:m.start()] + part + pattern[m.end():] for part in m.group(1).split(",")]


def named_files(path: Path, repo: Path = REPO) -> list[tuple[int, str]]:
    """Repository paths a doc names (``recipes/...``, ``docs/...``, ``src/...``, ...) outside text/yaml/python
    blocks, and the ``*.md`` pages a recipe header cites."""
    if path.suffix == ".md":
        prose, code = split_markdown(path.read_text())
        lines = prose + [(n, line) for n, line, lang in code if lang in SHELL_BLOCKS]
        bare_md = False
    else:
        lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("#")]
        bare_md = True
    found = []
    for number, line in lines:
        for m in REPO_PATH.finditer(line):
            found.append((number, m.group(1)))
        if bare_md:
            found += [(number, m.group(1)) for m in BARE_MD.finditer(line) if "/" not in m.group(1)]
    return found


def missing_files(path: Path, repo: Path = REPO) -> list[str]:
    problems = []
    for number, name in named_files(path, repo):
        if "<" in name or name.rstrip("/").endswith("..."):
            continue  # a placeholder: results/<time>/
        for candidate in _expand(name):
            if "/" not in candidate:  # a page cited by name in a recipe header
                hits = [repo / candidate, repo / "docs" / candidate]
                exists = any(h.exists() for h in hits)
            else:
                exists = bool(list(repo.glob(candidate.rstrip("/"))))
            if not exists:
                problems.append(f"{path.relative_to(repo)}:{number}: names {candidate}, which does not exist")
    return problems


# ------------------------------------------------------------------------------------------------ the checks


def test_every_relative_link_names_a_file_and_heading_that_exist():
    problems = [p for path in doc_files() for p in broken_links(path)]
    assert problems == [], "\n".join(problems)


def test_every_file_the_docs_name_exists():
    problems = [p for path in [*doc_files(), *recipe_files()] for p in missing_files(path)]
    assert problems == [], "\n".join(problems)


def test_every_visionr1_command_line_names_a_command_and_options_that_exist(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # the docs' commands run from the repository root
    commands: list[Command] = []
    unparsable: list[str] = []
    for path in [*doc_files(), *recipe_files()]:
        found, bad = commands_in(path)
        commands += found
        unparsable += bad
    assert len(commands) > 40  # the docs were read
    defined = {}
    for path in doc_files():
        for name, text in doc_recipes(path).items():
            defined[name] = tmp_path / Path(name).name
            defined[name].write_text(text)
    assert any(c.argv[1:2] == ("my-vision-r1.yaml",) for c in commands) and "my-vision-r1.yaml" in defined
    problems = unparsable + check_commands(commands, defined)
    assert problems == [], "\n".join(problems)


def test_the_readme_shows_one_complete_recipe_that_loads(monkeypatch, tmp_path):
    """The ten-minute path's recipe: complete (no include), a cold start, PTST stages, and it passes the checks
    `visionr1 recipe check` makes (TRL configs built, batch shapes for 8 processes)."""
    monkeypatch.chdir(REPO)
    recipes = doc_recipes(REPO / "README.md")
    assert list(recipes) == ["my-vision-r1.yaml"]
    (name, text), = recipes.items()
    assert "include:" not in text
    path = tmp_path / Path(name).name
    path.write_text(text)
    result = CliRunner().invoke(app, ["recipe", "check", str(path), "launch.num_processes=8"])
    assert result.exit_code == 0, result.output
    import json

    resolved = json.loads(result.output)
    assert [s["type"] for s in resolved["stages"]] == ["sft", "grpo", "grpo"]
    assert resolved["stages"][0]["dataset"]["format"] == "sharegpt"
    assert {s["dataset"]["format"] for s in resolved["stages"][1:]} == {"geometry3k"}


def test_one_launch_story():
    """Multi-process runs go through the recipe's ``launch:`` section; ``visionr1 train`` launches each stage
    itself. An outer ``accelerate launch ... visionr1 train`` ran every stage in one set of processes, the set-up
    that broke the next stage (training/launch.py)."""
    outer = re.compile(r"accelerate\s+launch\b.*\b(which visionr1|-m visionr1|visionr1\s+train)"
                       # the stories before configs/accelerate/cpu-*.yaml: ACCELERATE_USE_CPU sends accelerate to its
                       # one-process launcher (two processes asked, one ran), --multi_gpu by hand instead of a config
                       r"|ACCELERATE_USE_CPU=\S+\s.*visionr1|launch\.args=\[?\s*--multi_gpu")
    problems = []
    for path in [*doc_files(), *recipe_files(), *sorted((REPO / "configs").rglob("*.yaml"))]:
        lines = path.read_text().splitlines()
        if path.suffix == ".md":
            _, code = split_markdown(path.read_text())
            lines_to_check = _shell_lines([(n, line) for n, line, lang in code if lang in SHELL_BLOCKS])
        else:
            lines_to_check = _shell_lines([(n, line) for n, line in enumerate(lines, 1) if line.startswith("#")])
        problems += [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for n, line in lines_to_check if outer.search(line)]
    assert problems == [], "use `visionr1 train RECIPE launch.num_processes=N launch.config_file=...`:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------------------ the checker itself


def test_the_checker_finds_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Two words\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "See [a](docs/a.md), [b](docs/a.md#two-words), [web](https://example.com), [me](#top-part).\n"
        "Broken: [c](docs/missing.md) and [d](docs/a.md#nowhere) and `[not a link](docs/x.md)`.\n\n"
        "# Top part\n\n"
        "Inline: `visionr1 train RECIPE --dry-run`, `visionr1 trian RECIPE`, `visionr1 eval run --no-such-flag`.\n\n"
        "```bash\n"
        "visionr1 recipe check recipes/tiny/ptst.yaml \\\n"
        "    stages.ptst-2.grpo.max_steps=3   # a comment --bogus\n"
        "CUDA_VISIBLE_DEVICES=0 visionr1 train recipes/tiny/ptst.yaml stages.ptst-9.grpo.max_steps=3 [--output-dir DIR]\n"
        "make demo && .venv/bin/visionr1 eval heldout recipes/demo.yaml -o runs/x\n"
        "python -m visionr1 data inspect data/geo3k --format geometry3k --limitt 5\n"
        "```\n\n"
        "```text\nvisionr1 nonsense is not a command here\n```\n"
    )
    assert broken_links(readme, tmp_path) == [
        "README.md:2: link to 'docs/missing.md': no such file docs/missing.md",
        "README.md:2: link to 'docs/a.md#nowhere': docs/a.md has no heading #nowhere",
    ]
    commands, bad = commands_in(readme, tmp_path)
    assert bad == []
    assert [c.argv[0] for c in commands] == ["recipe", "train", "eval", "data", "train", "trian", "eval"]
    problems = check_commands(commands)
    assert len(problems) == 4, problems
    assert "`visionr1 data inspect` has no option --limitt" in problems[0]
    assert "`visionr1` has no command 'trian'" in problems[1]
    assert "`visionr1 eval run` has no option --no-such-flag" in problems[2]
    assert "stages.ptst-9.grpo.max_steps=3` does not load" in problems[3] and "no stage named 'ptst-9'" in problems[3]


def test_the_checker_finds_files_that_are_not_there(tmp_path):
    (tmp_path / "recipes" / "tiny").mkdir(parents=True)
    (tmp_path / "recipes" / "tiny" / "a.yaml").write_text("# Numbers from the paper (docs: research.md).\nname: a\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text(
        "`recipes/tiny/a.yaml`, `recipes/tiny/`, `recipes/tiny/{a,z}.yaml`, `benchmarks/results/<time>/`, runs/x.md\n\n"
        "```text\nrecipes/example.yaml: not checked in a text block\n```\n"
        "```bash\nvisionr1 train recipes/missing.yaml\n```\n")
    assert missing_files(tmp_path / "docs" / "b.md", tmp_path) == [
        "docs/b.md:1: names recipes/tiny/z.yaml, which does not exist",
        "docs/b.md:7: names recipes/missing.yaml, which does not exist",
    ]
    assert missing_files(tmp_path / "recipes" / "tiny" / "a.yaml", tmp_path) == [
        "recipes/tiny/a.yaml:1: names research.md, which does not exist"]


@pytest.mark.parametrize(("line", "argv"), [
    ("visionr1 train r.yaml", ["train", "r.yaml"]),
    ("A=1 B=2 visionr1 demo", ["demo"]),
    ("nice -n 10 visionr1 demo x.yaml", ["demo", "x.yaml"]),
    ("python -m visionr1 eval run -b x", ["eval", "run", "-b", "x"]),
    ("accelerate launch --num_processes 2 x.py visionr1", None),
    ("echo visionr1 train", None),
    ("cd /tmp && visionr1 run r.yaml; visionr1 demo & wait", ["run", "r.yaml"]),
])
def test_command_lines_are_read_as_the_shell_reads_them(line, argv):
    found = [a for a in (_visionr1_argv(t) for t in _segments(line)) if a is not None]
    assert (found[0] if found else None) == argv
