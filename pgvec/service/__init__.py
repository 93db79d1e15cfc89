"""The pgvec core shared by the SQL proxy and the Milvus endpoint: per-database state,
index lifecycle and search, over the catalog, sync and engine packages."""
