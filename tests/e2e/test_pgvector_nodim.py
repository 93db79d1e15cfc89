"""pgvector's `vector` with no dimension (LangChain's default) and tables without a primary
key (pgvector's own regression files), through pgvec and against real pgvector.

Real pgvector runs in a database of its own in the same cluster (`CREATE EXTENSION vector`
there directly, not through pgvec). Connections use psycopg's defaults (autocommit off,
committed after each unit of work) or psql.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import UnitOfWork

PSQL = "/usr/bin/psql"

ITEMS = "CREATE TABLE items (id bigserial PRIMARY KEY, content text, embedding vector)"
ROWS = [("a", "[1,2,3]"), ("b", "[4,5]"), ("c", "[1]"), ("d", "[3,1]"), ("e", "[0,0,1]")]


@pytest.fixture
def pgvector_uri(pg_uri: str) -> Iterator[str]:
    """A database of the test cluster with the real pgvector extension."""
    name = "pv_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(pg_uri, dbname=name, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    yield psycopg.conninfo.make_conninfo(pg_uri, dbname=name)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def both(proxy_uri: str, pgvector_uri: str) -> Iterator[dict[str, psycopg.Connection]]:
    """A connection through pgvec and one to real pgvector, psycopg's defaults."""
    with UnitOfWork.connect(proxy_uri) as pv, UnitOfWork.connect(pgvector_uri) as real:
        yield {"pgvec": pv, "pgvector": real}


def floats(value: Any) -> list[float]:
    """A vector as either side returns it: pgvector's text, or pgvec's float32 bytes."""
    if isinstance(value, (bytes, memoryview)):
        return [float(x) for x in np.frombuffer(bytes(value), "<f4")]
    if isinstance(value, str):
        return [float(x) for x in value.strip("[]").split(",")]
    return [float(x) for x in value]


def error_of(conn: psycopg.Connection, sql: str, params: Any = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql, params)
    return ei.value


def fill(conns: dict[str, psycopg.Connection]) -> None:
    for conn in conns.values():
        conn.execute(ITEMS)
        for content, vec in ROWS:
            conn.execute("INSERT INTO items (content, embedding) VALUES (%s, %s)", (content, vec))


def test_any_dimension_per_row(both: dict[str, psycopg.Connection]) -> None:
    fill(both)
    got = {}
    for side, conn in both.items():
        rows = conn.execute("SELECT id, content, embedding FROM items ORDER BY id").fetchall()
        got[side] = [(r[0], r[1], floats(r[2])) for r in rows]
    assert got["pgvec"] == got["pgvector"]
    assert [len(r[2]) for r in got["pgvec"]] == [3, 2, 1, 2, 3]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_pgvector_python_adapter(both: dict[str, psycopg.Connection], binary: bool) -> None:
    """pgvector-python's psycopg 3 adapter, numpy arrays of any dimension in and out."""
    from pgvector.psycopg import register_vector

    got = {}
    for side, conn in both.items():
        conn.execute(ITEMS)
        register_vector(conn)
        for i, n in enumerate((3, 1, 7)):
            conn.execute(
                "INSERT INTO items (content, embedding) VALUES (%s, %s)",
                (str(i), np.arange(1, n + 1, dtype=np.float32) / 3),
                binary=binary,
            )
        with conn.cursor(binary=binary) as cur:
            rows = cur.execute("SELECT content, embedding FROM items ORDER BY id").fetchall()
            got[side] = [(r[0], r[1].tolist()) for r in rows]
            assert all(isinstance(r[1], np.ndarray) for r in rows), side
            described = cur.description
            assert described is not None
            got[side + " typmod"] = [described[1].internal_size, described[1].display_size]
    assert got["pgvec"] == got["pgvector"]
    assert got["pgvec typmod"] == got["pgvector typmod"]


