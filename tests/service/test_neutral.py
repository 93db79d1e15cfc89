"""The core knows no frontend: pgvec/service imports neither the SQL proxy, the rewriter
nor the wire protocol, so that a second frontend (Milvus) sits beside the proxy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgvec

PACKAGE = Path(pgvec.__file__).parent
FRONTENDS = ("pgvec.proxy", "pgvec.rewrite", "pgvec.wire")


def _imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("service", FRONTENDS),
        ("filter", (*FRONTENDS, "pgvec.engine", "pgvec.service")),
        ("rewrite", ("pgvec.engine", "pgvec.service", "pgvec.proxy")),
    ],
)
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(forbidden)
    ]
    assert bad == []
