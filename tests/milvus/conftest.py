"""A pgvec server with its Milvus API on, in front of a fresh database, for pymilvus."""

from __future__ import annotations

import socket
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fix_proxy import PgvecServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def milvus_server(db_uri: str) -> Iterator[PgvecServer]:
    """pgvec serving the test's database: SQL on ``.port``, Milvus on ``.milvus_port``."""
    with tempfile.TemporaryDirectory(prefix="pgvec-milvus-") as tmp:
        server = PgvecServer(db_uri, Path(tmp), milvus_port=free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def milvus_uri(milvus_server: PgvecServer) -> str:
    return f"http://127.0.0.1:{milvus_server.milvus_port}"


@pytest.fixture
def client(milvus_uri: str) -> Iterator[object]:
    from pymilvus import MilvusClient

    c = MilvusClient(uri=milvus_uri)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def sql(milvus_server: PgvecServer, dbname: str) -> Iterator[psycopg.Connection]:
    """psycopg through pgvec's SQL side, autocommit off as psycopg defaults."""
    with psycopg.connect(milvus_server.uri(dbname)) as conn:
        yield conn


@pytest.fixture
def orm(milvus_uri: str) -> Iterator[str]:
    """pymilvus's ORM connected to pgvec under the alias "default"."""
    from pymilvus import connections

    warnings.filterwarnings("ignore", message=".*ORM.*")
    connections.connect(alias="default", uri=milvus_uri)
    try:
        yield "default"
    finally:
        connections.disconnect("default")
        connections.remove_connection("default")
