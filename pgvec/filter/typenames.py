"""PostgreSQL type names as ``format_type()`` spells them, sorted into the kinds filters use.

Only names that match ``TYPE_NAME`` are ever written into SQL text; they come from the
catalog, never from a client, and the check keeps it that way.
"""

from __future__ import annotations

import re

#: a format_type() name: words, an optional typmod, optional array brackets
TYPE_NAME = re.compile(r"[a-z][a-z0-9_ ]*(\(\d+(,\s*\d+)?\))?(\[\])*")
_TYPMOD = re.compile(r"\(\d+(,\s*\d+)?\)")

INT_TYPES = ("smallint", "integer", "bigint")
FLOAT_TYPES = ("real", "double precision")
TEXT_TYPES = ("text", "character varying", "character", "bpchar", "name")
JSON_TYPES = ("jsonb", "json")


def checked(type_name: str) -> str:
    """``type_name`` if it is a plain type name that is safe to write into SQL."""
    if not TYPE_NAME.fullmatch(type_name):
        raise ValueError(f"not a type name: {type_name!r}")
    return type_name


def is_array(type_name: str) -> bool:
    return type_name.endswith("[]")


def element(type_name: str) -> str:
    """The element type of an array type (``bigint[]`` -> ``bigint``)."""
    return type_name[:-2] if is_array(type_name) else type_name


def base(type_name: str) -> str:
    """The type without its typmod: ``character varying(200)`` -> ``character varying``;
    ``character`` (``char(1)``) becomes ``bpchar``, which does not truncate."""
    name = _TYPMOD.sub("", type_name)
    if name == "character":
        return "bpchar"
    return name.replace("character[]", "bpchar[]")


def kind(type_name: str | None) -> str:
    """One of int, float, numeric, bool, text, json, array, other (None: unknown)."""
    if type_name is None:
        return "other"
    if is_array(type_name):
        return "array"
    name = base(type_name)
    if name in INT_TYPES:
        return "int"
    if name in FLOAT_TYPES:
        return "float"
    if name == "numeric":
        return "numeric"
    if name == "boolean":
        return "bool"
    if name in TEXT_TYPES:
        return "text"
    if name in JSON_TYPES:
        return "json"
    return "other"


def int_type(value: int) -> str:
    """The type PostgreSQL gives an integer literal of this value."""
    if -(2**31) <= value < 2**31:
        return "integer"
    if -(2**63) <= value < 2**63:
        return "bigint"
    return "numeric"
