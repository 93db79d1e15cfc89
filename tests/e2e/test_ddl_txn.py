"""DDL is seen in transaction order: a table created (or altered) in the client's open
transaction is a vector table for that client's next statements, as it is for
PostgreSQL; other sessions see it once it commits, never before, and a rolled-back one
leaves nothing. The clients run on psycopg's defaults (autocommit off).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest


@pytest.fixture
def client(proxy_uri: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(proxy_uri) as conn:
        yield conn


def test_create_table_then_insert_in_one_transaction(
    client: psycopg.Connection, proxy_uri: str
) -> None:
    client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    client.execute("INSERT INTO t VALUES (1, '[1,2,3]')")
    client.execute("INSERT INTO t VALUES (%s, %s)", (2, "[4,5,6]"))
    assert client.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [
        (1, "[1,2,3]"),
        (2, "[4,5,6]"),
    ]
    with client.cursor().copy("COPY t FROM STDIN") as copy:
        copy.write_row((3, "[7,8,9]"))
    client.execute("ALTER TABLE t ADD COLUMN w vector(2)")
    client.execute("UPDATE t SET w = '[1,1]' WHERE id = 1")
    # searched exactly, in SQL, before the commit: no index can hold the rows yet
    assert client.execute("SELECT id FROM t ORDER BY v <-> '[7,8,8]' LIMIT 2").fetchall() == [
        (3,),
        (2,),
    ]
    client.rollback()
    client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    client.execute("INSERT INTO t VALUES (1, '[1,2,3]'), (2, '[4,5,6]')")
    client.commit()
    with psycopg.connect(proxy_uri) as other:
        assert other.execute("SELECT id FROM t ORDER BY v <-> '[4,5,6]' LIMIT 1").fetchone() == (2,)
        other.execute("INSERT INTO t VALUES (3, '[7,8,9]')")
        other.commit()
    assert client.execute("SELECT id FROM t ORDER BY v <-> '[7,8,9]' LIMIT 1").fetchone() == (3,)


def test_rolled_back_create_table_is_forgotten(client: psycopg.Connection) -> None:
    client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    client.execute("INSERT INTO t VALUES (1, '[1,2,3]')")
    client.rollback()
    client.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    client.execute("INSERT INTO t VALUES (1, '[1,2,3]')")  # text now: not a vector
    assert client.execute("SELECT v FROM t").fetchone() == ("[1,2,3]",)
    client.commit()


def test_catalog_is_not_fresh_from_before_the_commit(proxy_uri: str) -> None:
    """Another session reloads the catalog while the DDL is still open; once the DDL
    commits, a third session's statement must see the new table at once."""
    with (
        psycopg.connect(proxy_uri) as ddl,
        psycopg.connect(proxy_uri, autocommit=True) as reader,
        psycopg.connect(proxy_uri) as writer,
    ):
        ddl.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        reader.execute("SELECT '[1,2,3]'::vector")  # a vector statement: the catalog is read
        ddl.commit()
        writer.execute("INSERT INTO t VALUES (1, '[1,2,3]')")
        writer.commit()
        assert writer.execute("SELECT v FROM t").fetchone() == ("[1,2,3]",)


def index_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "indexes").rglob("*") if p.is_file()]


def triggers(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'pgvec%' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_rolled_back_create_index_leaves_nothing(
    pconn: psycopg.Connection, client: psycopg.Connection, pgvec_server: object
) -> None:
    """CREATE INDEX ... USING hnsw in a transaction block: rolled back, it leaves no
    index, no catalog row, no file and no change-log trigger; the name is free again."""
    data_dir: Path = pgvec_server.data_dir  # type: ignore[attr-defined]
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute(
        "INSERT INTO t SELECT i, format('[%s,%s,%s]', i, i, i)::vector"
        " FROM generate_series(1, 50) i"
    )
    client.execute("CREATE INDEX t_hnsw ON t USING hnsw (v vector_l2_ops)")
    assert len(triggers(client)) == 4  # the transaction's own
    client.rollback()
    assert client.execute("SELECT 1").fetchone() == (1,)
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)
    assert index_files(data_dir) == []
    assert triggers(pconn) == []
    client.execute("CREATE INDEX t_hnsw ON t USING hnsw (v vector_l2_ops)")
    client.commit()
    assert client.execute("SELECT 1").fetchone() == (1,)  # waits for the build
    assert pconn.execute("SELECT index_name, state FROM pgvec.indexes").fetchall() == [
        ("t_hnsw", "ready")
    ]
    assert client.execute("SELECT id FROM t ORDER BY v <-> '[3,3,3]' LIMIT 1").fetchone() == (3,)


def test_create_index_on_a_table_of_the_same_transaction(
    pconn: psycopg.Connection, client: psycopg.Connection, pgvec_server: object
) -> None:
    """CREATE TABLE, INSERT, CREATE INDEX, INSERT in one transaction (as SQLAlchemy's
    create_all and pgvector-python's examples do): after the commit the index holds every
    row, and the session's next statement finds it built."""
    data_dir: Path = pgvec_server.data_dir  # type: ignore[attr-defined]
    client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    client.execute(
        "INSERT INTO t SELECT i, format('[%s,%s,%s]', i, i, i)::vector"
        " FROM generate_series(1, 50) i"
    )
    client.execute("CREATE INDEX ON t USING hnsw (v)")
    client.execute("INSERT INTO t VALUES (100, '[0.5,0.5,0.5]')")
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)
    client.commit()
    found = client.execute("SELECT id FROM t ORDER BY v <-> '[0,0,0]' LIMIT 2").fetchall()
    assert found == [(100,), (1,)]
    assert pconn.execute("SELECT state, rows_indexed FROM pgvec.indexes").fetchone() == (
        "ready",
        51,
    )
    assert index_files(data_dir) != []


@pytest.mark.parametrize("opclass", ["", " vector_cosine_ops"])
def test_search_in_the_transaction_that_indexes_the_table(
    pconn: psycopg.Connection, client: psycopg.Connection, opclass: str
) -> None:
    """A table made and filled before, indexed in the client's open transaction, then
    searched in it (with a row of that transaction): the answer is exact, as PostgreSQL's
    would be with the index it sees. (pgvec builds the index at the commit; it used to
    fail with 55006, unable to track a table the transaction holds locked.)"""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute(
        "INSERT INTO t SELECT i, format('[%s,%s,%s]', i, i + 1, i % 7)::vector"
        " FROM generate_series(1, 60) i"
    )
    client.execute(f"CREATE INDEX ON t USING hnsw (v{opclass})")
    client.execute("INSERT INTO t VALUES (100, '[0.5,1,0.5]')")
    query = f"SELECT id FROM t ORDER BY v {'<=>' if opclass else '<->'} %s LIMIT 4"
    rows = client.execute("SELECT id, v::text FROM t").fetchall()
    ids = np.array([i for i, _ in rows])
    vs = np.array([json.loads(v) for _, v in rows], dtype=np.float64)
    for q in ([0, 1, 0], [30.2, 31, 2.5]):
        if opclass:
            d = 1 - vs @ q / (np.linalg.norm(vs, axis=1) * np.linalg.norm(q))
        else:
            d = np.linalg.norm(vs - q, axis=1)
        expected = [(int(i),) for i in ids[np.argsort(d, kind="stable")[:4]]]
        assert client.execute(query, (json.dumps(q),)).fetchall() == expected
    client.commit()
    assert client.execute(query, ("[0,1,0]",)).fetchall()[0] == (100,)
    assert pconn.execute("SELECT state, rows_indexed FROM pgvec.indexes").fetchone() == (
        "ready",
        61,
    )


def test_create_index_concurrently_in_a_transaction_is_refused(
    pconn: psycopg.Connection, client: psycopg.Connection
) -> None:
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    with pytest.raises(psycopg.errors.ActiveSqlTransaction):
        client.execute("CREATE INDEX CONCURRENTLY ON t USING hnsw (v)")


