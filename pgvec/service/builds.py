"""An index build in progress: its phase, its progress row, and how to cancel it.

Every build (CREATE INDEX and REINDEX, CONCURRENTLY or not) runs in a worker thread and
reports through :meth:`Build.report`, the engine's progress callback. The Build keeps the
latest phase and percentage, writes them to ``pgvec.build_progress`` (read through the
view ``pgvec.index_progress``) at most every ``WRITE_INTERVAL`` seconds, and raises
:class:`QueryCanceled` at the next report once :meth:`cancel` was called (DROP INDEX).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgvec.catalog.models import Slot
from pgvec.errors import QueryCanceled

log = logging.getLogger(__name__)

#: seconds between two writes of a build's progress row
WRITE_INTERVAL = 0.5
#: seconds between two progress NOTICEs to a client waiting for its CREATE INDEX
NOTICE_INTERVAL = 1.0

# The engine's stages (pgvec.engine.faiss_index) as the view names them, with the share of
# the whole build done when the stage starts and ends.
_PHASES: dict[str, tuple[str, float, float]] = {
    "snapshot": ("initializing", 0.0, 5.0),
    "train": ("training", 5.0, 20.0),
    "add": ("adding rows", 20.0, 95.0),
    "done": ("saving", 95.0, 95.0),
}

_UPSERT = """
INSERT INTO pgvec.build_progress AS p (relid, attnum, metric, schema_name, index_name,
    command, phase, rows_done, rows_total, percent)
VALUES (%(relid)s, %(attnum)s, %(metric)s, %(schema)s, %(name)s, %(command)s, %(phase)s,
    %(done)s, %(total)s, %(percent)s)
ON CONFLICT (relid, attnum, metric) DO UPDATE SET phase = excluded.phase,
    rows_done = excluded.rows_done, rows_total = excluded.rows_total,
    percent = excluded.percent, updated_at = now()
"""


@dataclass
class Build:
    """One index build; ``key`` (table OID, attnum, metric) is unique among running
    builds: one per index."""

    schema_name: str
    index_name: str
    relid: int
    slot: Slot  # the column and the metric of the index
    command: str  # CREATE INDEX [CONCURRENTLY] | REINDEX [CONCURRENTLY]
    rows_total: int = 0
    phase: str = "initializing"
    percent: float = 0.0
    rows_done: int = 0
    #: where progress NOTICEs go (a client waiting for its CREATE INDEX), if anywhere
    notify: Callable[[str], None] | None = None
    #: a CREATE INDEX that superseded the column's index of its operator class (which
    #: serves until this one is built, and again if this one fails)
    supersedes: bool = False
    #: the task running the build (set by the Database)
    task: asyncio.Task[Any] | None = None
    started: float = field(default_factory=time.monotonic)
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _reason: str = ""
    _conn: psycopg.Connection[Any] | None = None
    _written: float = 0.0
    _noticed: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.relid, *self.slot)

    @property
    def concurrently(self) -> bool:
        return self.command.endswith("CONCURRENTLY")

    def cancel(self, reason: str) -> None:
        self._reason = reason
        self._cancelled.set()

    def check(self) -> None:
        """Raise QueryCanceled once the build was cancelled."""
        if self._cancelled.is_set():
            raise QueryCanceled(f'building index "{self.index_name}" was canceled: {self._reason}')

    def attach(self, conn: psycopg.Connection[Any] | None) -> None:
        """The build thread's connection, on which progress rows are written."""
        self._conn = conn

    def report(self, stage: str, fraction: float) -> None:
        """The engine's progress callback (build thread): record, maybe write, maybe notify."""
        self.check()
        phase, lo, hi = _PHASES.get(stage, (stage, self.percent, self.percent))
        changed = phase != self.phase
        self.phase = phase
        self.percent = lo + (hi - lo) * max(0.0, min(1.0, fraction))
        if stage == "add":
            self.rows_done = int(self.rows_total * fraction)
        elif stage == "done":
            self.rows_done = self.rows_total
        now = time.monotonic()
        if changed or now - self._written >= WRITE_INTERVAL:  # a new phase shows at once
            self.write()
        if now - self._noticed >= NOTICE_INTERVAL:
            self._noticed = now
            text = f"building {self.index_name}: {self.phase} {self.percent:.0f}%"
            log.info("%s", text)
            if self.notify is not None:
                self.notify(text)

    def write(self) -> None:
        """Upsert this build's row of pgvec.build_progress (errors only logged)."""
        conn = self._conn
        if conn is None:
            return
        self._written = time.monotonic()
        try:
            conn.execute(
                _UPSERT,
                {
                    "relid": self.relid,
                    "attnum": self.slot.attnum,
                    "metric": self.slot.metric,
                    "schema": self.schema_name,
                    "name": self.index_name,
                    "command": self.command,
                    "phase": self.phase,
                    "done": self.rows_done,
                    "total": self.rows_total,
                    "percent": round(self.percent, 1),
                },
            )
        except psycopg.Error as exc:
            log.warning("cannot record the progress of %s: %s", self.index_name, exc)

    def finish(self) -> None:
        """Remove this build's progress row."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute(
                "DELETE FROM pgvec.build_progress WHERE relid = %s AND attnum = %s AND metric = %s",
                self.key,
            )
        except psycopg.Error as exc:
            log.warning("cannot clear the progress of %s: %s", self.index_name, exc)
