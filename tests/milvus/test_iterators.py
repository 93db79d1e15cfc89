"""Query and search iterators, MilvusClient's and the ORM's: every row or hit once, in order."""

from __future__ import annotations

import itertools

import numpy as np
from pymilvus import Collection, DataType, MilvusClient

N = 1000
DIM = 8


def make(client: MilvusClient, metric: str = "L2", vectors: np.ndarray | None = None) -> np.ndarray:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("n", DataType.INT64)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    params = client.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type=metric)
    client.create_collection("items", schema=schema, index_params=params)
    if vectors is None:
        vectors = np.random.default_rng(11).random((N, DIM)).astype(np.float32)
    rows = [
        {"id": i, "n": i % 7, "v": vectors[i].tolist(), "tag": f"t{i}"} for i in range(len(vectors))
    ]
    # keys inserted out of order: the iterator walks them in key order all the same
    order = np.random.default_rng(5).permutation(len(rows))
    client.insert("items", [rows[i] for i in order])
    return vectors


def drain(it: object) -> list[list[object]]:
    pages = []
    while True:
        page = it.next()
        if not page:
            it.close()
            return pages
        pages.append(list(page))


def test_query_iterator_walks_every_row_once(client: MilvusClient) -> None:
    make(client)
    it = client.query_iterator("items", batch_size=128, output_fields=["n", "tag"])
    pages = drain(it)
    assert [len(p) for p in pages] == [128] * 7 + [104]
    rows = [r for p in pages for r in p]
    assert [r["id"] for r in rows] == list(range(N))
    assert all(r["n"] == r["id"] % 7 and r["tag"] == f"t{r['id']}" for r in rows)


def test_query_iterator_filter_limit_offset(client: MilvusClient) -> None:
    make(client)
    it = client.query_iterator("items", batch_size=10, filter="n == 3", limit=25, offset=5)
    got = [r["id"] for p in drain(it) for r in p]
    assert got == [i for i in range(N) if i % 7 == 3][5:30]


