"""Search through pymilvus: Milvus's distance conventions, filters, batches, offsets,
range and grouping search, read-your-writes, and the same rows seen from SQL."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

N, DIM = 300, 8


def make(client: MilvusClient, metric: str, index: str = "HNSW", params: dict | None = None):
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("cat", DataType.INT64)
    schema.add_field("name", DataType.VARCHAR, max_length=20)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type=index, metric_type=metric, params=params or {})
    client.create_collection("items", schema=schema, index_params=ip)
    rng = np.random.default_rng(7)
    vecs = rng.random((N, DIM), dtype=np.float32)
    rows = [
        {
            "id": i,
            "cat": i % 10,
            "name": f"n{i}",
            "vec": vecs[i].tolist(),
            "color": ["red", "blue"][i % 2],
        }
        for i in range(N)
    ]
    client.insert("items", rows)
    return vecs


def exact(
    vecs: np.ndarray, q: np.ndarray, metric: str, allowed=None
) -> tuple[list[int], list[float]]:
    ids = np.arange(len(vecs)) if allowed is None else np.asarray(allowed)
    x = vecs[ids]
    if metric == "L2":
        s = ((x - q) ** 2).sum(1)
        order = np.argsort(s)
    elif metric == "IP":
        s = x @ q
        order = np.argsort(-s)
    else:
        s = (x @ q) / np.linalg.norm(x, axis=1) / np.linalg.norm(q)
        order = np.argsort(-s)
    return ids[order].tolist(), s[order].tolist()


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_distances_follow_milvus(client: MilvusClient, metric: str) -> None:
    vecs = make(client, metric, "FLAT")
    q = np.random.default_rng(1).random(DIM, dtype=np.float32)
    hits = client.search("items", data=[q.tolist()], limit=5, output_fields=["name"])[0]
    ids, scores = exact(vecs, q, metric)
    assert [h["id"] for h in hits] == ids[:5]
    assert np.allclose([h["distance"] for h in hits], scores[:5], atol=1e-4)
    assert hits[0]["entity"]["name"] == f"n{ids[0]}"


def test_filters_batches_offsets(client: MilvusClient) -> None:
    vecs = make(client, "L2", "IVF_FLAT", {"nlist": 8})
    qs = np.random.default_rng(2).random((3, DIM), dtype=np.float32)
    res = client.search(
        "items",
        data=qs.tolist(),
        limit=4,
        filter="cat in [1, 2] and id > 50",
        output_fields=["cat", "color"],
        search_params={"params": {"nprobe": 8}},
    )
    assert len(res) == 3
    allowed = [i for i in range(N) if i % 10 in (1, 2) and i > 50]
    for q, hits in zip(qs, res, strict=True):
        assert [h["id"] for h in hits] == exact(vecs, q, "L2", allowed)[0][:4]
        assert all(h["entity"]["color"] in ("red", "blue") for h in hits)
    paged = client.search(
        "items", data=[qs[0].tolist()], limit=3, offset=2, search_params={"params": {"nprobe": 8}}
    )[0]
    assert [h["id"] for h in paged] == exact(vecs, qs[0], "L2")[0][2:5]
    dyn = client.search("items", data=[qs[0].tolist()], limit=5, filter='color == "red"')[0]
    assert all(h["id"] % 2 == 0 for h in dyn) and len(dyn) == 5
    templ = client.search(
        "items", data=[qs[0].tolist()], limit=3, filter="cat == {c}", filter_params={"c": 3}
    )[0]
    assert all(h["id"] % 10 == 3 for h in templ)


def test_range_and_grouping(client: MilvusClient) -> None:
    vecs = make(client, "L2", "FLAT")
    q = vecs[0]
    ids, scores = exact(vecs, q, "L2")
    # bounds between two rows' distances: float rounding cannot move a row across
    radius, low = (scores[20] + scores[21]) / 2, (scores[4] + scores[5]) / 2
    hits = client.search(
        "items",
        data=[q.tolist()],
        limit=50,
        search_params={"params": {"radius": radius, "range_filter": low}},
    )[0]
    assert [h["id"] for h in hits] == ids[5:21]
    grouped = client.search(
        "items", data=[q.tolist()], limit=3, group_by_field="cat", output_fields=["cat"]
    )[0]
    cats = [h["entity"]["cat"] for h in grouped]
    assert len(cats) == 3 and len(set(cats)) == 3
    # group_size: up to that many hits a group, group after group in the order of their
    # best hits (Milvus's order); offset skips whole groups
    cat = {int(i): int(i) % 10 for i in ids}
    order: dict[int, list[int]] = {}
    for i in ids:
        group = order.setdefault(cat[i], [])
        if len(group) < 2:
            group.append(int(i))
    want = [i for group in list(order.values())[:3] for i in group]
    for strict in (False, True):
        grouped = client.search(
            "items", data=[q.tolist()], limit=3, group_by_field="cat", group_size=2,
            strict_group_size=strict, output_fields=["cat"],
        )[0]  # fmt: skip
        assert [h["id"] for h in grouped] == want
    paged = client.search(
        "items", data=[q.tolist()], limit=2, offset=1, group_by_field="cat", group_size=2
    )[0]
    assert [h["id"] for h in paged] == want[2:6]
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[q.tolist()], limit=3, group_by_field="cat", group_size=0)
    assert err.value.code == 1100 and "group_size" in err.value.message


def test_metric_mismatch_and_bad_vectors(client: MilvusClient) -> None:
    make(client, "L2", "FLAT")
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[[0.0] * DIM], limit=3, search_params={"metric_type": "IP"})
    assert err.value.code == 1100 and "metric type not match" in err.value.message
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[[0.0] * (DIM - 1)], limit=3)
    assert err.value.code == 1100 and "dim" in err.value.message
    with pytest.raises(MilvusException) as err:
        client.search("items", data=[[0.0] * DIM], limit=3, filter="cat === 1")
    assert err.value.code == 1100 and "column" in err.value.message


def test_read_your_writes_and_sql_interop(client: MilvusClient, sql: psycopg.Connection) -> None:
    vecs = make(client, "L2", "HNSW", {"M": 8, "efConstruction": 32})
    target = (vecs[5] + 0.001).tolist()
    client.insert("items", [{"id": 10_000, "cat": 99, "name": "new", "vec": target}])
    assert client.search("items", data=[target], limit=1)[0][0]["id"] == 10_000
    client.delete("items", ids=[10_000])
    assert client.search("items", data=[target], limit=1)[0][0]["id"] == 5
    # a row written in SQL is found by pymilvus, and the reverse
    sql.execute(
        "INSERT INTO items (id, cat, name, vec) VALUES (20000, 7, 'sql', %s::vector)",
        ("[" + ",".join(str(x) for x in (vecs[9] + 0.0005)) + "]",),
    )
    sql.commit()
    hit = client.search(
        "items",
        data=[(vecs[9] + 0.0005).tolist()],
        limit=1,
        consistency_level="Strong",
        output_fields=["name"],
    )[0][0]
    assert hit["id"] == 20000 and hit["entity"]["name"] == "sql"
    rows = sql.execute(
        "SELECT i.id, c.label FROM items i JOIN (VALUES (5, 'five')) c(id, label) ON c.id = i.id"
        " ORDER BY i.vec <-> %s::vector LIMIT 1",
        ("[" + ",".join(str(x) for x in vecs[5]) + "]",),
    ).fetchall()
    assert rows == [(5, "five")]


#: primary keys an array literal must quote: quotes, backslashes, commas, braces, blanks
ODD_KEYS = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", 'ü\\"', "i'j"]


def test_keys_alone_with_keys_that_need_quoting(
    client: MilvusClient, sql: psycopg.Connection
) -> None:
    """A search that asks for no output field answers keys and distances; with a filter
    or without, every key comes back as it was written, and a row deleted in SQL drops
    out of a Strong search."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("n", DataType.INT64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("odd", schema=schema, index_params=ip)
    vecs = np.random.default_rng(5).random((len(ODD_KEYS), DIM), dtype=np.float32)
    client.insert(
        "odd",
        [{"pk": k, "n": i, "vec": vecs[i].tolist()} for i, k in enumerate(ODD_KEYS)],
    )
    q = vecs[0]
    order = np.argsort(((vecs - q) ** 2).sum(1))
    want = [ODD_KEYS[i] for i in order]
    assert [h["pk"] for h in client.search("odd", data=[q.tolist()], limit=20)[0]] == want
    filtered = client.search("odd", data=[q.tolist()], limit=20, filter="n >= 0")[0]
    assert [h["pk"] for h in filtered] == want
    sql.execute("DELETE FROM odd WHERE pk = %s", (ODD_KEYS[0],))
    sql.commit()
    hits = client.search("odd", data=[q.tolist()], limit=20, consistency_level="Strong")[0]
    assert [h["pk"] for h in hits] == want[1:]


