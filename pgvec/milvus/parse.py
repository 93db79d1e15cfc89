"""Milvus boolean expressions (``filter=`` / ``expr=``) parsed into a small syntax tree.

A hand-written tokenizer and precedence-climbing parser for the language of Milvus
2.5/2.6 (its ``Plan.g4``), lowest precedence first: ``or`` / ``||``; ``and`` / ``&&``;
``not`` / ``!``; ``==`` ``!=``; ``<`` ``<=`` ``>`` ``>=`` (``1 < x < 5`` is a range);
``in`` / ``not in``, ``like``, ``is [not] null``; ``+`` ``-``; ``*`` ``/`` ``%``; unary
``-`` ``+``; ``**``; then literals, names with ``["key"]`` / ``[0]`` subscripts,
``$meta``, ``{template}``, ``[lists]``, calls and ``exists``. One difference: Milvus
binds ``not`` tighter than comparisons, so ``not a > 1`` is an error there; here it means
``not (a > 1)``. Keywords are all lower or all upper case, as in Milvus.

Errors are ``MilvusExprError`` with the 1-based column of the problem, worded as Milvus
Lite words them (``unexpected character '=' at column 7``, a caret line, a hint).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvec.milvus.lexer import MilvusExprError, Token, tokenize

# ------------------------------------------------------------------------ syntax tree


@dataclass(frozen=True)
class Lit:
    value: int | float | str | bool
    pos: int


@dataclass(frozen=True)
class ListLit:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Name:
    """A field, ``$meta``, or a dynamic key, with its subscripts."""

    name: str
    path: tuple[str | int, ...]
    pos: int


@dataclass(frozen=True)
class Template:
    name: str
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str  # and, or, == != < <= > >=, + - * / % **
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Range:
    """``low op1 middle op2 high`` with both ops < / <= or both > / >=."""

    low: Node
    op1: str
    middle: Node
    op2: str
    high: Node
    pos: int


@dataclass(frozen=True)
class InList:
    target: Node
    items: Node
    negated: bool
    pos: int


@dataclass(frozen=True)
class LikeOp:
    target: Node
    pattern: Node
    pos: int


@dataclass(frozen=True)
class IsNullOp:
    target: Node
    negated: bool
    pos: int


@dataclass(frozen=True)
class CallOp:
    name: str  # lower case
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Exists:
    operand: Node
    pos: int


Node = (
    Lit | ListLit | Name | Template | Unary | Binary | Range | InList | LikeOp | IsNullOp | CallOp
) | Exists


# ----------------------------------------------------------------------------- parser

_EQUALITY = ("==", "!=")
_RELATIONAL = ("<", "<=", ">", ">=")


def parse(text: str) -> Node:
    """The syntax tree of ``text``; MilvusExprError if it is malformed."""
    parser = _Parser(text)
    node = parser.or_expr()
    parser.expect_end()
    return node


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, kind: str, value: object) -> bool:
        return self.tok.kind == kind and self.tok.value == value

    def error(self, token: Token | None = None) -> MilvusExprError:
        token = token or self.tok
        if token.kind == "end":
            return MilvusExprError("unexpected end of expression", token.pos + 1, self.text)
        return MilvusExprError(f"unexpected {token.text!r}", token.pos + 1, self.text)

    def expect(self, value: str) -> Token:
        if not self.at("op", value):
            raise self.error()
        return self.take()

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.error()

    # lowest precedence first

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("kw", "or"):
            pos = self.take().pos
            node = Binary("or", node, self.and_expr(), pos)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("kw", "and"):
            pos = self.take().pos
            node = Binary("and", node, self.not_expr(), pos)
        return node

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            pos = self.take().pos
            return Unary("not", self.not_expr(), pos)
        return self.equality()

    def equality(self) -> Node:
        node = self.relational()
        while self.tok.kind == "op" and self.tok.value in _EQUALITY:
            token = self.take()
            node = Binary(token.text, node, self.relational(), token.pos)
        return node

    def relational(self) -> Node:
        node = self.membership()
        if not (self.tok.kind == "op" and self.tok.value in _RELATIONAL):
            return node
        first = self.take()
        middle = self.membership()
        if not (self.tok.kind == "op" and self.tok.value in _RELATIONAL):
            return Binary(first.text, node, middle, first.pos)
        second = self.take()
        ascending = {first.text[0], second.text[0]} == {"<"}
        descending = {first.text[0], second.text[0]} == {">"}
        if not (ascending or descending) or not isinstance(middle, Name):
            raise MilvusExprError(
                "a chained comparison needs a field between two < or two > operators",
                second.pos + 1,
                self.text,
            )
        high = self.membership()
        if self.tok.kind == "op" and self.tok.value in _RELATIONAL:
            raise self.error()
        return Range(node, first.text, middle, second.text, high, first.pos)

    def membership(self) -> Node:
        node = self.additive()
        if self.at("kw", "not") and self.tokens[self.i + 1].value == "in":
            pos = self.take().pos
            self.take()
            return InList(node, self.additive(), True, pos)
        if self.at("kw", "in"):
            pos = self.take().pos
            return InList(node, self.additive(), False, pos)
        if self.at("kw", "like"):
            pos = self.take().pos
            return LikeOp(node, self.additive(), pos)
        if self.at("kw", "is"):
            pos = self.take().pos
            negated = self.at("kw", "not")
            if negated:
                self.take()
            if not self.at("kw", "null"):
                raise self.error()
            self.take()
            return IsNullOp(node, negated, pos)
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            token = self.take()
            node = Binary(token.text, node, self.multiplicative(), token.pos)
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            token = self.take()
            node = Binary(token.text, node, self.unary(), token.pos)
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.value in ("+", "-"):
            token = self.take()
            return Unary(token.text, self.unary(), token.pos)
        if self.at("kw", "not"):  # ! or not inside an operand: as Milvus, on what follows
            token = self.take()
            return Unary("not", self.unary(), token.pos)
        return self.power()

    def power(self) -> Node:
        node = self.postfix()
        while self.at("op", "**"):
            token = self.take()
            node = Binary("**", node, self.unary(), token.pos)
        return node

    def postfix(self) -> Node:
        token = self.tok
        if token.kind not in ("name", "meta"):
            return self.primary()
        self.take()
        name = "$meta" if token.kind == "meta" else token.text
        if token.kind == "name" and self.at("op", "("):
            return self.call(token)
        path: list[str | int] = []
        while self.at("op", "["):
            self.take()
            key = self.take()
            if key.kind == "str":
                path.append(str(key.value))
            elif key.kind == "int" and key.text.isdigit():
                path.append(int(str(key.value)))
            else:
                raise self.error(key)
            self.expect("]")
        return Name(name, tuple(path), token.pos)

    def call(self, name: Token) -> Node:
        self.expect("(")
        args: list[Node] = []
        while not self.at("op", ")"):
            args.append(self.or_expr())
            if not self.at("op", ","):
                break
            self.take()
        self.expect(")")
        return CallOp(name.text.lower(), tuple(args), name.pos)

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("int", "float", "str", "bool"):
            value = token.value
            assert isinstance(value, int | float | str | bool)
            return Lit(value, token.pos)
        if token.kind == "kw" and token.value == "exists":
            return Exists(self.postfix(), token.pos)
        if token.kind == "op" and token.value == "(":
            node = self.or_expr()
            self.expect(")")
            return node
        if token.kind == "op" and token.value == "[":
            items: list[Node] = []
            while not self.at("op", "]"):
                items.append(self.or_expr())
                if not self.at("op", ","):
                    break
                self.take()
            self.expect("]")
            return ListLit(tuple(items), token.pos)
        if token.kind == "op" and token.value == "{":
            name = self.take()
            if name.kind != "name":
                raise self.error(name)
            self.expect("}")
            return Template(name.text, token.pos)
        raise self.error(token)
