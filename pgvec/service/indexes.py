"""Index lifecycle: CREATE INDEX, REINDEX and DROP INDEX on pgvec indexes, forgetting tables."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from pgvec.catalog import queries
from pgvec.catalog.models import Slot
from pgvec.engine import trim_heap
from pgvec.engine.spec import IndexSpec, Metric
from pgvec.errors import (
    DuplicateObject,
    DuplicateRelation,
    IndexNotLoaded,
    ObjectInUse,
    PgvecError,
    QueryCanceled,
    UndefinedObject,
)
from pgvec.filter.sql import object_name
from pgvec.service.builds import Build
from pgvec.sync.table import TableState

if TYPE_CHECKING:
    from pgvec.catalog.models import IndexDef, IndexRow, TableInfo
    from pgvec.service.database import Database

log = logging.getLogger(__name__)

DEFAULT_OPCLASS = "vector_l2_ops"
#: an index's row of pgvec.indexes: one per operator class (metric) of a column
_KEY = "relid = %s AND attnum = %s AND metric = %s"
#: the row whose index, or one of whose standby indexes, is %(s)s.%(n)s
_NAMED = (
    "schema_name = %(s)s AND (index_name = %(n)s"
    " OR standby @> jsonb_build_array(jsonb_build_object('index_name', %(n)s::text)))"
)


def find(conn: psycopg.Connection, schema: str | None, name: str) -> tuple[Any, ...] | None:
    """(relid, attnum, metric, built, state) of the pgvec index ``schema.name``, if there
    is one; ``built`` is False for a standby index (pgvec.indexes.standby)."""
    return conn.execute(
        f"SELECT relid, attnum, metric, index_name = %(n)s, state FROM pgvec.indexes"
        f" WHERE {_NAMED}",
        {"s": schema or "public", "n": name},
    ).fetchone()


def taken(conn: psycopg.Connection, schema: str, name: str) -> bool:
    """Whether a relation or a pgvec index of schema ``schema`` is named ``name``."""
    return bool(
        conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
            " WHERE s.nspname = %(s)s AND c.relname = %(n)s"
            f" UNION ALL SELECT 1 FROM pgvec.indexes WHERE {_NAMED}",
            {"s": schema, "n": name},
        ).fetchone()
    )


def default_name(conn: psycopg.Connection, schema: str, table: str, column: str) -> str:
    """PostgreSQL's choice of a name for an index of ``table``'s ``column``:
    table_column_idx, then table_column_idx1, ..., cut to fit NAMEDATALEN."""
    label, n = "idx", 0
    while taken(conn, schema, name := object_name(table, column, label)):
        n += 1
        label = f"idx{n}"
    return name


def serving_index(conn: psycopg.Connection, idef: IndexDef) -> str | None:
    """The index the column of ``idef`` has for its operator class, which ``idef``
    supersedes (pgvec builds one index per operator class of a column: the one created
    last); a partitioned table's is not superseded (DuplicateObject, unless IF NOT
    EXISTS)."""
    metric = Metric.from_opclass(idef.opclass or DEFAULT_OPCLASS, idef.method)
    row = conn.execute(
        "SELECT index_name FROM pgvec.indexes WHERE relid = %s AND attnum = %s AND metric = %s",
        (idef.table.relid, idef.column.attnum, metric.name),
    ).fetchone()
    if row is None:
        return None
    name = str(row[0])
    if idef.table.partitioned and not idef.if_not_exists:
        raise DuplicateObject(
            f'column "{idef.column.name}" of partitioned table "{idef.table.name}" already'
            f' has the pgvec index "{name}" for {metric.opclass}',
            hint=f"DROP INDEX {name} first, or REINDEX it; an index with another operator"
            " class is another index.",
        )
    return name


def pending_index(idef: IndexDef, pending: Sequence[IndexDef]) -> bool:
    """Whether ``pending`` (CREATE INDEXes of the transaction block, not built yet) has
    an index of the same name, which IF NOT EXISTS skips; else DuplicateRelation, as
    PostgreSQL's second CREATE INDEX would raise."""
    for other in pending:
        if idef.name is not None and (other.name, other.table.schema) == (
            idef.name,
            idef.table.schema,
        ):
            if idef.if_not_exists:
                return True
            raise DuplicateRelation(f'relation "{idef.name}" already exists')
    return False


