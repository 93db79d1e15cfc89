"""Arrays of vectors (``vector[]``, ``vector(n)[]``), as pgvector-python's own tests use
them: each client writes and reads them through pgvec and through real pgvector, and
gets the same answers.

pgvec stores such a column as ``bytea[]`` with a CHECK; clients see pgvector's
``_vector`` type, in its text (``{"[1,2,3]","[4,5,6]"}``) and binary formats.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import asyncpg
import numpy as np
import psycopg
import psycopg2
import pytest
from pgvector.asyncpg import register_vector as register_asyncpg
from pgvector.psycopg import register_vector
from pgvector.psycopg2 import register_vector as register_psycopg2
from pgvector.utils import Vector

from tests.fix_pgvector import on_both

TABLE = (
    "CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3), embeddings vector[],"
    " fixed vector(2)[])"
)
EMBEDDINGS = [np.array([1.5, 2, 3]), np.array([4.5, 5, 6])]


def test_psycopg(both: dict[str, str]) -> None:
    """pgvector-python's ``test_vector_array`` for psycopg 3, in text and binary."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(TABLE)
            register_vector(c)
            c.execute("INSERT INTO items (embeddings) VALUES (%s)", (EMBEDDINGS,))
            c.execute("INSERT INTO items (embeddings) VALUES (%t)", (EMBEDDINGS[::-1],))
            c.execute("INSERT INTO items (embeddings) VALUES (%b)", ([EMBEDDINGS[0], None],))
            c.execute("INSERT INTO items (embeddings) VALUES (%s)", ([],))
            text = c.execute("SELECT embeddings FROM items ORDER BY id").fetchall()
            binary = c.cursor(binary=True).execute("SELECT embeddings FROM items ORDER BY id")
            as_text = c.execute("SELECT embeddings::text FROM items ORDER BY id").fetchall()
            c.execute("UPDATE items SET embedding = %s WHERE embeddings <> '{}'", (EMBEDDINGS[1],))
            q = np.array([4, 5, 6])
            top = "SELECT id, embeddings FROM items ORDER BY embedding <-> %s LIMIT 2"
            nearest = [
                c.execute(top, (q,)).fetchall(),
                c.cursor(binary=True).execute(top, (q,)).fetchall(),
            ]
            return [text, binary.fetchall(), as_text, nearest]

    out = on_both(both, run)
    assert np.array_equal(out[0][0][0][0], EMBEDDINGS[0])
    assert out[0][0][0][1].dtype == np.float32
    assert out[2][0] == ('{"[1.5,2,3]","[4.5,5,6]"}',)


def test_psycopg2(both: dict[str, str]) -> None:
    """pgvector-python's psycopg2 test: an array literal cast to ``vector[]``, read back
    with ``register_vector(arrays=True)``."""

    def run(uri: str) -> Any:
        c = psycopg2.connect(uri)
        try:
            register_psycopg2(c, globally=False, arrays=True)
            cur = c.cursor()
            cur.execute(TABLE)
            cur.execute("INSERT INTO items (embeddings) VALUES (%s::vector[])", (EMBEDDINGS,))
            cur.execute("INSERT INTO items (fixed) VALUES (ARRAY['[1,2]', '[3,4]']::vector(2)[])")
            cur.execute("""INSERT INTO items (embeddings) VALUES ('{"[7,8,9]",NULL}')""")
            c.commit()
            cur.execute("SELECT embeddings, fixed FROM items ORDER BY id")
            return cur.fetchall()
        finally:
            c.close()

    out = on_both(both, run)
    assert np.array_equal(out[0][0][1], EMBEDDINGS[1])


