"""Partitions through pymilvus: each a PostgreSQL partition with its own index; writes,
searches and queries restricted to partitions, checked against numpy over their rows;
partition keys; the same table searched from SQL."""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 8
PARTS = ("p1", "p2", "p3")
PER = 40


def make(client: MilvusClient) -> dict[str, tuple[list[int], np.ndarray]]:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("cat", DataType.INT64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="HNSW", metric_type="L2", params={})
    client.create_collection("items", schema=schema, index_params=ip)
    rng = np.random.default_rng(3)
    out: dict[str, tuple[list[int], np.ndarray]] = {}
    for n, part in enumerate(("_default", *PARTS)):
        if part != "_default":
            client.create_partition("items", part)
        ids = [n * 1000 + i for i in range(PER)]
        vecs = rng.random((PER, DIM), dtype=np.float32)
        rows = [{"id": i, "cat": i % 5, "vec": v.tolist()} for i, v in zip(ids, vecs, strict=True)]
        client.insert("items", rows, partition_name=part)
        out[part] = (ids, vecs)
    return out


def exact(data: dict[str, tuple[list[int], np.ndarray]], q: np.ndarray, parts, k: int, keep=None):
    ids = [i for p in parts for i in data[p][0]]
    vecs = np.concatenate([data[p][1] for p in parts])
    d = ((vecs - q) ** 2).sum(1)
    pairs = sorted((float(s), i) for i, s in zip(ids, d, strict=True) if keep is None or keep(i))
    return [i for _, i in pairs[:k]], [s for s, _ in pairs[:k]]


def test_partitions_lifecycle(client: MilvusClient) -> None:
    data = make(client)
    assert client.list_partitions("items") == ["_default", *PARTS]
    assert client.has_partition("items", "p2")
    assert not client.has_partition("items", "nope")
    stats = client.get_partition_stats("items", "p2")
    assert int(stats["row_count"]) == PER
    with pytest.raises(MilvusException, match="already exists"):
        client.create_partition("items", "p1")
    with pytest.raises(MilvusException, match="default partition cannot be deleted"):
        client.drop_partition("items", "_default")

    q = np.random.default_rng(9).random(DIM, dtype=np.float32)
    for parts in (("p1",), ("p2", "p3"), ("_default", *PARTS)):
        hits = client.search("items", data=[q.tolist()], limit=7, partition_names=list(parts))[0]
        ids, dists = exact(data, q, parts, 7)
        assert [h["id"] for h in hits] == ids
        assert [h["distance"] for h in hits] == pytest.approx(dists, rel=1e-4)
    # every partition when none is named
    hits = client.search("items", data=[q.tolist()], limit=5)[0]
    assert [h["id"] for h in hits] == exact(data, q, ("_default", *PARTS), 5)[0]
    # a filter, restricted to a partition
    hits = client.search(
        "items", data=[q.tolist()], limit=5, filter="cat == 2", partition_names=["p3"]
    )[0]
    assert [h["id"] for h in hits] == exact(data, q, ("p3",), 5, lambda i: i % 5 == 2)[0]

    got = client.query("items", filter="cat == 1", partition_names=["p1"], output_fields=["id"])
    assert sorted(r["id"] for r in got) == [i for i in data["p1"][0] if i % 5 == 1]
    assert client.query("items", filter="id == 1001", partition_names=["p2"]) == []

    client.delete("items", filter="cat == 0", partition_name="p1")
    got = client.query("items", filter="cat == 0", output_fields=["id"])
    assert sorted(r["id"] for r in got) == sorted(
        i for p in ("_default", "p2", "p3") for i in data[p][0] if i % 5 == 0
    )

    client.release_collection("items")
    client.drop_partition("items", "p2")
    assert client.list_partitions("items") == ["_default", "p1", "p3"]
    client.load_collection("items")
    hits = client.search("items", data=[q.tolist()], limit=6)[0]
    keep = {"_default": None, "p1": lambda i: i % 5 != 0, "p3": None}
    want = sorted(
        pair
        for p, f in keep.items()
        for pair in zip(*exact(data, q, (p,), PER, f)[::-1], strict=True)
    )[:6]
    assert [h["id"] for h in hits] == [i for _, i in want]
    with pytest.raises(MilvusException, match="partition not found"):
        client.search("items", data=[q.tolist()], limit=3, partition_names=["p2"])


def test_upsert_into_a_partition(client: MilvusClient) -> None:
    data = make(client)
    v = np.zeros(DIM, dtype=np.float32)
    client.upsert("items", [{"id": 1005, "cat": 9, "vec": v.tolist()}], partition_name="p1")
    got = client.query("items", filter="id == 1005", output_fields=["cat"])
    assert [r["cat"] for r in got] == [9]
    hits = client.search("items", data=[v.tolist()], limit=1, partition_names=["p1"])[0]
    assert hits[0]["id"] == 1005
    assert len(data) == 4


def test_same_table_from_sql(client: MilvusClient, sql: psycopg.Connection) -> None:
    data = make(client)
    q = np.random.default_rng(5).random(DIM, dtype=np.float32)
    text = "[" + ",".join(repr(float(x)) for x in q) + "]"
    got = sql.execute(
        'SELECT id FROM items WHERE "$partition" = %s ORDER BY vec <-> %s LIMIT 6',
        ("p2", text),
    ).fetchall()
    assert [r[0] for r in got] == exact(data, q, ("p2",), 6)[0]
    got = sql.execute(f"SELECT id FROM items ORDER BY vec <-> '{text}' LIMIT 6").fetchall()
    assert [r[0] for r in got] == exact(data, q, ("_default", *PARTS), 6)[0]


