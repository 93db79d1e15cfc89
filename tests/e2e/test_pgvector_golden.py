"""pgvector's documented SQL, area by area, as psql sessions (tests/e2e/golden/pgvector_*.sql)
run by the real psql against pgvec and against real pgvector: the output must be the same.

Sessions round distances to 9 digits: pgvec's come from FAISS's float32 arithmetic, and
pgvector's from its own; both are float32 sums, added in different orders.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

GOLDEN = Path(__file__).parent / "golden"
SESSIONS = sorted(GOLDEN.glob("pgvector_*.sql"))


def run_psql(uri: str, script: Path) -> str:
    out = subprocess.run(
        ["psql", uri, "-X", "-f", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=script.parent,
    )
    return out.stdout + out.stderr


@pytest.fixture
def real_pgvector_uri(pg_uri: str, dbname: str) -> Iterator[str]:
    name = dbname + "_golden"
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    uri = urlunsplit(urlsplit(pg_uri)._replace(path="/" + name))
    with psycopg.connect(uri, autocommit=True) as c:
        c.execute("CREATE EXTENSION vector")
    yield uri
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("script", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_session_matches_pgvector(script: Path, proxy_uri: str, real_pgvector_uri: str) -> None:
    expected = run_psql(real_pgvector_uri, script)
    got = run_psql(proxy_uri, script)
    assert got == expected
    assert "ERROR" not in expected