def test_asyncpg(both: dict[str, str]) -> None:
    """pgvector-python's asyncpg ``test_vector_array``: ``ARRAY[$1, $2]::vector[]``, and
    an array parameter of Vector values."""

    async def run_async(uri: str) -> Any:
        conn = await asyncpg.connect(uri)
        try:
            await conn.execute(TABLE)
            await conn.execute("""INSERT INTO items (embeddings) VALUES ('{"[1,2,3]",NULL}')""")
            # without a codec, asyncpg sends and reads the vectors as text (enum labels to
            # it): SQLAlchemy's ARRAY(VECTOR(3)) on asyncpg
            await conn.execute("INSERT INTO items (fixed) VALUES ($1)", ["[1,2]", None])
            await conn.execute("INSERT INTO items (embeddings) VALUES ($1::vector(2)[])", ["[3,4]"])
            plain = [
                [r[0] and list(r[0]), r[1] and list(r[1])]
                for r in await conn.fetch("SELECT embeddings, fixed FROM items ORDER BY id")
            ]
            await conn.execute("DELETE FROM items")
            await register_asyncpg(conn)
            await conn.execute(
                "INSERT INTO items (embeddings) VALUES (ARRAY[$1, $2]::vector[])", *EMBEDDINGS
            )
            await conn.execute(  # (sqlglot alone cannot read $1,$2)
                "INSERT INTO items (embedding,fixed) VALUES ($1,ARRAY[$2,$3]::vector[])",
                EMBEDDINGS[0],
                np.array([1, 2]),
                np.array([3, 4]),
            )
            await conn.execute(
                "INSERT INTO items (embeddings) VALUES ($1)", [Vector(e) for e in EMBEDDINGS]
            )
            rows = await conn.fetch("SELECT embeddings, embedding, fixed FROM items ORDER BY id")
            return [plain, *([r[0] and list(r[0]), r[1], r[2] and list(r[2])] for r in rows)]
        finally:
            await conn.close()

    out = on_both(both, lambda uri: asyncio.run(run_async(uri)))
    assert out[0] == [[["[1,2,3]", None], None], [None, ["[1,2]", None]], [["[3,4]"], None]]
    assert np.array_equal(out[1][0][1], EMBEDDINGS[1])
    assert np.array_equal(out[2][2][1], [3, 4])


def test_psql_and_dimensions(both: dict[str, str]) -> None:
    """What psql prints, ``\\d``'s types, and pgvector's errors for a wrong dimension."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(TABLE)
            c.execute("""INSERT INTO items (embeddings, fixed) VALUES ('{"[1,2.5]"}', '{}')""")
            c.execute("""INSERT INTO items (embeddings) VALUES ('{[1],"[2, 3]",NULL}')""")
            bad = [
                """SELECT '{"[1,2,3]"}'::vector(2)[]""",
                """SELECT '{"[1,x]"}'::vector[]""",
                """INSERT INTO items (fixed) VALUES ('{"[1,2,3]"}')""",
                "INSERT INTO items (fixed) VALUES (ARRAY['[1,2,3]'::vector])",
            ]
            errors = [_error(c, sql) for sql in bad]
        shown = subprocess.run(
            [
                "psql",
                uri,
                "-X",
                "-A",
                "-c",
                "SELECT id, embeddings, fixed FROM items",
                "-c",
                r"\d items",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # (pgvec's \d also lists the columns' CHECK constraints, and its triggers)
        return [errors, [line for line in shown.splitlines() if "|" in line]]

    out = on_both(both, run)
    assert '1|{"[1,2.5]"}|{}' in out[1]
    assert '2|{[1],"[2,3]",NULL}|' in out[1]


def _error(c: psycopg.Connection, sql: str) -> tuple[str | None, str]:
    with pytest.raises(psycopg.Error) as e:
        c.execute(sql)
    return e.value.sqlstate, str(e.value).splitlines()[0]


@pytest.mark.parametrize("spelling", ["vector(3)[]", "vector(3) ARRAY", "vector(3)[4]"])
def test_column_spellings(both: dict[str, str], spelling: str) -> None:
    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(f"CREATE TABLE t (id int PRIMARY KEY, a {spelling})")
            c.execute("""INSERT INTO t VALUES (1, '{"[1,2,3]"}')""")
            return [
                c.execute("SELECT a::text FROM t").fetchall(),
                c.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = 't'::regclass AND attname = 'a'"
                ).fetchall(),
            ]

    assert on_both(both, run) == [[('{"[1,2,3]"}',)], [("vector(3)[]",)]]


def test_malformed_array_column(both: dict[str, str]) -> None:
    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            return _error(c, "CREATE TABLE t (id int PRIMARY KEY, a vector(3)[2)")

    assert on_both(both, run)[0] == "42601"


def test_sqlalchemy(both: dict[str, str]) -> None:
    """pgvector-python's SQLAlchemy ``test_vector_array``: an ``ARRAY(VECTOR(3))`` column
    made by ``create_all``, written and read through the ORM on psycopg (its vectors
    registered on connect, as that suite does), and reflected as such."""
    from pgvector.sqlalchemy import VECTOR
    from sqlalchemy import ARRAY, BigInteger, create_engine, event, inspect
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "sqlalchemy_orm_item"
        id = mapped_column(BigInteger, primary_key=True)
        embeddings = mapped_column(ARRAY(VECTOR(3)))

    def run(uri: str) -> Any:
        engine = create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))

        @event.listens_for(engine, "connect")
        def connect(dbapi_connection: Any, connection_record: Any) -> None:
            register_vector(dbapi_connection)

        try:
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                session.add(Item(id=1, embeddings=[np.array([1, 2, 3]), np.array([4, 5, 6])]))
                session.add(Item(id=2, embeddings=None))
                session.commit()
            with Session(engine) as session:
                first = session.get(Item, 1)
                assert first is not None
                values = [e.tolist() for e in first.embeddings]
                first.embeddings = [np.array([7, 8, 9])]
                session.commit()
                updated = [e.tolist() for e in session.get(Item, 1).embeddings]
            reflected = inspect(engine).get_columns("sqlalchemy_orm_item")
            return [values, updated, [(c["name"], repr(c["type"])) for c in reflected]]
        finally:
            engine.dispose()

    out = on_both(both, run)
    assert out[0] == [[1, 2, 3], [4, 5, 6]]


def test_copy(both: dict[str, str]) -> None:
    """COPY of arrays of vectors in and out, text and binary, with psycopg's COPY API."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(TABLE)
            register_vector(c)
            cur = c.cursor()
            with cur.copy("COPY items (id, embeddings) FROM STDIN") as copy:
                copy.write_row([1, EMBEDDINGS])
                copy.write_row([2, None])
            with cur.copy("COPY items (id, embeddings, fixed) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector[]", "vector[]"])
                copy.write_row([3, EMBEDDINGS[::-1], [np.array([1, 2]), None]])
            with cur.copy("COPY items (id, embeddings, fixed) TO STDOUT") as copy:
                text = [bytes(row) for row in copy]
            with cur.copy("COPY items (id, embeddings, fixed) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector[]", "vector[]"])
                binary = list(copy.rows())
            return [text, binary]

    out = on_both(both, run)
    assert out[0][0] == b'1\t{"[1.5,2,3]","[4.5,5,6]"}\t\\N\n'


