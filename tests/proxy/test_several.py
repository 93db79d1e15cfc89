"""Which Queries holding a CREATE INDEX pgvec can follow to their transaction's end."""

from __future__ import annotations

import pytest

from pgvec.errors import FeatureNotSupported
from pgvec.proxy.several import one_transaction
from pgvec.rewrite.split import split_statements


@pytest.mark.parametrize(
    ("sql", "implicit"),
    [
        ("CREATE TABLE t (); CREATE INDEX ON t USING hnsw (v)", True),
        ("begin; CREATE INDEX ON t USING hnsw (v); commit", False),
        ("START TRANSACTION; CREATE INDEX ON t USING hnsw (v); ROLLBACK", False),
        ("BEGIN; CREATE INDEX ON t USING hnsw (v)", False),
        ("CREATE INDEX ON t USING hnsw (v); END", False),
        ("SELECT 'commit'; CREATE INDEX ON t USING hnsw (v)", True),
    ],
)
def test_followed(sql: str, implicit: bool) -> None:
    assert one_transaction(split_statements(sql)) is implicit


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX ON t USING hnsw (v); COMMIT; SELECT 1",
        "BEGIN; CREATE INDEX ON t USING hnsw (v); COMMIT; BEGIN; SELECT 1; COMMIT",
        "SAVEPOINT a; CREATE INDEX ON t USING hnsw (v)",
        "SELECT 1; BEGIN; CREATE INDEX ON t USING hnsw (v); COMMIT",
        "BEGIN; CREATE INDEX ON t USING hnsw (v); RELEASE SAVEPOINT a",
    ],
)
def test_refused(sql: str) -> None:
    with pytest.raises(FeatureNotSupported):
        one_transaction(split_statements(sql))
