"""pgvector-python's adapters, as its README shows them, against pgvec and against real
pgvector: the same calls give the same answers.

pgvec stores vectors as bytea; through the proxy a client sees pgvector's ``vector``
type (an OID its adapters find by name) in pgvector's text and binary formats, in
parameters and results. Real pgvector runs in another database of the same cluster.
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
from pgvector.sqlalchemy import Vector, avg
from pgvector.sqlalchemy import sum as vector_sum
from sqlalchemy import BigInteger, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from tests.fix_pgvector import on_both

ROWS, DIM = 60, 3


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.standard_normal((ROWS, DIM)).astype("f4")


def test_create_extension_is_answered_by_pgvec(proxy_uri: str, conn: psycopg.Connection) -> None:
    with psycopg.connect(proxy_uri) as c:
        assert c.execute("CREATE EXTENSION vector").statusmessage == "CREATE EXTENSION"
        assert c.execute("CREATE EXTENSION IF NOT EXISTS vector").statusmessage == (
            "CREATE EXTENSION"
        )
        c.execute("CREATE TABLE t (id int PRIMARY KEY, e vector(3))")
        assert c.execute("DROP EXTENSION IF EXISTS vector CASCADE").statusmessage == (
            "DROP EXTENSION"
        )
        c.commit()
    # the real extension never came in; pgvec's type did, and the column stays bytea
    assert conn.execute(
        "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT typtype FROM pg_type WHERE oid = 'public.vector'::regtype"
    ).fetchone() == ("e",)
    assert conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 't'::regclass AND attname = 'e'"
    ).fetchone() == ("bytea",)


def test_psycopg3(both: dict[str, str], data: np.ndarray) -> None:
    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            c.execute("CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3))")
            c.commit()
            register_vector(c)
            for v in data[:30]:
                c.execute("INSERT INTO items (embedding) VALUES (%s)", (v,))
            with c.cursor(binary=True) as cur:  # binary parameters and results
                for v in data[30:]:
                    cur.execute("INSERT INTO items (embedding) VALUES (%b)", (v,))
            c.commit()
            q = np.array([1, 1, 1])
            out = [
                c.execute("SELECT * FROM items ORDER BY embedding <-> %s LIMIT 5", (q,)).fetchall(),
                c.execute("SELECT * FROM items ORDER BY id LIMIT 3").fetchall(),
                c.cursor(binary=True)
                .execute("SELECT * FROM items ORDER BY embedding <=> %b LIMIT 5", (q,))
                .fetchall(),
                c.cursor(binary=True).execute("SELECT embedding FROM items ORDER BY id").fetchall(),
            ]
            c.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
            c.commit()
            out.append(
                c.execute(
                    "SELECT id, embedding FROM items ORDER BY embedding <-> %s LIMIT 5", (q,)
                ).fetchall()
            )
            info = psycopg.types.TypeInfo.fetch(c, "vector")
            assert info is not None and info.name == "vector"
            return out

    out = on_both(both, run)
    assert isinstance(out[1][0][1], np.ndarray) and out[1][0][1].dtype == np.float32


def test_insert_select(both: dict[str, str]) -> None:
    """A vector literal in an INSERT ... SELECT's select list (found by LangChain's
    suite: it was stored as the bytes of its text and failed the CHECK)."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute("CREATE TABLE items (id int PRIMARY KEY, t text, embedding vector(3))")
            c.execute("INSERT INTO items SELECT i, 'x', '[1,2,3]' FROM generate_series(1, 2) i")
            c.execute("INSERT INTO items (embedding, id) SELECT %s, 3", ("[4,5,6]",))
            return c.execute("SELECT id, embedding::text FROM items ORDER BY id").fetchall()

    assert on_both(both, run) == [(1, "[1,2,3]"), (2, "[1,2,3]"), (3, "[4,5,6]")]


def test_names_longer_than_postgresql_keeps(both: dict[str, str], data: np.ndarray) -> None:
    """Table, schema and column names longer than 63 bytes name what PostgreSQL cuts
    them to (pgvector-haystack's tests name their tables after themselves): pgvec saw no
    vector table in them and passed the statements through to bytea."""
    table, schema, col = "t" * 70, "s" * 70, "e" * 40 + "é" * 20  # 80 bytes

    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            c.execute(f"CREATE SCHEMA {schema}")
            c.execute(f'CREATE TABLE {schema}.{table} (id int PRIMARY KEY, "{col}" vector(3))')
            c.execute(f"INSERT INTO {schema}.{table} VALUES (1, '[1,2,3]'), (2, '[1,1,1]')")
            register_vector(c)
            c.execute(f"SET search_path = {schema}, public")
            for i, v in enumerate(data[:20], start=3):
                c.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, v))
            c.commit()
            c.execute(f'CREATE INDEX ON {table} USING hnsw ("{col}" vector_l2_ops)')
            c.commit()
            q = np.array([1, 1, 1], dtype=np.float32)
            nearest = c.execute(
                f'SELECT id, "{col}", "{col}" <-> %s FROM {schema}.{table}'
                f' ORDER BY "{col}" <-> %s LIMIT 3',
                (q, q),
            ).fetchall()
            by_table = c.execute(
                f"SELECT id FROM {table} ORDER BY {table}.\"{col}\" <=> '[1,2,3]' LIMIT 2"
            ).fetchall()
            # the distances differ in the last digits (see the README)
            return [[(i, e, round(d, 5)) for i, e, d in nearest], by_table]

    out = on_both(both, run)
    assert out[0][0][0] == 2 and out[1][0][0] == 1