def record(
    db: Database, conn: psycopg.Connection, idef: IndexDef, spec: IndexSpec, state: str
) -> tuple[str, bool, bool] | None:
    """Check CREATE INDEX and record the index in ``state``; returns its name, whether
    it superseded the column's index of its operator class, and whether it is built
    already (it superseded a ready index of the same method and options: what it would
    build is there); None if IF NOT EXISTS found it already there."""
    info = idef.table
    column = idef.column
    schema = info.schema
    if idef.name is None:
        name = default_name(conn, schema, info.name, column.name)
    else:
        name = idef.name
        if taken(conn, schema, name):
            if idef.if_not_exists:
                log.info('relation "%s" already exists, skipping', name)
                return None
            raise DuplicateRelation(f'relation "{name}" already exists')
    slot = Slot(column.attnum, spec.metric.name)
    given = json.dumps(idef.options)  # (pg_class.reloptions: _RELOPTIONS)
    serving = serving_index(conn, idef)
    if serving is not None and idef.if_not_exists and (idef.name is None or info.partitioned):
        return None  # (pgvec's own: a partition's index, a partitioned table's)
    _ = column.fixed_dim  # a column of any dimension: pgvector's error, now
    _ = TableState(info, db.table_dir(info.relid)).pk  # none: a clear error, now
    if serving is not None:
        if (info.relid, *slot) in db.builds:
            raise ObjectInUse(
                f'index "{serving}" is being built',
                hint="Wait for it (pgvec.index_progress), or DROP INDEX to cancel it.",
            )
        if (info.relid, *slot) in db.released:
            raise IndexNotLoaded(
                f'index "{serving}" of the same operator class is released',
                hint=f"Load it first: SELECT pgvec.load('{serving}');",
            )
        options = json.dumps(dict(spec.params))
        same = conn.execute(
            f"SELECT state = 'ready' AND method = %s AND options = %s::jsonb FROM pgvec.indexes"
            f" WHERE {_KEY}",
            (spec.index_type, options, info.relid, *slot),
        ).fetchone()
        built = bool(same and same[0])
        conn.execute(
            _SUPERSEDE,
            (
                name,
                spec.index_type,
                options,
                given,
                "ready" if built else state,
                1 if built else 0,
                info.relid,
                *slot,
            ),
        )
        log.info(
            "index %s supersedes %s (one index per operator class is built)%s",
            name,
            serving,
            ": the same definition, built already" if built else "",
        )
        return name, True, built
    conn.execute(
        "INSERT INTO pgvec.indexes (index_name, schema_name, relid, attnum, column_name,"
        " method, metric, options, state, progress, dim, reloptions)"
        f" VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,{_RELOPTIONS})",
        (
            name,
            schema,
            info.relid,
            column.attnum,
            column.name,
            spec.index_type,
            spec.metric.name,
            json.dumps(dict(spec.params)),
            state,
            1 if state == "ready" else 0,
            column.dim,
            given,
        ),
    )
    return name, False, False


