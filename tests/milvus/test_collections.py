"""Collections, databases and aliases through pymilvus's MilvusClient, each a table."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient, MilvusException


def full_schema() -> object:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True, description="all")
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("i64", DataType.INT64, nullable=True)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE, default_value=1.5)
    schema.add_field("s", DataType.VARCHAR, max_length=10)
    schema.add_field("meta", DataType.JSON)
    schema.add_field(
        "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8
    )
    schema.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=3)
    schema.add_field("h", DataType.FLOAT16_VECTOR, dim=2)
    return schema


def test_create_describe_list_drop(client: MilvusClient, db_uri: str) -> None:
    client.create_collection("things", schema=full_schema())
    assert client.has_collection("things") and not client.has_collection("nothing")
    assert client.list_collections() == ["things"]
    desc = client.describe_collection("things")
    assert desc["description"] == "all" and desc["enable_dynamic_field"]
    fields = {f["name"]: f for f in desc["fields"]}
    assert fields["pk"]["is_primary"] and fields["pk"]["params"]["max_length"] == 32
    assert fields["v"]["params"]["dim"] == 3 and fields["i64"].get("nullable")
    with psycopg.connect(db_uri) as conn:
        cols = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'things'::regclass AND attnum > 0"
            ).fetchall()
        )
    assert cols["meta"] == "jsonb" and cols["$meta"] == "jsonb" and cols["v"] == "bytea"
    assert cols["tags"] == "character varying(8)[]" and cols["s"] == "character varying(10)"
    client.drop_collection("things")
    assert client.list_collections() == []
    client.drop_collection("things")  # dropping nothing succeeds, as in Milvus


def indexed(client: MilvusClient) -> object:
    params = client.prepare_index_params()
    params.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 8})
    params.add_index("h", index_type="FLAT", metric_type="IP")
    return params


def test_a_collection_is_not_loaded_until_indexed_and_loaded(client: MilvusClient) -> None:
    client.create_collection("things", schema=full_schema())
    assert client.get_load_state("things")["state"].name == "NotLoad"
    with pytest.raises(MilvusException) as err:
        client.query("things", filter="i8 > 0")
    assert err.value.code == 101
    with pytest.raises(MilvusException) as err:
        client.load_collection("things")
    assert err.value.code == 700


def test_insert_and_query_every_type(client: MilvusClient) -> None:
    client.create_collection("things", schema=full_schema(), index_params=indexed(client))
    rows = [
        {
            "pk": f"k{i}",
            "flag": i % 2 == 0,
            "i8": -i,
            "i16": i * 100,
            "i32": i * 10_000,
            "i64": None if i == 1 else 2**40 + i,
            "f": i / 4,
            "s": f"s{i}",
            "meta": {"n": i, "tag": ["a", "b"][i % 2]},
            "tags": ["x", f"t{i}"],
            "nums": [i, i + 1],
            "v": [float(i), 0.5, -1.0],
            "h": [0.5, float(i)],
            "extra": i * 2,
        }
        for i in range(4)
    ]
    assert client.insert("things", rows)["insert_count"] == 4
    got = client.query("things", filter='pk in ["k1", "k2"]', output_fields=["*"])
    by = {r["pk"]: r for r in got}
    assert by["k1"]["i64"] is None and by["k2"]["i64"] == 2**40 + 2
    assert by["k2"]["d"] == 1.5  # the default value
    assert by["k2"]["meta"] == {"n": 2, "tag": "a"} and by["k2"]["tags"] == ["x", "t2"]
    assert by["k2"]["nums"] == [2, 3] and by["k2"]["extra"] == 4
    assert by["k2"]["v"] == [2.0, 0.5, -1.0]
    # pymilvus hands float16 vectors back as their raw bytes
    assert np.frombuffer(by["k2"]["h"][0], "<f2").tolist() == [0.5, 2.0]
    assert client.query("things", filter='meta["n"] >= 2', output_fields=["pk"]) == [
        {"pk": "k2"},
        {"pk": "k3"},
    ]
    assert [r["pk"] for r in client.query("things", filter="extra > 2", output_fields=["pk"])] == [
        "k2",
        "k3",
    ]
    assert client.query("things", filter="", output_fields=["count(*)"])[0]["count(*)"] == 4


def test_bad_input_keeps_the_data(client: MilvusClient) -> None:
    client.create_collection("c", dimension=4)
    client.insert("c", [{"id": 1, "vector": [1, 2, 3, 4]}])
    with pytest.raises(MilvusException) as err:
        client.insert("c", [{"id": 2, "vector": [1, 2, 3, 4]}, {"id": 3, "vector": [1, 2, 3]}])
    assert "dim" in str(err.value)
    with pytest.raises(MilvusException) as err:
        client.insert("c", [{"id": 4, "vector": [1, 2, 3, 4]}, {"id": 1, "vector": [0, 0, 0, 1]}])
    assert "duplicate" in str(err.value)
    assert client.query("c", filter="id >= 0", output_fields=["id"]) == [{"id": 1}]
    # an upsert of one key twice in a batch: refused, as Milvus since 2.5.x and 2.6.x
    with pytest.raises(MilvusException) as err:
        client.upsert("c", [{"id": 1, "vector": [0, 0, 0, 1]}, {"id": 1, "vector": [0, 0, 1, 0]}])
    assert err.value.code == 1100
    assert "duplicate primary keys are not allowed in the same batch" in err.value.message
    got = client.query("c", filter="id >= 0", output_fields=["id", "vector"])
    assert [(r["id"], r["vector"]) for r in got] == [(1, [1, 2, 3, 4])]
    with pytest.raises(MilvusException) as err:
        client.query("c", filter="id <", output_fields=["id"])
    assert err.value.code == 1100 and "column" in err.value.message
    with pytest.raises(MilvusException) as err:
        client.query("missing", filter="id > 0")
    assert err.value.code == 100


def test_aliases_rename_and_databases(client: MilvusClient, milvus_uri: str) -> None:
    client.create_collection("a", dimension=2)
    client.create_alias("a", "latest")
    assert client.describe_alias("latest")["collection_name"] == "a"
    assert client.list_aliases("a")["aliases"] == ["latest"]
    client.insert("latest", [{"id": 7, "vector": [1, 0]}])
    client.rename_collection("a", "b")
    assert client.describe_collection("latest")["collection_name"] == "b"
    client.drop_alias("latest")
    assert client.list_aliases("b")["aliases"] == []
    client.create_database("shop")
    assert set(client.list_databases()) >= {"default", "shop"}
    other = MilvusClient(uri=milvus_uri, db_name="shop")
    try:
        other.create_collection("items", dimension=2)
        assert other.list_collections() == ["items"]
        assert client.list_collections() == ["b"]
    finally:
        other.close()


def test_load_release_and_search_state(client: MilvusClient) -> None:
    client.create_collection("c", dimension=2)
    client.insert("c", [{"id": 1, "vector": [1, 0]}])
    client.release_collection("c")
    assert client.get_load_state("c")["state"].name == "NotLoad"
    with pytest.raises(MilvusException) as err:
        client.search("c", data=[[1, 0]], limit=1)
    assert err.value.code == 101
    client.load_collection("c")
    assert client.get_load_state("c")["state"].name == "Loaded"
    assert client.search("c", data=[[1, 0]], limit=1)[0][0]["id"] == 1


def test_a_table_of_any_dimension_is_no_collection(client: MilvusClient, db_uri: str) -> None:
    """pgvector's `vector` with no dimension (as the proxy stores it) has no Milvus dim."""
    with psycopg.connect(db_uri) as conn:
        conn.execute(
            "CREATE TABLE lc (id bigint PRIMARY KEY,"
            " e bytea CONSTRAINT e_pgvec_dims CHECK (pgvec.is_vector(e)))"
        )
    assert client.list_collections() == []
    assert not client.has_collection("lc")


