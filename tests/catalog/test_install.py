from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pgvec.catalog import SCRIPT_DIR, install, installed_version, list_indexes, load_tables
from pgvec.catalog.install import latest_version
from pgvec.catalog.queries import database_oid
from pgvec.errors import CatalogError


def test_script_dir_has_base_script() -> None:
    assert (SCRIPT_DIR / "pgvec--0.1.0.sql").is_file()
    assert latest_version() == "0.1.0"


def test_install_twice_is_idempotent(conn: psycopg.Connection) -> None:
    assert installed_version(conn) is None
    assert install(conn) == "0.1.0"
    assert installed_version(conn) == "0.1.0"
    assert install(conn) == "0.1.0"
    # The raw script is idempotent too.
    conn.execute((SCRIPT_DIR / "pgvec--0.1.0.sql").read_bytes())
    assert installed_version(conn) == "0.1.0"


def test_install_in_open_transaction(db_uri: str) -> None:
    with psycopg.connect(db_uri) as c:
        c.execute("SELECT 1")
        assert install(c) == "0.1.0"
        c.rollback()
        assert installed_version(c) is None
        install(c)
        c.commit()
        assert installed_version(c) == "0.1.0"


def test_upgrade_chain(conn: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "pgvec--0.1.0.sql").write_bytes((SCRIPT_DIR / "pgvec--0.1.0.sql").read_bytes())
    (tmp_path / "pgvec--0.1.0--0.2.0.sql").write_text(
        "CREATE TABLE IF NOT EXISTS pgvec.up2 (x int);"
    )
    (tmp_path / "pgvec--0.2.0--0.10.0.sql").write_text(
        "CREATE TABLE IF NOT EXISTS pgvec.up10 (x int);"
    )
    assert install(conn) == "0.1.0"
    assert latest_version(tmp_path) == "0.10.0"
    assert install(conn, tmp_path) == "0.10.0"
    assert installed_version(conn) == "0.10.0"
    assert conn.execute("SELECT to_regclass('pgvec.up10') IS NOT NULL").fetchone() == (True,)
    assert install(conn, tmp_path) == "0.10.0"


def test_changed_install_script_runs_again(conn: psycopg.Connection, tmp_path: Path) -> None:
    """An unreleased version's script that changed (a development build) is run again, so
    a database installed by an earlier build gets the new objects."""
    base = (SCRIPT_DIR / "pgvec--0.1.0.sql").read_text()
    (tmp_path / "pgvec--0.1.0.sql").write_text(base)
    assert install(conn, tmp_path) == "0.1.0"
    (tmp_path / "pgvec--0.1.0.sql").write_text(
        base + "\nCREATE TABLE IF NOT EXISTS pgvec.added_later (x int);\n"
    )
    assert install(conn, tmp_path) == "0.1.0"
    assert conn.execute("SELECT to_regclass('pgvec.added_later') IS NOT NULL").fetchone() == (True,)


def test_failing_script_raises_catalog_error(conn: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "pgvec--0.1.0.sql").write_text("CREATE SCHEMA pgvec; SELECT 1/0;")
    with pytest.raises(CatalogError, match=r"pgvec--0\.1\.0\.sql failed: division by zero"):
        install(conn, tmp_path)
    # Nothing was left behind.
    assert installed_version(conn) is None
    assert conn.execute("SELECT to_regnamespace('pgvec')").fetchone() == (None,)


def test_queries(conn: psycopg.Connection) -> None:
    install(conn)
    assert load_tables(conn) == {}
    conn.execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, title text, "
        "embedding bytea CONSTRAINT embedding_pgvec_dims CHECK (pgvec.is_vector(embedding, 3)), "
        "other bytea CHECK (pgvec.is_vector(other, 8)))"
    )
    conn.execute("CREATE TABLE nopk (v bytea CHECK (pgvec.is_vector(v, 2)), n int)")
    conn.execute("CREATE TABLE plain (id int PRIMARY KEY)")
    conn.execute("ALTER TABLE items DROP COLUMN title, ADD COLUMN tag varchar(20)")
    conn.execute("SELECT pgvec.track('items')")
    tables = load_tables(conn)
    assert len(tables) == 2
    relid = conn.execute("SELECT 'items'::regclass::oid::int8").fetchone()[0]  # type: ignore[index]
    t = tables[relid]
    assert (t.schema, t.name, t.pk, t.pk_type, t.tracked) == (
        "public",
        "items",
        "id",
        "bigint",
        True,
    )
    assert list(t.columns) == ["id", "embedding", "other", "tag"]
    assert {k: (v.attnum, v.dim) for k, v in t.vectors.items()} == {
        "embedding": (3, 3),
        "other": (4, 8),
    }
    n = next(x for x in tables.values() if x.name == "nopk")
    assert n.pk is None and n.pk_type is None and not n.tracked
    assert n.vectors["v"].dim == 2

    assert list_indexes(conn) == []
    conn.execute(
        "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name, "
        "method, metric, options) VALUES ('items_idx', 'public', %s, 3, 'embedding', "
        "'hnsw', 'l2', '{\"m\": 16}')",
        (relid,),
    )
    (ix,) = list_indexes(conn)
    assert (ix.index_name, ix.relid, ix.attnum, ix.method, ix.metric, ix.state) == (
        "items_idx",
        relid,
        3,
        "hnsw",
        "l2",
        "building",
    )
    assert ix.options == {"m": 16} and ix.progress == 0.0 and ix.rows_indexed == 0
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name, "
            "method, metric) VALUES ('other_idx', 'public', %s, 3, 'embedding', 'hnsw', 'l2')",
            (relid,),
        )
    oid = database_oid(conn)
    assert (
        oid
        == conn.execute(
            "SELECT oid::int8 FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    )  # type: ignore[index]


def _unique_keys(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'p') ORDER BY 1",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def test_an_earlier_catalog_gets_one_index_per_operator_class(conn: psycopg.Connection) -> None:
    """Catalogs of an earlier pgvec kept one index per column (UNIQUE (relid, attnum) on
    pgvec.indexes, one build per column in pgvec.build_progress); running the install
    script again (as install() does when it changed) makes it one per operator class."""
    install(conn)
    conn.execute(
        "ALTER TABLE pgvec.indexes DROP CONSTRAINT indexes_relid_attnum_metric_key,"
        " ADD UNIQUE (relid, attnum)"
    )
    conn.execute(
        "ALTER TABLE pgvec.build_progress DROP CONSTRAINT build_progress_pkey,"
        " DROP COLUMN metric, ADD PRIMARY KEY (relid, attnum)"
    )
    conn.execute(
        "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name,"
        " method, metric) VALUES ('old_idx', 'public', 1, 2, 'embedding', 'HNSW', 'L2')"
    )
    for _ in range(2):  # the script stays idempotent
        conn.execute((SCRIPT_DIR / "pgvec--0.1.0.sql").read_bytes())
        assert _unique_keys(conn, "pgvec.indexes") == [
            "PRIMARY KEY (schema_name, index_name)",
            "UNIQUE (relid, attnum, metric)",
        ]
        assert _unique_keys(conn, "pgvec.build_progress") == ["PRIMARY KEY (relid, attnum, metric)"]
    conn.execute(
        "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name,"
        " method, metric) VALUES ('cos_idx', 'public', 1, 2, 'embedding', 'HNSW', 'COSINE')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name,"
            " method, metric) VALUES ('l2_again', 'public', 1, 2, 'embedding', 'HNSW', 'L2')"
        )
