"""Rendered filters run on a real PostgreSQL: each Milvus expression admits the rows
worked out by hand, and the engine's nodes render as the SQL they came from means."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import pq

from pgvec.filter.model import (
    AnyOf,
    Column,
    Compare,
    Const,
    IsNull,
    Literal,
    Not,
    Or,
    Param,
    Predicate,
)
from pgvec.filter.render import encode, render
from pgvec.milvus.expr import FieldRef, compile_expr

FIELDS = {
    "id": FieldRef("id", "bigint"),
    "n": FieldRef("n", "integer"),
    "price": FieldRef("price", "real"),
    "score": FieldRef("score", "double precision"),
    "color": FieldRef("color", "character varying(20)"),
    "ok": FieldRef("ok", "boolean"),
    "meta": FieldRef("meta", "jsonb"),
    "tags": FieldRef("tags", "text[]"),
    "nums": FieldRef("nums", "bigint[]"),
}
ALL = {1, 2, 3, 4, 5, 6}

TABLE = """
CREATE TABLE t (
    id bigint PRIMARY KEY, n integer, price real, score double precision,
    color varchar(20), ok boolean, meta jsonb, tags text[], nums bigint[], "$meta" jsonb
);
INSERT INTO t VALUES
 (1, 1, 1.5, 0.1, 'red', true,
  '{"price": 5, "name": "apple", "arr": [1, 2, 3], "tags": ["a", "b"]}',
  '{a,b}', '{1,2,3}', '{"k": 1, "s": "x"}'),
 (2, 2, 10.5, 2.5, 'green', false,
  '{"price": 15.5, "name": "banana", "arr": [4]}', '{b}', '{4}', '{"k": "1"}'),
 (3, 3, 100, NULL, 'blue', NULL,
  '{"price": "cheap", "name": "cherry", "arr": "notarray"}', '{}', '{}', '{}'),
 (4, NULL, NULL, -1, NULL, true, NULL, NULL, NULL, '{"k": null}'),
 (5, 5, 0.1, 5, 'Red', false,
  '{"price": 10, "name": "a_b%c", "arr": [[1, 2], 3]}', '{c,"a b"}', '{5,1}', '{"k": 2.5}'),
 (6, -7, -2, 1e10, 'red', true,
  '{"price": true, "nested": {"x": [10, 20]}}', '{a}', '{1,2}', NULL);
