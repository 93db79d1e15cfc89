"""Fixtures for comparing pgvec with real pgvector: a database next to the test's with
the real extension, and ``on_both`` to run the same client code against each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest

from tests.fix_proxy import pgvector_database


@pytest.fixture
def both(proxy_uri: str, real_pgvector_uri: str) -> dict[str, str]:
    """The pgvec URI and a real pgvector database's, each with ``CREATE EXTENSION
    vector`` run by the client as pgvector's README says."""
    uris = {"pgvec": proxy_uri, "pgvector": real_pgvector_uri}
    for uri in uris.values():
        with psycopg.connect(uri) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return uris


def on_both(both: dict[str, str], run: Callable[[str], Any]) -> Any:
    out = {name: run(uri) for name, uri in both.items()}
    assert _plain(out["pgvec"]) == _plain(out["pgvector"])
    return out["pgvec"]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "to_list"):  # pgvector.utils.Vector
        return ("Vector", value.to_list())
    return value


@pytest.fixture
def real_pgvector_uri(pg_uri: str) -> Iterator[str]:
    """URI of a database next to the test's, with the real pgvector extension."""
    with pgvector_database(pg_uri) as c:
        yield urlunsplit(urlsplit(pg_uri)._replace(path="/" + c.info.dbname))