def test_partition_key(client: MilvusClient, sql: psycopg.Connection) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=20, is_partition_key=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="HNSW", metric_type="L2", params={})
    client.create_collection("tenants", schema=schema, index_params=ip, num_partitions=8)
    rng = np.random.default_rng(11)
    vecs = rng.random((200, DIM), dtype=np.float32)
    tenants = [f"t{i % 7}" for i in range(200)]
    client.insert(
        "tenants",
        [{"id": i, "tenant": tenants[i], "vec": vecs[i].tolist()} for i in range(200)],
    )
    leaves = sql.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenants'::regclass"
    ).fetchone()
    assert leaves is not None and leaves[0] == 8
    q = rng.random(DIM, dtype=np.float32)
    hits = client.search("tenants", data=[q.tolist()], limit=5, filter='tenant == "t3"')[0]
    mine = [i for i in range(200) if tenants[i] == "t3"]
    d = ((vecs[mine] - q) ** 2).sum(1)
    assert [h["id"] for h in hits] == [mine[j] for j in np.argsort(d)[:5]]
    with pytest.raises(MilvusException):
        client.create_partition("tenants", "x")
    with pytest.raises(MilvusException, match="partition key"):
        client.insert(
            "tenants",
            [{"id": 999, "tenant": "t1", "vec": vecs[0].tolist()}],
            partition_name="_default_0",
        )


def index_states(db_uri: str) -> dict[str, str]:
    """The state of each partition's index, by partition."""
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.state FROM pgvec.indexes i JOIN pg_class c ON c.oid = i.relid"
            " WHERE c.relispartition"
        ).fetchall()
    return {name.split("$", 1)[1]: state for name, state in rows}


def test_partitions_load_and_release_on_their_own(client: MilvusClient, db_uri: str) -> None:
    """As in Milvus since 2.3: a partition released on its own is left out of searches
    and queries that name none, refused where one names it, and only then dropped; its
    index leaves memory and comes back when it is loaded."""
    data = make(client)
    q = np.random.default_rng(4).random(DIM, dtype=np.float32)
    client.search("items", data=[q.tolist()], limit=1)  # builds the partitions' indexes
    deadline = time.monotonic() + 60
    while set(index_states(db_uri).items()) != {(p, "ready") for p in ("_default", *PARTS)}:
        assert time.monotonic() < deadline, index_states(db_uri)
        time.sleep(0.1)
    with pytest.raises(MilvusException) as err:
        client.drop_partition("items", "p2")
    assert "partition is loaded, please release it first" in err.value.message
    client.release_partitions("items", ["p2"])
    loaded = ("_default", "p1", "p3")
    assert index_states(db_uri) == {
        "_default": "ready",
        "p1": "ready",
        "p2": "released",
        "p3": "ready",
    }
    hits = client.search("items", data=[q.tolist()], limit=8)[0]
    assert [h["id"] for h in hits] == exact(data, q, loaded, 8)[0]
    got = client.query("items", filter="cat == 3", output_fields=["id"])
    assert sorted(r["id"] for r in got) == sorted(
        i for p in loaded for i in data[p][0] if i % 5 == 3
    )
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[q.tolist()], limit=3, partition_names=["p2"])
    assert err.value.code == 201 and "partition not loaded" in err.value.message
    with pytest.raises(MilvusException) as err:
        client.query("items", filter="cat == 3", partition_names=["p1", "p2"])
    assert err.value.code == 201
    assert client.get_load_state("items")["state"].name == "Loaded"
    assert client.get_load_state("items", partition_name="p2")["state"].name == "NotLoad"
    # loaded again: found again
    client.load_partitions("items", ["p2"])
    assert set(index_states(db_uri).values()) == {"ready"}
    hits = client.search("items", data=[q.tolist()], limit=3, partition_names=["p2"])[0]
    assert [h["id"] for h in hits] == exact(data, q, ("p2",), 3)[0]
    # released partition by partition: the collection is released with the last one
    client.release_partitions("items", ["p2"])
    client.drop_partition("items", "p2")
    client.release_partitions("items", ["_default", "p1", "p3"])
    assert client.get_load_state("items")["state"].name == "NotLoad"
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[q.tolist()], limit=3)
    assert err.value.code == 101
    # loading some partitions of a released collection loads those only
    assert set(index_states(db_uri).values()) == {"released"}
    client.load_partitions("items", ["p3"])
    assert index_states(db_uri) == {"_default": "released", "p1": "released", "p3": "ready"}
    hits = client.search("items", data=[q.tolist()], limit=5)[0]
    assert [h["id"] for h in hits] == exact(data, q, ("p3",), 5)[0]
    client.create_partition("items", "p2")  # (a new partition of a loaded collection loads)
    client.load_collection("items")
    hits = client.search("items", data=[q.tolist()], limit=5)[0]
    assert [h["id"] for h in hits] == exact(data, q, ("_default", "p1", "p3"), 5)[0]
    states = index_states(db_uri)  # (the new p2's index is built at its first search)
    assert [states[p] for p in ("_default", "p1", "p3")] == ["ready"] * 3
