"""pg_dump and restore through pgvec (issue 10, item 9).

A dump taken through pgvec (PostgreSQL 16's pg_dump from the pgserver wheel) restores
through pgvec into a fresh database with every row, every vector and every pgvec index
(method, operator class, options), searchable at once, with no error on restore: plain
format with ``psql -v ON_ERROR_STOP=1 -f``, custom format with ``pg_restore
--exit-on-error``, and a schema-only dump followed by a data-only one.

The dump holds schema ``pgvec`` like any other schema; restored through pgvec, its
statements are answered by pgvec (which installed the schema when the restore connected),
and the dumped index definitions are built again once their tables are restored.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pgserver
import psycopg
import pytest

from tests.fix_proxy import PgvecServer

BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
PSQL = "/usr/bin/psql"
N = 120
DIM = 4


@pytest.fixture
def fresh_db(pg_uri: str) -> Iterator[str]:
    """An empty database to restore into (made straight in PostgreSQL)."""
    name = "r_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def vectors(seed: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype("<f4")


def text(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def populate(uri: str) -> None:
    """Two vector tables with pgvec indexes, NULL vectors, an awkward table name."""
    a, b = vectors(1), vectors(2)
    with psycopg.connect(uri) as c:  # psycopg's default: a transaction per block
        c.execute(f"CREATE TABLE items (id int PRIMARY KEY, tag text, embedding vector({DIM}))")
        c.execute(f'CREATE TABLE "Doc Store" (key text PRIMARY KEY, emb vector({DIM}))')
        c.commit()
        with c.cursor() as cur:
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s, %s)",
                [(i, f"t{i % 3}", text(a[i])) for i in range(N)],
            )
            cur.execute("INSERT INTO items VALUES (%s, NULL, NULL)", (N,))
            cur.executemany(
                'INSERT INTO "Doc Store" VALUES (%s, %s)',
                [(f"k{i}", text(b[i])) for i in range(N)],
            )
        c.commit()
        c.autocommit = True
        c.execute(
            "CREATE INDEX items_emb ON items USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 8, ef_construction = 40)"
        )
        c.execute('CREATE INDEX doc_emb ON "Doc Store" USING ivfflat (emb) WITH (lists = 4)')


def index_defs(uri: str) -> list[tuple[object, ...]]:
    with psycopg.connect(uri) as c:
        return c.execute(
            "SELECT index_name::text, schema_name::text, rel::text, column_name::text, method,"
            " metric, options, state FROM pgvec.indexes ORDER BY index_name"
        ).fetchall()


def contents(uri: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(uri) as c:
        items = c.execute("SELECT id, tag, embedding FROM items ORDER BY id").fetchall()
        docs = c.execute('SELECT key, emb FROM "Doc Store" ORDER BY key').fetchall()
    return items, docs


def check_restored(
    server: PgvecServer, src: str, dst: str, pg_uri: str, *, wait: float = 0.0
) -> None:
    """Same rows, same vectors, same index definitions; searches use the indexes.
    ``wait``: how long the indexes may take to be built (after the restore committed)."""
    direct = psycopg.conninfo.make_conninfo(pg_uri, dbname=dst)
    assert contents(direct) == contents(psycopg.conninfo.make_conninfo(pg_uri, dbname=src))
    deadline = time.monotonic() + wait
    while index_defs(server.uri(dst)) != index_defs(server.uri(src)):
        if time.monotonic() > deadline:
            assert index_defs(server.uri(dst)) == index_defs(server.uri(src))
        time.sleep(0.2)
    states = [row[-1] for row in index_defs(server.uri(dst))]
    assert states == ["ready", "ready"]
    a = vectors(1)
    query = a[7]
    exact = np.argsort(
        1 - (a @ query) / (np.linalg.norm(a, axis=1) * np.linalg.norm(query)), kind="stable"
    )[:5]
    with psycopg.connect(server.uri(dst)) as c:
        got = c.execute(
            "SELECT id FROM items ORDER BY embedding <=> %s LIMIT 5", (text(query),)
        ).fetchall()
        assert got[0][0] == 7
        assert len({r[0] for r in got} & set(exact.tolist())) >= 4
        plan = "\n".join(
            r[0]
            for r in c.execute(
                "EXPLAIN SELECT id FROM items ORDER BY embedding <=> %s LIMIT 5", (text(query),)
            ).fetchall()
        )
        assert "__pgvec_hit" in plan or "_pgvec_hit" in plan
        got = c.execute(
            'SELECT key FROM "Doc Store" ORDER BY emb <-> %s LIMIT 1', (text(vectors(2)[9]),)
        ).fetchall()
        assert got == [("k9",)]
        # the restored tables are tracked: a new row is found at once
        c.execute("INSERT INTO items VALUES (999, 'new', %s)", (text(query * 3),))
        c.commit()
        got = c.execute(
            "SELECT id FROM items ORDER BY embedding <=> %s LIMIT 2", (text(query),)
        ).fetchall()
        assert {r[0] for r in got} == {7, 999}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGCONNECT_TIMEOUT": "20"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr, done.stderr
    return done


def test_plain_dump_restores_with_psql(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: Path
) -> None:
    populate(pgvec_server.uri(dbname))
    dump = tmp_path / "dump.sql"
    run(str(BIN / "pg_dump"), "-d", pgvec_server.uri(dbname), "-f", str(dump))
    text_of_dump = dump.read_text()
    assert "CREATE SCHEMA pgvec;" in text_of_dump  # what the restore must cope with
    run(
        PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pgvec_server.uri(fresh_db), "-f", str(dump)
    )
    check_restored(pgvec_server, dbname, fresh_db, pg_uri)


def test_custom_dump_restores_with_pg_restore(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: Path
) -> None:
    populate(pgvec_server.uri(dbname))
    dump = tmp_path / "dump.custom"
    run(str(BIN / "pg_dump"), "-Fc", "-d", pgvec_server.uri(dbname), "-f", str(dump))
    run(
        str(BIN / "pg_restore"),
        "--exit-on-error",
        "-d",
        pgvec_server.uri(fresh_db),
        str(dump),
    )
    check_restored(pgvec_server, dbname, fresh_db, pg_uri)


def test_custom_dump_restores_in_one_transaction(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: Path
) -> None:
    """pg_restore --single-transaction: the indexes are built once it commits."""
    populate(pgvec_server.uri(dbname))
    dump = tmp_path / "dump.custom"
    run(str(BIN / "pg_dump"), "-Fc", "-d", pgvec_server.uri(dbname), "-f", str(dump))
    run(
        str(BIN / "pg_restore"),
        "--exit-on-error",
        "--single-transaction",
        "-d",
        pgvec_server.uri(fresh_db),
        str(dump),
    )
    # built once the transaction committed, as a CREATE INDEX in a transaction block is
    check_restored(pgvec_server, dbname, fresh_db, pg_uri, wait=30)


def test_schema_only_then_data_only(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: Path
) -> None:
    populate(pgvec_server.uri(dbname))
    schema, data = tmp_path / "schema.sql", tmp_path / "data.sql"
    run(str(BIN / "pg_dump"), "-s", "-d", pgvec_server.uri(dbname), "-f", str(schema))
    run(str(BIN / "pg_dump"), "-a", "-d", pgvec_server.uri(dbname), "-f", str(data))
    for part in (schema, data):
        run(
            PSQL,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            pgvec_server.uri(fresh_db),
            "-f",
            str(part),
        )
    check_restored(pgvec_server, dbname, fresh_db, pg_uri)


def test_copy_accepts_bytea_hex_vectors(pconn: psycopg.Connection) -> None:
    """COPY FROM of a vector column in bytea hex (as a dump of the column writes it) and
    in pgvector's text form, through pgvec; a wrong length is refused."""
    pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(2))")
    one = np.asarray([1, 2], "<f4").tobytes().hex()
    with pconn.cursor().copy("COPY t FROM STDIN") as cp:
        cp.write(f"1\t\\\\x{one}\n2\t[3,4]\n3\t\\N\n")
    got = pconn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    assert [r[0] for r in got] == [1, 2, 3]
    with pytest.raises(psycopg.DataError):
        with pconn.cursor().copy("COPY t FROM STDIN") as cp:
            cp.write("4\t\\\\x0000803f\n")
    with pytest.raises(psycopg.DataError):
        with pconn.cursor().copy("COPY t FROM STDIN") as cp:
            cp.write("5\t\\\\xzz00803f0000803f\n")