def test_the_extension_is_listed(both: dict[str, str]) -> None:
    """pg_extension, pg_available_extensions and pg_available_extension_versions list
    pgvector's extension (installed, at 0.6), as tools look it and its version up
    (supabase's vecs reads installed_version; psql's \\dx)."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            c.commit()
            ext = c.execute(
                "SELECT extname, n.nspname, extversion FROM pg_catalog.pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'vector'"
            ).fetchall()
            available = c.execute(
                "SELECT installed_version FROM pg_available_extensions"
                " WHERE name = 'vector' LIMIT 1"
            ).fetchall()
            versions = c.execute(
                "SELECT version, installed FROM pg_available_extension_versions"
                " WHERE name = 'vector' AND installed"
            ).fetchall()
            listed = subprocess.run(
                ["psql", "-X", "-A", "-t", "-d", uri, "-c", r"\dx vector"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            return ext, available, versions, listed.split("|")[:2]

    out = {name: run(uri) for name, uri in both.items()}
    for ext, available, versions, listed in out.values():
        assert [e[:2] for e in ext] == [("vector", "public")] and ext[0][2].startswith("0.6")
        assert len(available) == 1 and available[0][0].startswith("0.6")
        assert len(versions) == 1 and versions[0][0].startswith("0.6") and versions[0][1]
        assert listed[0] == "vector" and listed[1].startswith("0.6")


def test_a_vector_columns_typmod_is_its_dimension(both: dict[str, str]) -> None:
    """pg_attribute.atttypmod of a vector(n) column is n, as pgvector's (supabase's vecs
    reads a collection's dimension there); pg_dump's format_type(t.oid, a.atttypmod) is
    left alone (tests/e2e/test_dump_restore.py)."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(
                "CREATE TABLE tt (id int PRIMARY KEY, a vector(3), b vector, c vector(2)[], d int)"
            )
            return c.execute(
                "SELECT attname, atttypmod FROM pg_attribute pa"
                " WHERE pa.attrelid = 'tt'::regclass AND attnum > 1 ORDER BY attnum"
            ).fetchall()

    assert on_both(both, run) == [("a", 3), ("b", -1), ("c", 2), ("d", -1)]


