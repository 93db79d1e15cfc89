"""hnsw.*, ivfflat.* and pgvec.* settings behave like PostgreSQL's own: SET in a
transaction is rolled back with it, SET LOCAL ends at commit, RESET ALL and DISCARD ALL
restore the defaults, and SHOW / current_setting() answer even before any SET (pgvector's
defaults). The clients run on their defaults: psycopg with autocommit off, psql.

Which ``ivfflat.probes`` a search used shows in its answer: over an IVF index of 50 lists,
50 probes find the exact top-k, 2 probes miss some of it.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

ROWS, DIM, LISTS = 2000, 8, 50
SEARCH = "SELECT id FROM docs ORDER BY embedding <-> %s LIMIT 10"


@pytest.fixture
def data(pconn: psycopg.Connection) -> np.ndarray:
    vecs = np.random.default_rng(11).standard_normal((ROWS, DIM)).astype("f4")
    pconn.execute(f"CREATE TABLE docs (id int PRIMARY KEY, embedding vector({DIM}))")
    with pconn.cursor().copy("COPY docs FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "bytea"])
        for i, v in enumerate(vecs):
            copy.write_row((i, v.tobytes()))
    pconn.execute(f"CREATE INDEX ON docs USING ivfflat (embedding) WITH (lists = {LISTS})")
    return vecs


@pytest.fixture
def client(proxy_uri: str, data: np.ndarray) -> Iterator[psycopg.Connection]:
    """psycopg's defaults: autocommit off."""
    with psycopg.connect(proxy_uri) as conn:
        yield conn


def queries() -> np.ndarray:
    return np.random.default_rng(12).standard_normal((20, DIM)).astype("f4")


def answers(conn: psycopg.Connection) -> list[list[int]]:
    return [[r[0] for r in conn.execute(SEARCH, (str(q.tolist()),)).fetchall()] for q in queries()]


def exact(data: np.ndarray) -> list[list[int]]:
    return [np.argsort(np.linalg.norm(data - q, axis=1))[:10].tolist() for q in queries()]


