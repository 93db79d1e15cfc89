"""Binary vectors through pymilvus: BINARY_VECTOR fields, BIN_FLAT and BIN_IVF_FLAT under
HAMMING and JACCARD, compared with exact numpy; filters, output fields, deletes, SQL."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

N, DIM = 500, 128


def make(client: MilvusClient, index: str, metric: str, params: dict | None = None):
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("cat", DataType.INT64)
    schema.add_field("bits", DataType.BINARY_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("bits", index_type=index, metric_type=metric, params=params or {})
    client.create_collection("fp", schema=schema, index_params=ip)
    rng = np.random.default_rng(11)
    packed = rng.integers(0, 256, (N, DIM // 8), dtype=np.uint8)
    rows = [{"id": i, "cat": i % 5, "bits": packed[i].tobytes()} for i in range(N)]
    client.insert("fp", rows)
    return packed


def exact(packed: np.ndarray, q: np.ndarray, metric: str, ids=None, k: int = 10):
    """Top-k (id, distance) by Milvus's conventions, ties by id; from unpacked bits."""
    keys = np.arange(len(packed)) if ids is None else np.asarray(ids)
    bits = np.unpackbits(packed[keys], axis=1).astype(bool)
    qb = np.unpackbits(q).astype(bool)
    if metric == "HAMMING":
        d = (bits != qb).sum(1).astype(float)
    else:
        inter, union = (bits & qb).sum(1), (bits | qb).sum(1)
        d = np.where(inter > 0, 1 - inter / np.maximum(union, 1), 1.0)
    order = np.lexsort((keys, d))[:k]
    return keys[order].tolist(), d[order].tolist()


def check(hits, want_ids, want_d) -> None:
    assert [h["distance"] for h in hits] == pytest.approx(want_d, abs=1e-6)
    assert [h["id"] for h in hits] == want_ids


@pytest.mark.parametrize(
    ("index", "metric", "params", "search"),
    [
        ("BIN_FLAT", "HAMMING", {}, {}),
        ("BIN_IVF_FLAT", "JACCARD", {"nlist": 8}, {"nprobe": 8}),
        ("BIN_IVF_FLAT", "HAMMING", {"nlist": 8}, {"nprobe": 8}),
        ("BIN_FLAT", "JACCARD", {}, {}),
    ],
)
def test_binary_search_matches_numpy(
    client: MilvusClient, index: str, metric: str, params: dict, search: dict
) -> None:
    packed = make(client, index, metric, params)
    described = client.describe_collection("fp")
    field = next(f for f in described["fields"] if f["name"] == "bits")
    assert field["type"] == DataType.BINARY_VECTOR and field["params"]["dim"] == DIM
    assert client.describe_index("fp", "bits")["index_type"] == index
    rng = np.random.default_rng(3)
    queries = rng.integers(0, 256, (3, DIM // 8), dtype=np.uint8)
    sp = {"metric_type": metric, "params": search}
    results = client.search("fp", data=[q.tobytes() for q in queries], limit=10, search_params=sp)
    for q, hits in zip(queries, results, strict=True):
        check(hits, *exact(packed, q, metric))

    # a filter, and the vector field back as bytes
    q = queries[0]
    hits = client.search(
        "fp",
        data=[q.tobytes()],
        limit=10,
        filter="cat == 2",
        output_fields=["bits", "cat"],
        search_params=sp,
    )[0]
    check(hits, *exact(packed, q, metric, ids=range(2, N, 5)))
    for h in hits:
        assert h["entity"]["cat"] == 2
        assert h["entity"]["bits"] == packed[h["id"]].tobytes()  # pymilvus: bytes

    # delete the best hits: the next ones come up, an exact copy of q comes first
    gone = [h["id"] for h in hits[:3]]
    client.delete("fp", ids=gone)
    client.insert("fp", [{"id": N, "cat": 2, "bits": q.tobytes()}])
    hits = client.search("fp", data=[q.tobytes()], limit=10, filter="cat == 2", search_params=sp)[0]
    allowed = [i for i in range(2, N, 5) if i not in gone]
    want_ids, want_d = exact(np.vstack([packed, q]), q, metric, ids=[*allowed, N])
    assert want_ids[0] == N and want_d[0] == 0
    check(hits, want_ids, want_d)


def test_query_and_get_return_bytes(client: MilvusClient) -> None:
    packed = make(client, "BIN_FLAT", "HAMMING")
    got = client.get("fp", ids=[0, 7], output_fields=["bits"])
    by_id = {r["id"]: r["bits"] for r in got}
    for i in (0, 7):
        value = by_id[i]
        value = value[0] if isinstance(value, list) else value
        assert bytes(value) == packed[i].tobytes()


def test_metrics_do_not_mix(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("bits", DataType.BINARY_VECTOR, dim=16)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection("mixed", schema=schema)
    ip = client.prepare_index_params()
    ip.add_index("bits", index_type="BIN_FLAT", metric_type="L2")
    with pytest.raises(MilvusException, match="binary vector index does not support metric"):
        client.create_index("mixed", ip)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="HAMMING")
    with pytest.raises(MilvusException, match="float vector index does not support metric"):
        client.create_index("mixed", ip)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="BIN_FLAT", metric_type="HAMMING")
    with pytest.raises(MilvusException, match="can't build with this index"):
        client.create_index("mixed", ip)
    bad = MilvusClient.create_schema(auto_id=False)
    bad.add_field("id", DataType.INT64, is_primary=True)
    bad.add_field("bits", DataType.BINARY_VECTOR, dim=12)
    with pytest.raises(MilvusException, match="multiple of 8"):
        client.create_collection("bad", schema=bad)


def test_binary_table_from_sql(client: MilvusClient, sql: psycopg.Connection) -> None:
    make(client, "BIN_IVF_FLAT", "HAMMING", {"nlist": 4})
    row = sql.execute(
        "SELECT dim, is_binary FROM pgvec.vector_columns WHERE table_name = 'fp'"
    ).fetchone()
    assert row == (DIM, True)
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute("INSERT INTO fp (id, cat, bits) VALUES (9999, 0, '\\x00ff'::bytea)")
