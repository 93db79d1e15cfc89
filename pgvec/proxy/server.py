"""The asyncio server: accepts PostgreSQL clients and runs a Session for each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping

import psycopg

from pgvec.errors import PgvecError
from pgvec.proxy.client_state import ClientState
from pgvec.proxy.relay import Relay
from pgvec.proxy.role_settings import session_defaults
from pgvec.proxy.session import Session
from pgvec.proxy.settings import DEFAULTS
from pgvec.proxy.sql_catalog import sql_catalog
from pgvec.proxy.startup import Established, accept, database_oid
from pgvec.proxy.textout import VectorOutput
from pgvec.proxy.transports import pair, take_over
from pgvec.rewrite.rules.database import LetGo
from pgvec.service.core import Core
from pgvec.service.database import Database
from pgvec.streams import start_server
from pgvec.wire.framing import FRONTEND_LIMITS, FrameBuffer, ProtocolViolation
from pgvec.wire.messages import error_response

log = logging.getLogger(__name__)

#: Seconds a client has to finish startup and authentication (PostgreSQL's default
#: authentication_timeout); a client that stays silent longer is disconnected.
STARTUP_TIMEOUT = 60.0


class ProxyServer:
    def __init__(self, core: Core, host: str = "127.0.0.1", port: int = 5433) -> None:
        self.core = core
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await start_server(self._client, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("pgvec listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except ProtocolViolation as exc:
            log.info("protocol violation from client: %s", exc)
            writer.write(error_response("08P01", str(exc), severity="FATAL"))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("session failed")
        finally:
            self._sessions.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = FrameBuffer(FRONTEND_LIMITS)
        try:
            est = await asyncio.wait_for(
                accept(reader, writer, buf, self.core.upstream, self._defaults), STARTUP_TIMEOUT
            )
        except asyncio.TimeoutError:
            log.info("client did not complete startup within %s s", STARTUP_TIMEOUT)
            return
        if est is None:
            return
        dbname = _dbname(est.params)
        with self.core.attached(dbname):  # from now: the client may send DROP DATABASE
            try:
                db = await self.core.database(dbname)
                if not db.template and db.oid and db.oid != await database_oid(est):
                    # dropped and made again behind pgvec's back, a moment ago: serve the
                    # new one (pgvec's schema installed) once pgvec let go of the old one
                    if await self.core.gone(db):
                        db = await self.core.database(dbname)
            except PgvecError as exc:
                writer.write(
                    error_response(exc.sqlstate, str(exc), severity="FATAL", hint=exc.hint)
                )
                await writer.drain()
                return
            except Exception as exc:
                log.exception("could not open database %s", dbname)
                writer.write(
                    error_response(
                        "58000",
                        f"pgvec could not prepare database {dbname}: {exc}",
                        severity="FATAL",
                    )
                )
                await writer.drain()
                return
            await self._relay(db, reader, writer, buf, est)

    async def _relay(
        self,
        db: Database,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        buf: FrameBuffer,
        est: Established,
    ) -> None:
        state = ClientState(db.vector_columns, db.note_ddl)
        relay = Relay(
            writer.transport,
            VectorOutput(state.vector_columns, lambda: db.face_oid, lambda: db.face_array_oid),
        )
        server = await take_over(est.server_reader, est.server_writer, relay)
        session = Session(db, buf, server.transport, relay, self._let_go, state)
        pair(server, await take_over(reader, writer, session))
        relay_closed = asyncio.create_task(relay.closed.wait())
        client_task: asyncio.Task[None] | None = None
        try:
            known = await self._role_settings(db, est.params.get("user", ""))
            configured = known or {}
            # what was added from stale knowledge of the role's settings, set right
            want = session_defaults(est.params, configured)
            fixes = {k: v for k, v in configured.items() if k in est.added}
            fixes |= {k: v for k, v in want.items() if k not in est.added}
            if fixes and not db.template:
                await session.set_startup(fixes)
            state.settings_stale = known is None or bool(fixes) or set(est.added) != set(DEFAULTS)
            client_task = asyncio.create_task(session.run())
            done, _ = await asyncio.wait(
                {client_task, relay_closed}, return_when=asyncio.FIRST_COMPLETED
            )
            if client_task in done:
                if client_task.exception() is not None:
                    raise client_task.exception()  # type: ignore[misc]
                # client finished (Terminate): let the relay deliver what is owed
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(relay_closed), 0.5)
        finally:
            relay_closed.cancel()
            if client_task is not None:
                client_task.cancel()
            with contextlib.suppress(Exception):
                server.transport.close()

    async def _let_go(self, target: LetGo) -> None:
        await self.core.let_go(target.name, force=target.force, dropping=target.dropping)

    def _defaults(self, params: Mapping[str, str]) -> dict[str, str]:
        """pgvec's settings to add to a client's startup packet."""
        db = self.core.opened(_dbname(params))
        if db is not None and db.template:
            return {}  # relayed untouched
        configured = (
            sql_catalog(db).role_settings.known(params.get("user", "")) if db is not None else None
        )
        return session_defaults(params, configured or {})

    @staticmethod
    async def _role_settings(db: Database, user: str) -> dict[str, str] | None:
        """What ALTER ROLE / DATABASE ... SET give ``user``'s sessions of pgvec's settings;
        None if pgvec cannot read them (the session's own are then read back)."""
        if db.template:
            return None
        try:
            return await sql_catalog(db).role_settings.get(user)
        except (psycopg.Error, PgvecError) as exc:
            log.warning("could not read role and database settings: %s", exc)
            return None


def _dbname(params: Mapping[str, str]) -> str:
    return params.get("database") or params.get("user") or "postgres"