@pytest.mark.parametrize("autocommit", [True, False])
def test_create_index_needs_the_table_owner(
    pconn: psycopg.Connection, app_role: str, proxy_uri: str, autocommit: bool
) -> None:
    """As in PostgreSQL: only the table's owner may index it, though pgvec builds the
    index with its own connections."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute(f"GRANT ALL ON t TO {app_role}")
    uri = proxy_uri.replace("postgres@", f"{app_role}@")
    with psycopg.connect(uri, autocommit=autocommit) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            conn.execute("CREATE INDEX ON t USING hnsw (v)")
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)
    assert triggers(pconn) == []


def test_pipeline_create_table_then_insert(client: psycopg.Connection) -> None:
    with client.pipeline():
        client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        client.execute("INSERT INTO t VALUES (%s, %s)", (1, "[1,2,3]"))
        cur = client.execute("SELECT v FROM t")
    assert cur.fetchall() == [("[1,2,3]",)]
    client.commit()


@pytest.mark.parametrize("autocommit", [True, False])
def test_drop_reindex_load_release_need_the_table_owner(
    pconn: psycopg.Connection, app_role: str, proxy_uri: str, autocommit: bool
) -> None:
    """pgvec drops, rebuilds, loads and releases indexes with its own connections: a role
    that does not own the table gets 42501, as PostgreSQL's DROP INDEX and REINDEX give."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1,1]')")
    pconn.execute("CREATE INDEX t_idx ON t USING hnsw (v)")
    pconn.execute(f"GRANT ALL ON t TO {app_role}")
    uri = proxy_uri.replace("postgres@", f"{app_role}@")
    with psycopg.connect(uri, autocommit=autocommit) as conn:
        for sql in (
            "DROP INDEX t_idx",
            "REINDEX INDEX t_idx",
            "SELECT pgvec.release('t_idx')",
            "SELECT pgvec.load('t_idx')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
                conn.execute(sql)
            if not autocommit:
                conn.rollback()
        assert conn.execute("SELECT id FROM t ORDER BY v <-> '[1,1,1]' LIMIT 1").fetchone() == (1,)
    assert pconn.execute("SELECT index_name, state FROM pgvec.indexes").fetchall() == [
        ("t_idx", "ready")
    ]
    assert pconn.execute("SELECT pgvec.release('t_idx')").fetchone() == (1,)  # the owner may


def explain(conn: psycopg.Connection) -> str:
    sql = "EXPLAIN SELECT id FROM t ORDER BY v <-> '[1,1,1]' LIMIT 1"
    return "\n".join(r[0] for r in conn.execute(sql))


def test_drop_index_is_undone_with_its_transaction(
    pconn: psycopg.Connection, client: psycopg.Connection
) -> None:
    """DROP INDEX of a pgvec index in a transaction block is carried out at the commit,
    as PostgreSQL's is: rolled back (or failed), the index is still there."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1,1]'), (2, '[2,2,2]')")
    pconn.execute("CREATE INDEX t_hnsw ON t USING hnsw (v)")
    client.execute("DROP INDEX t_hnsw")
    client.rollback()
    assert "t_hnsw" in explain(client)
    client.rollback()
    client.execute("DROP INDEX t_hnsw")
    with pytest.raises(psycopg.errors.DivisionByZero):
        client.execute("SELECT 1/0")
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        client.execute("DROP INDEX t_hnsw")  # as PostgreSQL: nothing runs in it
    client.rollback()
    assert pconn.execute("SELECT index_name, state FROM pgvec.indexes").fetchall() == [
        ("t_hnsw", "ready")
    ]
    with pytest.raises(psycopg.errors.UndefinedObject, match='index "nope" does not exist'):
        client.execute("DROP INDEX nope")
    client.rollback()
    client.execute("DROP INDEX IF EXISTS nope")
    client.execute("DROP INDEX t_hnsw")
    client.commit()
    assert client.execute("SELECT 1").fetchone() == (1,)  # waits for the drop
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (0,)
    assert "exact" in explain(client)
    client.rollback()


def test_drop_and_create_in_one_transaction(
    pconn: psycopg.Connection, client: psycopg.Connection
) -> None:
    """In the transaction's order: an index dropped and made again under its name with
    other options (Alembic's way of altering one); made and dropped: nothing."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1,1]'), (2, '[2,2,2]')")
    pconn.execute("CREATE INDEX t_idx ON t USING hnsw (v) WITH (m = 8)")
    client.execute("DROP INDEX t_idx")
    client.execute("CREATE INDEX t_idx ON t USING ivfflat (v) WITH (lists = 1)")
    client.execute("CREATE INDEX t_cos ON t USING hnsw (v vector_cosine_ops)")
    client.execute("DROP INDEX t_cos")
    client.commit()
    assert client.execute("SELECT id FROM t ORDER BY v <-> '[2,2,2]' LIMIT 1").fetchone() == (2,)
    assert pconn.execute("SELECT index_name, method, state FROM pgvec.indexes").fetchall() == [
        ("t_idx", "IVF_FLAT", "ready")
    ]
    client.rollback()


@pytest.mark.parametrize("role", [False, True], ids=["superuser", "role"])
def test_drop_table_then_create_it_and_its_index_again_in_one_transaction(
    pconn: psycopg.Connection, proxy_uri: str, app_role: str, role: bool
) -> None:
    """txtai's re-index: DROP TABLE; CREATE TABLE; CREATE INDEX under the dropped
    table's index name, in one transaction. The name is free in the transaction's own
    view, as PostgreSQL sees it; pgvec said 42P07, checking it in its own snapshot, where
    the dropped table's index still stands. Rolled back, the old index serves; committed,
    the new one is built and searched. As an ordinary role owning the table too."""
    uri = proxy_uri.replace("postgres@", f"{app_role}@") if role else proxy_uri
    with psycopg.connect(uri, autocommit=True) as owner:
        owner.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        owner.execute("INSERT INTO t VALUES (1, '[1,1,1]'), (2, '[2,2,2]')")
        owner.execute("CREATE INDEX t_idx ON t USING hnsw (v)")
    with psycopg.connect(uri) as client:
        client.execute("DROP TABLE t")
        client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        client.execute("INSERT INTO t VALUES (7, '[7,7,7]'), (8, '[8,8,8]')")
        client.execute("CREATE INDEX t_idx ON t USING hnsw (v)")
        with pytest.raises(psycopg.errors.DuplicateTable, match='relation "t_idx" already exists'):
            client.execute("CREATE INDEX t_idx ON t USING hnsw (v vector_cosine_ops)")
        client.rollback()
        assert pconn.execute("SELECT id FROM t ORDER BY v <-> '[2,2,2]' LIMIT 1").fetchone() == (2,)
        client.execute("DROP TABLE t")
        client.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        client.execute("INSERT INTO t VALUES (7, '[7,7,7]'), (8, '[8,8,8]')")
        client.execute("CREATE INDEX t_idx ON t USING hnsw (v)")
        client.commit()
        assert client.execute("SELECT id FROM t ORDER BY v <-> '[8,8,8]' LIMIT 1").fetchone() == (
            8,
        )
        assert pconn.execute("SELECT index_name, state FROM pgvec.indexes").fetchall() == [
            ("t_idx", "ready")
        ]
        assert "t_idx" in explain(client)


def test_index_name_is_checked_after_the_earlier_statements_of_its_query(
    pconn: psycopg.Connection, client: psycopg.Connection
) -> None:
    """The same re-index as one simple Query of several statements: the name is checked
    when the CREATE INDEX runs, after the DROP TABLE before it; IF NOT EXISTS of a taken
    name gets PostgreSQL's NOTICE and builds nothing."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute("INSERT INTO t VALUES (1, '[1,1,1]')")
    pconn.execute("CREATE INDEX t_idx ON t USING hnsw (v)")
    notices: list[str] = []
    client.add_notice_handler(lambda d: notices.append(d.message_primary))
    with pytest.raises(psycopg.errors.DuplicateTable, match='relation "t_idx" already exists'):
        client.execute("SELECT 1; CREATE INDEX t_idx ON t USING hnsw (v vector_cosine_ops)")
    client.rollback()
    client.execute(
        "DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, v vector(3));"
        " INSERT INTO t VALUES (7, '[7,7,7]'), (8, '[8,8,8]');"
        " CREATE INDEX t_idx ON t USING hnsw (v);"
        " CREATE INDEX IF NOT EXISTS t_idx ON t USING hnsw (v vector_cosine_ops)"
    )
    assert notices == ['relation "t_idx" already exists, skipping']
    client.commit()
    assert client.execute("SELECT id FROM t ORDER BY v <-> '[8,8,8]' LIMIT 1").fetchone() == (8,)
    assert pconn.execute("SELECT index_name, metric, state FROM pgvec.indexes").fetchall() == [
        ("t_idx", "L2", "ready")
    ]
    client.rollback()
    client.execute("CREATE INDEX IF NOT EXISTS t_idx ON t USING hnsw (v vector_cosine_ops)")
    assert notices[-1] == 'relation "t_idx" already exists, skipping'
    client.commit()
    assert pconn.execute("SELECT count(*) FROM pgvec.indexes").fetchone() == (1,)
