"""Release an index from memory and load it again (Milvus's release / load).

Release saves the index (a checkpoint) and drops its collection from memory; the index
row says 'released' with memory_bytes 0, and stays so across restarts. Writes to the
table go on being logged in ``pgvec.changes``, whose rows checkpoints now keep. Load
reads the saved collection back (no rebuild), replays the log onto it and marks it
'ready'. Both run in a worker thread under the table's lock.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pgvec.catalog import queries
from pgvec.engine import trim_heap
from pgvec.engine.collection import VectorCollection
from pgvec.errors import CorruptIndex, ObjectNotInPrerequisiteState, UndefinedObject
from pgvec.service import indexes
from pgvec.sync.table import TableState

if TYPE_CHECKING:
    from pgvec.catalog.models import IndexRow
    from pgvec.service.database import Database

log = logging.getLogger(__name__)


def _check_built(row: IndexRow) -> None:
    if row.state == "failed":
        raise ObjectNotInPrerequisiteState(
            f'index "{row.index_name}" failed to build: {row.error}',
            hint=f"REINDEX INDEX {row.index_name}, or DROP INDEX it.",
        )


def release(db: Database, row: IndexRow) -> int:
    """Save the index, then drop its collection from memory; returns its row count."""
    _check_built(row)
    if row.state == "released":
        return row.rows_indexed
    rows = row.rows_indexed
    with db.pool.connection() as conn:
        state = db.tables.get(row.relid)
        if state is not None and row.slot in state.collections:
            with state.saving, state.lock:  # nothing applied between the save and the pop
                state.apply_changes(conn)
                state.checkpoint(conn, indexes.indexed_slots(state))
                # from here a search by its operator fails instead of loading it afresh
                db.released[row.key] = row.index_name
                rows = state.collections.pop(row.slot).live_count
                state.version += 1
        else:
            db.released[row.key] = row.index_name
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'released', memory_bytes = 0, rows_indexed = %s,"
            " updated_at = now() WHERE relid = %s AND attnum = %s AND metric = %s",
            (rows, *row.key),
        )
    trim_heap()  # what the collection held goes back to the OS (searches under way aside)
    log.info("released index %s (%d rows) from memory", row.index_name, rows)
    return rows


def load(db: Database, row: IndexRow) -> int:
    """Load a released index from its files and replay the change log onto it."""
    _check_built(row)
    if row.state != "released":
        state = db.tables.get(row.relid)
        coll = state.collections.get(row.slot) if state is not None else None
        return coll.live_count if coll is not None else row.rows_indexed
    started = time.monotonic()
    with db.pool.connection() as conn, db.loading:
        info = queries.load_tables(conn).get(row.relid)
        if info is None:
            raise UndefinedObject(f'the table of index "{row.index_name}" does not exist')
        state = db.tables.get(row.relid) or TableState(info, db.table_dir(row.relid))
        db.tables[row.relid] = state
        try:
            coll = VectorCollection.load(state.slot_dir(row.slot))
        except CorruptIndex as exc:
            log.warning("index %s cannot be loaded (%s): rebuilding it", row.index_name, exc)
            db.released.pop(row.key, None)
            indexes.rebuild(conn, state, row)
            return state.collections[row.slot].live_count
        with state.lock:
            changed = state.catch_up(conn, row.slot, coll)
            state.collections[row.slot] = coll
            db.released.pop(row.key, None)
        memory = int(coll.stats().get("memory_bytes", 0))
        conn.execute(
            "UPDATE pgvec.indexes SET state = 'ready', memory_bytes = %s, rows_indexed = %s,"
            " updated_at = now() WHERE relid = %s AND attnum = %s AND metric = %s",
            (memory, coll.live_count, *row.key),
        )
    log.info(
        "loaded index %s (%d rows, %d changed while released) in %.2fs",
        row.index_name,
        coll.live_count,
        changed,
        time.monotonic() - started,
    )
    return coll.live_count