#: a CREATE INDEX's options (a JSON object) as pg_class.reloptions shows them: {m=16}
_RELOPTIONS = (
    "(SELECT array_agg(pgvec._option_name(o.key) || '=' || o.value)"
    " FROM jsonb_each_text(%s::jsonb) o)"
)
#: the column's index of an operator class becomes a standby of a new one, being built
#: (or built already: the same definition)
_SUPERSEDE = f"""
UPDATE pgvec.indexes SET
    standby = standby || jsonb_build_array(jsonb_build_object('index_name', index_name,
        'method', method, 'options', options, 'created_at', created_at, 'state', state,
        'reloptions', reloptions)),
    index_name = %s, method = %s, options = %s, reloptions = {_RELOPTIONS}, state = %s,
    progress = %s, error = NULL, created_at = now(), updated_at = now()
WHERE {_KEY}"""
#: the last standby index of the row is the row's again (its state as it was, if given)
_RESTORE_LAST = f"""
UPDATE pgvec.indexes SET
    index_name = standby->-1->>'index_name', method = standby->-1->>'method',
    options = standby->-1->'options', created_at = (standby->-1->>'created_at')::timestamptz,
    reloptions = CASE WHEN jsonb_typeof(standby->-1->'reloptions') = 'array'
                      THEN ARRAY(SELECT jsonb_array_elements_text(standby->-1->'reloptions')) END,
    state = coalesce(%s, standby->-1->>'state'), error = %s, progress = 1,
    standby = standby - -1, updated_at = now()
WHERE {_KEY} AND standby <> '[]'
RETURNING index_name::text, state"""


def register(db: Database, idef: IndexDef, command: str) -> tuple[Build, IndexSpec] | None:
    """Check CREATE INDEX, record the index as 'building' and return its Build (not yet
    started); None if there is nothing to build (IF NOT EXISTS found it already there, or
    it superseded a ready index of the same definition). Caller holds the table lock.
    """
    info = idef.table
    metric = Metric.from_opclass(idef.opclass or DEFAULT_OPCLASS, idef.method)
    metric.check_column(idef.column.binary)
    spec = IndexSpec.create(idef.method, metric, idef.options)
    with db.pool.connection() as conn:
        recorded = record(db, conn, idef, spec, "building")
        if recorded is None or recorded[2]:
            return None
        name, supersedes, _ = recorded
        build = Build(
            info.schema,
            name,
            info.relid,
            Slot(idef.column.attnum, metric.name),
            command,
            phase="loading rows",
            supersedes=supersedes,
        )
        build.attach(conn)
        build.write()  # in pgvec.index_progress from the start
        build.attach(None)
    return build, spec


def for_reindex(db: Database, row: IndexRow, command: str) -> tuple[Build, IndexSpec]:
    """Mark a recorded index 'building' for REINDEX and return its Build (not yet started).

    The collection stays loaded: searches use the previous index until the new one is in.
    """
    if row.state == "released":
        raise IndexNotLoaded(
            f'index "{row.index_name}" is released',
            hint=f"Load it first: SELECT pgvec.load('{row.index_name}');",
        )
    spec = IndexSpec.create(row.method, Metric[row.metric.upper()], row.options)
    with db.pool.connection() as conn:
        info = queries.load_tables(conn).get(row.relid)
        if info is None:
            raise UndefinedObject(f'the table of index "{row.index_name}" does not exist')
        state = db.ensure_slot(conn, info, row.slot)
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'building', updated_at = now()"
            " WHERE relid = %s AND attnum = %s AND metric = %s",
            row.key,
        )
        rows = state.collections[row.slot].live_count
    build = Build(row.schema_name, row.index_name, row.relid, row.slot, command, rows)
    return build, spec


def indexed_slots(state: TableState) -> list[Slot]:
    """The collections of a table that carry an index (and are saved)."""
    return [s for s, c in state.collections.items() if c.index_spec is not None]


