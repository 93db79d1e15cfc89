"""asyncio streams whose protocol remembers that the peer closed its side.

A session reads its startup through streams, then moves each socket to a protocol of
its own (pgvec.proxy.transports.take_over). A stream that has read the peer's end of
file keeps the socket open for writing and stops reading it, so the protocol that comes
after would never hear of it: this one notes it (``eof_seen``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class StreamProtocol(asyncio.StreamReaderProtocol):
    eof_seen = False

    def eof_received(self) -> bool:
        self.eof_seen = True
        return bool(super().eof_received())


async def start_server(connected: Connected, host: str, port: int) -> asyncio.Server:
    """asyncio.start_server, with StreamProtocol."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: StreamProtocol(asyncio.StreamReader(), connected), host, port
    )


async def open_connection(host: str, port: int) -> Streams:
    """asyncio.open_connection, with StreamProtocol."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = StreamProtocol(reader)
    transport, _ = await loop.create_connection(lambda: protocol, host, port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def open_unix_connection(path: str) -> Streams:
    """asyncio.open_unix_connection, with StreamProtocol."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = StreamProtocol(reader)
    transport, _ = await loop.create_unix_connection(lambda: protocol, path)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
