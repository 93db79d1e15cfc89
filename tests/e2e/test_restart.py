"""Stop pgvec and start it again: data and index come back from disk, without a rebuild."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import PgvecServer


def test_index_comes_back_from_disk(
    pg_uri: str, dbname: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    rng = np.random.default_rng(1)
    data = rng.standard_normal((300, 16)).astype("f4")
    q = "[" + ",".join(map(str, rng.standard_normal(16).astype("f4"))) + "]"
    query = "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 5"

    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(16))")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO items VALUES (%s, %s)",
                    [(i, v.tobytes()) for i, v in enumerate(data)],
                )
            conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
            conn.execute("DELETE FROM items WHERE id < 10")
            before = conn.execute(query, (q,)).fetchall()
    assert list((data_dir / "indexes").rglob("manifest.json"))

    caplog.clear()
    with caplog.at_level(logging.INFO):
        with PgvecServer(upstream, data_dir).start() as server:
            with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
                after = conn.execute(query, (q,)).fetchall()
                conn.execute("INSERT INTO items VALUES (1000, %s)", (data[0].tobytes(),))
                assert conn.execute(query, (q,)).fetchall()
    assert after == before
    assert all(r[0] >= 10 for r in after)
    messages = [r.getMessage() for r in caplog.records]
    assert any("loaded" in m and "from" in m for m in messages), messages
    assert not any(m.startswith("building items_hnsw") for m in messages)


def test_changes_made_while_pgvec_was_down_are_applied(
    pg_uri: str, dbname: str, tmp_path: Path
) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(2))")
            conn.execute("INSERT INTO items VALUES (1, '[1,1]'), (2, '[5,5]')")
            conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    # straight to PostgreSQL, bypassing pgvec: the triggers log the change
    with psycopg.connect(upstream, autocommit=True) as direct:
        direct.execute("INSERT INTO items VALUES (3, pgvec.vector_in('[0,0]'))")
        direct.execute("DELETE FROM items WHERE id = 1")
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            got = conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[0,0]' LIMIT 5"
            ).fetchall()
    assert [r[0] for r in got] == [3, 2]


def test_damaged_index_files_are_rebuilt_from_the_table(
    pg_uri: str, dbname: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(2))")
            conn.execute("INSERT INTO items VALUES (1, '[1,1]'), (2, '[5,5]'), (3, '[9,9]')")
            conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
    for f in (data_dir / "indexes").rglob("*.faiss"):
        f.write_bytes(b"garbage")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        with PgvecServer(upstream, data_dir).start() as server:
            with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
                got = conn.execute(
                    "SELECT id FROM items ORDER BY embedding <-> '[6,6]' LIMIT 3"
                ).fetchall()
                state = conn.execute("SELECT state, rows_indexed FROM pgvec.indexes").fetchall()
    assert got == [(2,), (3,), (1,)]
    assert state == [("ready", 3)]
    assert any("rebuilding index items_embedding_idx" in r.getMessage() for r in caplog.records)


def test_drop_table_removes_index_files(
    pgvec_server: PgvecServer, pconn: psycopg.Connection
) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, a vector(2), b vector(3))")
    pconn.execute("INSERT INTO items VALUES (1, '[0,0]', '[9,9,9]'), (2, '[9,9]', '[0,0,0]')")
    pconn.execute("CREATE INDEX ON items USING hnsw (a vector_l2_ops)")
    pconn.execute("CREATE INDEX ON items USING ivfflat (b vector_l2_ops) WITH (lists = 1)")
    # two vector columns, each with its own index
    assert pconn.execute("SELECT id FROM items ORDER BY a <-> '[0,0]' LIMIT 1").fetchall() == [(1,)]
    assert pconn.execute("SELECT id FROM items ORDER BY b <-> '[0,0,0]' LIMIT 1").fetchall() == [
        (2,)
    ]
    indexes = pgvec_server.data_dir / "indexes"
    assert len(list(indexes.rglob("manifest.json"))) == 2
    pconn.execute("DROP TABLE items")
    pconn.execute("SELECT 1")  # the next statement sees the catalog change
    assert list(indexes.rglob("manifest.json")) == []
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)


def test_reindex(pgvec_server: PgvecServer, pconn: psycopg.Connection) -> None:
    pconn.execute("CREATE TABLE items (id int PRIMARY KEY, a vector(2), b vector(2))")
    pconn.execute("INSERT INTO items VALUES (1, '[1,1]', '[9,9]'), (2, '[5,5]', '[0,0]')")
    pconn.execute("CREATE INDEX items_a ON items USING hnsw (a vector_l2_ops)")
    pconn.execute("CREATE INDEX items_title ON items (id)")
    manifests = list((pgvec_server.data_dir / "indexes").rglob("manifest.json"))
    pconn.execute("INSERT INTO items VALUES (3, '[0,0]', '[1,1]')")
    pconn.execute("REINDEX INDEX items_a")
    pconn.execute("REINDEX INDEX items_title")  # PostgreSQL's own: forwarded
    pconn.execute("INSERT INTO items VALUES (4, '[0.1,0.1]', '[2,2]')")
    assert pconn.execute("SELECT id FROM items ORDER BY a <-> '[0,0]' LIMIT 3").fetchall() == [
        (3,),
        (4,),
        (1,),
    ]
    assert pconn.execute("SELECT id FROM items ORDER BY b <-> '[0,0]' LIMIT 3").fetchall() == [
        (2,),
        (3,),
        (4,),
    ]
    assert manifests and list((pgvec_server.data_dir / "indexes").rglob("manifest.json"))
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("REINDEX INDEX no_such_index")
    assert info.value.sqlstate == "42P01"  # PostgreSQL's answer: not ours


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
def test_truncate_keeps_the_index_across_a_restart(
    pg_uri: str, dbname: str, tmp_path: Path, method: str
) -> None:
    """TRUNCATE empties the index but keeps it: rows inserted afterwards are indexed
    (once there are enough for IVF's lists), and a restart shows neither the truncated
    rows nor loses the new ones."""
    upstream = psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)
    data_dir = tmp_path / "pgvec"
    rng = np.random.default_rng(4)
    query = "SELECT id FROM items ORDER BY embedding <-> '[0,0,0,0]' LIMIT 3"

    def fill(conn: psycopg.Connection, first: int, n: int) -> None:
        with conn.cursor().copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "bytea"])
            for i in range(first, first + n):
                copy.write_row((i, (rng.standard_normal(4) + 3).astype("f4").tobytes()))

    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(4))")
            fill(conn, 0, 2000)
            conn.execute(
                f"CREATE INDEX items_idx ON items USING {method} (embedding vector_l2_ops)"
            )
            conn.execute("TRUNCATE items")
            assert conn.execute(query).fetchall() == []
            fill(conn, 5000, 1500)
            conn.execute("INSERT INTO items VALUES (1, '[0,0,0,0]'), (2, '[0.1,0,0,0]')")
            assert [r[0] for r in conn.execute(query).fetchall()][:2] == [1, 2]
            state = conn.execute(
                "SELECT state, rows_indexed FROM pgvec.indexes WHERE index_name = 'items_idx'"
            ).fetchone()
            assert state is not None and state[0] == "ready"
    with PgvecServer(upstream, data_dir).start() as server:
        with psycopg.connect(server.uri(dbname), autocommit=True) as conn:
            got = [r[0] for r in conn.execute(query).fetchall()]
            assert got[:2] == [1, 2] and all(i >= 5000 for i in got[2:])
            n = conn.execute("SELECT count(*) FROM items").fetchone()
            assert n == (1502,)
            row = conn.execute(
                "SELECT method, state, rows_indexed FROM pgvec.indexes"
                " WHERE index_name = 'items_idx'"
            ).fetchone()
            assert row == ({"hnsw": "HNSW", "ivfflat": "IVF_FLAT"}[method], "ready", 1502)