def test_exact_search_on_rows_of_one_dimension(both: dict[str, psycopg.Connection]) -> None:
    fill(both)
    results = {}
    for side, conn in both.items():
        results[side] = [
            conn.execute(
                f"SELECT content, embedding {op} %s FROM items"
                f" WHERE id IN (2, 4) ORDER BY embedding {op} %s LIMIT 5",
                ("[3,1]", "[3,1]"),
            ).fetchall()
            for op in ("<->", "<=>", "<#>")
        ]
    for mine, theirs in zip(results["pgvec"], results["pgvector"], strict=True):
        assert [r[0] for r in mine] == [r[0] for r in theirs]
        np.testing.assert_allclose([r[1] for r in mine], [r[1] for r in theirs], rtol=1e-6)
    # the same by id, a literal query vector, no parameters
    for side, conn in both.items():
        d = conn.execute("SELECT embedding <-> '[3,1]' FROM items WHERE id = 2").fetchone()
        assert d is not None
        assert d[0] == pytest.approx(np.hypot(1, 4)), side


def test_different_dimensions_fail_as_in_pgvector(both: dict[str, psycopg.Connection]) -> None:
    fill(both)
    for query in (
        "SELECT id FROM items ORDER BY embedding <-> '[3,1,2]' LIMIT 5",
        "SELECT id FROM items ORDER BY embedding <=> %s LIMIT 5",
        "SELECT embedding <-> %s FROM items",
    ):
        errors = {
            side: error_of(conn, query, ("[3,1,2]",) if "%s" in query else None)
            for side, conn in both.items()
        }
        for err in errors.values():
            assert err.sqlstate == "22000"
            assert err.diag.message_primary is not None
            assert err.diag.message_primary.startswith("different vector dimensions ")
        # pgvector names the row's dimension first, the query's second; which row comes
        # first is the scan's business
        mine, theirs = (errors[s].diag.message_primary or "" for s in ("pgvec", "pgvector"))
        assert mine.endswith(" and 3") and theirs.endswith(" and 3")


def test_bad_rows_are_refused(both: dict[str, psycopg.Connection]) -> None:
    for conn in both.values():
        conn.execute(ITEMS)
    for bad in ("[]", "[1,NaN]", "[1,Infinity]", "[" + ",".join(["1"] * 16001) + "]"):
        errors = {
            side: error_of(conn, "INSERT INTO items (embedding) VALUES (%s)", (bad,))
            for side, conn in both.items()
        }
        mine, theirs = errors["pgvec"], errors["pgvector"]
        assert (mine.sqlstate, mine.diag.message_primary) == (
            theirs.sqlstate,
            theirs.diag.message_primary,
        ), bad[:20]
    longest = "[" + ",".join(["0.5"] * 16000) + "]"
    for conn in both.values():
        conn.execute("INSERT INTO items (embedding) VALUES (%s)", (longest,))
        row = conn.execute("SELECT embedding FROM items").fetchone()
        assert row is not None and floats(row[0]) == [0.5] * 16000


def test_bytea_straight_to_postgres_is_checked(proxy_uri: str, pg_uri: str, dbname: str) -> None:
    """The CHECK holds for writers that bypass the proxy, too."""
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute(ITEMS)
    with psycopg.connect(pg_uri, dbname=dbname) as direct:
        for bad in (b"", b"\x00\x00\x80", np.array([1, np.nan], "<f4").tobytes()):
            err = error_of(direct, "INSERT INTO items (embedding) VALUES (%s)", (bad,))
            assert err.sqlstate == "23514"
            direct.rollback()
        direct.execute("INSERT INTO items (embedding) VALUES (%s)", (np.ones(7, "<f4").tobytes(),))
        direct.commit()
    with UnitOfWork.connect(proxy_uri) as conn:
        row = conn.execute("SELECT embedding <-> '[1,1,1,1,1,1,1]' FROM items").fetchone()
        assert row == (0.0,)


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
def test_index_needs_dimensions(both: dict[str, psycopg.Connection], method: str) -> None:
    fill(both)
    for side, conn in both.items():
        err = error_of(conn, f"CREATE INDEX ON items USING {method} (embedding vector_l2_ops)")
        assert err.diag.message_primary == "column does not have dimensions", side
    # still usable, still searched exactly
    for conn in both.values():
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (5,)


