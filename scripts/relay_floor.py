#!/usr/bin/env python
"""The least a proxy in Python can cost: a PostgreSQL relay that frames every message.

``bench_passthrough.py --floor`` runs this next to PgBouncer and pgvec. It relays each
connection's bytes both ways on uvloop, with transport callbacks, and walks the message
frames of every read (type byte and length, as any proxy that looks at messages must),
but keeps no state and changes nothing. What pgvec costs above it is pgvec's own
bookkeeping; what it costs above PgBouncer is the price of Python and its event loop.

With ``--processes N`` it runs N such relays on one port (SO_REUSEPORT: the kernel spreads
the connections over them): what a proxy of several Python processes could reach, the
ceiling of the process architecture issue 11 asks about.

    python scripts/relay_floor.py --port 6433 --upstream-port 5432
    python scripts/relay_floor.py --port 6433 --upstream-port 5432 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
from typing import cast

import uvloop

_HIGH_WATER = 1 << 20


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; ``peer`` is the other's protocol."""

    def __init__(self, startup: bool) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self._startup = startup  # the first message (no type byte) is still to come
        self._rest = b""
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        pos, n = 0, len(buf)
        if self._startup:
            if n < 4:
                self._rest = buf
                return
            pos = int.from_bytes(buf[:4], "big")
            if n < pos:
                self._rest = buf
                return
            self._startup = False
        while n - pos >= 5:
            end = pos + 1 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if end > n:
                break
            pos = end
        self._rest = buf[pos:]
        if pos:
            self.send(buf[:pos] if pos < n else buf)

    def send(self, data: bytes) -> None:
        """Pass ``data`` to the peer (held until the peer is connected)."""
        if self.peer is None or self.peer.transport is None:
            self._early.append(data)
        else:
            self.peer.transport.write(data)

    def connected(self, peer: _Side) -> None:
        self.peer = peer
        assert peer.transport is not None
        for data in self._early:
            peer.transport.write(data)
        self._early.clear()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def serve(port: int, upstream_host: str, upstream_port: int, reuse_port: bool) -> None:
    loop = asyncio.get_running_loop()

    async def connect(client: _Side) -> None:
        try:
            _, server = await loop.create_connection(
                lambda: _Side(startup=False), upstream_host, upstream_port
            )
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        server.connected(client)
        client.connected(server)

    pending: set[asyncio.Task[None]] = set()

    def accepted() -> _Side:
        client = _Side(startup=True)
        task = loop.create_task(connect(client))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return client

    server = await loop.create_server(accepted, "127.0.0.1", port, reuse_port=reuse_port or None)
    print(f"relaying 127.0.0.1:{port} to {upstream_host}:{upstream_port} (pid {os.getpid()})",
          flush=True)  # fmt: skip
    await server.serve_forever()


def run(port: int, upstream_host: str, upstream_port: int, reuse_port: bool) -> None:
    uvloop.run(serve(port, upstream_host, upstream_port, reuse_port))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-host", default="127.0.0.1")
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--processes", type=int, default=1, help="relays sharing the port")
    args = ap.parse_args()
    where = (args.port, args.upstream_host, args.upstream_port)
    if args.processes <= 1:
        run(*where, reuse_port=False)
        return
    procs = [
        multiprocessing.Process(target=run, args=(*where, True), daemon=True)
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()


if __name__ == "__main__":
    main()
