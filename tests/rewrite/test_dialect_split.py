from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from pgvec.rewrite.dialect import DIALECT, PgvecPostgres, VectorDistance, generate
from pgvec.rewrite.split import split_statements


def test_sqlglot_is_pure_python() -> None:
    # the compiled sqlglotc build cannot be subclassed; the dialect subclass must import
    assert sqlglot.__file__ is not None and sqlglot.__file__.endswith(".py")
    assert issubclass(PgvecPostgres, sqlglot.dialects.postgres.Postgres)

    class Probe(PgvecPostgres):  # subclassing works
        pass


def _one(sql: str) -> exp.Expr:
    tree = DIALECT.parse(sql)[0]
    assert tree is not None
    return tree


def test_precedence_tighter_than_comparison_looser_than_arithmetic() -> None:
    e = _one("SELECT a <-> b * 2").selects[0]
    assert isinstance(e, VectorDistance) and isinstance(e.expression, exp.Mul)
    e = _one("SELECT x <-> y < 0.5").selects[0]
    assert isinstance(e, exp.LT) and isinstance(e.this, VectorDistance)
    e = _one("SELECT a + b <=> c").selects[0]
    assert isinstance(e, VectorDistance) and e.op == "<=>" and isinstance(e.this, exp.Add)


@pytest.mark.parametrize("op", ["<->", "<=>", "<#>", "<+>"])
def test_operators_round_trip(op: str) -> None:
    sql = f"SELECT e {op} '[1,2]' FROM t ORDER BY e {op} $1 LIMIT 3"
    tree = _one(sql)
    assert tree.find(VectorDistance).op == op  # type: ignore[union-attr]
    assert generate(tree) == sql


def test_other_operators_unchanged() -> None:
    sql = "SELECT a -> b, a #> b, a #>> b, a <= b, a <> b, a <<->> b FROM t"
    assert generate(_one(sql)) == sql
    assert not _one(sql).find(VectorDistance)


def test_split_respects_quotes_and_comments() -> None:
    sql = "select 1; select ';' /* ; */ ; select $$;$$, $q$;$q$, E'\\';'; -- c;\n"
    pieces = split_statements(sql)
    assert [p.text for p in pieces] == [
        "select 1",
        " select ';' /* ; */ ",
        " select $$;$$, $q$;$q$, E'\\';'",
    ]
    for p in pieces:
        assert sql[p.start : p.end] == p.text


def test_split_single_and_empty() -> None:
    assert [p.text for p in split_statements("SELECT 1")] == ["SELECT 1"]
    assert split_statements("  ;  ; ") == []
    assert [p.text for p in split_statements("select 'unterminated")] == ["select 'unterminated"]
