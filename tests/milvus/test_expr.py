"""Milvus expressions: parsing, the predicates they compile to, and their errors."""

from __future__ import annotations

import pytest

from pgvec.filter.model import (
    And,
    AnyOf,
    BoolValue,
    Column,
    Compare,
    Comparison,
    Const,
    In,
    IsNull,
    JsonPath,
    Like,
    Literal,
    Not,
    Or,
)
from pgvec.milvus.expr import FieldRef, MilvusExprError, compile_expr
from pgvec.milvus.lexer import tokenize
from pgvec.milvus.parse import Binary, Lit, Name, Range, Unary, parse

FIELDS = {
    "id": FieldRef("id", "bigint"),
    "age": FieldRef("age", "integer"),
    "price": FieldRef("price", "real"),
    "color": FieldRef("color", "character varying(200)"),
    "ok": FieldRef("ok", "boolean"),
    "meta": FieldRef("meta", "jsonb"),
    "tags": FieldRef("tags", "text[]"),
}
ID = Column("id", "bigint")
COLOR = Column("color", "character varying(200)")


def compile_(text: str, **kw: object) -> object:
    return compile_expr(text, FIELDS, dynamic=None, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("0x1F", 31),
        ("0b101", 5),
        ("017", 15),
        ("0", 0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ('"a\\"b"', 'a"b'),
        ("'it\\'s'", "it's"),
        ('"tab\\there"', "tab\there"),
        ('"\\x41\\101\\u00e9"', "AAé"),
        ('"100\\%"', "100\\%"),
        ('r"a\\nb"', "a\\nb"),
        ('"日本"', "日本"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
    ],
)
def test_literal_tokens(text: str, value: object):
    token = tokenize(text)[0]
    assert token.value == value and type(token.value) is type(value)


def test_keywords_are_lower_or_upper_case():
    kinds = [(t.kind, t.value) for t in tokenize("a AND b and c && d Or e")]
    assert kinds[1] == ("kw", "and") and kinds[3] == ("kw", "and") and kinds[5] == ("kw", "and")
    assert kinds[7] == ("name", "Or")  # as in Milvus: Or is a name


# ---------------------------------------------------------------------------- parser


def test_precedence():
    tree = parse("a or b and not c == 1 + 2 * 3 ** 2")
    assert isinstance(tree, Binary) and tree.op == "or"
    right = tree.right
    assert isinstance(right, Binary) and right.op == "and"
    negated = right.right
    assert isinstance(negated, Unary) and negated.op == "not"
    equality = negated.operand
    assert isinstance(equality, Binary) and equality.op == "=="
    total = equality.right
    assert isinstance(total, Binary) and total.op == "+"
    product = total.right
    assert isinstance(product, Binary) and product.op == "*"
    assert isinstance(product.right, Binary) and product.right.op == "**"


def test_unary_minus_binds_looser_than_power():
    tree = parse("-2 ** 2")
    assert isinstance(tree, Unary) and isinstance(tree.operand, Binary)


def test_chained_comparison():
    tree = parse("1 < x <= 5")
    assert isinstance(tree, Range) and (tree.op1, tree.op2) == ("<", "<=")
    assert tree.middle == Name("x", (), 4) and tree.low == Lit(1, 0)


def test_json_path_and_meta():
    assert parse('meta["a"][0]["b"]') == Name("meta", ("a", 0, "b"), 0)
    assert parse("$meta['k']") == Name("$meta", ("k",), 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'tag === "a"',
            "unexpected character '=' at column 7\ntag === \"a\"\n      ^\ndid you mean '=='?",
        ),
        ("id <", "unexpected end of expression at column 5\nid <\n    ^"),
        ("id = 1", "unexpected character '=' at column 4"),
        ("a & b", "unexpected character '&' at column 3"),
        ("(a > 1", "unexpected end of expression at column 7"),
        ("a > 1)", "unexpected ')' at column 6"),
        ('"abc', "unterminated string at column 1"),
        ("08", "invalid octal number '08' at column 1"),
        ("12ab", "invalid number '12a' at column 1"),
        ("a is 1", "unexpected '1' at column 6"),
        ("1 < a > 2", "a chained comparison needs a field"),
        ("a[1.5] > 1", "unexpected '1.5' at column 3"),
        ("{1}", "unexpected '1' at column 2"),
        ("a # b", "unexpected character '#' at column 3"),
        ("", "unexpected end of expression at column 1"),
        ('"\\ud800"', "invalid escape sequence at column 2"),
    ],
)
def test_syntax_errors(text: str, message: str):
    with pytest.raises(MilvusExprError) as info:
        parse(text)
    assert str(info.value).startswith(message)
    assert info.value.column == int(str(info.value).split("at column ")[1].split()[0])


# ------------------------------------------------------------------------- compiling


