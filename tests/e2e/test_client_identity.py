"""Everything pgvec derives from a client's SQL runs as that client: its role, grants,
row-level security, settings and open transaction decide the answer, exactly as they do
without pgvec. The client here is an ordinary role on psycopg's defaults (autocommit off).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

ROWS, DIM = 300, 4


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((ROWS, DIM)).astype("f4")


@pytest.fixture
def role(pg_uri: str, db_uri: str) -> Iterator[str]:
    name = "r_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {name}")
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {name}")


@pytest.fixture
def tables(pconn: psycopg.Connection, data: np.ndarray, role: str) -> np.ndarray:
    """items (indexed, owner / tenant / price columns), secrets and calls, made by the
    superuser; ``role`` may read items and write calls."""
    pconn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, owner text, tenant text, price int,"
        f" embedding vector({DIM}))"
    )
    with pconn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "text", "int4", "bytea"])
        for i, v in enumerate(data):
            owner = role if i % 3 == 0 else "bob"
            copy.write_row((i, owner, "ab"[i % 2], i % 50, v.tobytes()))
    pconn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    pconn.execute("CREATE TABLE secrets (s text)")
    pconn.execute("INSERT INTO secrets VALUES ('7')")
    pconn.execute("CREATE TABLE calls (id int)")
    pconn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO {role}")
    pconn.execute(f"GRANT SELECT, INSERT ON calls TO {role}")
    return data


@pytest.fixture
def client(proxy_uri: str, role: str, tables: np.ndarray) -> Iterator[psycopg.Connection]:
    """The role's connection through pgvec, on psycopg's defaults (autocommit off)."""
    with psycopg.connect(proxy_uri.replace("postgres@", f"{role}@")) as conn:
        yield conn


def exact(vecs: np.ndarray, q: np.ndarray, ids: list[int], k: int) -> list[int]:
    chosen = np.asarray(sorted(ids))
    d = np.linalg.norm(vecs[chosen] - q, axis=1)
    return chosen[np.argsort(d, kind="stable")][:k].tolist()


def knn(conn: psycopg.Connection, where: str, q: np.ndarray, k: int = 5) -> list[int]:
    rows = conn.execute(
        f"SELECT id FROM items {where} ORDER BY embedding <-> %s LIMIT {k}",
        (str(q.tolist()),),
    ).fetchall()
    return [r[0] for r in rows]


def test_subquery_over_a_table_the_role_may_not_read_is_denied(
    client: psycopg.Connection, data: np.ndarray
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        knn(client, "WHERE id = (SELECT s::int FROM secrets)", data[0])
    client.rollback()
    assert len(knn(client, "", data[0])) == 5  # the session goes on


def test_filter_sees_the_client_role(
    client: psycopg.Connection, data: np.ndarray, role: str
) -> None:
    """``owner = current_user`` is the client's user, not pgvec's."""
    q = data[10]
    mine = [i for i in range(ROWS) if i % 3 == 0]
    assert knn(client, "WHERE owner = current_user", q) == exact(data, q, mine, 5)


def test_filter_by_a_simple_query_sees_the_client_role(
    proxy_uri: str, role: str, data: np.ndarray, tables: np.ndarray
) -> None:
    q = data[10]
    literal = "[" + ",".join(repr(float(x)) for x in q) + "]"
    out = subprocess.run(
        [
            "psql",
            proxy_uri.replace("postgres@", f"{role}@"),
            "-XAtc",
            f"SELECT id FROM items WHERE owner = current_user"
            f" ORDER BY embedding <-> '{literal}' LIMIT 5",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    mine = [i for i in range(ROWS) if i % 3 == 0]
    assert [int(x) for x in out.stdout.split()] == exact(data, q, mine, 5)


def test_column_privileges_apply(
    pconn: psycopg.Connection, client: psycopg.Connection, role: str, data: np.ndarray
) -> None:
    pconn.execute(f"REVOKE SELECT ON items FROM {role}")
    pconn.execute(f"GRANT SELECT (id, owner) ON items TO {role}")
    for where in ("", "WHERE price > 10"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            knn(client, where, data[0])
        client.rollback()
    pconn.execute(f"GRANT SELECT (embedding) ON items TO {role}")
    client.rollback()
    assert len(knn(client, "", data[0])) == 5
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        knn(client, "WHERE price > 10", data[0])


@pytest.mark.parametrize("engine_filter", ["on", "off"])
def test_row_level_security_hides_rows_and_still_fills_k(
    pconn: psycopg.Connection,
    client: psycopg.Connection,
    role: str,
    data: np.ndarray,
    engine_filter: str,
) -> None:
    pconn.execute("ALTER TABLE items ENABLE ROW LEVEL SECURITY")
    pconn.execute(f"CREATE POLICY mine ON items TO {role} USING (owner = current_user)")
    client.execute(f"SET pgvec.engine_filter = {engine_filter}")
    mine = [i for i in range(ROWS) if i % 3 == 0]
    for q in data[[1, 2, 4]]:
        assert knn(client, "", q) == exact(data, q, mine, 5)
        cheap = [i for i in mine if i % 50 < 10]
        assert knn(client, "WHERE price < 10", q) == exact(data, q, cheap, 5)
    # a policy that reads the client's own setting
    client.commit()  # (the client's transaction holds a lock on items)
    pconn.execute("DROP POLICY mine ON items")
    pconn.execute(
        f"CREATE POLICY tenant ON items TO {role}"
        " USING (tenant = current_setting('app.tenant', true))"
    )
    client.execute("SET app.tenant = 'b'")
    q = data[7]
    assert knn(client, "", q, 8) == exact(data, q, list(range(1, ROWS, 2)), 8)
    client.execute("SET app.tenant = 'nobody'")
    assert knn(client, "", q) == []


def test_top_k_in_a_transaction_sees_its_own_writes(
    client: psycopg.Connection, data: np.ndarray
) -> None:
    q = data[20] + 0.01
    before = knn(client, "", q)
    assert before == exact(data, q, list(range(ROWS)), 5)
    client.commit()
    view = data.copy()
    ids = set(range(ROWS))
    # insert a row nearer than any, delete the nearest, move the second far away
    client.execute("INSERT INTO items VALUES (1000, 'x', 'a', 1, %s)", (str(q.tolist()),))
    view = np.vstack([view, np.zeros((1000 - ROWS + 1, DIM), "f4")])
    view[1000] = q
    ids.add(1000)
    client.execute("DELETE FROM items WHERE id = %s", (before[0],))
    ids.discard(before[0])
    far = [100.0] * DIM
    client.execute("UPDATE items SET embedding = %s WHERE id = %s", (str(far), before[1]))
    view[before[1]] = far
    assert knn(client, "", q) == exact(view, q, sorted(ids), 5)
    cheap = [i for i in ids if i == 1000 or (i < ROWS and i % 50 < 25)]
    assert knn(client, "WHERE price < 25", q) == exact(view, q, cheap, 5)
    client.rollback()
    assert knn(client, "", q) == before


def test_client_statement_timeout_applies_to_the_filter(
    pconn: psycopg.Connection, client: psycopg.Connection, data: np.ndarray
) -> None:
    pconn.execute(
        "CREATE FUNCTION slow(i int) RETURNS boolean STABLE LANGUAGE sql"
        " AS 'SELECT pg_sleep(0.02) IS NOT NULL'"
    )
    client.execute("SET statement_timeout = '300ms'")
    start = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        knn(client, "WHERE slow(id)", data[0])
    assert time.monotonic() - start < 3.0  # 300 rows x 20 ms: 6 s unless cancelled
    client.rollback()


def test_volatile_filter_runs_once_per_row_in_the_client_transaction(
    pconn: psycopg.Connection, client: psycopg.Connection, data: np.ndarray, role: str
) -> None:
    pconn.execute(
        "CREATE FUNCTION note(i int) RETURNS boolean VOLATILE LANGUAGE sql"
        " AS 'INSERT INTO calls VALUES (i) RETURNING true'"
    )
    pconn.execute(f"GRANT EXECUTE ON FUNCTION note(int) TO {role}")
    q = data[3]
    assert knn(client, "WHERE note(id)", q) == exact(data, q, list(range(ROWS)), 5)
    (calls,) = client.execute("SELECT count(*) FROM calls").fetchone()  # type: ignore[misc]
    (distinct,) = client.execute("SELECT count(DISTINCT id) FROM calls").fetchone()  # type: ignore[misc]
    assert calls == distinct  # never twice for a row
    client.rollback()
    assert pconn.execute("SELECT count(*) FROM calls").fetchone() == (0,)  # nothing committed


def test_data_modifying_cte_runs_once(
    pconn: psycopg.Connection, client: psycopg.Connection, data: np.ndarray
) -> None:
    q = data[4]
    rows = client.execute(
        "WITH noted AS (INSERT INTO calls VALUES (1) RETURNING id)"
        " SELECT id FROM items WHERE price >= (SELECT count(*) FROM noted)"
        " ORDER BY embedding <-> %s LIMIT 5",
        (str(q.tolist()),),
    ).fetchall()
    admitted = [i for i in range(ROWS) if i % 50 >= 1]
    assert [r[0] for r in rows] == exact(data, q, admitted, 5)
    assert client.execute("SELECT count(*) FROM calls").fetchone() == (1,)
    client.rollback()
    assert pconn.execute("SELECT count(*) FROM calls").fetchone() == (0,)
