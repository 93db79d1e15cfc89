"""CREATE INDEX on a vector column as one statement of several in one simple Query, as
``psql -c``, a schema file sent whole and Django's collected migration SQL send it: the
Query runs as PostgreSQL runs it (one transaction: all or nothing, the same command tags
as against pgvector), and once it committed the index is built with every row.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.fix_proxy import pgvector_database

SCHEMA = """--
-- Create model Item
--
CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3));
INSERT INTO items SELECT i, format('[%s,%s,%s]', i % 7, i % 11, i % 13)::vector
  FROM generate_series(1, 200) i;
--
-- Create index items_hnsw on field(s) embedding of model item
--
CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) WITH (m = 8);
CREATE INDEX items_cosine ON items USING hnsw (embedding vector_cosine_ops);
INSERT INTO items VALUES (201, '[0.5,0.5,0.5]')"""

TAGS = ["CREATE TABLE", "INSERT 0 200", "CREATE INDEX", "CREATE INDEX", "INSERT 0 1"]


def statuses(cur: psycopg.Cursor) -> list[str | None]:  # type: ignore[type-arg]
    """The command tag of each statement of the Query ``cur`` ran."""
    out = [cur.statusmessage]
    while cur.nextset():
        out.append(cur.statusmessage)
    return out


def indexes(conn: psycopg.Connection) -> list[tuple[str, str, int]]:  # type: ignore[type-arg]
    return conn.execute(
        "SELECT index_name, state, rows_indexed FROM pgvec.indexes ORDER BY index_name"
    ).fetchall()


def triggers(conn: psycopg.Connection) -> list[str]:  # type: ignore[type-arg]
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'pgvec%' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def nearest(conn: psycopg.Connection, op: str, q: str) -> list[int]:  # type: ignore[type-arg]
    rows = conn.execute(
        f"SELECT id FROM items ORDER BY embedding {op} %s::vector, id LIMIT 5", (q,)
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def role_uri(proxy_uri: str, app_role: str) -> str:
    return proxy_uri.replace("postgres@", f"{app_role}@")


@pytest.fixture
def pgvector(pg_uri: str) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    with pgvector_database(pg_uri) as conn:
        yield conn


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transaction"])
def test_schema_sent_whole_as_pgvector_runs_it(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
    pgvector: psycopg.Connection,  # type: ignore[type-arg]
    autocommit: bool,
) -> None:
    """The same Query through pgvec (an ordinary role) and against pgvector: the same
    tags; once committed, pgvec's indexes hold every row and answer as pgvector does."""
    assert statuses(pgvector.execute(SCHEMA)) == TAGS
    with psycopg.connect(role_uri, autocommit=autocommit) as conn:
        assert statuses(conn.execute(SCHEMA)) == TAGS
        if not autocommit:
            assert indexes(pconn) == []  # nothing before the commit
            conn.commit()
        # the session's next statement waits for the build
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (201,)
        assert indexes(pconn) == [("items_cosine", "ready", 201), ("items_hnsw", "ready", 201)]
        conn.execute("SET hnsw.ef_search = 200")
        pgvector.execute("SET enable_indexscan = off")  # pgvector's exact answer
        for op, q in [("<->", "[1,2,3]"), ("<=>", "[3,1,2]")]:
            assert nearest(conn, op, q) == nearest(pgvector, op, q)
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM items ORDER BY embedding <=> '[1,1,1]' LIMIT 3"
            )
        )
        assert "items_cosine" in plan