def run_build(db: Database, build: Build, spec: IndexSpec) -> None:
    """Build the index in this (worker) thread, save it and mark it 'ready'.

    Searches go on meanwhile: exact search over the rows (a first build) or the previous
    index (REINDEX) until the new index is swapped in. On failure: plain CREATE INDEX
    removes the index and raises; CONCURRENTLY marks it 'failed' with the error; REINDEX
    keeps the previous index ('ready', the error recorded). A cancelled build (DROP INDEX)
    leaves the cleaning to DROP INDEX.
    """
    state = db.tables[build.relid]
    with db.connect(f"build {build.index_name}") as conn:  # held for the whole build
        build.attach(conn)
        try:
            build.write()
            with state.lock:
                state.apply_changes(conn)
            coll = state.collections[build.slot]
            build.rows_total = coll.live_count
            started = time.monotonic()
            log.info(
                "%s %s (%s, %s) over %d rows",
                build.command,
                build.index_name,
                spec.index_type,
                spec.metric.name,
                build.rows_total,
            )
            coll.build_index(spec, build.report)
            build.check()
            build.write()
            state.checkpoint(conn, indexed_slots(state))
            done = conn.execute(
                "UPDATE pgvec.indexes SET state = 'ready', progress = 1, error = NULL,"
                " rows_indexed = %s, dim = %s, updated_at = now()"
                " WHERE relid = %s AND attnum = %s AND metric = %s",
                (coll.live_count, coll.dim, *build.key),
            )
            if done.rowcount == 0:  # dropped meanwhile
                log.info("index %s was dropped during its build", build.index_name)
                _discard(state, build.slot)
                return
            log.info("built %s in %.2fs", build.index_name, time.monotonic() - started)
        except QueryCanceled:
            log.info("building %s was canceled", build.index_name)
            raise
        except BaseException as exc:
            _failed(conn, state, build, exc)
            raise
        finally:
            build.finish()
            build.attach(None)


def fail(db: Database, build: Build, exc: BaseException) -> None:
    """A build failed before run_build (reading the table's rows): record it."""
    with db.pool.connection() as conn:
        build.attach(conn)
        try:
            _failed(conn, db.tables.get(build.relid), build, exc)
        finally:
            build.finish()
            build.attach(None)


def _discard(state: TableState | None, slot: Slot) -> None:
    """Forget the index of ``slot`` and its files (its rows stay in memory, searched
    exactly, unless another collection of the column is loaded)."""
    if state is None:
        return
    with state.saving, state.lock:
        state.unindex(slot)
        state.remove_files(slot)
    trim_heap()


def _failed(
    conn: psycopg.Connection, state: TableState | None, build: Build, exc: BaseException
) -> None:
    message = str(exc) if isinstance(exc, PgvecError) else f"{type(exc).__name__}: {exc}"
    key = build.key
    if build.supersedes:
        log.error(
            "building %s failed, the index it superseded is kept: %s", build.index_name, message
        )
        conn.execute(_RESTORE_LAST, (None, message, *key))
        return
    if build.command.startswith("REINDEX"):
        log.error("rebuilding %s failed, the previous index is kept: %s", build.index_name, message)
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'ready', error = %s, updated_at = now()"
            f" WHERE {_KEY}",
            (message, *key),
        )
        return
    _discard(state, build.slot)
    if build.concurrently:
        log.error("building %s failed: %s", build.index_name, message)
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'failed', error = %s, progress = 0,"
            f" updated_at = now() WHERE {_KEY}",
            (message, *key),
        )
    else:
        conn.execute(f"DELETE FROM pgvec.indexes WHERE {_KEY}", key)


def files_fit(state: TableState, row: IndexRow) -> bool:
    """Whether the index loaded from the files of ``row``'s column has the method the
    row says. Not so after a CREATE INDEX that superseded another, or a DROP INDEX that
    put a standby in its place, was cut short (state 'building') before its build was
    saved."""
    loaded = state.collections[row.slot].index_spec
    if row.state != "building" or loaded is None:
        return True
    own = IndexSpec.create(row.method, Metric[row.metric.upper()], row.options)
    if loaded.index_type == own.index_type:
        return True
    log.warning(
        "index %s: its files hold a %s index, not its own %s: building it",
        row.index_name,
        loaded.index_type,
        own.index_type,
    )
    return False


