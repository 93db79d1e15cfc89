"""A bare PostgreSQL protocol client: send exact message sequences, read the replies.

Used to compare pgvec's replies with PostgreSQL's own for the same sequence, where a
driver would hide the difference.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

from pgvec.wire import messages as m
from pgvec.wire.framing import frame


@dataclass(frozen=True)
class Reply:
    type: str
    #: SQLSTATE of an ErrorResponse, command tag of a CommandComplete, status of a
    #: ReadyForQuery, values of a DataRow
    detail: object = None


def describe(kind: str, name: str = "") -> bytes:
    return frame(b"D", kind.encode() + name.encode() + b"\0")


def close(kind: str, name: str = "") -> bytes:
    return m.Close(kind, name).encode()


def parse(sql: str, name: str = "", types: list[int] | None = None) -> bytes:
    return m.Parse(name, sql, types or []).encode()


def bind(params: list[bytes | None] | None = None, statement: str = "", portal: str = "") -> bytes:
    return m.Bind(portal, statement, [], params or [], []).encode()


class RawClient:
    def __init__(self, uri: str) -> None:
        info = conninfo_to_dict(uri)
        host = str(info.get("host") or "127.0.0.1")
        port = int(str(info.get("port") or 5432))
        if host.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(os.path.join(host, f".s.PGSQL.{port}"))
        else:
            self.sock = socket.create_connection((host, port))
        self.sock.settimeout(30)
        params = {"user": str(info.get("user") or "postgres"), "database": str(info["dbname"])}
        body = struct.pack("!i", 196608)
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        self.sock.sendall(struct.pack("!i", len(body) + 5) + body + b"\0")
        self._buf = b""
        self.until_ready()

    def close(self) -> None:
        self.sock.sendall(frame(b"X", b""))
        self.sock.close()

    def send(self, *messages: bytes) -> None:
        self.sock.sendall(b"".join(messages))

    def _message(self) -> tuple[bytes, bytes]:
        while len(self._buf) < 5 or len(self._buf) < 1 + struct.unpack("!i", self._buf[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buf += chunk
        n = struct.unpack("!i", self._buf[1:5])[0]
        msg = self._buf[: 1 + n]
        self._buf = self._buf[1 + n :]
        return msg[:1], msg[5:]

    def read(self, count: int) -> list[Reply]:
        """The next ``count`` replies (ParameterStatus and notices skipped)."""
        out: list[Reply] = []
        while len(out) < count:
            out.append(self._next())
        return out

    def _next(self) -> Reply:
        while True:
            t, body = self._message()
            if t in (b"S", b"N", b"K", b"R"):
                continue
            if t == b"E":
                return Reply("E", m.error_fields(body).get("C"))
            if t == b"C":
                return Reply("C", body.rstrip(b"\0").decode())
            if t == b"Z":
                return Reply("Z", body.decode())
            if t == b"D":
                return Reply("D", tuple(m.data_row(body)))
            return Reply(t.decode())

    def until_ready(self, syncs: int = 1) -> list[Reply]:
        """Replies up to and including the ``syncs``-th ReadyForQuery."""
        out: list[Reply] = []
        while syncs:
            reply = self._next()
            out.append(reply)
            if reply.type == "Z":
                syncs -= 1
        return out
