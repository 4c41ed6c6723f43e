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
        "import bot.chain\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from voice import x\n"
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
