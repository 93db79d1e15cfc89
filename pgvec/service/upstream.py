"""Where PostgreSQL is: a TCP address or a Unix-socket directory, taken from a DSN."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgvec.streams import open_connection, open_unix_connection


@dataclass(frozen=True)
class Upstream:
    """The PostgreSQL server behind pgvec, and the service DSN pgvec uses itself."""

    dsn: str

    def _parts(self) -> tuple[str, int]:
        info = conninfo_to_dict(self.dsn)
        host = str(info.get("host") or os.environ.get("PGHOST") or "/tmp")
        host = host.split(",")[0]
        port = int(str(info.get("port") or os.environ.get("PGPORT") or 5432).split(",")[0])
        return host, port

    def describe(self) -> str:
        host, port = self._parts()
        return f"{host}:{port}"

    def dsn_for(self, dbname: str) -> str:
        return make_conninfo(self.dsn, dbname=dbname)

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self._parts()
        if host.startswith("/"):
            return await open_unix_connection(os.path.join(host, f".s.PGSQL.{port}"))
        reader, writer = await open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer
