"""PostgreSQL identifiers in SQL text: quoted only where PostgreSQL needs it.

Every frontend that writes SQL naming a user's table or column (the rewriter, the
service's own-writes probe, the predicate renderer) quotes the name here, so that the
same name is written the same way everywhere.
"""

from __future__ import annotations


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
