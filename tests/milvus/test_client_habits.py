"""What pymilvus's own example programs do, and Milvus takes: index parameters the index
type does not use, scalar indexes, moving a collection to another database, and result
objects without an iterator's snapshot timestamp."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 8


def row(i: int, vec: np.ndarray | None = None) -> dict:
    return {
        "id": i,
        "title": f"t{i}",
        "year": 2000 + i % 5,
        "score": i / 10,
        "tags": [i % 3],
        "meta": {"k": i},
        "vec": (np.full(DIM, i / 40, np.float32) if vec is None else vec).tolist(),
    }


def make(client: MilvusClient, name: str = "docs") -> np.ndarray:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("year", DataType.INT64)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(name, schema=schema)
    vecs = np.random.default_rng(3).random((40, DIM), dtype=np.float32)
    client.insert(name, [row(i, vecs[i]) for i in range(40)])
    return vecs


@pytest.mark.parametrize(
    ("index_type", "params"),
    [("FLAT", {"nlist": 128}), ("HNSW", {"M": 8, "efConstruction": 64, "nlist": 16})],
)
def test_index_parameters_the_type_does_not_use_are_ignored(
    client: MilvusClient, index_type: str, params: dict
) -> None:
    vecs = make(client)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type=index_type, metric_type="L2", params=params)
    client.create_index("docs", ip)
    described = client.describe_index("docs", "vec")
    assert described["index_type"] == index_type
    assert "nlist" not in described["params"]
    if index_type == "HNSW":
        assert described["params"]["M"] == 8
    # creating it again with the same parameters is the same index
    client.create_index("docs", ip)
    client.load_collection("docs")
    hits = client.search("docs", [vecs[5].tolist()], limit=1)[0]
    assert hits[0]["id"] == 5


def test_bad_values_of_known_parameters_are_still_refused(client: MilvusClient) -> None:
    make(client)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 0})
    with pytest.raises(MilvusException) as err:
        client.create_index("docs", ip)
    assert err.value.code == 1100 and "nlist" in err.value.message


def test_scalar_indexes_are_postgresql_indexes(
    client: MilvusClient, milvus_server, dbname: str
) -> None:
    vecs = make(client)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="HNSW", metric_type="L2")
    ip.add_index("title", index_type="INVERTED", index_name="by_title")
    ip.add_index("year", index_type="STL_SORT")
    ip.add_index("tags", index_type="INVERTED")
    ip.add_index("meta", index_type="INVERTED")
    ip.add_index("score")  # AUTOINDEX
    client.create_index("docs", ip)
    assert sorted(client.list_indexes("docs")) == [
        "by_title",
        "meta",
        "score",
        "tags",
        "vec",
        "year",
    ]
    title = client.describe_index("docs", "by_title")
    assert title["index_type"] == "INVERTED" and title["field_name"] == "title"
    assert title["total_rows"] == 40 and title["state"] == "Finished"
    assert client.describe_index("docs", "year")["index_type"] == "STL_SORT"
    assert client.describe_index("docs", "score")["index_type"] == "AUTOINDEX"
    assert client.list_indexes("docs", field_name="title") == ["by_title"]
    client.create_index("docs", ip)  # again: the same indexes, no error
    with psycopg.connect(milvus_server.uri(dbname)) as conn:
        defs = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs'"
            ).fetchall()
        )
    assert "USING btree (title)" in defs["docs_by_title_idx"]
    assert "USING btree (year)" in defs["docs_year_idx"]
    assert "USING gin (tags)" in defs["docs_tags_idx"]
    assert "USING gin (meta)" in defs["docs_meta_idx"]
    client.load_collection("docs")
    hits = client.search(
        "docs", [vecs[7].tolist()], limit=3, filter='title == "t7"', output_fields=["year"]
    )[0]
    assert [(h["id"], h["entity"]["year"]) for h in hits] == [(7, 2002)]
    with pytest.raises(MilvusException) as err:  # Milvus: loaded indexes are not dropped
        client.drop_index("docs", "by_title")
    assert "release" in err.value.message
    client.release_collection("docs")
    client.drop_index("docs", "by_title")
    assert "by_title" not in client.list_indexes("docs")
    client.drop_index("docs", "by_title")  # again: nothing to drop, success as in Milvus
    with psycopg.connect(milvus_server.uri(dbname)) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'docs_by_title_idx'"
        ).fetchone()
    assert left == (0,)


@pytest.mark.parametrize(
    ("field", "index_type", "message"),
    [
        ("title", "STL_SORT", "STL_SORT are only supported on numeric field"),
        ("year", "Trie", "TRIE are only supported on varchar field"),
        ("score", "BITMAP", "bitmap index are only supported"),
        ("year", "HNSW", "data type Int64 can't build with this index HNSW"),
    ],
)
def test_scalar_index_types_the_field_cannot_take(
    client: MilvusClient, field: str, index_type: str, message: str
) -> None:
    make(client)
    ip = client.prepare_index_params()
    ip.add_index(field, index_type=index_type)
    with pytest.raises(MilvusException) as err:
        client.create_index("docs", ip)
    assert err.value.code == 1100 and message in err.value.message


def test_a_second_kind_of_index_on_a_scalar_field_is_refused(client: MilvusClient) -> None:
    make(client)
    ip = client.prepare_index_params()
    ip.add_index("year", index_type="STL_SORT")
    client.create_index("docs", ip)
    other = client.prepare_index_params()
    other.add_index("year", index_type="INVERTED")
    with pytest.raises(MilvusException) as err:
        client.create_index("docs", other)
    assert "at most one distinct index" in err.value.message


def test_a_collection_moves_to_another_database_under_its_name(client: MilvusClient) -> None:
    make(client, "rn")
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_index("rn", ip)
    client.load_collection("rn")
    client.create_database("db2")
    client.rename_collection("rn", "rn", target_db="db2")
    assert "rn" not in client.list_collections()
    client.use_database("db2")
    assert client.list_collections() == ["rn"]
    assert client.query("rn", filter="id < 3", output_fields=["title"])[0]["title"] == "t0"


def test_only_iterators_get_a_snapshot_timestamp(client: MilvusClient) -> None:
    vecs = make(client)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_index("docs", ip)
    client.load_collection("docs")
    rows = client.query("docs", filter="id < 2", output_fields=["title"])
    assert not rows.extra.get("iterator_session_ts")
    hits = client.search("docs", [vecs[0].tolist()], limit=2)
    assert not hits.extra.get("iterator_session_ts")
    it = client.query_iterator("docs", batch_size=15, filter="id >= 0", output_fields=["id"])
    seen = []
    while page := it.next():
        seen += [r["id"] for r in page]
    it.close()
    assert sorted(seen) == list(range(40))


def test_database_properties(client: MilvusClient, milvus_uri: str) -> None:
    client.create_database("db1", properties={"key1": "value1"})
    assert client.describe_database("db1") == {"name": "db1", "key1": "value1"}
    client.alter_database_properties("db1", properties={"key": "value"})
    assert client.describe_database("db1") == {"name": "db1", "key1": "value1", "key": "value"}
    client.drop_database_properties("db1", property_keys=["key1"])
    assert client.describe_database("db1") == {"name": "db1", "key": "value"}
    assert client.describe_database("default") == {"name": "default"}
    client.drop_database("db1")
    client.create_database("db1")  # a new database has none of the old one's
    assert client.describe_database("db1") == {"name": "db1"}
    with pytest.raises(MilvusException) as err:
        client.alter_database_properties("nosuch", properties={"k": "v"})
    assert err.value.code == 800


def test_alter_a_field(client: MilvusClient, milvus_server, dbname: str) -> None:
    make(client)
    long_title = "x" * 100
    with pytest.raises(MilvusException):  # (64 characters at most)
        client.insert("docs", [{**row(99), "title": long_title}])
    client.alter_collection_field("docs", "title", field_params={"max_length": 2500})
    client.alter_collection_field("docs", "tags", field_params={"mmap.enabled": True})
    fields = {f["name"]: f for f in client.describe_collection("docs")["fields"]}
    assert fields["title"]["params"]["max_length"] == 2500
    assert fields["tags"]["params"]["mmap_enabled"] is True
    client.insert("docs", [{**row(99), "title": long_title}])
    with psycopg.connect(milvus_server.uri(dbname)) as conn:
        assert conn.execute("SELECT title FROM docs WHERE id = 99").fetchone() == (long_title,)
        kind = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'docs'::regclass AND attname = 'title'"
        ).fetchone()
    assert kind == ("character varying(2500)",)
    # narrower than a stored value: PostgreSQL refuses, and nothing changes
    with pytest.raises(MilvusException):
        client.alter_collection_field("docs", "title", field_params={"max_length": 10})
    fields = {f["name"]: f for f in client.describe_collection("docs")["fields"]}
    assert fields["title"]["params"]["max_length"] == 2500
    # an ARRAY's max_capacity (4): checked on insert, and altered
    with pytest.raises(MilvusException) as err:
        client.insert("docs", [{**row(98), "tags": [1, 2, 3, 4, 5]}])
    assert err.value.code == 1100 and "exceeds max capacity (4)" in err.value.message
    client.alter_collection_field("docs", "tags", field_params={"max_capacity": 8})
    client.insert("docs", [{**row(98), "tags": [1, 2, 3, 4, 5]}])
    with psycopg.connect(milvus_server.uri(dbname)) as conn:
        assert conn.execute("SELECT tags FROM docs WHERE id = 98").fetchone() == ([1, 2, 3, 4, 5],)
    for name, params in (
        ("year", {"max_length": 10}),
        ("nosuch", {"max_length": 10}),
        ("tags", {"max_capacity": 5000}),
    ):
        with pytest.raises(MilvusException) as err:
            client.alter_collection_field("docs", name, field_params=params)
        assert err.value.code == 1100


def test_index_described_as_asked_and_its_properties(client: MilvusClient) -> None:
    make(client)
    ip = client.prepare_index_params()
    ip.add_index("vec", metric_type="COSINE")  # no index_type: AUTOINDEX
    ip.add_index("title", index_type="Trie")
    client.create_index("docs", ip)
    vec = client.describe_index("docs", "vec")
    assert vec["index_type"] == "AUTOINDEX" and vec["metric_type"] == "COSINE"
    assert client.describe_index("docs", "title")["index_type"].upper() == "TRIE"
    client.alter_index_properties("docs", "vec", properties={"mmap.enabled": True})
    assert client.describe_index("docs", "vec")["mmap.enabled"] == "True"
    client.drop_index_properties("docs", "vec", property_keys=["mmap.enabled"])
    described = client.describe_index("docs", "vec")
    assert "mmap.enabled" not in described and described["index_type"] == "AUTOINDEX"
    client.load_collection("docs")  # (and it searches as the HNSW index it is)
    assert len(client.search("docs", [[0.5] * DIM], limit=3)[0]) == 3
    with pytest.raises(MilvusException) as err:
        client.alter_index_properties("docs", "vec", properties={"nlist": 4})
    assert err.value.code == 1100
    with pytest.raises(MilvusException) as err:
        client.alter_index_properties("docs", "nosuch", properties={"mmap.enabled": False})
    assert err.value.code == 700


def test_partial_update_changes_only_the_fields_given(client: MilvusClient) -> None:
    """upsert(partial_update=True), Milvus 2.6's: a row keeps the fields not given and
    its other dynamic keys; a new row needs every field without a default."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=16)
    schema.add_field("note", DataType.VARCHAR, max_length=16, nullable=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("p", schema=schema, index_params=ip, consistency_level="Strong")
    client.insert(
        "p",
        [
            {"id": 1, "title": "old", "note": "n1", "vec": [1.0, 2.0], "a": 1, "b": 2},
            {"id": 2, "title": "two", "note": None, "vec": [3.0, 4.0]},
        ],
    )
    out = client.upsert("p", [{"id": 1, "title": "new", "b": 3, "c": 4}], partial_update=True)
    assert out["upsert_count"] == 1
    got = client.get("p", ids=[1, 2], output_fields=["*"])
    assert sorted(got, key=lambda r: r["id"]) == [
        {"id": 1, "title": "new", "note": "n1", "vec": [1.0, 2.0], "a": 1, "b": 3, "c": 4},
        {"id": 2, "title": "two", "note": None, "vec": [3.0, 4.0]},
    ]
    # a vector alone moves the row in searches
    client.upsert("p", [{"id": 2, "vec": [1.0, 2.1]}], partial_update=True)
    hits = client.search("p", data=[[1.0, 2.05]], limit=2, output_fields=["title"])[0]
    assert sorted(h["id"] for h in hits) == [1, 2]
    assert client.get("p", ids=[2], output_fields=["title"])[0]["title"] == "two"
    # a new key without its required fields: refused, nothing written
    with pytest.raises(MilvusException) as err:
        client.upsert("p", [{"id": 3, "title": "x"}], partial_update=True)
    assert err.value.code == 1100 and "vec" in err.value.message
    assert client.get("p", ids=[3]) == []
    # a whole new row is written
    client.upsert("p", [{"id": 3, "title": "x", "vec": [0.0, 0.0]}], partial_update=True)
    assert client.get("p", ids=[3], output_fields=["note"])[0]["note"] is None
    # a full upsert still replaces the row
    client.upsert("p", [{"id": 1, "title": "full", "vec": [1.0, 2.0]}])
    assert client.get("p", ids=[1], output_fields=["*"])[0] == {
        "id": 1, "title": "full", "note": None, "vec": [1.0, 2.0],
    }  # fmt: skip


def test_long_index_names_are_kept(client: MilvusClient) -> None:
    """An index's PostgreSQL name (<collection>_<index>_idx) is cut to fit 63 bytes, as
    PostgreSQL cuts names; its Milvus name is kept whole and found by."""
    name, vec, text = "c" * 40, "v" * 30, "t" * 30
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(vec, DataType.FLOAT_VECTOR, dim=2)
    schema.add_field(text, DataType.VARCHAR, max_length=8)
    client.create_collection(name, schema=schema)
    client.insert(name, [{"id": 1, vec: [1.0, 2.0], text: "x"}])
    ip = client.prepare_index_params()
    ip.add_index(vec, index_type="HNSW", metric_type="L2")
    ip.add_index(text, index_type="INVERTED", index_name="by_" + text)
    client.create_index(name, ip)
    assert sorted(client.list_indexes(name)) == sorted([vec, "by_" + text])
    assert client.describe_index(name, vec)["index_type"] == "HNSW"
    described = client.describe_index(name, "by_" + text)
    assert described["index_type"] == "INVERTED" and described["field_name"] == text
    client.load_collection(name)
    assert client.search(name, [[1.0, 2.0]], limit=1, anns_field=vec)[0][0]["id"] == 1
    client.release_collection(name)
    client.drop_index(name, "by_" + text)
    client.drop_index(name, vec)
    assert client.list_indexes(name) == []


def test_describe_index_counts_the_rows(client: MilvusClient) -> None:
    """describe_index's indexed_rows and total_rows are the collection's rows, those
    written after the index was made too (milvus-haystack and pymilvus's waits poll
    them); they were the rows of the build, 0 for an index made on an empty collection."""
    client.create_collection("n", dimension=2, consistency_level="Strong")
    client.insert("n", [{"id": i, "vector": [float(i), 1.0]} for i in range(30)])
    described = client.describe_index("n", "vector")
    assert (described["indexed_rows"], described["total_rows"]) == (30, 30)
    assert described["pending_index_rows"] == 0
    client.release_collection("n")
    ip = client.prepare_index_params()
    ip.add_index("id", index_type="STL_SORT")
    client.create_index("n", ip)
    assert client.describe_index("n", "id")["indexed_rows"] == 30
