"""Tokens of Milvus boolean expressions, and the error every stage of them raises."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgvec.errors import PgvecError


class MilvusExprError(PgvecError):
    """A filter expression that is malformed, or names or compares things wrongly."""

    sqlstate = "42601"
    milvus_code = 5  # IllegalArgument

    def __init__(self, message: str, column: int, text: str = "", *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.column = column
        self.text = text

    def __str__(self) -> str:
        lines = [f"{self.message} at column {self.column}"]
        if self.text and "\n" not in self.text:
            lines += [self.text, " " * (self.column - 1) + "^"]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


# -------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    kind: str  # int, float, str, name, meta, op, kw, end
    text: str
    value: object
    pos: int


_KEYWORDS = {
    "and": "and",
    "or": "or",
    "not": "not",
    "in": "in",
    "like": "like",
    "exists": "exists",
    "is": "is",
    "null": "null",
}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOLS["FALSE"] = False
_OPS = (
    *("**", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%"),
    *("(", ")", "[", "]", "{", "}", ","),
)
_HINTS = {"=": "did you mean '=='?", "&": "did you mean '&&'?", "|": "did you mean '||'?"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|0[bB][01]+"
    r"|(\d+\.\d*|\.\d+)([eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+"
)
_SIMPLE_ESCAPES = {
    "'": "'",
    '"': '"',
    "?": "?",
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c in "rR" and i + 1 < n and text[i + 1] in "\"'":
            value, end = _string(text, i + 1, raw=True)
            tokens.append(Token("str", text[i:end], value, i))
            i = end
        elif c in "\"'":
            value, end = _string(text, i, raw=False)
            tokens.append(Token("str", text[i:end], value, i))
            i = end
        elif c == "$" and text.startswith("$meta", i) and not _continues(text, i + 5):
            tokens.append(Token("meta", "$meta", None, i))
            i += 5
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            token = _number(text, i)
            tokens.append(token)
            i += len(token.text)
        elif _NAME.match(text, i):
            match = _NAME.match(text, i)
            assert match is not None
            word = match.group()
            if word in _BOOLS:
                tokens.append(Token("bool", word, _BOOLS[word], i))
            elif word.lower() in _KEYWORDS and word in (word.lower(), word.upper()):
                tokens.append(Token("kw", word, word.lower(), i))
            else:
                tokens.append(Token("name", word, word, i))
            i = match.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise MilvusExprError(
                    f"unexpected character {c!r}", i + 1, text, hint=_HINTS.get(c)
                )
            if op in ("&&", "||", "!"):
                tokens.append(Token("kw", op, {"&&": "and", "||": "or", "!": "not"}[op], i))
            else:
                tokens.append(Token("op", op, op, i))
            i += len(op)
    tokens.append(Token("end", "", None, n))
    return tokens


def _continues(text: str, i: int) -> bool:
    return i < len(text) and (text[i].isalnum() or text[i] == "_")


def _number(text: str, i: int) -> Token:
    match = _NUMBER.match(text, i)
    assert match is not None
    word = match.group()
    end = match.end()
    if _continues(text, end) or (end < len(text) and text[end] == "."):
        raise MilvusExprError(f"invalid number {text[i : end + 1]!r}", i + 1, text)
    lower = word.lower()
    if lower.startswith("0x"):
        return Token("int", word, int(word, 16), i)
    if lower.startswith("0b"):
        return Token("int", word, int(word, 2), i)
    if any(ch in lower for ch in ".e"):
        return Token("float", word, float(word), i)
    if len(word) > 1 and word.startswith("0"):  # C octal, as in Milvus
        if not set(word) <= set("01234567"):
            raise MilvusExprError(f"invalid octal number {word!r}", i + 1, text)
        return Token("int", word, int(word, 8), i)
    return Token("int", word, int(word), i)


def _string(text: str, start: int, *, raw: bool) -> tuple[str, int]:
    """The value of the string literal whose quote is at ``start``, and where it ends."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c in "\r\n":
            break
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        nxt = text[i + 1]
        if raw:
            out.append(c + nxt)
            i += 2
            continue
        value, i = _escape(text, i)
        out.append(value)
    raise MilvusExprError("unterminated string", start + 1, text)


def _escape(text: str, i: int) -> tuple[str, int]:
    """The character of the escape sequence at ``text[i] == '\\'``, and where it ends.
    An unknown escape such as ``\\%`` is kept as written, for ``like`` patterns."""
    nxt = text[i + 1]
    if nxt in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[nxt], i + 2
    if nxt == "\n":
        return "", i + 2
    digits = ""
    if nxt in "01234567":
        digits = re.match(r"[0-7]{1,3}", text[i + 1 :]).group()  # type: ignore[union-attr]
        code, end = int(digits, 8), i + 1 + len(digits)
    elif nxt in "xuU":
        size = {"x": None, "u": 4, "U": 8}[nxt]
        found = re.match(r"[0-9a-fA-F]+", text[i + 2 :])
        digits = found.group() if found else ""
        if size is not None:
            digits = digits[:size]
        if not digits or (size is not None and len(digits) != size):
            raise MilvusExprError("invalid escape sequence", i + 1, text)
        code, end = int(digits, 16), i + 2 + len(digits)
    else:
        return "\\" + nxt, i + 2
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise MilvusExprError("invalid escape sequence", i + 1, text)
    return chr(code), end
