"""The engine state of one table: a VectorCollection per index (a vector column and the
metric of the index: a Slot), and one per unindexed column searched exactly."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import generators, pq, sql

from pgvec.catalog.models import Slot, TableInfo
from pgvec.engine.checkpoint import snapshot
from pgvec.engine.collection import Key, VectorCollection
from pgvec.engine.scalars import ScalarColumn, mirrorable
from pgvec.errors import CatalogError, InvalidTableDefinition
from pgvec.filter.sql import quote_ident

log = logging.getLogger(__name__)

_INT_TYPES = frozenset({"bigint", "integer", "smallint"})
FETCH_BATCH = 20_000
#: a text column with more different values than this is not mirrored
MIRROR_TEXT_VALUES = 100_000

# Changes this reader may not have seen: newer than the last seq it read, or written by a
# transaction still running when it last read (xid >= that snapshot's xmin). One row with
# the snapshot's xmin and NULLs when there are none.
# It runs before every Strong search, so it is prepared once per pooled connection
# (prepare_statements) and executed through libpq directly, without a cursor.
CHANGES_STATEMENT = b"pgvec_changes"
_CHANGES = b"""
WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT c.seq, c.op, c.key, snap.xmin::text::bigint
FROM snap LEFT JOIN pgvec.changes c
  ON c.relid = $1::oid AND (c.seq > $2::bigint OR c.xid >= $3::text::xid8)
ORDER BY c.seq
"""


def prepare_statements(conn: psycopg.Connection) -> None:
    """Pool ``configure`` hook: prepare the statements sync runs on every search."""
    pgconn = conn.pgconn
    pgconn.send_prepare(CHANGES_STATEMENT, _CHANGES)
    _check_prepared(conn.wait(generators.execute(pgconn))[-1])


def _check_prepared(res: pq.abc.PGresult) -> None:
    if res.status != pq.ExecStatus.COMMAND_OK:
        raise CatalogError(
            f"cannot prepare the change-log query: {res.error_message.decode(errors='replace')}",
            hint="Is the pgvec schema installed? `pgvec install --dsn ...`",
        )


def _read_changes(
    conn: psycopg.Connection, relid: int, seq: int, xmin: int
) -> tuple[list[tuple[int, str, str | None]], int]:
    """New-looking change rows (seq, op, key) and the reading snapshot's xmin."""
    pgconn = conn.pgconn
    pgconn.send_query_prepared(CHANGES_STATEMENT, _change_params(relid, seq, xmin))
    return changes_of(conn.wait(generators.execute(pgconn))[-1])


def send_changes_read(conn: psycopg.AsyncConnection, relid: int, seq: int, xmin: int) -> None:
    """Send ``_read_changes``'s query on an asyncio connection (its statement prepared
    by ``prepare_statements_async``); ``changes_of`` reads its last result."""
    conn.pgconn.send_query_prepared(CHANGES_STATEMENT, _change_params(relid, seq, xmin))


async def prepare_statements_async(conn: psycopg.AsyncConnection) -> None:
    pgconn = conn.pgconn
    pgconn.send_prepare(CHANGES_STATEMENT, _CHANGES)
    _check_prepared((await conn.wait(generators.execute(pgconn)))[-1])


def _change_params(relid: int, seq: int, xmin: int) -> list[bytes | None]:
    return [str(relid).encode(), str(seq).encode(), str(xmin).encode()]


def changes_of(res: pq.abc.PGresult) -> tuple[list[tuple[int, str, str | None]], int]:
    if res.status != pq.ExecStatus.TUPLES_OK:
        raise CatalogError(
            f"cannot read pgvec.changes: {res.error_message.decode(errors='replace')}"
        )
    rows = []
    snap_xmin = 0
    for i in range(res.ntuples):
        snap_xmin = int(res.get_value(i, 3) or 0)
        raw_seq = res.get_value(i, 0)
        if raw_seq is None:
            continue
        key = res.get_value(i, 2)
        op = res.get_value(i, 1) or b""
        rows.append((int(raw_seq), op.decode(), None if key is None else key.decode()))
    return rows, snap_xmin