def test_engine_subset_for_simple_comparisons():
    assert compile_('id > 5 and color == "red"') == And(
        (Compare(ID, ">", Const(5)), Compare(COLOR, "=", Const("red")))
    )
    assert compile_("id != 5 or not id <= 2") == Or(
        (Compare(ID, "<>", Const(5)), Not(Compare(ID, "<=", Const(2))))
    )
    assert compile_("5 < id") == Compare(ID, ">", Const(5))
    assert compile_("id in [1, 2]") == AnyOf(ID, (Const(1), Const(2)), with_column=True)
    assert compile_("id in [7]") == Compare(ID, "=", Const(7))
    assert compile_("id not in [1, 2]") == Not(AnyOf(ID, (Const(1), Const(2)), with_column=True))
    assert compile_("id is null") == IsNull(ID)
    assert compile_("id IS NOT NULL") == Not(IsNull(ID))
    assert compile_("ok") == Compare(Column("ok", "boolean"), "=", Const(True))
    assert compile_("price > 1.5") == Compare(Column("price", "real"), ">", Const(1.5, "real"))
    assert compile_("1 <= id < 9") == And((Compare(ID, ">=", Const(1)), Compare(ID, "<", Const(9))))


def test_and_or_flatten():
    tree = compile_("id > 1 and id > 2 and (id > 3 and id > 4) or id == 0")
    assert isinstance(tree, Or) and isinstance(tree.parts[0], And)
    assert len(tree.parts[0].parts) == 4


def test_general_nodes():
    assert compile_('color > "m"') == Comparison(COLOR, ">", Literal("m", "text"), "C")
    assert compile_('color like "a%"') == Like(COLOR, "a%")
    assert compile_('color like "a\\\\"') == Like(COLOR, "a\\\\")  # a lone backslash matches itself
    meta = Column("meta", "jsonb")
    assert compile_('meta["p"] > 10') == Comparison(
        JsonPath(meta, ("p",), "numeric"), ">", Literal(10, "numeric")
    )
    assert compile_('meta["p"] in ["a", "b"]') == In(
        JsonPath(meta, ("p",), "text"), (Literal("a", "text"), Literal("b", "text"))
    )
    assert compile_("false") == BoolValue(Literal(False, "boolean"))
    assert compile_("1 + 1 == 2") == BoolValue(Literal(True, "boolean"))
    assert compile_("") == And(())


def test_dynamic_field():
    dyn = Column("$meta", "jsonb")
    got = compile_expr('color == "red"', {}, dynamic="$meta")
    assert got == Comparison(JsonPath(dyn, ("color",), "text"), "=", Literal("red", "text"))
    got = compile_expr('$meta["a"]["b"] == 1', {}, dynamic="$meta")
    assert got == Comparison(JsonPath(dyn, ("a", "b"), "numeric"), "=", Literal(1, "numeric"))


def test_templates():
    assert compile_("id > {v}", params={"v": 3}) == Compare(ID, ">", Const(3))
    assert compile_("id in {v}", params={"v": [1, 2]}) == AnyOf(
        ID, (Const(1), Const(2)), with_column=True
    )


def test_constant_folding():
    assert compile_("id > 2 * 3 + 1") == Compare(ID, ">", Const(7))
    assert compile_("id > -7 / 2") == Compare(ID, ">", Const(-3))  # truncated, as in C
    assert compile_("id > -7 % 2") == Compare(ID, ">", Const(-1))
    assert compile_("id > 2 ** 10") == Compare(ID, ">", Const(1024))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xyz > 1", "field xyz not exist at column 1"),
        ('$meta["k"] == 1', "field $meta not exist"),
        ("color > 5", "comparisons between VarChar and Int64 are not supported at column 7"),
        ('id == "a"', "comparisons between Int64 and VarChar are not supported"),
        ("ok == 1", "comparisons between Bool and Int64 are not supported"),
        ("ok < true", "< is not supported on Bool"),
        ("id", "Int64 is not a boolean expression at column 1"),
        ("id in 5", "the right side of in must be a list"),
        ("id in [1, id]", "a list may hold constants only"),
        ("id like 'a'", "like operation on non-string field Int64"),
        ("color like id", "the pattern of like must be a string"),
        ("array_contains(tags, 1)", "Int64 value in an array of VarChar"),
        ('array_contains_all(tags, "a")', "must be a list"),
        ("array_contains(id, 1)", "non-array field Int64"),
        ("array_length(id) == 1", "array_length of non-array field Int64"),
        ("text_match(color, 'a')", "function text_match is not supported"),
        ("color * 2 > 1", "arithmetic on VarChar is not supported"),
        ("id % 2.5 == 1", "% needs integers"),
        ("id > 1 / 0", "division by zero"),
        ("id > 9223372036854775808", "integer 9223372036854775808 is out of range for Int64"),
        ("id > 1e999", "out of range"),
        ("id > {missing}", "no value for template variable missing"),
        ('id["a"] > 1', "field id is not JSON or an array"),
        ('meta["a"] == meta["b"]', "comparisons between JSON and JSON are not supported"),
        ('"a\\x00" == color', "a string cannot contain NUL"),
    ],
)
def test_compile_errors(text: str, message: str):
    with pytest.raises(MilvusExprError) as info:
        compile_(text)
    assert message in str(info.value)


def test_error_carries_column_and_message():
    with pytest.raises(MilvusExprError) as info:
        compile_("id > 1 and nope == 2")
    assert info.value.column == 12 and info.value.message == "field nope not exist"
    assert info.value.milvus_code == 5