def test_ordinary_role_in_one_transaction(proxy_uri: str, app_role: str) -> None:
    """An ordinary role on psycopg's defaults (autocommit off): the table made, written
    and read in one transaction, then again after the commit."""
    uri = proxy_uri.replace("postgres@", f"{app_role}@")
    with psycopg.connect(uri) as c:
        c.execute(TABLE)
        c.execute(  # a literal, and a str parameter: arrays in pgvector's text form
            """INSERT INTO items (embeddings, fixed) VALUES ('{"[1,2,3]"}', %s)""",
            ('{"[1,2]",NULL}',),
        )
        register_vector(c)
        c.execute("INSERT INTO items (embeddings) VALUES (%b)", (EMBEDDINGS,))
        inside = c.execute("SELECT embeddings, fixed FROM items ORDER BY id").fetchall()
        c.commit()
        after = c.execute("SELECT embeddings::text, fixed::text FROM items ORDER BY id").fetchall()
    assert [e.tolist() for e in inside[0][0]] == [[1, 2, 3]]
    assert inside[0][1][1] is None
    assert after == [('{"[1,2,3]"}', '{"[1,2]",NULL}'), ('{"[1.5,2,3]","[4.5,5,6]"}', None)]


def test_information_schema(both: dict[str, str]) -> None:
    """information_schema.columns describes vector columns and arrays of vectors as
    pgvector's types (LangChain's PGVectorStore checks a column's data_type)."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(TABLE)
            return c.execute(
                "SELECT column_name, data_type, udt_schema, udt_name"
                " FROM information_schema.columns WHERE table_name = 'items'"
                " ORDER BY ordinal_position"
            ).fetchall()

    assert on_both(both, run)[1:] == [
        ("embedding", "USER-DEFINED", "public", "vector"),
        ("embeddings", "ARRAY", "public", "_vector"),
        ("fixed", "ARRAY", "public", "_vector"),
    ]
