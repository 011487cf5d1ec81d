"""House rule 1: the decision core imports nothing that does I/O; only adapters talk out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy"
IO_MODULES = {"kopf", "kubernetes", "mlflow", "aiohttp", "requests", "urllib", "http",
              "socket", "subprocess", "asyncio"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
            if node.module.startswith("modeldeploy."):
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")) +
                         sorted((PACKAGE / "api").glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_and_api_do_no_io(path: Path) -> None:
    found = imports(path)
    assert not found & IO_MODULES, f"{path.name} imports {found & IO_MODULES}"
    assert not {m for m in found if m.startswith(("modeldeploy.adapters",
                                                  "modeldeploy.controller"))}


def test_only_adapters_import_the_kubernetes_and_mlflow_clients() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "adapters" in path.parts:
            continue
        if imports(path) & {"kubernetes", "mlflow"}:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
