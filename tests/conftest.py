"""Shared fixtures: a real PostgreSQL for every test that needs one.

By default a throwaway PostgreSQL 16 is started from the ``pgserver`` wheel (about a
second). Set ``PGVEC_TEST_DSN`` to run against an existing server instead.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

pytest_plugins = ["tests.fix_proxy", "tests.fix_pgvector"]

#: diskannpy 0.7.0, the only release with a wheel for this Python, pins numpy 1.25 and is
#: therefore no dependency of pgvec (see pyproject.toml); its wheel runs on numpy 2. The
#: DISKANN tests install it without dependencies into .cache/ once, as the README says.
DISKANNPY = "diskannpy==0.7.0"
CACHE = Path(__file__).resolve().parents[1] / ".cache"


def pytest_configure(config: pytest.Config) -> None:
    if importlib.util.find_spec("diskannpy") is not None:
        return
    target = CACHE / "diskannpy"
    if not (target / "diskannpy").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                DISKANNPY,
            ],
            check=False,
            timeout=300,
        )
    if (target / "diskannpy").is_dir():
        sys.path.insert(0, str(target))


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """URI of a superuser connection to a scratch PostgreSQL cluster."""
    dsn = os.environ.get("PGVEC_TEST_DSN")
    if dsn:
        yield dsn
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="pgvec-test-pg-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture
def dbname(pg_uri: str) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_uri(pg_uri: str, dbname: str) -> str:
    """URI of a superuser connection to the fresh database of ``dbname``."""
    return psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)


@pytest.fixture
def conn(db_uri: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection straight to PostgreSQL (bypassing pgvec)."""
    with psycopg.connect(db_uri, autocommit=True) as c:
        yield c