def exact_l2(vectors: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ((vectors - q) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")
    return order, d[order]


def test_search_iterator_walks_hits_in_distance_order(client: MilvusClient) -> None:
    vectors = make(client)
    q = vectors[17] + 0.01
    it = client.search_iterator(
        "items", data=[q.tolist()], batch_size=50, limit=300, output_fields=["n"]
    )
    assert type(it).__name__ == "SearchIteratorV2"  # the server answered a token
    pages = drain(it)
    assert [len(p) for p in pages] == [50] * 6
    hits = [h for p in pages for h in p]
    ids = [h["id"] for h in hits]
    distances = [h["distance"] for h in hits]
    assert len(set(ids)) == 300
    assert all(a <= b for a, b in itertools.pairwise(distances))
    order, d = exact_l2(vectors, q)
    assert ids == order[:300].tolist()
    assert np.allclose(distances, d[:300], rtol=1e-5, atol=1e-6)
    assert all(h["entity"]["n"] == h["id"] % 7 for h in hits)


def test_search_iterator_without_limit_reaches_every_row(client: MilvusClient) -> None:
    vectors = make(client, "COSINE")
    it = client.search_iterator("items", data=[vectors[0].tolist()], batch_size=128)
    hits = [h for p in drain(it) for h in p]
    assert sorted(h["id"] for h in hits) == list(range(N))
    scores = [h["distance"] for h in hits]
    assert all(a >= b for a, b in itertools.pairwise(scores))


def test_search_iterator_with_filter(client: MilvusClient) -> None:
    vectors = make(client)
    q = vectors[3]
    it = client.search_iterator("items", data=[q.tolist()], batch_size=20, filter="n == 2")
    ids = [h["id"] for p in drain(it) for h in p]
    order, _ = exact_l2(vectors, q)
    assert ids == [i for i in order.tolist() if i % 7 == 2]


def test_search_iterator_ties_at_the_bound(client: MilvusClient) -> None:
    """Duplicate vectors tie at a page's bound: each is handed out once all the same."""
    distinct = np.random.default_rng(2).random((10, DIM)).astype(np.float32)
    vectors = np.repeat(distinct, 20, axis=0)  # 200 rows, 10 distances
    make(client, vectors=vectors)
    it = client.search_iterator("items", data=[distinct[0].tolist()], batch_size=7)
    hits = [h for p in drain(it) for h in p]
    assert sorted(h["id"] for h in hits) == list(range(200))
    distances = [h["distance"] for h in hits]
    assert all(a <= b for a, b in itertools.pairwise(distances))


def test_orm_iterators(client: MilvusClient, orm: str) -> None:
    vectors = make(client)
    coll = Collection("items")
    coll.load()
    it = coll.query_iterator(batch_size=128, expr="id >= 100", output_fields=["n"])
    assert [r["id"] for p in drain(it) for r in p] == list(range(100, N))
    q = vectors[5]
    it = coll.search_iterator(
        q[None].tolist(), "v", {"metric_type": "L2", "params": {}}, batch_size=50, limit=300
    )
    hits = [h for p in drain(it) for h in p]
    ids = [h.id for h in hits]
    assert len(ids) == 300 and len(set(ids)) == 300
    distances = [h.distance for h in hits]
    assert all(a <= b for a, b in itertools.pairwise(distances))
    order, _ = exact_l2(vectors, q)
    assert ids == order[:300].tolist()


def test_cursors_remember_the_keys_at_the_bound() -> None:
    from pgvec.engine.spec import Metric
    from pgvec.milvus.iterators import Cursors, Page

    cursors = Cursors()
    token, bound = cursors.handed(Page("", None), [(1, 0.5), (2, 1.0), (3, 1.0)])
    assert token and bound == 1.0
    admit = cursors.admits(Metric.L2, Page(token, bound))
    assert admit is not None
    assert [admit(k, s) for k, s in [(2, 1.0), (3, 1.0), (4, 1.0), (5, 2.0), (1, 0.5)]] == [
        False,
        False,
        True,
        True,
        False,
    ]
    # the next page ends at the same bound: its keys join those already handed out
    assert cursors.handed(Page(token, bound), [(4, 1.0)]) == (token, 1.0)
    admit = cursors.admits(Metric.L2, Page(token, 1.0))
    assert admit is not None and not admit(4, 1.0) and not admit(2, 1.0)
    # a token unknown here (a restarted server): strictly past the bound
    admit = cursors.admits(Metric.IP, Page("unknown", 1.0))
    assert admit is not None and [admit(9, 1.0), admit(9, 0.9), admit(9, 1.1)] == [
        False,
        True,
        False,
    ]


def test_search_iterator_over_hnsw(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    params = client.prepare_index_params()
    params.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 16})
    client.create_collection("h", schema=schema, index_params=params)
    vectors = np.random.default_rng(4).random((N, DIM)).astype(np.float32)
    client.insert("h", [{"id": i, "v": v.tolist()} for i, v in enumerate(vectors)])
    it = client.search_iterator("h", data=[vectors[0].tolist()], batch_size=100)
    hits = [h for p in drain(it) for h in p]
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)) and len(ids) >= 0.95 * N
    distances = [h["distance"] for h in hits]
    assert all(a <= b for a, b in itertools.pairwise(distances))
    order, _ = exact_l2(vectors, vectors[0])
    assert len(set(ids[:100]) & set(order[:100].tolist())) >= 90


def test_query_iterator_over_varchar_keys(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection("s", schema=schema, index_params=params)
    keys = [f"k{i}" for i in range(300)] + ["A", "a", "B", "b", "_x", "z-1"]
    client.insert("s", [{"pk": k, "v": [1.0, 2.0]} for k in keys])
    got = [r["pk"] for p in drain(client.query_iterator("s", batch_size=32)) for r in p]
    assert sorted(got) == sorted(keys) and len(got) == len(set(got))