def test_pg_indexes(both: dict[str, str]) -> None:
    """pg_indexes lists pgvec's indexes, with the definitions pgvector's have."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
            c.execute(
                "INSERT INTO items SELECT i, format('[%s,%s,1]', i, i % 7)::vector"
                " FROM generate_series(1, 60) i"
            )
            c.execute(
                "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops)"
                " WITH (m = 16, ef_construction = 64)"
            )
            c.execute("CREATE INDEX items_ivf ON items USING ivfflat (embedding) WITH (lists = 4)")
            return c.execute(
                "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes"
                " WHERE tablename = 'items' ORDER BY indexname"
            ).fetchall()

    assert on_both(both, run)[0] == (
        "public",
        "items",
        "items_hnsw",
        "CREATE INDEX items_hnsw ON public.items USING hnsw (embedding vector_cosine_ops)"
        " WITH (m='16', ef_construction='64')",
    )


def test_pg_class(both: dict[str, str], app_role: str) -> None:
    """pg_class has a row for each pgvec index, as tools look indexes up: by schema, name
    and kind, with the options its CREATE INDEX gave (pgvector-haystack's test of
    recreating its index compares OIDs and reloptions; supabase's vecs finds its index by
    name). As an ordinary role too."""

    index = """
        SELECT c.oid, c.reloptions FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'i' AND n.nspname = %s AND c.relname = %s"""
    vecs = """
        select relname as table_name from pg_class pc
        where pc.relnamespace = 'public'::regnamespace
          and relname ilike 'ix_vector%%' and pc.relkind = 'i'"""

    def run(uri: str) -> Any:
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(f"GRANT CREATE ON SCHEMA public TO {app_role}")
        role_uri = uri.replace("postgres@", f"{app_role}@")
        with psycopg.connect(role_uri) as c:
            c.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
            c.execute("INSERT INTO items VALUES (1, '[1,1,1]'), (2, '[2,2,2]')")
            c.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
            c.commit()
            first_oid, first_options = c.execute(index, ("public", "items_hnsw")).fetchone()
            c.execute("DROP INDEX items_hnsw")
            c.execute(
                "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)"
                " WITH (m = 32, ef_construction = 128)"
            )
            c.commit()
            second_oid, second_options = c.execute(index, ("public", "items_hnsw")).fetchone()
            c.execute(
                "CREATE INDEX ix_vector_cosine_ops_hnsw_m16_efc64_ab12 ON items"
                " USING hnsw (embedding vector_cosine_ops)"
            )
            c.commit()
            found = (
                first_options,
                second_oid != first_oid,
                sorted(second_options),
                c.execute(vecs).fetchall(),
                c.execute(index, ("public", "nope")).fetchall(),
                c.execute(
                    "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'ix_vector%'"
                ).fetchall(),
            )
            c.execute("DROP TABLE items")  # (the role is dropped after the test)
            c.commit()
        with psycopg.connect(uri, autocommit=True) as c:
            c.execute(f"REVOKE CREATE ON SCHEMA public FROM {app_role}")
        return found

    assert on_both(both, run) == (
        None,
        True,
        ["ef_construction=128", "m=32"],
        [("ix_vector_cosine_ops_hnsw_m16_efc64_ab12",)],
        [],
        [
            (
                "CREATE INDEX ix_vector_cosine_ops_hnsw_m16_efc64_ab12 ON public.items"
                " USING hnsw (embedding vector_cosine_ops)",
            )
        ],
    )


def test_psycopg2(both: dict[str, str], data: np.ndarray) -> None:
    def run(uri: str) -> Any:
        c = psycopg2.connect(uri)
        try:
            register_psycopg2(c, globally=False)
            cur = c.cursor()
            cur.execute("CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3))")
            cur.executemany("INSERT INTO items (embedding) VALUES (%s)", [(v,) for v in data])
            c.commit()
            cur.execute("SELECT * FROM items ORDER BY embedding <-> %s LIMIT 5", (data[3],))
            first = cur.fetchall()
            cur.execute("SELECT embedding FROM items WHERE id = 2")
            second = cur.fetchall()
            c.commit()
            return [first, second]
        finally:
            c.close()

    out = on_both(both, run)
    assert isinstance(out[1][0][0], np.ndarray)


def test_asyncpg(both: dict[str, str], data: np.ndarray) -> None:
    async def run_async(uri: str) -> Any:
        conn = await asyncpg.connect(uri)
        try:
            await conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3))")
            # without a codec: a vector parameter as text, as asyncpg sends str
            await conn.execute("INSERT INTO items (embedding) VALUES ($1)", "[1,2,3]")
            first = await conn.fetch(
                "SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 1", "[1,2,3]"
            )
            # and reads vectors as text (str), as asyncpg reads pgvector's without a codec
            plain = await conn.fetch("SELECT id, embedding FROM items ORDER BY id")
            assert plain[0]["embedding"] == "[1,2,3]"
            await register_asyncpg(conn)
            await conn.executemany(
                "INSERT INTO items (embedding) VALUES ($1)", [(v,) for v in data]
            )
            rows = await conn.fetch(
                "SELECT * FROM items ORDER BY embedding <-> $1 LIMIT 5", data[7]
            )
            stmt = await conn.prepare("SELECT id, embedding FROM items WHERE id = $1")
            again = [await stmt.fetchrow(i) for i in (1, 2, 3)]
            await conn.copy_records_to_table(
                "items", records=[(1000 + i, v) for i, v in enumerate(data[:5])]
            )
            copied = await conn.fetch("SELECT * FROM items WHERE id >= 1000 ORDER BY id")
            return [
                [tuple(r) for r in first],
                [tuple(r) for r in rows],
                [tuple(r) for r in again],
                [tuple(r) for r in copied],
            ]
        finally:
            await conn.close()

    on_both(both, lambda uri: asyncio.run(run_async(uri)))


def test_copy(both: dict[str, str], data: np.ndarray) -> None:
    """COPY in pgvector's binary form (pgvector-python's documented bulk load) and in
    text, and COPY out in both."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            register_vector(c)
            c.execute("CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3))")
            with c.cursor().copy(
                "COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int8", "vector"])
                for i, v in enumerate(data[:30]):
                    cp.write_row((i, v))
            with c.cursor().copy("COPY items FROM STDIN") as cp:
                for i, v in enumerate(data[30:], 30):
                    cp.write_row((i, v))
            c.commit()
            with c.cursor().copy("COPY items TO STDOUT") as cp:
                text = b"".join(bytes(b) for b in cp)
            with c.cursor(binary=True).copy(
                "COPY items (embedding, id) TO STDOUT (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["vector", "int8"])
                rows = list(cp.rows())
            top = c.execute(
                "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (data[40],)
            ).fetchall()
            return [text.decode(), rows, top]

    out = on_both(both, run)
    assert out[0].splitlines()[0].split("\t")[1].startswith("[")


def test_sqlalchemy(both: dict[str, str], data: np.ndarray) -> None:
    """pgvector.sqlalchemy's Vector as its README shows: create_all (DDL in a
    transaction), insert, l2_distance / cosine_distance ordering, max_inner_product."""

    def run(uri: str) -> Any:
        engine = create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                session.add_all([Item(id=i, embedding=v) for i, v in enumerate(data)])
                session.commit()
                q = data[5]
                return [
                    session.scalars(
                        select(Item.id).order_by(Item.embedding.l2_distance(q)).limit(5)
                    ).all(),
                    session.scalars(
                        select(Item.id).order_by(Item.embedding.cosine_distance(q)).limit(5)
                    ).all(),
                    session.scalars(
                        select(Item.id).order_by(Item.embedding.max_inner_product(q)).limit(5)
                    ).all(),
                    session.scalars(
                        select(Item.id)
                        .filter(Item.embedding.l2_distance(q) < 1.0)
                        .order_by(Item.id)
                    ).all(),
                    session.get(Item, 3).embedding,  # type: ignore[union-attr]
                    session.scalars(select(avg(Item.embedding))).first(),
                    session.scalars(select(vector_sum(Item.embedding))).first(),
                ]
        finally:
            engine.dispose()

    out = on_both(both, run)
    assert out[0][0] == 5


def test_readme_flow_in_one_transaction(both: dict[str, str], data: np.ndarray) -> None:
    """pgvector-python's README steps on psycopg's defaults: the table is made, filled and
    searched in one open transaction (searched exactly, in SQL, until it commits)."""

    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(c)
            c.execute("CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(3))")
            for v in data[:20]:
                c.execute("INSERT INTO items (embedding) VALUES (%s)", (v,))
            q = data[3]
            first = c.execute(
                "SELECT id, embedding <-> %s FROM items ORDER BY embedding <-> %s LIMIT 5", (q, q)
            ).fetchall()
            c.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
            second = c.execute(
                "SELECT id FROM items ORDER BY embedding <=> %s LIMIT 3", (q,)
            ).fetchall()
            c.commit()
            third = c.execute(
                "SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (q,)
            ).fetchall()
            return [[(i, round(d, 5)) for i, d in first], second, third]

    on_both(both, run)


def test_reflection_and_describe(both: dict[str, str]) -> None:
    """SQLAlchemy's reflection (what Alembic's autogenerate compares) and psql's \\d see
    vector(n) columns, as with pgvector."""
    from sqlalchemy import inspect

    def run(uri: str) -> Any:
        with psycopg.connect(uri) as c:
            c.execute("CREATE TABLE items (id bigint PRIMARY KEY, title text, embedding vector(3))")
            c.commit()
        engine = create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            cols = inspect(engine).get_columns("items")
        finally:
            engine.dispose()
        described = subprocess.run(
            ["psql", uri, "-X", "-c", r"\d items"], capture_output=True, text=True, check=True
        ).stdout
        rows = [line for line in described.splitlines() if line.startswith(" ")]
        return [[(col["name"], repr(col["type"])) for col in cols], rows[:4]]

    out = on_both(both, run)
    assert out[0][2] == ("embedding", "VECTOR(dim=3)")


def test_sqlalchemy_asyncpg(both: dict[str, str], data: np.ndarray) -> None:
    """SQLAlchemy's asyncio engine on asyncpg (binary transfer; Vector sends and reads
    vectors as text, with no codec registered)."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def run_async(uri: str) -> Any:
        engine = create_async_engine(uri.replace("postgresql://", "postgresql+asyncpg://", 1))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            async with AsyncSession(engine) as session:
                session.add_all([Item(id=i, embedding=v) for i, v in enumerate(data)])
                await session.commit()
                q = data[9]
                ids = (
                    await session.scalars(
                        select(Item.id).order_by(Item.embedding.cosine_distance(q)).limit(5)
                    )
                ).all()
                item = await session.get(Item, 4)
                assert item is not None
                return [list(ids), item.embedding]
        finally:
            await engine.dispose()

    out = on_both(both, lambda uri: asyncio.run(run_async(uri)))
    assert out[0][0] == 9


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id = mapped_column(BigInteger, primary_key=True)
    embedding = mapped_column(Vector(3))
