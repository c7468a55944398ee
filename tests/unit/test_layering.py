"""The gateway and the worker never import each other (DESIGN.md section 3)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chatrelay

PACKAGE = Path(chatrelay.__file__).parent


def _imports(folder: Path) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                found.update((path.name, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize(("side", "other"), [("gateway", "worker"), ("worker", "gateway")])
def test_one_side_never_imports_the_other(side: str, other: str) -> None:
    crossing = {
        (name, module)
        for name, module in _imports(PACKAGE / side)
        if module == f"chatrelay.{other}" or module.startswith(f"chatrelay.{other}.")
    }
    assert not crossing, f"{side} imports {other}: {sorted(crossing)}"