def test_psql_describe_vector_table(pgvec_server: PgvecServer, dbname: str) -> None:
    """``\\d items`` through pgvec runs and lists the vector column as pgvector's
    ``vector(n)`` (with its CHECK) and the table's triggers."""
    populate(pgvec_server.uri(dbname))
    out = run(PSQL, "-X", "-d", pgvec_server.uri(dbname), "-c", r"\d items").stdout
    assert "embedding" in out and "items_pkey" in out
    assert any(" embedding " in line and "vector(" in line for line in out.splitlines())


def test_two_operator_classes_on_one_column(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, pg_uri: str, tmp_path: Path
) -> None:
    """A column with an index per operator class (as pgvector allows) comes back with
    both, each used by its own operator, from a plain and from a custom dump."""
    populate(pgvec_server.uri(dbname))
    with psycopg.connect(pgvec_server.uri(dbname), autocommit=True) as c:
        c.execute("CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops)")
    plain, custom = tmp_path / "dump.sql", tmp_path / "dump.custom"
    run(str(BIN / "pg_dump"), "-d", pgvec_server.uri(dbname), "-f", str(plain))
    run(str(BIN / "pg_dump"), "-Fc", "-d", pgvec_server.uri(dbname), "-f", str(custom))
    second = "r_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{second}"')
    try:
        target = pgvec_server.uri(fresh_db)
        run(PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", str(plain))
        run(str(BIN / "pg_restore"), "--exit-on-error", "-d", pgvec_server.uri(second), str(custom))
        for db in (fresh_db, second):
            uri = pgvec_server.uri(db)
            assert index_defs(uri) == index_defs(pgvec_server.uri(dbname))
            assert [(r[0], r[5], r[7]) for r in index_defs(uri)] == [
                ("doc_emb", "L2", "ready"),
                ("items_emb", "COSINE", "ready"),
                ("items_l2", "L2", "ready"),
            ]
            a = vectors(1)
            with psycopg.connect(uri) as c:
                for op, name in (("<=>", "items_emb"), ("<->", "items_l2")):
                    # the nearest row to row 7 is row 7 itself, by either operator
                    sql = f"SELECT id FROM items ORDER BY embedding {op} %s LIMIT 3"
                    assert c.execute(sql, (text(a[7]),)).fetchall()[0] == (7,)
                    plan = "\n".join(r[0] for r in c.execute("EXPLAIN " + sql, (text(a[7]),)))
                    assert f"using {name} on items.embedding" in plan, plan
                    assert "exact" not in plan, plan
                    c.rollback()
    finally:
        with psycopg.connect(pg_uri, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{second}" WITH (FORCE)')


def test_arrays_of_vectors(
    pgvec_server: PgvecServer, dbname: str, fresh_db: str, tmp_path: Path
) -> None:
    """A table with ``vector[]`` columns dumps and restores through pgvec, in plain and
    custom format, and reads back the same."""
    source = pgvec_server.uri(dbname)
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("CREATE TABLE arr (id int PRIMARY KEY, a vector(2)[], b vector[])")
        c.execute(
            """INSERT INTO arr VALUES (1, '{"[1,2]","[3.5,4]"}', '{"[1]",NULL,"[1,2,3]"}'),"""
            " (2, '{}', NULL)"
        )
    query = "SELECT id, a::text, b::text, pg_typeof(a)::text FROM arr ORDER BY id"
    with psycopg.connect(source) as c:
        expected = c.execute(query).fetchall()
    assert expected[0][1:3] == ('{"[1,2]","[3.5,4]"}', '{[1],NULL,"[1,2,3]"}')
    plain, custom = tmp_path / "arr.sql", tmp_path / "arr.dump"
    run(str(BIN / "pg_dump"), "-t", "arr", "-d", source, "-f", str(plain))
    run(str(BIN / "pg_dump"), "-Fc", "-t", "arr", "-d", source, "-f", str(custom))
    target = pgvec_server.uri(fresh_db)
    run(PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", str(plain))
    with psycopg.connect(target, autocommit=True) as c:
        assert c.execute(query).fetchall() == expected
        c.execute("DROP TABLE arr")
    run(str(BIN / "pg_restore"), "--exit-on-error", "-d", target, str(custom))
    with psycopg.connect(target) as c:
        assert c.execute(query).fetchall() == expected
