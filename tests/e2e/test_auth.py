"""The proxy relays the client's own authentication: SCRAM-SHA-256, md5, and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


@pytest.fixture(scope="module")
def password_users(pg_uri: str) -> Iterator[None]:
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        original = hba.read_text()
        conn.execute("DROP ROLE IF EXISTS pgvec_scram")
        conn.execute("DROP ROLE IF EXISTS pgvec_md5")
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute("CREATE ROLE pgvec_scram LOGIN SUPERUSER PASSWORD 's3cret'")
        conn.execute("SET password_encryption = 'md5'")
        conn.execute("CREATE ROLE pgvec_md5 LOGIN SUPERUSER PASSWORD 'md5pw'")
        hba.write_text("local all pgvec_scram scram-sha-256\nlocal all pgvec_md5 md5\n" + original)
        conn.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            hba.write_text(original)
            conn.execute("SELECT pg_reload_conf()")


@pytest.mark.parametrize(("user", "password"), [("pgvec_scram", "s3cret"), ("pgvec_md5", "md5pw")])
def test_password_auth_through_pgvec(
    password_users: None, pgvec_server: object, proxy_uri: str, user: str, password: str
) -> None:
    uri = proxy_uri.replace("postgres@", f"{user}:{password}@")
    with psycopg.connect(uri, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(2))")
        conn.execute("INSERT INTO t VALUES (1, '[1,1]')")
        assert conn.execute(
            "SELECT id FROM t ORDER BY embedding <-> '[0,0]' LIMIT 1"
        ).fetchall() == [(1,)]
    bad = proxy_uri.replace("postgres@", f"{user}:wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad)