def test_index_needs_dimensions_in_a_transaction_block(proxy_uri: str) -> None:
    with psycopg.connect(proxy_uri) as conn:
        conn.execute(ITEMS)
        conn.commit()
        err = error_of(conn, "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
        assert err.diag.message_primary == "column does not have dimensions"
        conn.rollback()


def test_alter_column_type_gives_a_dimension(both: dict[str, psycopg.Connection]) -> None:
    """How LangChain's users make their column indexable."""
    fill(both)
    alter = "ALTER TABLE items ALTER COLUMN embedding TYPE vector(3)"
    for side, conn in both.items():
        error_of(conn, alter)  # rows of 2 and 1 dimensions
        conn.execute("DELETE FROM items WHERE id IN (2, 3, 4)")
        conn.execute(alter)
        err = error_of(conn, "INSERT INTO items (embedding) VALUES ('[4,5]')")
        assert err.sqlstate == "22000", side
        assert err.diag.message_primary == "expected 3 dimensions, not 2", side
        conn.execute("INSERT INTO items (content, embedding) VALUES ('f', '[1,1,1]')")
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute("INSERT INTO items (content, embedding) VALUES ('g', '[2,2,3]')")
    hits = {
        side: conn.execute(
            "SELECT content, embedding <-> %s FROM items ORDER BY embedding <-> %s LIMIT 3",
            ("[1,2,3]", "[1,2,3]"),
        ).fetchall()
        for side, conn in both.items()
    }
    assert [r[0] for r in hits["pgvec"]] == [r[0] for r in hits["pgvector"]] == ["a", "g", "f"]
    np.testing.assert_allclose(
        [r[1] for r in hits["pgvec"]], [r[1] for r in hits["pgvector"]], rtol=1e-6
    )
    # and back to any dimension: pgvector refuses it while the index is there
    for side, conn in both.items():
        conn.execute("DROP INDEX items_embedding_idx")
        conn.execute("ALTER TABLE items ALTER COLUMN embedding TYPE vector")
        conn.execute("INSERT INTO items (content, embedding) VALUES ('h', '[9]')")
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (5,), side


def test_alter_column_type_rolled_back(proxy_uri: str) -> None:
    with psycopg.connect(proxy_uri) as conn:  # autocommit off: one transaction until rollback
        conn.execute(ITEMS)
        conn.commit()
        conn.execute("ALTER TABLE items ALTER COLUMN embedding TYPE vector(3)")
        err = error_of(conn, "INSERT INTO items (embedding) VALUES ('[4,5]')")
        assert err.diag.message_primary == "expected 3 dimensions, not 2"
        conn.rollback()
        conn.execute("INSERT INTO items (embedding) VALUES ('[4,5]'), ('[1,2,3]')")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)


def test_copy_rows_of_any_dimension(proxy_uri: str) -> None:
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute(ITEMS)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY items (content, embedding) FROM STDIN") as copy:
                copy.write_row(("a", "[1,2,3]"))
                copy.write_row(("b", "[4,5]"))
        rows = conn.execute("SELECT content, embedding FROM items ORDER BY id").fetchall()
        assert [(r[0], floats(r[1])) for r in rows] == [("a", [1, 2, 3]), ("b", [4, 5])]


def test_alter_type_of_a_column_that_is_no_vector(proxy_uri: str) -> None:
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v real[])")
        err = error_of(conn, "ALTER TABLE t ALTER COLUMN v TYPE vector(3)")
        assert err.sqlstate == "0A000"


def test_add_column_without_dimension(proxy_uri: str) -> None:
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("ALTER TABLE t ADD COLUMN v vector")
        conn.execute("INSERT INTO t VALUES (1, '[1,2]'), (2, '[1,2,3,4]')")
        rows = conn.execute("SELECT id, v <-> '[0,0]' FROM t WHERE id = 1").fetchall()
        assert rows == [(1, pytest.approx(np.sqrt(5)))]


