"""The rooms' order (ARCHITECTURE.md, "Rooms"): a module imports only its own room and the rooms below it.
The walk reads every import of the package with ast, lazy ones inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import archiver

# Top to bottom; rooms on one line are side by side and may not import each other.
ORDER = [
    {"cli"},
    {"service", "web"},
    {"dock"},
    {"central"},
    {"operations"},
    {"backup"},
    {"audit", "retention"},
    {"ingest"},
    {"cases"},
    {"archive"},
    {"ledger"},
    {"catalog"},
    {"fs", "config", "defaults", "errors", "periods", "problems", "i18n", "__init__"},
]
GROUND = len(ORDER) - 1
PACKAGE = Path(archiver.__file__).parent


def _level(room: str) -> int:
    for level, rooms in enumerate(ORDER):
        if room in rooms:
            return level
    raise AssertionError(f"archiver.{room} is in no room of ORDER: give it its place")


def _room(module: str) -> str:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else "__init__"
    return "cli" if room == "__main__" else room  # `python -m archiver` is the command line


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if name == "archiver":  # `from archiver import cli`
                found += [(node.lineno, f"archiver.{alias.name}") for alias in node.names
                          if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()]
    return [(line, name) for line, name in found if name == "archiver" or name.startswith("archiver.")]


def upward_imports() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        here = _room(module)
        for line, name in _imports(path, module):
            there = _room(name)
            if name == "archiver" or there == here:
                continue
            a, b = _level(here), _level(there)
            if b < a or (b == a and a != GROUND):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return wrong


def test_no_module_imports_a_room_above_its_own():
    assert upward_imports() == []


def test_the_walk_finds_an_upward_import(tmp_path: Path):
    """The check itself can fail: a module of a low room importing the CLI is found."""
    source = "from archiver.cli import main\nimport archiver.service.client\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    found = [(line, name) for line, name in _imports(path, "archiver.catalog.x")]
    assert found == [(1, "archiver.cli"), (2, "archiver.service.client")]
    assert all(_level(_room(name)) < _level("catalog") for _line, name in found)


def test_the_architecture_shows_the_same_order():
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Rooms and their order"):]
    block = section[section.index("```\n") + 4:section.index("\n```", section.index("```\n") + 4)]
    shown = [{word[:-1] for word in line.split() if word.endswith("/")} for line in block.splitlines()]
    assert [level for level in shown if level] == ORDER[:-1]


def test_help_and_version_start_without_the_catalog_or_the_daemon():
    """`archiver --help` lists every command and `--version` answers without importing SQLAlchemy or the daemon's
    machinery: the person's first command starts in a tenth of a second (measured by scripts/bench, not here)."""
    import subprocess
    import sys

    for args in (["--help"], ["--version"], ["cases", "--help"], ["daemon", "--help"]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archiver", *args], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-500:]
        loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert "click" in loaded and not {m for m in loaded if m.split(".")[0] == "sqlalchemy"
                                          or m.startswith(("archiver.dock", "archiver.catalog"))}, args


def test_no_module_over_500_lines_and_no_function_over_60():
    """The house's size rules (ARCHITECTURE.md names any module allowed more, and why: none today); migrations
    are what they are."""
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        if text.count("\n") > 500:
            long_modules.append(str(path.relative_to(PACKAGE)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert (long_modules, long_functions) == ([], [])