def psql_c(uri: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", uri, "-c", sql],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_psql_c(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
    pgvector: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """``psql -c`` sends its string as one Query; it prints what it prints against
    pgvector (psql 16: every statement's tag)."""
    info = pgvector.info
    direct = f"host={info.host} port={info.port} user={info.user} dbname={info.dbname}"
    assert psql_c(role_uri, SCHEMA) == psql_c(direct, SCHEMA)
    assert pconn.execute("SELECT count(*) FROM items").fetchone() == (201,)
    with psycopg.connect(role_uri) as conn:
        assert nearest(conn, "<->", "[0,0,0]")[0] == 201
    deadline = time.monotonic() + 60  # (built after psql's session committed)
    while [i[:2] for i in indexes(pconn)] != [("items_cosine", "ready"), ("items_hnsw", "ready")]:
        assert time.monotonic() < deadline, indexes(pconn)
        time.sleep(0.1)


def test_a_failure_later_in_the_query_leaves_nothing(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """The implicit transaction rolls back: no table, no index, no trigger; and nothing
    of the failed Query is built by a later COMMIT or ROLLBACK."""
    with psycopg.connect(role_uri, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute(SCHEMA + "; SELECT 1/0")
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
        pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        pconn.execute("INSERT INTO t VALUES (1, '[1,1,1]')")
        pconn.execute(f"ALTER TABLE t OWNER TO {conn.info.user}")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("CREATE INDEX t_v ON t USING hnsw (v); SELECT 1/0")
        conn.execute("BEGIN; SELECT 1; ROLLBACK")
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert indexes(pconn) == []
        assert triggers(pconn) == []
        # in an open transaction block, the failed Query leaves the block aborted
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("CREATE INDEX t_v ON t USING hnsw (v); SELECT 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1; CREATE INDEX t_v ON t USING hnsw (v)")
        conn.execute("ROLLBACK")
        assert indexes(pconn) == []
        assert statuses(conn.execute("SELECT 1; CREATE INDEX t_v ON t USING hnsw (v)")) == [
            "SELECT 1",
            "CREATE INDEX",
        ]
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert indexes(pconn) == [("t_v", "ready", 1)]


def test_only_the_owner(role_uri: str, pconn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    """As PostgreSQL's CREATE INDEX: a role that may write the table but does not own
    it gets 42501, and nothing is recorded."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
    pconn.execute("GRANT ALL ON t TO PUBLIC")
    with psycopg.connect(role_uri, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table t"):
            conn.execute("INSERT INTO t VALUES (1, '[1,2,3]'); CREATE INDEX ON t USING hnsw (v)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert indexes(pconn) == []
    assert triggers(pconn) == []


def test_begin_and_commit_in_the_query(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    with psycopg.connect(role_uri, autocommit=True) as conn:
        conn.execute(f"BEGIN; {SCHEMA}; ROLLBACK")
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
        assert indexes(pconn) == []
        cur = conn.execute(f"BEGIN; {SCHEMA}; COMMIT")
        assert statuses(cur) == ["BEGIN", *TAGS, "COMMIT"]
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert [i[0] for i in indexes(pconn)] == ["items_cosine", "items_hnsw"]
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="transaction control"):
            conn.execute(
                "CREATE INDEX ON items USING ivfflat (embedding vector_ip_ops); COMMIT; SELECT 1"
            )


def test_two_new_tables_and_duplicates(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """Two tables made by the Query itself, each indexed; an index name taken earlier in
    the same Query is refused (42P07, as PostgreSQL) before anything runs."""
    with psycopg.connect(role_uri, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE a (id int PRIMARY KEY, v vector(2));"
            "CREATE TABLE b (id int PRIMARY KEY, w text, v vector(2));"
            "INSERT INTO a VALUES (1, '[1,0]'); INSERT INTO b VALUES (1, 'x', '[0,1]');"
            "CREATE INDEX ON a USING hnsw (v); CREATE INDEX ON b USING hnsw (v)"
        )
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert indexes(pconn) == [("a_v_idx", "ready", 1), ("b_v_idx", "ready", 1)]
        with pytest.raises(psycopg.errors.DuplicateTable, match='relation "a_cos" already'):
            conn.execute(
                "INSERT INTO a VALUES (2, '[2,0]');"
                "CREATE INDEX a_cos ON a USING ivfflat (v vector_cosine_ops) WITH (lists = 1);"
                "CREATE INDEX a_cos ON a USING hnsw (v vector_cosine_ops)"
            )
        assert conn.execute("SELECT count(*) FROM a").fetchone() == (1,)


def test_postgres_indexes_among_other_statements(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """DROP INDEX and REINDEX of PostgreSQL's own indexes go to PostgreSQL in any Query;
    a DROP INDEX of pgvec's own is carried out if the Query's transaction commits."""
    with psycopg.connect(role_uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(2), n int)")
        cur = conn.execute(
            "CREATE INDEX t_n ON t (n); REINDEX INDEX t_n; DROP INDEX t_n;"
            "CREATE INDEX t_v ON t USING hnsw (v)"
        )
        assert statuses(cur) == ["CREATE INDEX", "REINDEX", "DROP INDEX", "CREATE INDEX"]
        assert conn.execute("SELECT to_regclass('t_n')").fetchone() == (None,)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="of their own"):
            conn.execute("SELECT 1; REINDEX INDEX t_v")
        # pgvec's own: dropped once the Query's transaction committed
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("DROP INDEX t_v; SELECT 1/0")
        assert [i[0] for i in indexes(pconn)] == ["t_v"]
        assert statuses(conn.execute("SELECT 1; DROP INDEX t_v")) == ["SELECT 1", "DROP INDEX"]
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert indexes(pconn) == []


def test_a_name_taken_is_refused_where_it_stands(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """As PostgreSQL: 42P07 at the CREATE INDEX, by a Query or in a transaction block,
    whether a relation or a pgvec index has the name."""
    with psycopg.connect(role_uri) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(2))")
        conn.execute("CREATE INDEX t_v ON t USING hnsw (v)")
        conn.commit()
        for name in ("t_v", "t_pkey", "t"):
            sql = f"CREATE INDEX {name} ON t USING hnsw (v vector_cosine_ops)"
            with pytest.raises(psycopg.errors.DuplicateTable, match=f'relation "{name}"'):
                conn.execute("SELECT 1; " + sql)
            conn.rollback()
            with pytest.raises(psycopg.errors.DuplicateTable):
                conn.execute(sql)
            conn.rollback()
    assert indexes(pconn) == [("t_v", "ready", 0)]


def test_what_a_query_of_several_statements_cannot_do(
    role_uri: str,
    pconn: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    """pgvec rewrites and searches before the Query runs: it refuses, with 0A000, a top-k
    after a write to its table and index DDL after a change of search_path, rather than
    answer wrong (a search missing the row written; an index on the old path's table)."""
    with psycopg.connect(role_uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(2))")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="after a write"):
            conn.execute(
                "INSERT INTO t VALUES (1, '[1,1]'); SELECT id FROM t ORDER BY v <-> '[1,1]' LIMIT 1"
            )
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="search_path"):
            conn.execute("SET search_path = public; CREATE INDEX ON t USING hnsw (v)")
        conn.execute("INSERT INTO t VALUES (1, '[1,1]')")
        assert conn.execute("SELECT id FROM t ORDER BY v <-> '[1,1]' LIMIT 1").fetchone() == (1,)
    assert indexes(pconn) == []