def show(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def test_show_and_current_setting_answer_before_any_set(client: psycopg.Connection) -> None:
    assert show(client, "hnsw.ef_search") == "40"
    assert show(client, "ivfflat.probes") == "1"
    assert show(client, "pgvec.consistency") == "strong"
    assert show(client, "pgvec.engine_filter") == "on"
    assert client.execute("SELECT current_setting('hnsw.ef_search')").fetchone() == ("40",)
    client.execute("SET hnsw.ef_search = 100")
    assert show(client, "hnsw.ef_search") == "100"
    client.execute("RESET hnsw.ef_search")
    assert show(client, "hnsw.ef_search") == "40"


def test_set_rolled_back_with_its_transaction(client: psycopg.Connection, data: np.ndarray) -> None:
    client.execute(f"SET ivfflat.probes = {LISTS}")
    client.commit()
    assert answers(client) == exact(data)
    client.execute("SET ivfflat.probes = 2")
    few = answers(client)
    assert few != exact(data)
    client.rollback()
    assert show(client, "ivfflat.probes") == str(LISTS)
    assert answers(client) == exact(data)


def test_set_local_ends_at_commit(client: psycopg.Connection, data: np.ndarray) -> None:
    client.execute(f"SET ivfflat.probes = {LISTS}")
    client.commit()
    client.execute("SET LOCAL ivfflat.probes = 2")
    assert answers(client) != exact(data)
    client.commit()
    assert show(client, "ivfflat.probes") == str(LISTS)
    assert answers(client) == exact(data)


def test_rollback_to_savepoint_undoes_a_set(client: psycopg.Connection, data: np.ndarray) -> None:
    client.execute(f"SET ivfflat.probes = {LISTS}")
    with pytest.raises(ZeroDivisionError), client.transaction():
        client.execute("SET ivfflat.probes = 2")
        assert answers(client) != exact(data)
        raise ZeroDivisionError  # psycopg: ROLLBACK TO SAVEPOINT
    assert show(client, "ivfflat.probes") == str(LISTS)
    assert answers(client) == exact(data)


@pytest.mark.parametrize("statement", ["RESET ALL", "DISCARD ALL"])
def test_reset_all_and_discard_all_restore_the_defaults(
    proxy_uri: str, data: np.ndarray, statement: str
) -> None:
    with psycopg.connect(proxy_uri, autocommit=True) as conn:
        conn.execute("SET ivfflat.probes = 8")  # pgvec's default for 50 lists
        default = answers(conn)
        conn.execute("SET ivfflat.probes = 2")
        assert answers(conn) != default
        conn.execute(statement)
        assert show(conn, "ivfflat.probes") == "1"
        assert answers(conn) == default


def test_psql_rolled_back_set(proxy_uri: str, data: np.ndarray) -> None:
    q = queries()[0]
    literal = "[" + ",".join(repr(float(x)) for x in q) + "]"
    knn = f"SELECT id FROM docs ORDER BY embedding <-> '{literal}' LIMIT 10;"
    script = "\n".join(
        [
            f"SET ivfflat.probes = {LISTS};",
            "BEGIN;",
            "SET ivfflat.probes = 2;",
            "ROLLBACK;",
            knn,
            "BEGIN;",
            "SET LOCAL ivfflat.probes = 2;",
            "COMMIT;",
            knn,
        ]
    )
    out = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", proxy_uri],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ids = [int(x) for x in out.stdout.split()]
    assert ids == exact(data)[0] * 2


def test_bad_value_is_still_refused(client: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        client.execute("SET pgvec.consistency = 'sometimes'")
    client.rollback()
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        client.execute("SELECT set_config('pgvec.consistency', 'sometimes', false)")
        answers(client)
    client.rollback()
    assert show(client, "pgvec.consistency") == "strong"
    # a parameter in SET is PostgreSQL's syntax error, as without pgvec (llama-index's
    # async MMR sends one), not a bad value
    for sql in ("SET hnsw.ef_search = %s", "SET LOCAL ivfflat.probes TO %s"):
        with pytest.raises(psycopg.errors.SyntaxError, match=r'at or near "\$1"'):
            client.execute(sql, (40,))
        client.rollback()
    assert show(client, "hnsw.ef_search") == "40"


def test_role_and_database_settings_apply(
    pg_uri: str, pconn: psycopg.Connection, proxy_uri: str, dbname: str, data: np.ndarray
) -> None:
    role = "r_" + uuid.uuid4().hex[:10]
    pconn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        pconn.execute(f"GRANT SELECT ON docs TO {role}")
        pconn.execute(f"ALTER ROLE {role} SET ivfflat.probes = {LISTS}")
        pconn.execute(f'ALTER DATABASE "{dbname}" SET hnsw.ef_search = 77')
        with psycopg.connect(proxy_uri.replace("postgres@", f"{role}@")) as conn:
            assert show(conn, "ivfflat.probes") == str(LISTS)
            assert show(conn, "hnsw.ef_search") == "77"
            assert show(conn, "pgvec.consistency") == "strong"
            assert answers(conn) == exact(data)
    finally:
        pconn.execute(f"DROP OWNED BY {role}")
        pconn.execute(f"DROP ROLE {role}")


def test_no_extra_queries_on_the_common_path(
    client: psycopg.Connection, data: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the session's settings back costs a query only after they may have changed."""
    caplog.set_level(logging.DEBUG, logger="pgvec.proxy.client_state")
    answers(client)
    client.commit()
    answers(client)
    assert not [r for r in caplog.records if "reading" in r.getMessage()]
    client.execute(f"SET ivfflat.probes = {LISTS}")
    answers(client)
    answers(client)
    client.commit()
    answers(client)
    answers(client)
    reads = [r for r in caplog.records if "reading" in r.getMessage()]
    assert len(reads) == 2  # once after the SET, once after the commit


def test_pipeline_rollback_then_search(client: psycopg.Connection, data: np.ndarray) -> None:
    """The search is sent before the ROLLBACK's answer came back (pipeline mode)."""
    client.execute(f"SET ivfflat.probes = {LISTS}")
    client.commit()
    q = queries()[0]
    with client.pipeline():
        client.execute("SET ivfflat.probes = 2")
        client.rollback()
        cur = client.execute(SEARCH, (str(q.tolist()),))
    assert [r[0] for r in cur.fetchall()] == exact(data)[0]
