"""Property test: for ANY statement text the rewriter decides or raises a PgvecError.

The proxy hands the rewriter whatever a client sends. It must answer with a Decision or a
PgvecError (a clean ErrorResponse), never another exception (a bug) and never hang. The
texts are random, token soups of vector SQL, and mutations of real statements: quotes,
dollar quotes, comments, casts, unicode and undecodable bytes included.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgvec.errors import InternalError, PgvecError
from pgvec.rewrite import Catalog, rewrite, split_statements
from pgvec.rewrite.rules.created import provisional_table
from pgvec.rewrite.rules.index import parse_index_name
from tests.fuzzing import fuzz_settings, hard_limit

#: a hard bound per case; hypothesis' deadline only reports slowness after the fact
HANG_SECONDS = 10


SEEDS = [
    "SELECT id FROM items ORDER BY embedding <-> '[1,2,3]' LIMIT 5",
    "SELECT id, embedding <=> $1 AS d FROM items WHERE price > $2 ORDER BY d LIMIT $3 OFFSET $4",
    "SELECT i.id, c.name FROM items i JOIN cats c ON c.id = i.id ORDER BY i.embedding <#> $1"
    " LIMIT 3",
    "WITH k AS (SELECT id FROM items ORDER BY embedding <+> $1 LIMIT 3) SELECT * FROM k",
    "SELECT * FROM app.docs WHERE body LIKE 'a%' ORDER BY vec <-> '[1,2]'::vector LIMIT 1",
    "SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 10) s",
    "INSERT INTO items (id, title, embedding) VALUES (1, 'x', '[1,2,3]'), (2, $1, $2)",
    "UPDATE items SET embedding = '[4,5,6]'::vector(3) WHERE id = $1 RETURNING embedding",
    "DELETE FROM items WHERE embedding <-> '[1,1,1]' < 0.5",
    "CREATE TABLE t (id bigserial PRIMARY KEY, v vector(3), note text DEFAULT $$x;y$$)",
    "ALTER TABLE items ADD COLUMN v2 vector(4)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON items USING hnsw (embedding vector_l2_ops)"
    " WITH (m = 16, ef_construction = 64)",
    "CREATE INDEX ON app.docs USING ivfflat (vec vector_cosine_ops) WITH (lists = 10)",
    "DROP INDEX IF EXISTS i, app.j CASCADE",
    "REINDEX INDEX CONCURRENTLY public.i",
    "SET LOCAL hnsw.ef_search = 100",
    "RESET pgvec.consistency",
    "SELECT pgvec.load('items_embedding_idx')",
    "SELECT pgvec.release($1)",
    "COPY items (id, embedding) FROM STDIN WITH (DELIMITER '|', NULL 'none')",
    "EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 2",
    "SELECT E'it''s \\' -- not a comment', /* c */ id FROM items -- tail\n"
    "ORDER BY embedding <-> '[1,2,3]' LIMIT 1",
    'SELECT "Embedding", $tag$ <-> $tag$ FROM "items" ORDER BY "embedding" <-> $1 LIMIT 1',
    "SELECT id FROM items WHERE title = 'é✓' AND embedding IS NOT NULL"
    " ORDER BY embedding <-> $1 DESC NULLS LAST LIMIT ALL",
    "SELECT id FROM nopk ORDER BY v <-> '[1]' LIMIT 1",
]

WORDS = [
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "WITH", "AS", "JOIN", "ON",
    "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE", "CREATE", "TABLE", "INDEX", "USING",
    "DROP", "REINDEX", "COPY", "STDIN", "EXPLAIN", "DISTINCT", "GROUP", "HAVING", "UNION",
    "NOT", "NULL", "AND", "OR", "IN", "IS", "CASE", "WHEN", "THEN", "END", "LATERAL", "ALL",
    "items", "app.docs", "cats", "nopk", "embedding", "vec", "v", "id", "price", "title",
    "pgvec", ".", "load", "release", "hnsw", "ivfflat", "vector", "vector(3)", "vector_l2_ops",
    "<->", "<=>", "<#>", "<+>", "<", ">", "=", "+", "-", "*", "/", "||", "::", ":", "(", ")",
    "[", "]", ",", ";", "'", '"', "$", "$1", "$2", "$$", "$q$", "--", "/*", "*/", "\\",
    "'[1,2,3]'", "'[1,2]'", "'[]'", "'[NaN,1,2]'", "'[1e99,2,3]'", "E'\\x00'", "'\\x0000'",
    "0", "1", "-1", "3.5", "1e400", "99999999999999999999", "NaN", "é", "\u2028", "\U0001f600",
]  # fmt: skip


def _no_nul(s: str) -> str:
    return s.replace("\0", "")


# the pieces of a statement that edits work on: a mutated statement mostly still parses
_TOKEN = re.compile(
    r"""\s+|'(?:[^']|'')*'|"(?:[^"]|"")*"|\$\w*\$|\$\d+|<->|<=>|<#>|<\+>|::|--[^\n]*|\w+|."""
)


def _edit(text: str, edits: list[tuple[str, int, str]]) -> str:
    """Apply token-level edits: insert, replace, delete, double a token, or glue two
    tokens together (drop the blank between them)."""
    tokens = _TOKEN.findall(text)
    for op, at, word in edits:
        i = at % (len(tokens) + 1)
        if op == "insert":
            tokens.insert(i, word)
        elif op == "insert spaced":
            tokens[i:i] = [" ", word, " "]
        elif i == len(tokens):
            continue
        elif op == "replace":
            tokens[i] = word
        elif op == "delete":
            del tokens[i]
        elif op == "double":
            tokens.insert(i, tokens[i])
        elif op == "glue" and tokens[i].isspace():
            del tokens[i]
    return "".join(tokens)


# anything, NUL excluded (a protocol string cannot hold one)
random_text = st.text(st.characters(blacklist_characters="\0"), max_size=300)
# bytes that are not UTF-8 arrive as surrogate escapes (pgvec.wire.messages._text)
undecodable = st.binary(max_size=200).map(lambda b: _no_nul(b.decode("utf-8", "surrogateescape")))
token_soup = st.lists(st.sampled_from(WORDS), max_size=40).flatmap(
    lambda words: st.sampled_from([" ", "", "\n"]).map(lambda sep: sep.join(words))
)
edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "insert spaced", "replace", "delete", "double", "glue"]),
        st.integers(0, 200),
        st.one_of(st.sampled_from(WORDS), st.text(max_size=4).map(_no_nul)),
    ),
    min_size=1,
    max_size=4,
)
mutated = st.tuples(st.sampled_from(SEEDS), edits).map(lambda t: _edit(*t))

statements = st.one_of(
    st.sampled_from(SEEDS), random_text, undecodable, token_soup, mutated, mutated, mutated
)


def check(sql: str, catalog: Catalog) -> None:
    with hard_limit(HANG_SECONDS):
        pieces = split_statements(sql)
        for piece in pieces:
            assert piece.text == sql[piece.start : piece.end]
        for text in [sql, *(p.text for p in pieces)]:
            try:
                decision = rewrite(text, catalog)
            except InternalError:
                raise  # a bug the rewriter caught: fail the test on it too
            except PgvecError:
                continue
            assert decision is not None
            provisional_table(text)
        parse_index_name(sql)


@fuzz_settings(300)
@given(statements)
def test_rewrite_raises_only_pgvec_errors(catalog: Catalog, sql: str) -> None:
    check(sql, catalog)


@pytest.mark.parametrize(
    "sql",
    [
        # found by fuzzing: each raised an exception outside pgvec's hierarchy
        "SELECT pgvec.release($1embedding)",
        "SELECT pgvec.load($11e400)",
        "INSERT INTO a..docs (key, vec) VALUES ('k', '[1,2]')",
        "SELECT * FROM a..docs ORDER BY vec <-> $1 LIMIT 1",
        "SELECT pgvec.is_vector(DISTINCT %s::vector, 1)",
    ],
)
def test_fuzz_findings(catalog: Catalog, sql: str) -> None:
    check(sql, catalog)


@pytest.mark.parametrize("dim", ["abc", "3.5", "-1"])
def test_provisional_table_with_a_bad_dimension(dim: str) -> None:
    assert provisional_table(f"CREATE TABLE t (id int PRIMARY KEY, v vector({dim}))") is None
