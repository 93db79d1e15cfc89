"""Databases come and go while pgvec runs: DROP DATABASE works through pgvec, and pgvec
installs nothing into template databases."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fix_proxy import PgvecServer


@pytest.fixture
def other_db(pg_uri: str) -> Iterator[str]:
    """A second database of the cluster (dropped with FORCE afterwards if still there)."""
    name = "o_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute("UPDATE pg_database SET datistemplate = false WHERE datname = %s", (name,))
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_vectors(uri: str) -> int:
    """Create an indexed table, search it (Strong and filtered); returns the database OID."""
    with psycopg.connect(uri, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, tag int, embedding vector(2))")
        c.execute("INSERT INTO items VALUES (1, 1, '[1,1]'), (2, 2, '[2,2]'), (3, 1, '[3,3]')")
        c.execute("CREATE INDEX ON items USING hnsw (embedding)")
        got = c.execute("SELECT id FROM items ORDER BY embedding <-> '[2,2]' LIMIT 1").fetchall()
        assert got == [(2,)]
        got = c.execute(
            "SELECT id FROM items WHERE tag = 1 ORDER BY embedding <-> '[2,2]' LIMIT 1"
        ).fetchall()
        assert got in ([(1,)], [(3,)])
        row = c.execute(
            "SELECT oid::int8 FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])


def wait_until_gone(path: Path) -> None:
    deadline = time.monotonic() + 30
    while path.exists():
        assert time.monotonic() < deadline, f"{path} is still there"
        time.sleep(0.1)


@pytest.mark.parametrize("force", [False, True])
def test_drop_database_through_pgvec(
    force: bool, pgvec_server: PgvecServer, pconn: psycopg.Connection, other_db: str
) -> None:
    oid = use_vectors(pgvec_server.uri(other_db))
    index_dir = pgvec_server.data_dir / "indexes" / str(oid)
    assert index_dir.exists()
    started = time.monotonic()
    pconn.execute(f'DROP DATABASE "{other_db}"' + (" WITH (FORCE)" if force else ""))
    assert time.monotonic() - started < 5  # PostgreSQL waits 5 s for other sessions
    wait_until_gone(index_dir)
    # the same name again: a new, empty database that pgvec serves afresh
    pconn.execute(f'CREATE DATABASE "{other_db}"')
    use_vectors(pgvec_server.uri(other_db))


def test_drop_database_through_psql_simple_protocol(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, other_db: str
) -> None:
    use_vectors(pgvec_server.uri(other_db))
    pconn.pgconn.send_query(f'DROP DATABASE IF EXISTS "{other_db}";'.encode())
    results = pconn.wait(psycopg.generators.execute(pconn.pgconn))
    assert [r.status for r in results] == [psycopg.pq.ExecStatus.COMMAND_OK], [
        r.error_message for r in results
    ]
    assert pconn.execute(
        "SELECT count(*) FROM pg_database WHERE datname = %s", (other_db,)
    ).fetchone() == (0,)


def test_drop_database_in_use_is_refused_and_the_session_goes_on(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, other_db: str
) -> None:
    use_vectors(pgvec_server.uri(other_db))
    with psycopg.connect(pgvec_server.uri(other_db), autocommit=True) as user:
        with pytest.raises(psycopg.errors.ObjectInUse, match="being accessed by other users"):
            pconn.execute(f'DROP DATABASE "{other_db}"')
        got = user.execute("SELECT id FROM items ORDER BY embedding <-> '[3,3]' LIMIT 1")
        assert got.fetchall() == [(3,)]


def test_drop_database_straight_with_force(
    pgvec_server: PgvecServer, pg_uri: str, other_db: str
) -> None:
    """Dropped behind pgvec's back: pgvec notices and serves a new one of that name."""
    use_vectors(pgvec_server.uri(other_db))
    with psycopg.connect(pg_uri, autocommit=True) as direct:
        direct.execute(f'DROP DATABASE "{other_db}" WITH (FORCE)')
        direct.execute(f'CREATE DATABASE "{other_db}"')
    time.sleep(1.5)  # the background sync meets the dropped database
    use_vectors(pgvec_server.uri(other_db))


def test_template_databases_get_no_pgvec_schema(
    pgvec_server: PgvecServer, pg_uri: str, other_db: str
) -> None:
    with psycopg.connect(pg_uri, autocommit=True) as direct:
        direct.execute(f'ALTER DATABASE "{other_db}" IS_TEMPLATE true')
    with psycopg.connect(pgvec_server.uri(other_db), autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)  # passed through
        assert c.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgvec'"
        ).fetchone() == (0,)
    # no pgvec connection lingers on the template: databases can be created from it
    copy = "c_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as direct:
        direct.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{other_db}"')
        direct.execute(f'DROP DATABASE "{copy}"')


PSQL = "/usr/bin/psql"


def psql(uri: str, sql: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PSQL, "-X", "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def has_pgvec_schema(uri: str) -> bool:
    with psycopg.connect(uri) as c:
        row = c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgvec'").fetchone()
        return row == (1,)


@pytest.mark.parametrize("force", [False, True])
def test_drop_and_create_again_with_psql(
    force: bool, pgvec_server: PgvecServer, dbname: str, other_db: str
) -> None:
    """psql through pgvec, as an administrator does it: DROP DATABASE while pgvec holds
    pooled connections to it, CREATE DATABASE of the same name, and at once a client of
    the new database finds pgvec's schema there and vector tables working."""
    admin = pgvec_server.uri(dbname)
    for _ in range(2):
        use_vectors(pgvec_server.uri(other_db))
        psql(admin, f'DROP DATABASE "{other_db}"' + (" WITH (FORCE)" if force else ""))
        psql(admin, f'CREATE DATABASE "{other_db}"')
        assert has_pgvec_schema(pgvec_server.uri(other_db))


def test_drop_with_force_while_a_client_is_connected(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, other_db: str
) -> None:
    """DROP DATABASE ... WITH (FORCE) through pgvec ends the sessions on it (a client
    connected through pgvec too); the database made again with that name is served afresh."""
    use_vectors(pgvec_server.uri(other_db))
    user = psycopg.connect(pgvec_server.uri(other_db), autocommit=True)
    try:
        pconn.execute(f'DROP DATABASE "{other_db}" WITH (FORCE)')
        pconn.execute(f'CREATE DATABASE "{other_db}"')
        with pytest.raises(psycopg.OperationalError):
            user.execute("SELECT 1")
    finally:
        user.close()
    assert has_pgvec_schema(pgvec_server.uri(other_db))
    use_vectors(pgvec_server.uri(other_db))


def test_dropped_and_created_again_straight_is_served_at_once(
    pgvec_server: PgvecServer, pg_uri: str, other_db: str
) -> None:
    """Dropped and made again behind pgvec's back, and connected to at once (no time for
    pgvec's background work to notice): the new database gets pgvec's schema."""
    use_vectors(pgvec_server.uri(other_db))
    time.sleep(1.1)
    assert has_pgvec_schema(pgvec_server.uri(other_db))  # a client, just before
    with psycopg.connect(pg_uri, autocommit=True) as direct:
        direct.execute(f'DROP DATABASE "{other_db}" WITH (FORCE)')
        direct.execute(f'CREATE DATABASE "{other_db}"')
    assert has_pgvec_schema(pgvec_server.uri(other_db))
    use_vectors(pgvec_server.uri(other_db))
