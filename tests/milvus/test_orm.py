"""pymilvus's ORM (connections, utility, Collection, Index, Partition) against pgvec."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus import (
    Collection,
    CollectionSchema,
    DataType,
    FieldSchema,
    MilvusException,
    Partition,
    utility,
)

DIM = 8


def docs_schema(description: str = "documents") -> CollectionSchema:
    return CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True, description="the key"),
            FieldSchema("title", DataType.VARCHAR, max_length=64, description="a title"),
            FieldSchema("n", DataType.INT64),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=DIM),
        ],
        description=description,
    )


def filled(name: str = "docs", rows: int = 100) -> tuple[Collection, np.ndarray]:
    coll = Collection(name, docs_schema())
    vectors = np.random.default_rng(3).random((rows, DIM)).astype(np.float32)
    coll.insert([list(range(rows)), [f"t{i}" for i in range(rows)], list(range(rows)), vectors])
    return coll, vectors


def test_utility_collections(orm: str) -> None:
    assert not utility.has_collection("docs")
    Collection("docs", docs_schema())
    Collection("other", docs_schema())
    assert utility.has_collection("docs")
    assert sorted(utility.list_collections()) == ["docs", "other"]
    utility.rename_collection("other", "renamed")
    assert sorted(utility.list_collections()) == ["docs", "renamed"]
    utility.drop_collection("renamed")
    assert utility.list_collections() == ["docs"]
    assert isinstance(utility.get_server_version(), str)


def test_reopening_with_the_same_schema(orm: str) -> None:
    """Collection(name, schema) on an existing collection compares the described schema
    with the one passed, descriptions included."""
    first = Collection("docs", docs_schema())
    again = Collection("docs", docs_schema())
    assert again.schema == first.schema
    assert again.description == "documents"
    assert Collection("docs").schema == first.schema  # no schema: the server's
    from pymilvus.exceptions import SchemaNotReadyException

    with pytest.raises(SchemaNotReadyException):
        Collection("docs", docs_schema("something else"))


def test_num_entities_after_flush(orm: str) -> None:
    coll, _ = filled(rows=30)
    coll.flush()
    assert coll.num_entities == 30
    assert coll.is_empty is False


def test_index_lifecycle(orm: str) -> None:
    coll, _ = filled()
    params = {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 4}}
    coll.create_index("embedding", params)
    assert coll.has_index()
    assert coll.index().params == params
    assert coll.index().field_name == "embedding"
    progress = utility.index_building_progress("docs")
    assert progress["total_rows"] == progress["indexed_rows"] == 100
    coll.drop_index()
    assert not coll.has_index()


def test_load_states(orm: str) -> None:
    coll, _ = filled()
    coll.create_index("embedding", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    assert str(utility.load_state("docs")) == "NotLoad"
    coll.load()
    utility.wait_for_loading_complete("docs")
    assert utility.loading_progress("docs") == {"loading_progress": "100%"}
    assert str(utility.load_state("docs")) == "Loaded"
    coll.release()
    assert str(utility.load_state("docs")) == "NotLoad"
    assert str(utility.load_state("nothing")) == "NotExist"


def test_compaction(orm: str) -> None:
    coll, _ = filled()
    coll.compact()
    coll.wait_for_compaction_completed()
    assert coll.get_compaction_state().state_name == "Completed"


def test_query_pages_and_delete(orm: str) -> None:
    coll, _ = filled()
    coll.create_index("embedding", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    coll.load()
    page = coll.query("n >= 10", output_fields=["title"], limit=5, offset=3)
    assert [(r["id"], r["title"]) for r in page] == [(i, f"t{i}") for i in range(13, 18)]
    assert set(page[0]) == {"id", "title"}
    res = coll.delete("n < 10")
    assert res.delete_count == 10
    assert coll.query("", output_fields=["count(*)"])[0]["count(*)"] == 90
    res = coll.delete("id in [10, 11, 12]")
    assert res.delete_count == 3
    assert [r["id"] for r in coll.query("id < 20", output_fields=["id"])] == list(range(13, 20))


def test_default_partition(orm: str) -> None:
    coll, vectors = filled(rows=20)
    assert [p.name for p in coll.partitions] == ["_default"]
    assert coll.has_partition("_default") and not coll.has_partition("p1")
    part = Partition(coll, "_default")
    assert part.num_entities == 20 and not part.is_empty
    coll.create_index("embedding", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    part.load()
    hits = part.search(vectors[:1].tolist(), "embedding", {"metric_type": "L2"}, limit=2)
    assert hits[0].ids[0] == 0
    assert len(part.query("id < 5", output_fields=["id"])) == 5
    part.insert([[100], ["t100"], [100], vectors[:1]])
    assert coll.query("id == 100", output_fields=["title"])[0]["title"] == "t100"
    part.delete("id == 100")
    assert coll.query("id == 100") == []
    part.release()
    with pytest.raises(MilvusException):
        coll.query("id < 5")
