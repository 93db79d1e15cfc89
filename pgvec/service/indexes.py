"""Index lifecycle: CREATE INDEX and DROP INDEX on pgvec indexes, and forgetting tables."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from pgvec.engine.spec import IndexSpec, Metric
from pgvec.errors import DuplicateObject, UndefinedObject

if TYPE_CHECKING:
    from pgvec.catalog.models import IndexRow
    from pgvec.rewrite.decision import IndexDef
    from pgvec.service.database import Database
    from pgvec.sync.table import TableState

log = logging.getLogger(__name__)

DEFAULT_OPCLASS = "vector_l2_ops"


def find(conn: psycopg.Connection, schema: str | None, name: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT relid, attnum, schema_name, index_name FROM pgvec.indexes"
        " WHERE index_name = %s AND schema_name = coalesce(%s, 'public')",
        (name, schema),
    ).fetchone()


def _unique_name(conn: psycopg.Connection, schema: str, base: str) -> str:
    """PostgreSQL's choice of a default index name: base, base1, base2, ..."""
    name, n = base, 0
    while conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
        " WHERE s.nspname = %(s)s AND c.relname = %(n)s"
        " UNION ALL SELECT 1 FROM pgvec.indexes WHERE schema_name = %(s)s AND index_name = %(n)s",
        {"s": schema, "n": name},
    ).fetchone():
        n += 1
        name = f"{base}{n}"
    return name


def create(db: Database, idef: IndexDef, notify: Callable[[str], None] | None = None) -> None:
    """Build the index and record it in ``pgvec.indexes``. Caller holds the table lock.

    A build that takes more than a second reports its progress to ``notify`` (the proxy
    sends it to the client as NOTICEs) about once a second.
    """
    info = idef.table
    column = idef.column
    metric = Metric.from_opclass(idef.opclass or DEFAULT_OPCLASS)
    spec = IndexSpec.create(idef.method, metric, idef.options)
    with db.pool.connection() as conn:
        schema = info.schema
        if idef.name is None:
            name = _unique_name(conn, schema, f"{info.name}_{column.name}_idx")
        else:
            name = idef.name
            if _unique_name(conn, schema, name) != name:
                if idef.if_not_exists:
                    log.info('relation "%s" already exists, skipping', name)
                    return
                raise DuplicateObject(f'relation "{name}" already exists')
        existing = conn.execute(
            "SELECT index_name FROM pgvec.indexes WHERE relid = %s AND attnum = %s",
            (info.relid, column.attnum),
        ).fetchone()
        if existing:
            if idef.if_not_exists:
                return
            raise DuplicateObject(
                f'column "{column.name}" already has the pgvec index "{existing[0]}"',
                hint=f"DROP INDEX {existing[0]} first, or REINDEX it.",
            )
        state = db.ensure_loaded(conn, info, column.attnum)
        conn.execute(
            "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name,"
            " method, metric, options, state) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,'building')",
            (
                name,
                schema,
                info.relid,
                column.attnum,
                column.name,
                spec.index_type,
                metric.name,
                json.dumps(dict(spec.params)),
            ),
        )
        try:
            with state.lock:
                state.apply_changes(conn)
            coll = state.collections[column.attnum]
            started = time.monotonic()
            last = [started]

            def progress(phase: str, fraction: float) -> None:
                now = time.monotonic()
                if now - last[0] >= 1.0:
                    last[0] = now
                    text = f"building {name}: {phase} {fraction:.0%}"
                    log.info("%s", text)
                    if notify is not None:
                        notify(text)

            log.info(
                "building %s (%s, %s) over %d rows",
                name,
                spec.index_type,
                metric.name,
                coll.live_count,
            )
            coll.build_index(spec, progress)
            with state.lock:
                state.checkpoint(conn, [column.attnum])
            conn.execute(
                "UPDATE pgvec.indexes SET state = 'ready', progress = 1, rows_indexed = %s,"
                " updated_at = now() WHERE relid = %s AND attnum = %s",
                (coll.live_count, info.relid, column.attnum),
            )
            log.info("built %s in %.2fs", name, time.monotonic() - started)
        except BaseException:
            conn.execute(
                "DELETE FROM pgvec.indexes WHERE relid = %s AND attnum = %s",
                (info.relid, column.attnum),
            )
            state.collections[column.attnum].drop_index()
            state.remove_files(column.attnum)
            raise


def rebuild(conn: psycopg.Connection, state: TableState, row: IndexRow) -> None:
    """Build a recorded index again from its table (its files are missing or damaged)."""
    log.warning("rebuilding index %s from table %s", row.index_name, state.info.name)
    spec = IndexSpec.create(row.method, Metric.from_name(row.metric), row.options)
    conn.execute("SELECT pgvec.track(%s::oid::regclass)", (state.relid,))
    state.remove_files(row.attnum)
    with state.lock:
        state.apply_changes(conn)
        state.full_load(conn, [row.attnum])
    coll = state.collections[row.attnum]
    coll.build_index(spec)
    with state.lock:
        state.checkpoint(conn, [row.attnum])
    conn.execute(
        "UPDATE pgvec.indexes SET state = 'ready', progress = 1, rows_indexed = %s,"
        " updated_at = now() WHERE relid = %s AND attnum = %s",
        (coll.live_count, state.relid, row.attnum),
    )


def drop(db: Database, schema: str | None, name: str, if_exists: bool) -> None:
    with db.pool.connection() as conn:
        row = find(conn, schema, name)
        if row is None:
            if if_exists:
                return
            raise UndefinedObject(f'index "{name}" does not exist')
        relid, attnum = int(row[0]), int(row[1])
        conn.execute("DELETE FROM pgvec.indexes WHERE relid = %s AND attnum = %s", (relid, attnum))
        state = db.tables.get(relid)
        if state is not None:
            with state.lock:
                coll = state.collections.get(attnum)
                if coll is not None:
                    coll.drop_index()
                state.remove_files(attnum)
        else:
            _rm(db.table_dir(relid) / str(attnum))
    log.info("dropped index %s", name)


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def forget(conn: psycopg.Connection, relid: int, directory: Path) -> None:
    """A table is gone: remove its index rows, change-log rows and files."""
    conn.execute("DELETE FROM pgvec.indexes WHERE relid = %s", (relid,))
    conn.execute("DELETE FROM pgvec.changes WHERE relid = %s", (relid,))
    _rm(directory)
