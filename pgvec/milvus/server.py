"""The Milvus gRPC server: MilvusService on its own port, in pgvec's event loop."""

from __future__ import annotations

import logging

import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc

from pgvec.milvus.service import MilvusService
from pgvec.service.core import Core

log = logging.getLogger(__name__)

DEFAULT_PORT = 19530
#: pymilvus opens channels without message size limits; so does the server (Milvus
#: Lite allows 256 MiB; a batch of 100k 384-d vectors is about 150 MiB)
MAX_MESSAGE = 512 * 1024 * 1024
GRACE_SECONDS = 2.0


class MilvusPortInUse(OSError):
    """The Milvus API's port is taken."""


class MilvusServer:
    def __init__(self, core: Core, host: str, port: int, database: str) -> None:
        self.host = host
        self.port = port
        self.service = MilvusService(core, database)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
                # pymilvus pings every 10 s, calls or not: allow it, as Milvus's
                # enforcement policy does (5 s, without calls), rather than answer
                # GOAWAY "too_many_pings" and make the client reconnect
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
                ("grpc.http2.max_ping_strikes", 0),
            ]
        )
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(self.service, server)
        address = f"{self.host}:{self.port}"
        bound = server.add_insecure_port(address)
        if bound == 0:
            raise MilvusPortInUse(f"cannot serve the Milvus API on {address}: the port is in use")
        self.port = bound
        await server.start()
        self._server = server
        log.info("Milvus API on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(GRACE_SECONDS)
            self._server = None
        await self.service.close()
