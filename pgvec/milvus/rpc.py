"""The ``@rpc`` decorator every MilvusService method wears: the caller identified from the
request's headers, and every error answered in the reply's Status (never raised to grpc,
whose failures pymilvus retries for a minute)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import psycopg
from pymilvus.grpc_gen import common_pb2

from pgvec.errors import PgvecError
from pgvec.milvus import described
from pgvec.milvus.context import Caller
from pgvec.milvus.status import status_of

log = logging.getLogger("pgvec.milvus.service")

Handler = Callable[[Any, Any, Caller], Awaitable[Any]]


def rpc(reply: type[Any]) -> Callable[[Handler], Callable[..., Awaitable[Any]]]:
    """A servicer method: the caller identified, every error answered in a Status."""

    def wrap(fn: Handler) -> Callable[..., Awaitable[Any]]:
        changes = fn.__name__ not in described.READS  # the catalog, as searches cache it

        @functools.wraps(fn)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            if changes:
                self.described.clear()
            try:
                return await fn(self, request, Caller.of(context, request))
            except Exception as exc:  # answered, never raised to grpc
                if not isinstance(exc, PgvecError | psycopg.Error):
                    log.exception("%s failed", fn.__name__)
                else:
                    log.debug("%s: %s", fn.__name__, exc)
                status = status_of(exc)
                return status if reply is common_pb2.Status else reply(status=status)
            finally:
                if changes:
                    self.described.clear()

        return handler

    return wrap
