"""Nothing destroyed by mistake: index files and catalog rows go only with their table.

pgvec recognises a vector column by its ``CHECK (pgvec.is_vector(col, dim))``. Dropping or
rewriting that constraint (through pgvec or straight in PostgreSQL) must not cost the
index: only DROP TABLE (the table gone from pg_class) or dropping the column removes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer

DIM = 4
TOPK = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3"


def setup_items(pconn: psycopg.Connection) -> np.ndarray:
    pconn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    data = np.random.default_rng(5).standard_normal((200, DIM)).astype("f4")
    with pconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s)", [(i, v.tobytes()) for i, v in enumerate(data)]
        )
    pconn.execute("CREATE INDEX items_idx ON items USING hnsw (embedding)")
    return data


def vector_check(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'"
    ).fetchone()
    assert row is not None
    return str(row[0])


def manifests(server: PgvecServer) -> list[Path]:
    return list((server.data_dir / "indexes").rglob("manifest.json"))


def index_rows(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute("SELECT index_name, state FROM pgvec.indexes").fetchall()
    ]


def top(conn: psycopg.Connection, q: np.ndarray) -> list[int]:
    return [r[0] for r in conn.execute(TOPK, (q.tobytes(),)).fetchall()]


def reload_catalog(pconn: psycopg.Connection) -> None:
    """DDL through pgvec: the catalog is read again before the next statement."""
    pconn.execute("CREATE TABLE IF NOT EXISTS unrelated (x int)")


@pytest.mark.parametrize("where", ["pgvec", "postgres"])
def test_dropping_the_vector_check_keeps_the_index(
    where: str,
    pgvec_server: PgvecServer,
    pconn: psycopg.Connection,
    conn: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = setup_items(pconn)
    assert top(pconn, data[7])[0] == 7
    assert len(manifests(pgvec_server)) == 1
    alter = f'ALTER TABLE items DROP CONSTRAINT "{vector_check(conn)}"'
    with caplog.at_level(logging.WARNING):
        (pconn if where == "pgvec" else conn).execute(alter)
        reload_catalog(pconn)
        assert top(pconn, data[7])[0] == 7
    assert index_rows(conn) == [("items_idx", "ready")]
    assert len(manifests(pgvec_server)) == 1
    assert any("lost its vector CHECK" in r.getMessage() for r in caplog.records)
    # still synced: writes after the ALTER are searched
    pconn.execute("INSERT INTO items VALUES (500, %s)", ((data[9] + 0.001).tobytes(),))
    pconn.execute("DELETE FROM items WHERE id = 9")
    assert top(pconn, data[9])[0] == 500
    # the constraint back (as pgvec writes it): nothing changes
    conn.execute(
        f"ALTER TABLE items ADD CONSTRAINT items_embedding_check"
        f" CHECK (pgvec.is_vector(embedding, {DIM}))"
    )
    reload_catalog(pconn)
    assert top(pconn, data[7])[0] == 7
    assert index_rows(conn) == [("items_idx", "ready")]


def test_a_rewritten_vector_check_keeps_the_index(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    """A CHECK pgvec does not parse (one more condition) does not hide the column."""
    data = setup_items(pconn)
    conn.execute(f'ALTER TABLE items DROP CONSTRAINT "{vector_check(conn)}"')
    conn.execute(
        "ALTER TABLE items ADD CONSTRAINT strict_embedding"
        f" CHECK (pgvec.is_vector(embedding, {DIM}) AND embedding IS NOT NULL)"
    )
    reload_catalog(pconn)
    assert top(pconn, data[11])[0] == 11
    assert index_rows(conn) == [("items_idx", "ready")]
    assert len(manifests(pgvec_server)) == 1


def test_the_index_survives_a_restart_without_its_check(
    pg_uri: str, dbname: str, tmp_path: Path
) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    with PgvecServer(upstream, tmp_path / "pgvec").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as c:
            data = setup_items(c)
    with psycopg.connect(upstream, autocommit=True) as direct:  # pgvec is down
        direct.execute(f'ALTER TABLE items DROP CONSTRAINT "{vector_check(direct)}"')
    with PgvecServer(upstream, tmp_path / "pgvec").start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as c:
            assert top(c, data[3])[0] == 3
            assert index_rows(c) == [("items_idx", "ready")]
        assert len(manifests(server)) == 1


def test_a_new_dimension_fails_the_index_clearly(
    pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    """The CHECK changed to another dimension: the index no longer fits its column. It is
    marked failed with the reason, the column is searched exactly, REINDEX rebuilds it."""
    setup_items(pconn)
    conn.execute(f'ALTER TABLE items DROP CONSTRAINT "{vector_check(conn)}"')
    conn.execute("DELETE FROM items WHERE id >= 3")
    conn.execute("UPDATE items SET embedding = embedding || '\\x0000803f'::bytea")  # + 1.0
    conn.execute("ALTER TABLE items ADD CHECK (pgvec.is_vector(embedding, 5))")
    reload_catalog(pconn)
    got = pconn.execute(
        "SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0,1]' LIMIT 3"
    ).fetchall()
    assert sorted(r[0] for r in got) == [0, 1, 2]
    state, error = conn.execute("SELECT state, error FROM pgvec.indexes").fetchone() or ()
    assert state == "failed"
    assert "4 dimensions" in error and "5" in error and "REINDEX" in error
    pconn.execute("REINDEX INDEX items_idx")
    assert index_rows(conn) == [("items_idx", "ready")]
    assert pconn.execute(
        "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 1",
        (np.zeros(5, "f4").tobytes(),),
    ).fetchall()


def test_drop_table_still_removes_the_index(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    setup_items(pconn)
    assert len(manifests(pgvec_server)) == 1
    conn.execute("DROP TABLE items")  # straight in PostgreSQL
    reload_catalog(pconn)
    assert index_rows(conn) == []
    assert manifests(pgvec_server) == []
    assert conn.execute("SELECT count(*) FROM pgvec.changes").fetchone() == (0,)


def test_drop_column_removes_its_index(
    pgvec_server: PgvecServer, pconn: psycopg.Connection, conn: psycopg.Connection
) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, a vector(2), b vector(2))")
    pconn.execute("INSERT INTO items VALUES (1, '[1,1]', '[1,1]'), (2, '[2,2]', '[2,2]')")
    pconn.execute("CREATE INDEX items_a ON items USING hnsw (a)")
    pconn.execute("CREATE INDEX items_b ON items USING hnsw (b)")
    assert len(manifests(pgvec_server)) == 2
    pconn.execute("ALTER TABLE items DROP COLUMN a")
    reload_catalog(pconn)
    assert index_rows(conn) == [("items_b", "ready")]
    assert len(manifests(pgvec_server)) == 1
    assert pconn.execute("SELECT id FROM items ORDER BY b <-> '[2,2]' LIMIT 1").fetchall() == [(2,)]


def test_a_wrong_vector_written_without_the_check_is_not_searched(
    pconn: psycopg.Connection, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    data = setup_items(pconn)
    conn.execute(f'ALTER TABLE items DROP CONSTRAINT "{vector_check(conn)}"')
    reload_catalog(pconn)
    conn.execute("INSERT INTO items VALUES (900, '\\x0102'::bytea)")  # 2 bytes: no vector
    conn.execute("UPDATE items SET embedding = '\\x01'::bytea WHERE id = 8")
    with caplog.at_level(logging.WARNING):
        assert top(pconn, data[7])[0] == 7
        assert 8 not in top(pconn, data[8])
    assert any("not searched" in r.getMessage() for r in caplog.records)
