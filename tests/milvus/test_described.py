"""Searches keep the collection and its indexes as they last read them: DDL through the
Milvus API or through pgvec's SQL side is seen by the very next search."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from pgvec.milvus.described import READS, DescribedCache
from pgvec.milvus.service import MilvusService


def make(client: MilvusClient, dim: int, metric: str) -> np.ndarray:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="HNSW", metric_type=metric, params={"M": 8})
    client.create_collection("items", schema=schema, index_params=ip)
    vecs = np.random.default_rng(dim).random((50, dim), dtype=np.float32)
    client.insert("items", [{"id": i, "vec": v.tolist()} for i, v in enumerate(vecs)])
    return vecs


def test_milvus_ddl_seen_by_the_next_search(client: MilvusClient) -> None:
    vecs = make(client, 8, "L2")
    hits = client.search("items", data=[vecs[3].tolist()], limit=1)[0]
    assert hits[0]["id"] == 3 and hits[0]["distance"] == pytest.approx(0.0, abs=1e-5)

    client.release_collection("items")
    with pytest.raises(MilvusException, match="not loaded"):
        client.search("items", data=[vecs[3].tolist()], limit=1)
    client.load_collection("items")
    assert client.search("items", data=[vecs[3].tolist()], limit=1)[0][0]["id"] == 3

    client.drop_collection("items")
    vecs = make(client, 4, "IP")
    hits = client.search("items", data=[vecs[5].tolist()], limit=3)[0]
    scores = vecs @ vecs[5]
    assert [h["id"] for h in hits] == np.argsort(-scores)[:3].tolist()
    assert hits[0]["distance"] == pytest.approx(float(scores.max()), rel=1e-5)


def test_sql_ddl_seen_by_the_next_search(client: MilvusClient, sql: psycopg.Connection) -> None:
    vecs = make(client, 8, "L2")
    assert client.search("items", data=[vecs[0].tolist()], limit=1)[0][0]["id"] == 0
    sql.execute("ALTER TABLE items RENAME TO things")
    sql.commit()
    with pytest.raises(MilvusException, match="collection 'items' does not exist"):
        client.search("items", data=[vecs[0].tolist()], limit=1)
    sql.execute("ALTER TABLE things RENAME TO items")
    sql.commit()
    assert client.search("items", data=[vecs[0].tolist()], limit=1)[0][0]["id"] == 0


def test_every_rpc_outside_the_reads_clears_the_cache() -> None:
    # the RPCs pgvec answers: those its own classes (the service and its mixins) define
    rpcs = {
        name
        for cls in MilvusService.__mro__
        if cls.__module__.startswith("pgvec.")
        for name in vars(cls)
        if name[:1].isupper() and callable(getattr(MilvusService, name))
    }
    assert READS <= rpcs  # no misspelt name keeps a DDL RPC from clearing
    assert {"CreateCollection", "DropCollection", "LoadCollection", "ReleaseCollection"} <= (
        rpcs - READS
    )
    assert {"CreateIndex", "DropIndex", "AlterCollection", "RenameCollection"} <= rpcs - READS


class Reader:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, conn: Any) -> tuple[Any, list[Any]]:
        self.calls += 1
        await asyncio.sleep(0)
        return f"coll{self.calls}", []


def test_cache_reads_again_after_ttl_ddl_or_clear() -> None:
    async def scenario() -> None:
        cache = DescribedCache(ttl=0.05)
        read = Reader()
        key = (None, "", "items")
        assert (await cache.get(key, 0, None, read)).coll == "coll1"  # type: ignore[arg-type]
        assert (await cache.get(key, 0, None, read)).coll == "coll1"  # type: ignore[arg-type]
        assert (await cache.get(key, 1, None, read)).coll == "coll2"  # type: ignore[arg-type]
        cache.clear()
        assert (await cache.get(key, 1, None, read)).coll == "coll3"  # type: ignore[arg-type]
        await asyncio.sleep(0.06)
        assert (await cache.get(key, 1, None, read)).coll == "coll4"  # type: ignore[arg-type]
        assert (await cache.get(("u", "", "items"), 1, None, read)).coll == "coll5"  # type: ignore[arg-type]

        # a read that a clear() overtook answers its own call but is not kept
        pending = asyncio.ensure_future(cache.get(("v", "", "x"), 1, None, read))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        cache.clear()
        assert (await pending).coll == "coll6"
        assert (await cache.get(("v", "", "x"), 1, None, read)).coll == "coll7"  # type: ignore[arg-type]

    asyncio.run(scenario())