def rebuild(conn: psycopg.Connection, state: TableState, row: IndexRow) -> None:
    """Build a recorded index again from its table (its files are missing or damaged)."""
    log.warning("rebuilding index %s from table %s", row.index_name, state.info.name)
    spec = IndexSpec.create(row.method, Metric[row.metric.upper()], row.options)
    conn.execute("SELECT pgvec.track(%s::oid::regclass)", (state.relid,))
    state.remove_files(row.slot)
    with state.lock:
        state.apply_changes(conn)
        state.full_load(conn, [row.slot])
    coll = state.collections[row.slot]
    coll.build_index(spec)
    state.checkpoint(conn, indexed_slots(state))
    conn.execute(
        "UPDATE pgvec.indexes SET state = 'ready', progress = 1, error = NULL, rows_indexed = %s,"
        f" dim = %s, updated_at = now() WHERE {_KEY}",
        (coll.live_count, coll.dim, *row.key),
    )


def drop(
    db: Database, schema: str | None, name: str, if_exists: bool
) -> tuple[str, str, bool] | None:
    """DROP INDEX; returns the name and state of the standby index that takes the
    dropped one's place, if there is one, and whether it is to be built (its files are
    the dropped one's: not if it has the same method and options)."""
    with db.pool.connection() as conn:
        row = find(conn, schema, name)
        if row is None:
            if if_exists:
                return None
            raise UndefinedObject(f'index "{name}" does not exist')
        relid, slot, built = int(row[0]), Slot(int(row[1]), str(row[2]).upper()), bool(row[3])
        if not built:
            conn.execute(_FORGET_STANDBY, (name, relid, *slot))
            log.info("dropped standby index %s", name)
            return None
        same = conn.execute(
            "SELECT standby->-1->>'method' = method AND standby->-1->'options' = options"
            f" FROM pgvec.indexes WHERE {_KEY}",
            (relid, *slot),
        ).fetchone()
        # (the state of the dropped index's files and memory, which the standby takes)
        promoted = conn.execute(_RESTORE_LAST, (row[4], None, relid, *slot)).fetchone()
        if promoted is not None:
            log.info("dropped index %s; %s takes its place", name, promoted[0])
            return str(promoted[0]), str(promoted[1]), not (same and same[0])
        conn.execute(f"DELETE FROM pgvec.indexes WHERE {_KEY}", (relid, *slot))
        state = db.tables.get(relid)
        if state is not None:
            _discard(state, slot)
        else:
            _rm(db.table_dir(relid) / slot.dirname)
    log.info("dropped index %s", name)
    return None


#: a standby index of the row is forgotten
_FORGET_STANDBY = f"""
UPDATE pgvec.indexes SET standby = coalesce((
    SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(standby) WITH ORDINALITY s(e, i)
    WHERE e->>'index_name' <> %s), '[]'), updated_at = now()
WHERE {_KEY}"""


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def forget(conn: psycopg.Connection, relid: int, directory: Path) -> None:
    """A table is gone: remove its index rows, change-log rows and files."""
    conn.execute("DELETE FROM pgvec.indexes WHERE relid = %s", (relid,))
    conn.execute("DELETE FROM pgvec.changes WHERE relid = %s", (relid,))
    _rm(directory)


def forget_gone(db: Database, conn: psycopg.Connection) -> None:
    """Forget the tables and columns that are really gone: absent from pg_class (DROP
    TABLE), or a dropped column (its index goes with it, as PostgreSQL's would).

    Only PostgreSQL's own catalog decides. A table missing from pgvec.vector_columns (its
    CHECK constraint dropped or rewritten, say) is no reason to delete anything.
    """
    gone = queries.gone_tables(conn, list(db.tables))
    for relid, slot, name, table_gone in queries.gone_index_columns(conn):
        if table_gone:
            gone.add(relid)
            continue
        log.info("index %s: its column was dropped; removing the index", name)
        conn.execute(f"DELETE FROM pgvec.indexes WHERE {_KEY}", (relid, *slot))
        db.released.pop((relid, *slot), None)
        state = db.tables.get(relid)
        if state is not None:
            with state.saving, state.lock:
                state.collections.pop(slot, None)
                state.collections.pop(Slot(slot.attnum), None)
                state.version += 1
        _rm(db.table_dir(relid) / slot.dirname)
    for relid in gone:
        log.info("table %d was dropped: forgetting its pgvec state", relid)
        db.tables.pop(relid, None)
        for key in [k for k in db.released if k[0] == relid]:
            del db.released[key]
        forget(conn, relid, db.table_dir(relid))


