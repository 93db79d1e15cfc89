"""The code base stays ruff-clean (rules in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed with .[test]")
def test_ruff() -> None:
    out = subprocess.run(
        ["ruff", "check", "pgvec", "tests", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_sqlglot_is_pure_python() -> None:
    """The dialect subclasses sqlglot's; the compiled build (sqlglotc) cannot be subclassed."""
    import sqlglot.parser

    assert sqlglot.parser.__file__.endswith(".py")


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is installed with .[test]")
def test_mypy_strict() -> None:
    out = subprocess.run(
        ["mypy", "--strict", "pgvec"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
