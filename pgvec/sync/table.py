"""The engine state of one table: a VectorCollection per tracked vector column."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from psycopg import generators, pq, sql

from pgvec.catalog.models import TableInfo
from pgvec.engine.collection import Key, VectorCollection
from pgvec.errors import CatalogError, InvalidTableDefinition

log = logging.getLogger(__name__)

_INT_TYPES = frozenset({"bigint", "integer", "smallint"})
FETCH_BATCH = 20_000

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
    res = conn.wait(generators.execute(pgconn))[-1]
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
    params = [str(relid).encode(), str(seq).encode(), str(xmin).encode()]
    pgconn.send_query_prepared(CHANGES_STATEMENT, params)
    res = conn.wait(generators.execute(pgconn))[-1]
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


@dataclass
class TableState:
    """Everything pgvec holds in memory for one table, and where it persists it."""

    info: TableInfo
    directory: Path
    collections: dict[int, VectorCollection] = field(default_factory=dict)
    #: change-log sequence numbers applied in memory but not yet deleted from the log
    applied: set[int] = field(default_factory=set)
    #: read watermark: highest seq seen, and the xmin of the snapshot it was read in
    seen_seq: int = 0
    seen_xmin: int = 0

    last_save: float = field(default_factory=time.monotonic)
    last_apply: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def relid(self) -> int:
        return self.info.relid

    @property
    def pk(self) -> str:
        if self.info.pk is None:
            raise InvalidTableDefinition(
                f'table "{self.info.name}" has no single-column primary key',
                hint="pgvec joins search hits back on the primary key: "
                "ALTER TABLE ... ADD PRIMARY KEY (...).",
            )
        return self.info.pk

    def column_dir(self, attnum: int) -> Path:
        return self.directory / str(attnum)

    def parse_key(self, text: str) -> Key:
        return key_parser(self.info.pk_type)(text)

    def _table(self) -> sql.Composable:
        return sql.Identifier(self.info.schema, self.info.name)

    # -- loading ----------------------------------------------------------------------

    def load_persisted(self, attnum: int) -> bool:
        """Load the saved collection of an indexed column (no rebuild); False if none."""
        path = self.column_dir(attnum)
        if not (path / "manifest.json").exists():
            return False
        self.collections[attnum] = VectorCollection.load(path)
        log.info(
            "loaded %s.%s column %d from %s (%d rows)",
            self.info.schema,
            self.info.name,
            attnum,
            path,
            self.collections[attnum].live_count,
        )
        return True

    def full_load(self, conn: psycopg.Connection, attnums: list[int]) -> None:
        """Read the given vector columns from the table into fresh collections.

        Runs in one REPEATABLE READ snapshot; change-log rows visible in it are marked
        applied (the snapshot contains their effect).
        """
        columns = {a: c for c in self.info.vectors.values() for a in [c.attnum] if a in attnums}
        started = time.monotonic()
        fresh = {a: VectorCollection(c.dim) for a, c in columns.items()}
        names = [columns[a].name for a in fresh]
        parse = key_parser(self.info.pk_type)
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
            query = sql.SQL("SELECT {pk}::text, {cols} FROM {table}").format(
                pk=sql.Identifier(self.pk),
                cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                table=self._table(),
            )
            total = 0
            with conn.cursor(name="pgvec_full_load", binary=True) as cur:
                cur.itersize = FETCH_BATCH
                cur.execute(query)
                while rows := cur.fetchmany(FETCH_BATCH):
                    for i, attnum in enumerate(fresh):
                        got = [(r[0], r[i + 1]) for r in rows if r[i + 1] is not None]
                        if got:
                            keys = [parse(k) for k, _ in got]
                            dim = fresh[attnum].dim
                            mat = np.frombuffer(b"".join(v for _, v in got), "<f4")
                            fresh[attnum].upsert(keys, mat.reshape(len(got), dim))
                    total += len(rows)
                    log.info("loading %s: %d rows", self.info.name, total)
        others = set(self.collections) - set(fresh)
        self.collections.update(fresh)
        if not others:
            # the snapshot holds every change visible in it, for every collection
            self.applied.update(seqs)
            self.seen_seq = max([self.seen_seq, *seqs])
            self.seen_xmin = int(snap[0]) if snap else 0
        # else: the other columns' collections have not seen those changes; the next
        # apply_changes replays them to all (idempotent for the columns just loaded)
        log.info(
            "loaded %d rows of %s.%s in %.2fs",
            total,
            self.info.schema,
            self.info.name,
            time.monotonic() - started,
        )

    # -- applying the change log ------------------------------------------------------

    def apply_changes(self, conn: psycopg.Connection) -> int:
        """Apply every committed change not yet applied; returns how many keys changed."""
        rows, xmin = _read_changes(conn, self.relid, self.seen_seq, self.seen_xmin)
        new = [r for r in rows if r[0] not in self.applied]
        self.seen_seq = max([self.seen_seq, *(r[0] for r in rows)])
        self.seen_xmin = xmin
        self.last_apply = time.monotonic()
        if not new:
            return 0
        if any(r[1] == "t" for r in new):
            log.info("%s was truncated: reloading", self.info.name)
            specs = {a: c.index_spec for a, c in self.collections.items()}
            for c in self.collections.values():
                c.clear()
            self.full_load(conn, list(self.collections))
            for attnum, spec in specs.items():
                if spec is not None:  # the index stays, empty: seal builds it again
                    self.collections[attnum].expect_index(spec)
            self.applied.update(r[0] for r in new)
            return len(new)
        texts = sorted({r[2] for r in new if r[2] is not None})
        self._refresh(conn, self.collections, texts)
        self.applied.update(r[0] for r in new)
        return len(texts)

    def catch_up(self, conn: psycopg.Connection, attnum: int, coll: VectorCollection) -> int:
        """Apply every change still in the log to ``coll``, a collection just loaded from
        disk (load after release); returns how many keys changed.

        While an index is released, checkpoints keep its table's change-log rows, so the
        log holds at least every change made since it was saved. Replaying is idempotent.
        Caller holds the lock.
        """
        rows = conn.execute(
            "SELECT op, key FROM pgvec.changes WHERE relid = %s", (self.relid,)
        ).fetchall()
        if not rows:
            return 0
        if any(op == "t" for op, _ in rows):  # truncated meanwhile: read the column again
            coll.clear()
            self._refresh(conn, {attnum: coll}, None)
            return coll.live_count
        texts = sorted({key for _, key in rows if key is not None})
        self._refresh(conn, {attnum: coll}, texts)
        return len(texts)

    def _refresh(
        self,
        conn: psycopg.Connection,
        collections: dict[int, VectorCollection],
        texts: list[str] | None,
    ) -> None:
        """Re-read the rows of the given keys (None: every row) into the collections."""
        parse = key_parser(self.info.pk_type)
        names = {a: c.name for c in self.info.vectors.values() for a in [c.attnum]}
        attnums = list(collections)
        where = "" if texts is None else " WHERE {pk} = ANY(%s::text[]::{typ}[])"
        query = sql.SQL("SELECT {pk}::text, {cols} FROM {table}" + where).format(
            pk=sql.Identifier(self.pk),
            cols=sql.SQL(", ").join(sql.Identifier(names[a]) for a in attnums),
            table=self._table(),
            typ=sql.SQL(self.info.pk_type or "text"),
        )
        with conn.cursor(binary=True) as cur:
            cur.execute(query, () if texts is None else (texts,))
            found = cur.fetchall()
        present = {r[0] for r in found}
        texts = texts or []
        for i, attnum in enumerate(attnums):
            coll = collections[attnum]
            rows_with = [(r[0], r[i + 1]) for r in found if r[i + 1] is not None]
            if rows_with:
                mat = np.frombuffer(b"".join(v for _, v in rows_with), "<f4")
                coll.upsert([parse(k) for k, _ in rows_with], mat.reshape(len(rows_with), coll.dim))
            gone = [parse(t) for t in texts if t not in present]
            gone += [parse(r[0]) for r in found if r[i + 1] is None]
            if gone:
                coll.delete(gone)

    # -- persistence ------------------------------------------------------------------

    def checkpoint(self, conn: psycopg.Connection, persisted: list[int]) -> None:
        """Save the indexed collections, then delete the log rows they include."""
        sizes: list[tuple[int, int, int, int]] = []
        with self.lock:
            done = list(self.applied)
            for attnum in persisted:
                if attnum in self.collections:
                    coll = self.collections[attnum]
                    path = self.column_dir(attnum)
                    coll.save(path)
                    disk = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
                    memory = int(coll.stats().get("memory_bytes", 0))
                    sizes.append((coll.live_count, memory, disk, attnum))
            self.last_save = time.monotonic()
        if sizes:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE pgvec.indexes SET rows_indexed = %s, memory_bytes = %s,"
                    " disk_bytes = %s, updated_at = now() WHERE relid = %s AND attnum = %s",
                    [(rows, mem, disk, self.relid, attnum) for rows, mem, disk, attnum in sizes],
                )
        if done:
            # a released index of this table still needs them: they are replayed at load
            conn.execute(
                "DELETE FROM pgvec.changes WHERE seq = ANY(%s) AND NOT EXISTS"
                " (SELECT FROM pgvec.indexes WHERE relid = %s AND state = 'released')",
                (done, self.relid),
            )
            with self.lock:
                self.applied.difference_update(done)

    def remove_files(self, attnum: int | None = None) -> None:
        path = self.directory if attnum is None else self.column_dir(attnum)
        shutil.rmtree(path, ignore_errors=True)