def move_old_layout(db: Database, rows: list[IndexRow]) -> None:
    """Index files of an earlier pgvec (one index per column) lie in ``<table>/<attnum>``:
    move them to their index's own directory (``<table>/<attnum>-<metric>``)."""
    for row in rows:
        old = db.table_dir(row.relid) / str(row.attnum)
        new = db.table_dir(row.relid) / row.slot.dirname
        if (old / "manifest.json").exists() and not new.exists():
            log.info("index %s: moving its files from %s to %s", row.index_name, old, new)
            old.rename(new)


def check_fit(
    db: Database, conn: psycopg.Connection, tables: dict[int, TableInfo], rows: list[IndexRow]
) -> None:
    """Indexes whose column no longer fits them: its CHECK now says another dimension, or
    it is no vector column any more (its type changed). Each is marked failed with the
    reason (its files stay until REINDEX or DROP INDEX) and leaves memory; the column is
    searched exactly meanwhile. Columns whose vector CHECK is gone are logged once."""
    for row in rows:
        if row.state == "failed":
            continue
        info = tables.get(row.relid)
        column = info.vector_at(row.attnum) if info is not None else None
        state = db.tables.get(row.relid)
        coll = state.collections.get(row.slot) if state is not None else None
        if column is not None and not column.checked and row.key not in db.unchecked:
            db.unchecked.add(row.key)
            log.warning(
                "column %s of table %s lost its vector CHECK constraint: pgvec keeps its"
                " index %s (%d dimensions), but vectors written to it are no longer checked."
                " Add it back: ALTER TABLE ... ADD CHECK (pgvec.is_vector(%s, %d))",
                row.column_name,
                row.relid if info is None else info.name,
                row.index_name,
                column.dim,
                column.name,
                column.dim,
            )
        if column is None:
            reason = (
                f'column "{row.column_name}" is no vector column any more: its index'
                f' "{row.index_name}" is not used'
            )
        elif (built := coll.dim if coll is not None else row.dim) not in (None, column.dim):
            holds = "any dimension" if column.dim is None else f"{column.dim} dimensions"
            reason = (
                f'column "{column.name}" now holds vectors of {holds}, but'
                f' index "{row.index_name}" was built for {built} dimensions'
            )
        else:
            continue
        if row.key in db.builds:
            continue  # the build fails or is dropped on its own
        log.error("%s: REINDEX INDEX %s rebuilds it", reason, row.index_name)
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'failed', error = %s, progress = 0,"
            f" memory_bytes = 0, updated_at = now() WHERE {_KEY}",
            (f"{reason}. REINDEX INDEX {row.index_name} rebuilds it.", *row.key),
        )
        db.released.pop(row.key, None)
        if state is not None:
            _unload(state, row.slot)
    # unindexed columns searched exactly: read again at their next search, if still vectors
    indexed = {row.key for row in rows}
    for relid, state in list(db.tables.items()):
        info = tables.get(relid)
        for slot, coll in list(state.collections.items()):
            column = info.vector_at(slot.attnum) if info is not None else None
            if (relid, *slot) not in indexed and (
                column is None or column.dim != coll.dim or column.binary != coll.binary
            ):
                _unload(state, slot)
        if info is None and not state.collections and not any(k[0] == relid for k in indexed):
            del db.tables[relid]  # no vector column left: nothing held, nothing deleted


def _unload(state: TableState, slot: Slot) -> None:
    with state.lock:
        state.collections.pop(slot, None)
        state.version += 1
