"""LangChain's PGVector store (langchain-postgres), with its default settings (a
``vector`` column without a dimension, JSONB metadata, cosine distance), against pgvec
and against real pgvector: the same calls give the same documents and scores.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_postgres import PGVector

TOPICS = ["sql", "vectors", "milvus", "postgres"]
TEXTS = [f"{TOPICS[i % 4]} note {i}" for i in range(40)]
METADATA = [{"topic": TOPICS[i % 4], "n": i} for i in range(40)]
IDS = [f"doc-{i}" for i in range(40)]
AT_LEAST_10 = {"n": {"$gte": 10}}
SQL_OR_MILVUS = {"topic": {"$in": ["sql", "milvus"]}}


def _sa(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def _results(docs: list[Any]) -> list[Any]:
    out = []
    for d in docs:
        doc, score = d if isinstance(d, tuple) else (d, None)
        rounded = None if score is None else round(score, 5)
        out.append((doc.id, doc.page_content, doc.metadata, rounded))
    return out


def _session(uri: str) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = PGVector(
            embeddings=DeterministicFakeEmbedding(size=16),
            connection=_sa(uri),
            collection_name="notes",
        )
    try:
        store.add_texts(TEXTS, metadatas=METADATA, ids=IDS)
        out = [
            _results(store.similarity_search_with_score("vectors note 5", k=4)),
            _results(store.similarity_search("postgres", k=3, filter={"topic": "sql"})),
            _results(
                store.similarity_search("x", k=5, filter={"$and": [AT_LEAST_10, SQL_OR_MILVUS]})
            ),
            _results(store.max_marginal_relevance_search("milvus note 2", k=3, fetch_k=10)),
        ]
        store.delete(ids=IDS[:20])
        out.append(_results(store.similarity_search_with_score("vectors note 5", k=4)))
        out.append([d.id for d in store.get_by_ids(["doc-1", "doc-30"])])
        return out
    finally:
        store.session_maker().close()
        store._engine.dispose()


async def _async_session(uri: str) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = PGVector(
            embeddings=DeterministicFakeEmbedding(size=16),
            connection=_sa(uri),
            collection_name="async_notes",
            async_mode=True,
        )
    try:
        await store.aadd_texts(TEXTS[:12], metadatas=METADATA[:12], ids=IDS[:12])
        return [
            _results(await store.asimilarity_search_with_score("sql note 3", k=3)),
            _results(await store.asimilarity_search("sql", k=2, filter={"topic": "vectors"})),
        ]
    finally:
        await store._async_engine.dispose()


def test_pgvector_store(proxy_uri: str, real_uri: str) -> None:
    got = _session(proxy_uri)
    want = _session(real_uri)
    assert got == want
    assert len(got[0]) == 4 and got[5] == ["doc-30"]


def test_pgvector_store_async(proxy_uri: str, real_uri: str) -> None:
    got = asyncio.run(_async_session(proxy_uri))
    want = asyncio.run(_async_session(real_uri))
    assert got == want and len(got[0]) == 3


@pytest.fixture
def real_uri(pg_uri: str, dbname: str) -> Any:
    name = dbname + "_lc"
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(pg_uri)._replace(path="/" + name))
    with psycopg.connect(pg_uri, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _v2_session(uri: str) -> list[Any]:
    """LangChain's newer store, PGVectorStore over a PGEngine, as its documentation
    shows it: it checks the table's columns in information_schema.columns (a vector
    column's data_type must be USER-DEFINED) before it writes or searches."""
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.indexes import HNSWIndex

    engine = PGEngine.from_connection_string(url=_sa(uri))
    try:
        engine.init_vectorstore_table(table_name="notes_v2", vector_size=16)
        store = PGVectorStore.create_sync(
            engine=engine,
            table_name="notes_v2",
            embedding_service=DeterministicFakeEmbedding(size=16),
        )
        ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, i)) for i in IDS[:12]]
        store.add_texts(TEXTS[:12], metadatas=METADATA[:12], ids=ids)
        out = [
            _results(store.similarity_search_with_score("sql note 3", k=3)),
            _results(store.similarity_search("vectors", k=2)),
        ]
        # its index, looked up in pg_indexes
        store.apply_vector_index(HNSWIndex(name="notes_v2_hnsw"))
        out.append([store.is_valid_index("notes_v2_hnsw"), store.is_valid_index("nosuch")])
        out.append(_results(store.similarity_search_with_score("sql note 3", k=3)))
        store.reindex("notes_v2_hnsw")
        store.drop_vector_index("notes_v2_hnsw")
        out.append(store.is_valid_index("notes_v2_hnsw"))
        return out
    finally:
        asyncio.run(engine.close())


def test_pgvectorstore_v2(proxy_uri: str, real_uri: str) -> None:
    with psycopg.connect(real_uri, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    got = _v2_session(proxy_uri)
    assert got == _v2_session(real_uri)
    assert len(got[0]) == 3 and got[2] == [True, False] and got[4] is False