"""


@pytest.fixture(scope="module")
def table(pg_uri: str) -> Iterator[psycopg.Connection]:
    """One database with table ``t`` for the whole module (the rows above)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        uri = psycopg.conninfo.make_conninfo(pg_uri, dbname=name)
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(TABLE)
            yield conn
    finally:
        with psycopg.connect(pg_uri, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admitted(
    conn: psycopg.Connection, predicate: Predicate, params: list[bytes | None] | None = None
) -> set[int]:
    """Ids of the rows of t the predicate admits, run with untyped text parameters
    exactly as render returned them (statement parameters first)."""
    params = params or []
    rendered = render(predicate, first_param=len(params) + 1)
    sql = f"SELECT id FROM t WHERE {rendered.sql}"
    result = conn.pgconn.exec_params(sql.encode(), [*params, *rendered.values])
    assert result.status == pq.ExecStatus.TUPLES_OK, result.get_error_message()
    return {int(result.get_value(i, 0) or b"0") for i in range(result.ntuples)}


CASES = [
    ("id > 3", {4, 5, 6}),
    ('n < 3 and color == "red"', {1, 6}),
    ('color != "red"', {2, 3, 5}),
    ("1 < n < 5", {2, 3}),
    ("5 >= n > 1", {2, 3, 5}),
    ("n in [1, 3, 5]", {1, 3, 5}),
    ("n not in [1, 3]", {2, 5, 6}),
    ("n in []", set()),
    ('color in ["red", "blue"]', {1, 3, 6}),
    ('color like "r%"', {1, 6}),
    ('color like "_ed"', {1, 5, 6}),
    ('color > "blue"', {1, 2, 6}),
    ("price > 10", {2, 3}),
    ("price == 0.1", {5}),
    ("price == 1.5", {1}),
    ("score > 2", {2, 5, 6}),
    ("score != 2.5", {1, 4, 5, 6}),
    ("n * 2 > 4", {3, 5}),
    ("n % 2 == 1", {1, 3, 5}),
    ("n / 2 == 1", {2, 3}),
    ("n / 0 == 1", set()),
    ("n ** 2 == 49", {6}),
    ("-n > 0", {6}),
    ("price * 2 > 20", {2, 3}),
    ("n + 1 == 2 * 3", {5}),
    ("ok", {1, 4, 6}),
    ("not ok", {2, 5}),
    ("ok == false", {2, 5}),
    ("!ok && n > 2", {5}),
    ("n is null", {4}),
    ("color IS NOT NULL", {1, 2, 3, 5, 6}),
    ("true", ALL),
    ("false", set()),
    ("n > 1 || n < -1", {2, 3, 5, 6}),
    ('(n > 2 or ok) and not (color == "blue")', {1, 5, 6}),
    # JSON, as Milvus reads it: a value of another type than the test reads is false
    # (true for != and not in); an absent or JSON null one is unknown, so that not
    # leaves it out too; never an error
    ('meta["price"] > 10', {2}),
    ('meta["price"] >= 10', {2, 5}),
    ('meta["price"] == 5', {1}),
    ('not (meta["price"] > 10)', {1, 3, 5, 6}),
    ('meta["price"] != 5', {2, 3, 5, 6}),
    ('meta["price"] not in [5, 10]', {2, 3, 6}),
    ('not (meta["nope"] == 1)', set()),
    ('meta["nope"] != 1', set()),
    ('meta["price"] in [5, 15.5]', {1, 2}),
    ('meta["price"] == true', {6}),
    ('meta["price"] * 2 > 20', {2}),
    ('meta["name"] == "apple"', {1}),
    ('meta["name"] like "a%"', {1, 5}),
    (r'meta["name"] like "a\_b\%c"', {5}),
    ('meta["name"] in ["apple", "cherry"]', {1, 3}),
    ('meta["name"] > "b"', {2, 3}),
    ('meta["arr"][0] == 1', {1}),
    ('meta["nested"]["x"][1] == 20', {6}),
    ('meta["name"] is null', {4, 6}),
    ('json_contains(meta["arr"], 3)', {1, 5}),
    ('json_contains(meta["arr"], [1, 2])', {5}),
    ('json_contains_all(meta["arr"], [1, 2])', {1}),
    ('json_contains_any(meta["arr"], [4, 3])', {1, 2, 5}),
    ('not json_contains(meta["arr"], 3)', {2, 3}),
    ('array_contains(meta["tags"], "a")', {1}),
    ('array_length(meta["arr"]) == 1', {2}),
    # arrays
    ('array_contains(tags, "a")', {1, 6}),
    ('array_contains_all(tags, ["a", "b"])', {1}),
    ('ARRAY_CONTAINS_ANY(tags, ["c", "b"])', {1, 2, 5}),
    ("array_contains(nums, 1)", {1, 5, 6}),
    ("array_contains_all(nums, [1, 2])", {1, 6}),
    ("array_length(nums) == 2", {5, 6}),
    ("array_length(nums) == 0", {3}),
    ("nums[0] == 1", {1, 6}),
    ('tags[1] == "a b"', {5}),
    # the dynamic field
    ("k == 1", {1}),
    ("k > 1", {5}),
    ('k == "1"', {2}),
    ('s == "x"', {1}),
    ('$meta["k"] is null', {3, 4, 6}),
    ('exists $meta["k"]', {1, 2, 5}),
    ('not exists $meta["k"]', {3, 4, 6}),
    ("k != 1", {2, 5}),
    ("not (k == 1)", {2, 5}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_milvus_expression_admits(table: psycopg.Connection, text: str, expected: set[int]):
    predicate = compile_expr(text, FIELDS, dynamic="$meta")
    assert admitted(table, predicate) == expected


def test_templates(table: psycopg.Connection):
    params = {"ids": [1, 2, 5], "low": 2, "name": "apple", "tags": ["c"]}
    cases = [
        ("id in {ids} and n > {low}", {5}),
        ('meta["name"] == {name}', {1}),
        ("array_contains_any(tags, {tags})", {5}),
    ]
    for text, expected in cases:
        predicate = compile_expr(text, FIELDS, dynamic=None, params=params)
        assert admitted(table, predicate) == expected, text


def test_engine_nodes_with_statement_params(table: psycopg.Connection):
    n = Column("n", "integer")
    color = Column("color", "character varying(20)")
    # $1 belongs to the enclosing statement; render's own values follow it
    assert admitted(table, Compare(n, ">", Param(1)), [b"2"]) == {3, 5}
    assert admitted(table, AnyOf(n, Param(1, "integer")), [b"{1,5}"]) == {1, 5}
    predicate = Or((Compare(n, "<", Param(1)), Compare(color, "=", Const("blue"))))
    assert admitted(table, predicate, [b"0"]) == {3, 6}
    assert admitted(table, AnyOf(color, Const("{red,blue}"))) == {1, 3, 6}
    assert admitted(table, AnyOf(n, (Const(1), Const(3)))) == {1, 3}
    assert admitted(table, AnyOf(color, (Const("red"), Const("Red")))) == {1, 5, 6}
    assert admitted(table, Not(IsNull(n))) == {1, 2, 3, 5, 6}
    assert admitted(table, Compare(n, ">", Const(2.5))) == {3, 5}
    assert admitted(table, Compare(n, "<", Const(-(2**70)))) == set()
    assert admitted(table, Compare(Column("ok", "boolean"), "=", Const(None))) == set()


def test_render_is_parameterized():
    hostile = "x'; DROP TABLE t; --"
    predicate = compile_expr(f'"{hostile}" == meta["{hostile}"]', FIELDS, dynamic=None)
    rendered = render(predicate, first_param=4)
    assert hostile not in rendered.sql
    assert "$4::text" in rendered.sql and "$5::text" in rendered.sql
    assert rendered.values == [hostile.encode(), hostile.encode()]  # the path's key: once
    odd = render(Compare(Column('we"ird', "bigint"), "=", Const(1)))
    assert odd.sql == '"we""ird" = $1::integer'


def test_encode():
    assert encode([1, None, 'a"b\\'], "text[]") == b'{"1",NULL,"a\\"b\\\\"}'
    assert encode({"a": [1, "é"]}, "jsonb") == '{"a": [1, "é"]}'.encode()
    assert encode(float("inf"), "double precision") == b"Infinity"
    assert encode(True, "boolean") == b"true"
    with pytest.raises(ValueError):
        encode("a\x00b", "text")
    with pytest.raises(ValueError):
        render(Compare(Column("n", "integer); DROP TABLE t; --"), "=", Const("1")))
    assert render(Compare(Column("n", "integer"), "=", Const(None))).sql == '"n" = NULL'
    assert render(Or(())).sql == "false"
    assert Literal(1).type is None
