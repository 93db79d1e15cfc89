"""A second index with the same operator class on one column, as pgvector allows (an HNSW
index made beside an IVFFlat one, as SQLAlchemy's and Django's pgvector tests and the
"move from IVFFlat to HNSW" path do): CREATE INDEX succeeds as against pgvector, the index
created last is the one pgvec builds and searches, the other stays recorded as a standby
(``pgvec.indexes.standby``), DROP INDEX of either works, and a dump keeps both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.e2e.test_dump_restore import BIN, PSQL, fresh_db, run
from tests.fix_proxy import PgvecServer, pgvector_database

__all__ = ["fresh_db"]  # a fixture

N, DIM = 400, 8
ROWS = np.random.default_rng(3).standard_normal((N, DIM)).astype("f4")
QUERIES = np.random.default_rng(4).standard_normal((5, DIM)).astype("f4")

STATEMENTS = [
    "CREATE INDEX items_ivf ON items USING ivfflat (embedding vector_l2_ops) WITH (lists = 4)",
    "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) WITH (m = 8)",
]


def vec(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def fill(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    with conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
        for i, v in enumerate(ROWS):
            copy.write_row((i, vec(v)))


def indexes(conn: psycopg.Connection) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return conn.execute(
        "SELECT index_name::text, method, state,"
        " (SELECT array_agg(s->>'index_name') FROM jsonb_array_elements(standby) s)"
        " FROM pgvec.indexes ORDER BY 1"
    ).fetchall()


def wait_ready(conn: psycopg.Connection) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    got = indexes(conn)
    while any(r[2] != "ready" for r in got):
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
        got = indexes(conn)
    return got


def nearest(conn: psycopg.Connection, q: np.ndarray) -> list[int]:  # type: ignore[type-arg]
    sql = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10"
    return [r[0] for r in conn.execute(sql, (vec(q),)).fetchall()]


def exact(q: np.ndarray) -> list[int]:
    return np.argsort(((ROWS - q) ** 2).sum(axis=1), kind="stable")[:10].tolist()


def plan(conn: psycopg.Connection) -> str:  # type: ignore[type-arg]
    sql = "EXPLAIN SELECT id FROM items ORDER BY embedding <-> '[1,1,1,1,1,1,1,1]' LIMIT 3"
    return "\n".join(r[0] for r in conn.execute(sql))


@pytest.fixture
def role(proxy_uri: str, app_role: str) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    """Through pgvec as an ordinary role, psycopg's defaults (autocommit off)."""
    with psycopg.connect(proxy_uri.replace("postgres@", f"{app_role}@")) as conn:
        fill(conn)
        conn.commit()
        yield conn


def test_as_pgvector_allows(role: psycopg.Connection, pg_uri: str) -> None:  # type: ignore[type-arg]
    with pgvector_database(pg_uri) as pgvector:
        fill(pgvector)
        for sql in STATEMENTS:
            assert pgvector.execute(sql).statusmessage == "CREATE INDEX"
    for sql in STATEMENTS:
        assert role.execute(sql).statusmessage == "CREATE INDEX"
        role.commit()
    assert role.execute("SELECT 1").fetchone() == (1,)  # waits for the builds
    assert indexes(role) == [("items_hnsw", "HNSW", "ready", ["items_ivf"])]
    assert "items_hnsw" in plan(role)
    for q in QUERIES:
        assert len(set(nearest(role, q)) & set(exact(q))) >= 9
    # the IVFFlat index takes the HNSW one's place; the HNSW one serves until it is built
    role.execute("DROP INDEX items_hnsw")
    assert nearest(role, QUERIES[0])[0] == exact(QUERIES[0])[0]
    role.commit()
    assert wait_ready(role) == [("items_ivf", "IVF_FLAT", "ready", None)]
    assert "items_ivf" in plan(role)
    assert len(set(nearest(role, QUERIES[1])) & set(exact(QUERIES[1]))) >= 7
    role.execute("DROP INDEX items_ivf")
    role.commit()
    assert indexes(role) == []
    assert "exact" in plan(role)


def test_dropping_the_standby(role: psycopg.Connection) -> None:  # type: ignore[type-arg]
    role.autocommit = True
    for sql in [*STATEMENTS, STATEMENTS[0].replace("items_ivf", "items_ivf2")]:
        role.execute(sql)
    assert indexes(role) == [("items_ivf2", "IVF_FLAT", "ready", ["items_ivf", "items_hnsw"])]
    role.execute("DROP INDEX items_hnsw")
    assert indexes(role) == [("items_ivf2", "IVF_FLAT", "ready", ["items_ivf"])]
    # names stay taken by standby indexes, as PostgreSQL's relations
    with pytest.raises(psycopg.errors.DuplicateTable, match="already exists"):
        role.execute(STATEMENTS[0])
    role.execute(STATEMENTS[0].replace("INDEX", "INDEX IF NOT EXISTS"))
    role.execute("DROP INDEX IF EXISTS items_ivf")
    assert indexes(role) == [("items_ivf2", "IVF_FLAT", "ready", None)]
    assert nearest(role, QUERIES[2])[0] == exact(QUERIES[2])[0]


