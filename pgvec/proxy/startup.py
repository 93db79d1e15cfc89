"""Connection start: SSL/GSS refusal, cancel forwarding, startup and authentication relay.

The proxy never sees passwords in the clear: authentication messages are forwarded as
bytes between the client and PostgreSQL (trust, password, md5, SCRAM-SHA-256). It offers
no TLS itself (it answers SSLRequest with 'N'), so SCRAM channel binding is never offered.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pgvec.service.upstream import Upstream
from pgvec.wire.framing import FrameBuffer, Message, ProtocolViolation
from pgvec.wire.messages import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    SSL_REQUEST,
    Query,
    add_startup_parameters,
    data_row,
    error_fields,
    error_response,
    startup_code,
    startup_parameters,
)

log = logging.getLogger(__name__)

# Authentication request codes after which the client must answer.
_NEEDS_ANSWER = {2, 3, 5, 7, 8, 9, 10, 11}


@dataclass
class Established:
    server_reader: asyncio.StreamReader
    server_writer: asyncio.StreamWriter
    params: dict[str, str]
    server_params: dict[str, str] = field(default_factory=dict)
    backend_key: bytes = b""
    #: run-time parameters pgvec added to the client's startup packet
    added: dict[str, str] = field(default_factory=dict)


async def _read_more(reader: asyncio.StreamReader, buf: FrameBuffer) -> None:
    data = await reader.read(1 << 16)
    if not data:
        raise ConnectionError("peer closed the connection")
    buf.feed(data)


async def _next_message(reader: asyncio.StreamReader, buf: FrameBuffer) -> Message:
    while (msg := buf.next_message()) is None:
        await _read_more(reader, buf)
    return msg


async def accept(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    client_buf: FrameBuffer,
    upstream: Upstream,
    defaults: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
) -> Established | None:
    """Run the startup phase. Returns None when the connection is done (cancel, error).

    ``defaults``: the run-time parameters to add to the client's startup packet, given
    its own (pgvec's settings, so that SHOW answers before any SET and RESET returns
    to them, as with pgvector's real settings).
    """
    refused: set[int] = set()
    while True:
        while (body := client_buf.next_startup()) is None:
            await _read_more(client_reader, client_buf)
        code = startup_code(body)
        # each may come once, as in PostgreSQL; a second one is an unknown protocol below
        if code in (SSL_REQUEST, GSSENC_REQUEST) and code not in refused:
            refused.add(code)
            client_writer.write(b"N")
            await client_writer.drain()
            continue
        if code == CANCEL_REQUEST:
            await _forward_cancel(body, upstream)
            return None
        if code >> 16 != 3:
            if len(body) and body[0] == 0x16:
                raise ProtocolViolation("direct TLS is not supported; connect with sslmode=disable")
            raise ProtocolViolation(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
        break
    params = startup_parameters(body)
    try:
        server_reader, server_writer = await upstream.open()
    except OSError as exc:
        client_writer.write(
            error_response(
                "08006",
                f"pgvec could not connect to PostgreSQL at {upstream.describe()}: {exc}",
                severity="FATAL",
                hint="Is PostgreSQL running? Check `pgvec status`.",
            )
        )
        await client_writer.drain()
        return None
    added = defaults(params) if defaults is not None else {}
    try:
        return await _authenticate(
            client_reader,
            client_writer,
            client_buf,
            server_reader,
            server_writer,
            body,
            params,
            added,
        )
    except BaseException:  # a bad client message, a timeout, a cancel: close upstream too
        server_writer.close()
        raise


async def _authenticate(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    client_buf: FrameBuffer,
    server_reader: asyncio.StreamReader,
    server_writer: asyncio.StreamWriter,
    body: bytes,
    params: dict[str, str],
    added: dict[str, str],
) -> Established | None:
    """Relay the startup packet (with ``added``) and authentication until PostgreSQL is
    ready (or not)."""
    packet = add_startup_parameters(body, added) if added else body
    server_writer.write(struct.pack("!i", len(packet) + 4) + packet)
    est = Established(server_reader, server_writer, params, added=added)
    server_buf = FrameBuffer()
    while True:
        msg = await _next_message(server_reader, server_buf)
        client_writer.write(msg.raw)
        if msg.type == b"R":
            (auth_code,) = struct.unpack_from("!i", msg.body, 0)
            if auth_code in _NEEDS_ANSWER:
                await client_writer.drain()
                answer = await _next_message(client_reader, client_buf)
                server_writer.write(answer.raw)
        elif msg.type == b"S":
            name, _, rest = msg.body.partition(b"\0")
            est.server_params[name.decode()] = rest.rstrip(b"\0").decode("utf-8", "replace")
        elif msg.type == b"K":
            est.backend_key = msg.body
        elif msg.type == b"E":
            await client_writer.drain()
            log.info("startup refused by PostgreSQL: %s", error_fields(msg.body).get("M"))
            server_writer.close()
            return None
        elif msg.type == b"Z":
            await client_writer.drain()
            return est


async def database_oid(est: Established) -> int | None:
    """The OID of the database of the client's new connection, asked on that connection
    before the client's first statement; None if PostgreSQL does not say."""
    est.server_writer.write(Query(_OID_SQL).encode())
    buf = FrameBuffer()
    oid: int | None = None
    while True:
        msg = await _next_message(est.server_reader, buf)
        if msg.type == b"D":
            values = data_row(msg.body)
            value = values[0] if values else None
            oid = int(value) if value else None
        elif msg.type == b"Z":
            return oid


_OID_SQL = "SELECT oid::int8 FROM pg_catalog.pg_database WHERE datname = current_database()"


async def _forward_cancel(body: bytes, upstream: Upstream) -> None:
    try:
        _, writer = await upstream.open()
    except OSError as exc:
        log.warning("could not forward a cancel request: %s", exc)
        return
    writer.write(struct.pack("!i", len(body) + 4) + body)
    await writer.drain()
    writer.close()
