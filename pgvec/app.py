"""Running a pgvec server: the core, the proxy, and the state file ``pgvec status`` reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from pgvec.proxy.server import ProxyServer
from pgvec.service.core import Core
from pgvec.service.upstream import Upstream

log = logging.getLogger(__name__)

STATE_FILE = "pgvec.json"


@dataclass
class ServerState:
    pid: int
    host: str
    port: int
    upstream: str
    data_dir: str
    embedded: bool
    milvus_port: int | None = None

    @property
    def client_uri(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"


def read_state(data_dir: Path) -> ServerState | None:
    path = data_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
        return ServerState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie awaiting its parent is not)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


async def serve(
    upstream_dsn: str,
    data_dir: Path,
    host: str,
    port: int,
    *,
    embedded: bool,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    milvus_port: int = -1,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); a second signal exits at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    core = Core(Upstream(upstream_dsn), data_dir)
    server = ProxyServer(core, host, port)
    await server.start()
    # open the default database now, so its indexes load before the first client
    default_db = str(conninfo_to_dict(upstream_dsn).get("dbname") or "postgres")
    try:
        await core.database(default_db)
    except Exception as exc:
        log.warning("could not open database %s yet: %s", default_db, exc)
    milvus = None
    if milvus_port >= 0:
        from pgvec.milvus.server import MilvusServer

        milvus = MilvusServer(core, host, milvus_port, default_db)
        try:
            await milvus.start()
        except Exception:
            await server.close()
            await core.close()
            raise
    state = ServerState(
        os.getpid(),
        host,
        server.port,
        upstream_dsn,
        str(data_dir),
        embedded,
        milvus.port if milvus is not None else None,
    )
    state_path = data_dir / STATE_FILE
    state_path.write_text(json.dumps(asdict(state)))
    stop = stop or asyncio.Event()
    stopping = stop

    def on_signal() -> None:
        if stopping.is_set():
            # a second Ctrl-C: no waiting for anything. Index files are written atomically
            # and the change log keeps what was not saved; the next start replays it.
            log.warning("interrupted again: exiting now")
            os._exit(130)
        stopping.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    if on_ready is not None:
        on_ready(server.port)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if milvus is not None:
            await milvus.close()
        await server.close()
        await core.close()
        with contextlib.suppress(OSError):
            state_path.unlink()
