"""The Milvus gRPC frontend: pymilvus clients served over the same core."""
