"""PostgreSQL identifiers in SQL text: quoted only where PostgreSQL needs it.

Every frontend that writes SQL naming a user's table or column (the rewriter, the
service's own-writes probe, the predicate renderer) quotes the name here, so that the
same name is written the same way everywhere.
"""

from __future__ import annotations

#: PostgreSQL's NAMEDATALEN: an identifier keeps at most NAMEDATALEN - 1 bytes
NAMEDATALEN = 64


def truncated(name: str) -> str:
    """``name`` as PostgreSQL keeps an identifier: its first NAMEDATALEN - 1 bytes, cut
    at a character boundary (PostgreSQL says so in a NOTICE, and the longer name means
    the same table or column)."""
    if len(name) < NAMEDATALEN // 4:  # four bytes a character at most
        return name
    raw = name.encode()
    if len(raw) < NAMEDATALEN:
        return name
    return raw[: NAMEDATALEN - 1].decode(errors="ignore")


def object_name(name1: str, name2: str, label: str) -> str:
    """The name PostgreSQL makes for an object of ``name1`` and ``name2`` (an index of a
    table's column): ``name1_name2_label``, the longer of the two names cut, a byte at a
    time, until it fits (PostgreSQL's makeObjectName)."""
    b1, b2 = name1.encode(), name2.encode()
    room = NAMEDATALEN - 1 - len(label.encode()) - 2
    n1, n2 = len(b1), len(b2)
    while n1 + n2 > room:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    return f"{b1[:n1].decode(errors='ignore')}_{b2[:n2].decode(errors='ignore')}_{label}"


def is_wordlike(text: str) -> bool:
    """Whether ``text`` could be an unquoted identifier's first letters and has no space."""
    return bool(text) and (text[0].isalpha() or text[0] == "_") and " " not in text


def quoted(name: str) -> str:
    """``name`` as a quoted identifier, always (SQL pgvec writes from scratch, where a
    name's spelling need not follow the client's)."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_ident(name: str) -> str:
    """Quote an identifier when Postgres would need it."""
    if (
        name
        and name == name.lower()
        and is_wordlike(name)
        and name.replace("_", "a").replace("$", "a").isalnum()
        and name.upper() not in _RESERVED
    ):
        return name
    return quoted(name)


_RESERVED = frozenset(
    """ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC BOTH CASE CAST CHECK COLLATE COLUMN
    CONSTRAINT CREATE CURRENT_CATALOG CURRENT_DATE CURRENT_ROLE CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER DEFAULT DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN
    FROM GRANT GROUP HAVING IN INITIALLY INTERSECT INTO LATERAL LEADING LIMIT LOCALTIME
    LOCALTIMESTAMP NOT NULL OFFSET ON ONLY OR ORDER PLACING PRIMARY REFERENCES RETURNING SELECT
    SESSION_USER SOME SYMMETRIC SYSTEM_USER TABLE THEN TO TRAILING TRUE UNION UNIQUE USER USING
    VARIADIC WHEN WHERE WINDOW WITH""".split()
)