def key_parser(pk_type: str | None) -> type[int] | type[str]:
    return int if pk_type in _INT_TYPES else str


def no_key(info: TableInfo) -> InvalidTableDefinition:
    """Why a table without a single-column primary key cannot be indexed, and the fix.

    (Its rows could be keyed by their ctid, but a ctid is no identity: an UPDATE moves the
    row, VACUUM FULL and CLUSTER move every row without a trigger firing, and a freed
    ctid is reused by another row, so hits joined back on ctids would miss rows a
    REPEATABLE READ snapshot still holds, or find another row in their place.)"""
    table = quote_ident(info.name)
    return InvalidTableDefinition(
        f'table "{info.name}" has no single-column primary key: pgvec cannot index it',
        hint="pgvec joins search hits back on the primary key. Add one, e.g. "
        f"ALTER TABLE {table} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        f", or ALTER TABLE {table} ADD PRIMARY KEY (col) on a unique column. Without an "
        "index the table is searched exactly.",
    )


@dataclass
class TableState:
    """Everything pgvec holds in memory for one table, and where it persists it."""

    info: TableInfo
    directory: Path
    #: by slot: (attnum, metric of the index) for an index, (attnum, "") for a column
    #: searched exactly; two indexes of a column are two collections, each with its rows
    collections: dict[Slot, VectorCollection] = field(default_factory=dict)
    #: change-log sequence numbers applied in memory but not yet deleted from the log
    applied: set[int] = field(default_factory=set)
    #: read watermark: highest seq seen, and the xmin of the snapshot it was read in
    seen_seq: int = 0
    seen_xmin: int = 0

    last_save: float = field(default_factory=time.monotonic)
    last_apply: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: held by a checkpoint from its snapshot until its files are on disk, and while
    #: files are removed. Whoever holds both takes it before ``lock``.
    saving: threading.RLock = field(default_factory=threading.RLock)
    #: ``info.columns`` when reading the scalar columns last failed (one was dropped
    #: since the catalog was read): nothing is mirrored until the catalog changes
    scalars_failed: tuple[str, ...] | None = None
    #: text columns with too many different values to mirror
    unmirrored: set[str] = field(default_factory=set)
    #: bumped whenever applying the change log, a load or a new mirror changes the
    #: collections: a search that saw one version saw every change applied by then
    version: int = 0
    #: scalar_columns() as last computed, and the (info, scalars_failed, unmirrored
    #: count) it was computed from
    _scalars_from: tuple[TableInfo | None, tuple[str, ...] | None, int] = (None, None, 0)
    _scalars: tuple[ScalarColumn, ...] = ()

    @property
    def relid(self) -> int:
        return self.info.relid

    @property
    def pk(self) -> str:
        if self.info.pk is None:
            raise no_key(self.info)
        return self.info.pk

    def slot_dir(self, slot: Slot) -> Path:
        return self.directory / slot.dirname

    def pick(self, attnum: int, metric: str) -> Slot | None:
        """The collection a search of column ``attnum`` by ``metric`` (a Metric name) uses:
        the index of that metric, else the column's unindexed one, else an index of
        another metric (searched exactly); None when none of them is loaded."""
        for slot in (Slot(attnum, metric), Slot(attnum)):
            if slot in self.collections:
                return slot
        return next((s for s in list(self.collections) if s.attnum == attnum), None)

    def take_unindexed(self, slot: Slot) -> bool:
        """Make the column's unindexed collection (rows searched exactly) the collection
        of index ``slot``, which it builds next; False if there is none to take."""
        plain = Slot(slot.attnum)
        if slot in self.collections or plain not in self.collections:
            return False
        coll = self.collections.pop(plain)
        coll.home = self.slot_dir(slot)
        self.collections[slot] = coll
        self.version += 1
        return True

    def unindex(self, slot: Slot) -> None:
        """The index of ``slot`` is gone: its rows stay, as the column's unindexed
        collection, unless another collection of the column is loaded. Caller holds the
        lock."""
        coll = self.collections.pop(slot, None)
        if coll is None:
            return
        coll.drop_index()
        if slot.metric and not any(s.attnum == slot.attnum for s in self.collections):
            coll.home = self.slot_dir(Slot(slot.attnum))
            self.collections[Slot(slot.attnum)] = coll
        self.version += 1

    def parse_key(self, text: str) -> Key:
        return key_parser(self.info.pk_type)(text)

    def _table(self) -> sql.Composable:
        return sql.Identifier(self.info.schema, self.info.name)

    def scalar_columns(self) -> tuple[ScalarColumn, ...]:
        """The columns mirrored in the collections, for filters the engine evaluates
        (read on every Strong search: computed again only when its inputs change)."""
        info = self.info
        seen_info, seen_failed, seen_unmirrored = self._scalars_from
        if (
            seen_info is info
            and seen_failed == self.scalars_failed
            and seen_unmirrored == len(self.unmirrored)  # it only grows
        ):
            return self._scalars
        columns: tuple[ScalarColumn, ...] = ()
        if self.scalars_failed != info.columns:
            collations = info.column_collations or (0,) * len(info.columns)
            columns = tuple(
                ScalarColumn(name, type_name)
                for name, type_name, collation in zip(
                    info.columns, info.column_types, collations, strict=False
                )
                if mirrorable(type_name, collation)
                and name not in info.vectors
                and name not in self.unmirrored
            )
        self._scalars_from = (info, self.scalars_failed, len(self.unmirrored))
        self._scalars = columns
        return columns

    def _select(self, names: list[str], scalars: tuple[ScalarColumn, ...]) -> sql.Composed:
        """SELECT of the key (as text), the given vector columns, then the scalars."""
        return sql.SQL("SELECT {pk}::text, {cols} FROM {table}").format(
            pk=sql.Identifier(self.pk),
            cols=sql.SQL(", ").join(sql.Identifier(n) for n in [*names, *(c.name for c in scalars)])
            if names or scalars
            else sql.SQL("NULL"),
            table=self._table(),
        )

    def _scalars_gone(self, exc: Exception) -> None:
        log.info("%s: cannot read its scalar columns (%s); not mirroring them", self.info.name, exc)
        self.scalars_failed = self.info.columns

    def ensure_mirrors(
        self, conn: psycopg.Connection, collections: dict[Slot, VectorCollection] | None = None
    ) -> tuple[ScalarColumn, ...]:
        """Give collections that mirror other scalar columns than the table's (files of an
        earlier version, a column added or retyped) the table's current values; returns
        the columns mirrored.

        Caller holds the lock, so no change is applied meanwhile: a change committed
        before this read is in it, and one committed after is still in the change log.
        """
        want = self.scalar_columns()
        stale = [c for c in (collections or self.collections).values() if c.scalar_columns != want]
        if not stale:
            return want
        keys: list[Key] = []
        values: list[list[object]] = [[] for _ in want]
        if want:
            parse = key_parser(self.info.pk_type)
            try:
                with conn.cursor(binary=True) as cur:
                    cur.execute(self._select([], want))
                    found = cur.fetchall()
            except psycopg.errors.UndefinedColumn as exc:
                self._scalars_gone(exc)
                return self.ensure_mirrors(conn, collections)
            keys = [parse(r[0]) for r in found]
            values = [[r[j + 1] for r in found] for j in range(len(want))]
            log.info("%s: mirroring %d scalar columns", self.info.name, len(want))
        for coll in stale:
            coll.mirror(want, keys, values)
        self.version += 1
        return self._drop_wide_text(stale, want)

    def _drop_wide_text(
        self, collections: list[VectorCollection], columns: tuple[ScalarColumn, ...]
    ) -> tuple[ScalarColumn, ...]:
        """Stop mirroring text columns with more than MIRROR_TEXT_VALUES different values
        (titles, descriptions: not what a filter compares for equality); returns the
        columns still mirrored."""
        wide = {
            c.name
            for coll in collections
            for c in columns
            if c.kind == "text" and coll.distinct_values(c.name) > MIRROR_TEXT_VALUES
        }
        if not wide:
            return columns
        log.info("%s: not mirroring text columns %s (too many values)", self.info.name, wide)
        self.unmirrored |= wide
        for coll in collections:
            coll.unmirror(wide)
        return tuple(c for c in columns if c.name not in wide)

    # -- loading ----------------------------------------------------------------------

    def load_persisted(self, slot: Slot) -> bool:
        """Load the saved collection of an index (no rebuild); False if none."""
        path = self.slot_dir(slot)
        if not (path / "manifest.json").exists():
            return False
        self.collections[slot] = VectorCollection.load(path)
        log.info(
            "loaded %s.%s column %d (%s) from %s (%d rows)",
            self.info.schema,
            self.info.name,
            slot.attnum,
            slot.metric.lower() or "no index",
            path,
            self.collections[slot].live_count,
        )
        return True

    def full_load(self, conn: psycopg.Connection, slots: list[Slot]) -> None:
        """Read the vector columns of the given slots (and the scalar columns) from the
        table into fresh collections.

        Runs in one REPEATABLE READ snapshot; change-log rows visible in it are marked
        applied (the snapshot contains their effect).
        """
        try:
            self._full_load(conn, slots, self.scalar_columns())
        except psycopg.errors.UndefinedColumn as exc:
            if self.scalars_failed == self.info.columns:
                raise
            self._scalars_gone(exc)
            self._full_load(conn, slots, ())

    def _full_load(
        self, conn: psycopg.Connection, slots: list[Slot], scalars: tuple[ScalarColumn, ...]
    ) -> None:
        by_attnum = {c.attnum: c for c in self.info.vectors.values()}
        columns = {s: by_attnum[s.attnum] for s in slots if s.attnum in by_attnum}
        started = time.monotonic()
        fresh = {s: VectorCollection(c.fixed_dim, c.binary) for s, c in columns.items()}
        for slot, coll in fresh.items():
            coll.mirror(scalars)
            coll.home = self.slot_dir(slot)  # where DISKANN builds its files
        names = [columns[s].name for s in fresh]
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snap = conn.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            ).fetchone()
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM pgvec.changes WHERE relid = %s", (self.relid,)
                )
            ]
            # the rows to expect, in this snapshot: the collections are allocated once,
            # instead of grown (and copied) as batches arrive
            counted = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self._table())
            ).fetchone()
            expected = int(counted[0]) if counted else 0
            for coll in fresh.values():
                coll.reserve(expected)
            total = 0
            with conn.cursor(name="pgvec_full_load", binary=True) as cur:
                cur.itersize = FETCH_BATCH
                cur.execute(self._select(names, scalars))
                while rows := cur.fetchmany(FETCH_BATCH):
                    self._upsert_rows(fresh, rows, scalars)
                    total += len(rows)
                    log.info("loading %s: %d of %d rows", self.info.name, total, expected)
        self._drop_wide_text(list(fresh.values()), scalars)
        others = set(self.collections) - set(fresh)
        self.collections.update(fresh)
        if not others:
            # the snapshot holds every change visible in it, for every collection
            self.applied.update(seqs)
            self.seen_seq = max([self.seen_seq, *seqs])
            self.seen_xmin = int(snap[0]) if snap else 0
        self.version += 1
        # else: the other collections have not seen those changes; the next
        # apply_changes replays them to all (idempotent for the columns just loaded)
        log.info(
            "loaded %d rows of %s.%s in %.2fs",
            total,
            self.info.schema,
            self.info.name,
            time.monotonic() - started,
        )

    def _upsert_rows(
        self,
        collections: dict[Slot, VectorCollection],
        rows: Sequence[Sequence[Any]],
        scalars: tuple[ScalarColumn, ...],
    ) -> list[list[Key]]:
        """Upsert rows (key text, one value per collection, then the scalar values) into
        the collections; returns, per collection, the keys whose vector is NULL."""
        parse = key_parser(self.info.pk_type)
        first = 1 + len(collections)
        nulls: list[list[Key]] = []
        for i, coll in enumerate(collections.values()):
            size = coll.row_bytes
            got = [r for r in rows if r[i + 1] is not None and len(r[i + 1]) == size]
            if len(got) < len(rows):
                self._warn_misfits(rows, i, size)
            nulls.append([parse(r[0]) for r in rows if r[i + 1] is None or len(r[i + 1]) != size])
            if not got:
                continue
            mat = coll.from_bytes(b"".join(r[i + 1] for r in got), len(got))
            values = [[r[first + j] for r in got] for j in range(len(scalars))]
            coll.upsert(
                [parse(r[0]) for r in got],
                mat,
                values if coll.scalar_columns == scalars else None,  # else: mirror dropped
            )
        return nulls

    def _warn_misfits(self, rows: Sequence[Sequence[Any]], i: int, size: int) -> None:
        """Values of the wrong length: only possible once the column's CHECK is gone.
        Such rows are not searched, like rows whose vector is NULL."""
        bad = [r[0] for r in rows if r[i + 1] is not None and len(r[i + 1]) != size]
        if bad:
            log.warning(
                "table %s: %d rows hold no vector of %d dimensions (key %s, ...): not searched."
                " Its vector column has lost its CHECK constraint",
                self.info.name,
                len(bad),
                size // 4,
                bad[0],
            )

    # -- applying the change log ------------------------------------------------------

    def apply_changes(self, conn: psycopg.Connection) -> int:
        """Apply every committed change not yet applied; returns how many keys changed."""
        self.ensure_mirrors(conn)
        rows, xmin = _read_changes(conn, self.relid, self.seen_seq, self.seen_xmin)
        new = [r for r in rows if r[0] not in self.applied]
        self.seen_seq = max([self.seen_seq, *(r[0] for r in rows)])
        self.seen_xmin = xmin
        self.last_apply = time.monotonic()
        if not new:
            return 0
        if any(r[1] == "t" for r in new):
            log.info("%s was truncated: reloading", self.info.name)
            specs = {s: c.index_spec for s, c in self.collections.items()}
            for c in self.collections.values():
                c.clear()
            self.full_load(conn, list(self.collections))
            for slot, spec in specs.items():
                if spec is not None:  # the index stays, empty: seal builds it again
                    self.collections[slot].expect_index(spec)
            self.applied.update(r[0] for r in new)
            self.version += 1
            return len(new)
        texts = sorted({r[2] for r in new if r[2] is not None})
        self._refresh(conn, self.collections, texts)
        self.applied.update(r[0] for r in new)
        self.version += 1
        return len(texts)

    def busy(self) -> bool:
        """Whether another thread holds the lock (applying the change log, say): the
        watermark may then run ahead of the collections."""
        if self.lock.acquire(blocking=False):
            self.lock.release()
            return False
        return True

    def note_fresh(
        self, rows: list[tuple[int, str, str | None]], xmin: int, watermark: tuple[int, int]
    ) -> bool:
        """Take a change-log read made without the lock (from ``watermark``, the
        (seen_seq, seen_xmin) it started from): True if it found nothing to apply and
        the mirrors match the table, so the collections are current as of its snapshot.
        Never waits for the lock: the watermark only moves when the lock is free."""
        if any(r[0] not in self.applied for r in rows):
            return False
        want = self.scalar_columns()
        if any(c.scalar_columns != want for c in list(self.collections.values())):
            return False  # apply_changes mirrors them
        if self.lock.acquire(blocking=False):
            try:
                if (self.seen_seq, self.seen_xmin) == watermark:
                    self.seen_seq = max([self.seen_seq, *(r[0] for r in rows)])
                    self.seen_xmin = xmin
                self.last_apply = time.monotonic()
            finally:
                self.lock.release()
        return True

    def catch_up(self, conn: psycopg.Connection, slot: Slot, coll: VectorCollection) -> int:
        """Apply every change still in the log to ``coll``, a collection just loaded from
        disk (load after release); returns how many keys changed.

        While an index is released, checkpoints keep its table's change-log rows, so the
        log holds at least every change made since it was saved. Replaying is idempotent.
        Caller holds the lock.
        """
        self.version += 1
        rows = conn.execute(
            "SELECT op, key FROM pgvec.changes WHERE relid = %s", (self.relid,)
        ).fetchall()
        if not rows:
            return 0
        if any(op == "t" for op, _ in rows):  # truncated meanwhile: read the column again
            coll.clear()
            self._refresh(conn, {slot: coll}, None)
            return coll.live_count
        texts = sorted({key for _, key in rows if key is not None})
        self._refresh(conn, {slot: coll}, texts)
        return len(texts)

    def _refresh(
        self,
        conn: psycopg.Connection,
        collections: dict[Slot, VectorCollection],
        texts: list[str] | None,
    ) -> None:
        """Re-read the rows of the given keys (None: every row) into the collections."""
        scalars = self.ensure_mirrors(conn, collections)
        names = {c.attnum: c.name for c in self.info.vectors.values()}
        query = self._select([names[s.attnum] for s in collections], scalars)
        if texts is not None:
            query = query + sql.SQL(" WHERE {pk} = ANY(%s::text[]::{typ}[])").format(
                pk=sql.Identifier(self.pk), typ=sql.SQL(self.info.pk_type or "text")
            )
        try:
            with conn.cursor(binary=True) as cur:
                cur.execute(query, () if texts is None else (texts,))
                found = cur.fetchall()
        except psycopg.errors.UndefinedColumn as exc:
            if not scalars:
                raise
            self._scalars_gone(exc)
            self._refresh(conn, collections, texts)
            return
        parse = key_parser(self.info.pk_type)
        present = {r[0] for r in found}
        gone = [parse(t) for t in texts or [] if t not in present]
        nulls = self._upsert_rows(collections, found, scalars)
        for coll, null in zip(collections.values(), nulls, strict=True):
            if gone or null:
                coll.delete(gone + null)

    # -- persistence ------------------------------------------------------------------

    def checkpoint(self, conn: psycopg.Connection, persisted: list[Slot]) -> None:
        """Save the indexed collections, then delete the log rows they include.

        The table lock is held only while the collections and the set of applied changes
        are snapshotted (references and lengths: no copy of the rows); the files are
        written without it, so searches apply new changes meanwhile. Those stay in the
        log: only changes applied before the snapshot are deleted, once it is on disk.
        One checkpoint of a table at a time (``saving``); a caller holding the table lock
        must have taken ``saving`` first.
        """
        with self.saving:
            with self.lock:
                done = list(self.applied)
                pending = [
                    (slot, coll, snapshot(coll, self.slot_dir(slot)))
                    for slot in persisted
                    if (coll := self.collections.get(slot)) is not None
                ]
                self.last_save = time.monotonic()
            sizes: list[tuple[int, int, int, Slot]] = []
            for slot, coll, save in pending:
                started = time.monotonic()
                written = save.write()
                path = self.slot_dir(slot)
                disk = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
                memory = int(coll.stats().get("memory_bytes", 0))
                sizes.append((save.live, memory, disk, slot))
                if written:
                    log.debug(
                        "%s column %d (%s): checkpoint wrote %d bytes in %.3fs",
                        self.info.name,
                        slot.attnum,
                        slot.metric.lower(),
                        written,
                        time.monotonic() - started,
                    )
            if sizes:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE pgvec.indexes SET rows_indexed = %s, memory_bytes = %s,"
                        " disk_bytes = %s, updated_at = now()"
                        " WHERE relid = %s AND attnum = %s AND metric = %s",
                        [(rows, mem, disk, self.relid, *s) for rows, mem, disk, s in sizes],
                    )
            if done:
                # a released index of this table still needs them: they are replayed at load
                conn.execute(
                    "DELETE FROM pgvec.changes WHERE seq = ANY(%s) AND NOT EXISTS"
                    " (SELECT FROM pgvec.indexes WHERE relid = %s AND state = 'released')",
                    (done, self.relid),
                )
        if done:
            with self.lock:  # after ``saving``: the order is saving, then lock
                self.applied.difference_update(done)

    def remove_files(self, slot: Slot | None = None) -> None:
        path = self.directory if slot is None else self.slot_dir(slot)
        with self.saving:  # not while a checkpoint writes them
            shutil.rmtree(path, ignore_errors=True)