def test_hybrid_search_rrf_and_weighted(client: MilvusClient) -> None:
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("a", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("b", DataType.FLOAT_VECTOR, dim=4)
    ip = client.prepare_index_params()
    ip.add_index("a", index_type="FLAT", metric_type="L2")
    ip.add_index("b", index_type="HNSW", metric_type="IP")
    client.create_collection("two", schema=schema, index_params=ip)
    rng = np.random.default_rng(3)
    a, b = rng.random((50, 4), dtype=np.float32), rng.random((50, 4), dtype=np.float32)
    client.insert("two", [{"id": i, "a": a[i].tolist(), "b": b[i].tolist()} for i in range(50)])
    qa, qb = rng.random(4, dtype=np.float32), rng.random(4, dtype=np.float32)
    reqs = [
        AnnSearchRequest([qa.tolist()], "a", {"metric_type": "L2"}, limit=10),
        AnnSearchRequest([qb.tolist()], "b", {"metric_type": "IP"}, limit=10, expr="id < 40"),
    ]
    la, _ = exact(a, qa, "L2")
    lb, _ = exact(b, qb, "IP", [i for i in range(50) if i < 40])
    rrf: dict[int, float] = {}
    for ranking in (la[:10], lb[:10]):
        for r, key in enumerate(ranking, 1):
            rrf[key] = rrf.get(key, 0.0) + 1 / (60 + r)
    want = sorted(rrf, key=lambda k: -rrf[k])[:5]
    got = client.hybrid_search("two", reqs, RRFRanker(), limit=5)[0]
    assert [h["id"] for h in got] == want
    assert np.allclose([h["distance"] for h in got], [rrf[k] for k in want], atol=1e-6)
    weighted = client.hybrid_search("two", reqs, WeightedRanker(0.0, 1.0), limit=3)[0]
    assert [h["id"] for h in weighted] == lb[:3]
    # pymilvus 3's rerankers as Functions: the same rankings
    from pymilvus import Function, FunctionType

    def ranker(**params) -> Function:
        return Function("r", FunctionType.RERANK, input_field_names=[], params=params)

    got = client.hybrid_search("two", reqs, ranker(reranker="rrf", k=60), limit=5)[0]
    assert [h["id"] for h in got] == want
    weighted = client.hybrid_search(
        "two", reqs, ranker(reranker="weighted", weights=[0.0, 1.0]), limit=3
    )[0]
    assert [h["id"] for h in weighted] == lb[:3]
    decay = ranker(reranker="decay", function="gauss", origin=0, scale=10)
    with pytest.raises(MilvusException) as err:  # refused, not ignored
        client.hybrid_search("two", reqs, decay, limit=3)
    assert err.value.code == 1100 and "decay" in err.value.message
    with pytest.raises(MilvusException) as err:
        client.search("two", [qa.tolist()], anns_field="a", limit=3, ranker=decay)
    assert err.value.code == 1100


def test_hybrid_search_right_after_a_delete_in_sql(
    client: MilvusClient, sql: psycopg.Connection
) -> None:
    """A row deleted in SQL, which the engine may still hold (Eventually): a hybrid search
    answers the rows that exist, keys alone or with fields."""
    from pymilvus import AnnSearchRequest, RRFRanker

    vecs = make(client, "L2", "FLAT")
    q = vecs[11].tolist()
    sql.execute("DELETE FROM items WHERE id = 11")
    sql.commit()
    req = AnnSearchRequest(data=[q], anns_field="vec", param={}, limit=5)
    for kw in ({}, {"output_fields": ["name"]}):
        hits = client.hybrid_search(
            "items", [req], RRFRanker(), limit=5, consistency_level="Eventually", **kw
        )[0]
        assert len(hits) >= 4 and 11 not in [h["id"] for h in hits], kw


def test_simple_filters_run_in_the_engine(client: MilvusClient, caplog) -> None:
    """A comparison of plain scalar fields with literals needs no SQL pre-pass."""
    import logging

    vecs = make(client, "L2", "HNSW")
    q = vecs[3]
    with caplog.at_level(logging.DEBUG, logger="pgvec.service.database"):
        hits = client.search("items", data=[q.tolist()], limit=5, filter="cat == 3 and id < 200")[0]
    assert [h["id"] for h in hits] == exact(vecs, q, "L2", [i for i in range(200) if i % 10 == 3])[
        0
    ][:5]
    messages = [r.getMessage() for r in caplog.records]
    assert any("filter evaluated in the engine" in m for m in messages), messages


def test_read_your_writes_without_a_log_read(client: MilvusClient, monkeypatch) -> None:
    """pymilvus sends its last write's timestamp with each search (Session): the write was
    applied before that timestamp was handed out, so the search reads no change log."""
    from pgvec.service import freshness

    vecs = make(client, "L2", "HNSW")
    reads = []
    real = freshness.send_changes_read
    monkeypatch.setattr(freshness, "send_changes_read", lambda *a: reads.append(a) or real(*a))
    target = (vecs[7] + 0.001).tolist()
    client.insert("items", [{"id": 5_000, "cat": 1, "name": "x", "vec": target}])
    assert client.search("items", data=[target], limit=1)[0][0]["id"] == 5_000
    client.delete("items", ids=[5_000])
    assert client.search("items", data=[target], limit=1)[0][0]["id"] == 7
    assert reads == []
    # Strong still reads it
    client.search("items", data=[target], limit=1, consistency_level="Strong")
    assert len(reads) == 1