def test_only_the_owner_drops_a_standby(
    role: psycopg.Connection,  # type: ignore[type-arg]
    pconn: psycopg.Connection,  # type: ignore[type-arg]
    proxy_uri: str,
) -> None:
    role.autocommit = True
    for sql in STATEMENTS:
        role.execute(sql)
    pconn.execute("CREATE ROLE other_" + role.info.user + " LOGIN")
    other = "other_" + role.info.user
    role.execute(f"GRANT ALL ON items TO {other}")
    with psycopg.connect(proxy_uri.replace("postgres@", f"{other}@"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            conn.execute("DROP INDEX items_ivf")
    assert indexes(pconn) == [("items_hnsw", "HNSW", "ready", ["items_ivf"])]
    pconn.execute(f"DROP OWNED BY {other}")
    pconn.execute(f"DROP ROLE {other}")


def test_a_failed_build_keeps_the_index_it_would_supersede(
    role: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """IVF_PQ needs 2^nbits rows to train: its build fails, and the HNSW index it would
    have superseded is kept, searched as before."""
    role.autocommit = True
    role.execute(STATEMENTS[1])
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        role.execute(
            "CREATE INDEX items_pq ON items USING ivf_pq (embedding) WITH (m = 2, nbits = 12)"
        )
    assert indexes(role) == [("items_hnsw", "HNSW", "ready", None)]
    assert "items_hnsw" in plan(role)
    assert nearest(role, QUERIES[3])[0] == exact(QUERIES[3])[0]


def test_in_one_query_as_django_sends_them(
    role: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """Django's collected migration SQL (pgvector-python's test setup) creates both in
    one Query, in one transaction."""
    role.execute(";\n".join(STATEMENTS))
    role.commit()
    assert role.execute("SELECT 1").fetchone() == (1,)
    assert indexes(role) == [("items_hnsw", "HNSW", "ready", ["items_ivf"])]


def test_dump_and_restore_keep_both(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: object
) -> None:
    with psycopg.connect(pgvec_server.uri(dbname), autocommit=True) as conn:
        fill(conn)
        for sql in STATEMENTS:
            conn.execute(sql)
        before = indexes(conn)
    dump = f"{tmp_path}/dump.sql"
    run(str(BIN / "pg_dump"), "-d", pgvec_server.uri(dbname), "-f", dump)
    target = pgvec_server.uri(fresh_db)
    run(PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", dump)
    with psycopg.connect(target, autocommit=True) as conn:
        assert wait_ready(conn) == before == [("items_hnsw", "HNSW", "ready", ["items_ivf"])]
        assert nearest(conn, QUERIES[4])[0] == exact(QUERIES[4])[0]


def test_a_promotion_cut_short_is_built_at_the_next_start(
    pg_uri: str, dbname: str, tmp_path: object
) -> None:
    """pgvec stopped while the standby that took a dropped index's place was being
    built: its row says IVFFlat while the files hold the dropped HNSW index. The next
    start builds the IVFFlat index the row defines (it used to serve the HNSW files
    under the IVFFlat index's name)."""
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = Path(f"{tmp_path}/pgvec")
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            fill(conn)
            for sql in STATEMENTS:
                conn.execute(sql)
    with psycopg.connect(upstream, autocommit=True) as conn:  # as a cut-short promotion
        conn.execute(
            "UPDATE pgvec.indexes SET index_name = 'items_ivf', method = 'IVF_FLAT',"
            " options = '{\"nlist\": 4}', standby = '[]', state = 'building'"
        )
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            assert indexes(conn) == [("items_ivf", "IVF_FLAT", "ready", None)]
            assert "ivf" in plan(conn).lower()
            assert nearest(conn, QUERIES[0])[0] == exact(QUERIES[0])[0]
    manifest = next((data_dir / "indexes").rglob("manifest.json")).read_text()
    assert "IVF_FLAT" in manifest


def test_partial_indexes_one_per_category(
    pconn: psycopg.Connection, pg_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """pgvector's README way of filtering: a partial index per category. pgvec indexes
    every row once (the same definition again builds nothing), says so in a NOTICE, and
    a filtered search returns the category's exact top-k; the predicate is checked as
    PostgreSQL checks it."""
    notices: list[str] = []
    pconn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    fill(pconn)
    pconn.execute("ALTER TABLE items ADD COLUMN category int")
    pconn.execute("UPDATE items SET category = id % 3")
    caplog.set_level("INFO", logger="pgvec")
    partial = "CREATE INDEX items_c{0} ON items USING hnsw (embedding vector_l2_ops)"
    tags = [
        pconn.execute(partial.format(c) + f" WHERE (category = {c})").statusmessage
        for c in range(3)
    ]
    assert tags == ["CREATE INDEX"] * 3
    assert notices[-1] == (
        'index "items_c2" covers every row of table "items": pgvec keeps no WHERE clause of'
        " an index; a search is filtered by its own"
    )
    assert wait_ready(pconn) == [("items_c2", "HNSW", "ready", ["items_c0", "items_c1"])]
    assert sum("built already" in r.getMessage() for r in caplog.records) == 2
    for q in QUERIES:
        got = pconn.execute(
            "SELECT id FROM items WHERE category = 1 ORDER BY embedding <-> %s LIMIT 5",
            (vec(q),),
        ).fetchall()
        ids = np.arange(N)[np.arange(N) % 3 == 1]
        d = np.linalg.norm(ROWS[ids] - q, axis=1)
        assert [r[0] for r in got] == ids[np.argsort(d)[:5]].tolist()
    # the one in its place has the same definition: it serves at once, nothing rebuilt
    assert pconn.execute("DROP INDEX items_c2").statusmessage == "DROP INDEX"
    assert indexes(pconn) == [("items_c1", "HNSW", "ready", ["items_c0"])]
    explained = pconn.execute(
        "EXPLAIN SELECT id FROM items ORDER BY embedding <-> %s LIMIT 5", (vec(QUERIES[0]),)
    ).fetchall()
    assert any("using items_c1" in line for (line,) in explained), explained
    with pgvector_database(pg_uri) as real:
        for conn in (pconn, real):
            if conn is real:
                fill(real)
                real.execute("ALTER TABLE items ADD COLUMN category int")
            with pytest.raises(psycopg.errors.UndefinedColumn, match='column "nosuch"'):
                conn.execute(partial.format(9) + " WHERE nosuch = 1")
