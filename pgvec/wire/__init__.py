"""PostgreSQL v3 wire protocol: framing and the messages pgvec reads or writes. No I/O."""