def test_names_longer_than_postgresql_keeps_are_refused(client: MilvusClient) -> None:
    """A collection's table and its partitions' tables (<collection>$<partition>) must
    fit PostgreSQL's 63 bytes: a longer name is refused (1100), not cut into another's."""
    longest = "c" * 51
    with pytest.raises(MilvusException) as err:
        client.create_collection(longest + "x", dimension=2)
    assert err.value.code == 1100 and "at most 51 bytes" in err.value.message
    assert not client.has_collection(longest + "x")
    client.create_collection(longest, dimension=2, consistency_level="Strong")
    client.insert(longest, [{"id": 1, "vector": [1.0, 2.0]}])
    assert client.search(longest, [[1.0, 2.0]], limit=1)[0][0]["id"] == 1
    client.create_partition(longest, "p" * 11)  # 51 + 1 + 11 = 63 bytes
    with pytest.raises(MilvusException) as err:
        client.create_partition(longest, "p" * 12)
    assert err.value.code == 1100 and "too long" in err.value.message
    assert sorted(client.list_partitions(longest)) == ["_default", "p" * 11]
    with pytest.raises(MilvusException) as err:
        client.rename_collection(longest, "r" * 60)
    assert err.value.code == 1100
    client.create_alias(longest, "a" * 100)  # an alias is no table: Milvus's 255
    assert client.describe_alias("a" * 100)["collection_name"] == longest
