"""The import direction: core below everything, the app (bot/, plugins/) above everything."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "persona", "memory", "voice", "training", "bot", "plugins")
# what each layer may import at run time (type-only imports under `if TYPE_CHECKING:` are free)
ALLOWED = {
    "core": {"core"},
    "persona": {"core", "persona"},
    "memory": {"core", "persona", "memory"},
    "voice": {"core", "persona", "memory", "voice"},
    "training": {"core", "persona", "memory", "training"},
    "bot": {"core", "persona", "memory", "voice", "bot"},
    "plugins": set(PACKAGES),
}


def _type_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> set[str]:
    """Top-level project packages a module imports outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module.split(".")[0])
            visit(child)

    visit(tree)
    return found & set(PACKAGES)


def test_the_checker_sees_runtime_and_ignores_type_only_imports() -> None:
    tree = ast.parse(
        "import bot.pipeline.chain\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from voice import x\n"
        "def f():\n    from memory.store import Store\n"
    )
    assert runtime_imports(tree) == {"bot", "memory"}


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_import_only_downwards(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = runtime_imports(ast.parse(path.read_text(encoding="utf-8"))) - ALLOWED[package]
        if bad:
            wrong.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not wrong, "\n".join(wrong)


# Every import counts below, at module level, inside functions and under `if TYPE_CHECKING:`: a circle
# hidden behind a deferred or type-only import still ties two modules together (neither can be read,
# type-checked or moved without the other), and the circles this guards against were of that kind.
def module_name(path: Path) -> str:
    """The dotted name of a project file: bot/pipeline/stages/gate.py is bot.pipeline.stages.gate."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules a module imports anywhere in it (`from a import b` is a.b when b is a module)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph(files: dict[str, tuple[ast.AST, bool]]) -> dict[str, set[str]]:
    """Module name -> the project modules it imports."""
    known = set(files)
    return {name: imported_modules(tree, name, pkg, known) for name, (tree, pkg) in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def project_files() -> dict[str, tuple[ast.AST, bool]]:
    """Every module of the shipped packages, parsed."""
    return {
        module_name(path): (ast.parse(path.read_text(encoding="utf-8")), path.name == "__init__.py")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_the_cycle_finder_sees_deferred_type_only_and_relative_imports() -> None:
    files = {
        "m.a": (ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from m.b import B\n"), False),
        "m.b": (ast.parse("def f():\n    from . import a\n"), False),
        "m.c": (ast.parse("import m.a\n"), False),
    }
    graph = import_graph(files)
    assert graph == {"m.a": {"m.b"}, "m.b": {"m.a"}, "m.c": {"m.a"}}
    assert cycles(graph) == [["m.a", "m.b"]]


def test_no_import_cycles() -> None:
    found = cycles(import_graph(project_files()))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_stages_import_no_other_stage() -> None:
    """A stage imports contracts and helpers only, so each one can be read and tested alone."""
    graph = import_graph(project_files())
    wrong = [
        f"{name} imports {', '.join(sorted(m for m in imports if m.startswith('bot.pipeline.stages.')))}"
        for name, imports in sorted(graph.items())
        if name.startswith("bot.pipeline.stages.") and any(m.startswith("bot.pipeline.stages.") for m in imports)
    ]
    assert not wrong, "\n".join(wrong)


def test_core_names_nothing_above_it_even_for_a_type() -> None:
    """Contracts sit at the bottom: core/ imports only core/, type-only imports included."""
    wrong = [
        f"{name} imports {', '.join(sorted(m for m in imports if m.split('.')[0] != 'core'))}"
        for name, imports in sorted(import_graph(project_files()).items())
        if name.split(".")[0] == "core" and any(m.split(".")[0] != "core" for m in imports)
    ]
    assert not wrong, "\n".join(wrong)
