"""PostgreSQL from the ``pgserver`` wheel, for ``pgvec up`` with no upstream.

pgserver stops the cluster when the last process using it lets go; it keeps the list of
those processes in ``<pgdata>/.handle_pids.json``. A pgvec killed with SIGKILL stays on
that list, so the cluster would never be stopped again: every start and
:meth:`EmbeddedPostgres.stop_orphan` first drop the processes that are gone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

HANDLES_FILE = ".handle_pids.json"


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class EmbeddedPostgres:
    """A PostgreSQL 16 cluster in ``<data dir>/pg``, started and stopped with pgvec."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pg"
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the cluster; returns a superuser URI (Unix socket)."""
        from pgserver.postgres_server import get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        orphan = self.running_pid() if not self._prune_handles() else None
        if orphan is not None:
            log.info("reusing the embedded PostgreSQL (pid %d) of a pgvec that was killed", orphan)
        else:
            log.info("starting embedded PostgreSQL in %s", self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Let go of the cluster: it stops unless another process still uses it."""
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None

    def running_pid(self) -> int | None:
        """The postmaster's pid, if the cluster runs."""
        from pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):
            return None  # no cluster here, or a postmaster.pid being written
        if info is None or not info.is_running():
            return None
        return int(info.pid)

    def stop_orphan(self) -> int | None:
        """Stop the cluster if it runs while no process uses it (the pgvec that started
        it was killed); returns the pid of the postmaster stopped, None if none was."""
        if not self.pgdata.is_dir() or self._prune_handles():
            return None
        pid = self.running_pid()
        if pid is None:
            return None
        log.info("stopping the embedded PostgreSQL (pid %d) of a pgvec that was killed", pid)
        self.start()  # attaches: this process is then the last one using it
        self.stop()
        return pid

    def _prune_handles(self) -> list[int]:
        """Drop the processes that are gone from pgserver's list; returns those left."""
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import DiskList

        handles = DiskList(self.pgdata / HANDLES_FILE)
        with PostgresServer._lock:
            try:
                pids = [int(p) for p in handles.get()]
            except (OSError, ValueError, TypeError):
                pids = []
            live = [p for p in pids if _alive(p)]
            if live != pids:
                log.info(
                    "processes %s were killed without letting go of the embedded PostgreSQL",
                    sorted(set(pids) - set(live)),
                )
                handles.put(live)
        return live