def test_langchain_shape_through_psql(proxy_uri: str, pgvector_uri: str) -> None:
    """LangChain's table (no dimension), a search, and the index error, as psql prints
    them: the same lines from pgvec and from pgvector."""
    script = (
        "CREATE TABLE emb (id varchar PRIMARY KEY, document varchar,"
        " cmetadata jsonb, embedding vector);\n"
        "INSERT INTO emb VALUES ('x', 'hello', '{}', '[1,0]'), ('y', 'world', '{}', '[0,1]');\n"
        "SELECT id, document FROM emb ORDER BY embedding <=> '[1,0.1]' LIMIT 2;\n"
        "CREATE INDEX ON emb USING hnsw (embedding vector_cosine_ops);\n"
    )
    outputs = []
    for uri in (proxy_uri, pgvector_uri):
        run = subprocess.run(
            [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", uri],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
        )
        outputs.append(run.stdout + run.stderr)
    assert outputs[0] == outputs[1]
    assert "ERROR:  column does not have dimensions" in outputs[0]


# ---------------------------------------------------------------- tables without a key


REGRESSION = (
    "CREATE TABLE t (val vector(3));\n"
    "INSERT INTO t (val) VALUES ('[0,0,0]'), ('[1,2,3]'), ('[1,1,1]'), (NULL);\n"
    "SELECT * FROM t ORDER BY val <-> '[3,3,3]';\n"
    "SELECT * FROM t ORDER BY val <-> '[3,3,3]' LIMIT 2;\n"
)


def test_table_without_key_is_searched_exactly(proxy_uri: str, pgvector_uri: str) -> None:
    """pgvector's hnsw/ivfflat regression shape, without the index: the same rows."""
    got = {}
    for side, uri in (("pgvec", proxy_uri), ("pgvector", pgvector_uri)):
        with UnitOfWork.connect(uri) as conn:
            for statement in REGRESSION.strip().split(";\n")[:2]:
                conn.execute(statement)
            got[side] = [
                [None if r[0] is None else floats(r[0]) for r in conn.execute(q).fetchall()]
                for q in REGRESSION.strip().rstrip(";").split(";\n")[2:]
            ]
    assert got["pgvec"] == got["pgvector"]
    assert got["pgvec"][0] == [[1, 2, 3], [1, 1, 1], [0, 0, 0], None]


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE t (val vector(3))",
        "CREATE TABLE t (a int, b int, val vector(3), PRIMARY KEY (a, b))",
    ],
)
def test_index_without_single_column_key_is_one_clear_error(proxy_uri: str, ddl: str) -> None:
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute(ddl)
        err = error_of(conn, "CREATE INDEX ON t USING hnsw (val vector_l2_ops)")
        assert err.sqlstate == "42P16"
        assert err.diag.message_primary == (
            'table "t" has no single-column primary key: pgvec cannot index it'
        )
        hint = err.diag.message_hint or ""
        assert "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY" in hint
        # in a transaction block: the same error at CREATE INDEX, not at COMMIT
        with conn.transaction():
            err = error_of(conn, "CREATE INDEX ON t USING ivfflat (val vector_l2_ops)")
            assert err.sqlstate == "42P16"


def test_the_fix_the_hint_gives_works(proxy_uri: str, pgvector_uri: str) -> None:
    with UnitOfWork.connect(proxy_uri) as conn:
        conn.execute(REGRESSION.split(";\n")[0])
        conn.execute(REGRESSION.split(";\n")[1])
        conn.execute("ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        conn.execute("CREATE INDEX ON t USING hnsw (val vector_l2_ops)")
        conn.execute("INSERT INTO t (val) VALUES ('[3,3,2]')")
        rows = conn.execute("SELECT val FROM t ORDER BY val <-> '[3,3,3]' LIMIT 3").fetchall()
        assert [floats(r[0]) for r in rows] == [[3, 3, 2], [1, 2, 3], [1, 1, 1]]
