"""The Milvus frontend: pymilvus clients over gRPC, each collection a PostgreSQL table."""
