"""Milvus privileges as PostgreSQL privileges, and back: pure tables, no I/O.

A Milvus collection is a table, so its privileges are the table's: reading ones (Search,
Query, Load, ...) are SELECT, Insert is INSERT, Delete is DELETE, Upsert is INSERT and
UPDATE, ``*`` (All) is ALL. A Milvus database is a schema: CreateCollection is CREATE on
it, ShowCollections is USAGE, ``*`` is ALL. What PostgreSQL grants to no one but a table's
owner (creating and dropping indexes, partitions, aliases) has no grant to map to and is
answered "not supported". Read back from the catalogs, a set of PostgreSQL privileges is
reported as the Milvus privileges it covers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvec.milvus.status import Unsupported

COLLECTION = "Collection"
GLOBAL = "Global"
ALL = "*"

#: a table's privileges in PostgreSQL 16 (ALL); 17 adds MAINTAIN
TABLE_ALL = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"})
SCHEMA_ALL = frozenset({"USAGE", "CREATE"})

_READ = ("SELECT",)
_COLLECTION: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "Search",
            "Query",
            "Load",
            "Release",
            "GetLoadState",
            "GetLoadingProgress",
            "GetStatistics",
            "HasPartition",
            "ShowPartitions",
            "DescribeCollection",
            "IndexDetail",
            "Flush",
        ),
        _READ,
    ),
    "Insert": ("INSERT",),
    "Import": ("INSERT",),
    "Delete": ("DELETE",),
    "Upsert": ("INSERT", "UPDATE"),
    ALL: ("ALL",),
    "All": ("ALL",),
    # Milvus's built-in privilege groups
    "CollectionReadOnly": _READ,
    "CollectionReadWrite": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "CollectionAdmin": ("ALL",),
}
#: what only the owner of a table may do in PostgreSQL
_OWNER_ONLY = frozenset(
    {
        "CreateIndex",
        "DropIndex",
        "Compaction",
        "LoadBalance",
        "CreatePartition",
        "DropPartition",
        "CreateAlias",
        "DropAlias",
        "RenameCollection",
        "DropCollection",
        "AddCollectionField",
    }
)
_SCHEMA: dict[str, tuple[str, ...]] = {
    "CreateCollection": ("CREATE",),
    "ShowCollections": ("USAGE",),
    "DescribeDatabase": ("USAGE",),
    "DatabaseReadOnly": ("USAGE",),
    "DatabaseReadWrite": ("USAGE", "CREATE"),
    "DatabaseAdmin": ("ALL",),
    ALL: ("ALL",),
    "All": ("ALL",),
}
#: on the PostgreSQL database itself
_DATABASE: dict[str, tuple[str, ...]] = {"CreateDatabase": ("CREATE",)}


@dataclass(frozen=True)
class Grant:
    """What one Milvus privilege grants in PostgreSQL: ``privileges`` on ``on``."""

    on: str  # "table", "schema" or "database"
    privileges: tuple[str, ...]


def collection_grant(privilege: str) -> Grant:
    """The table privileges of a Milvus collection privilege."""
    if privilege in _COLLECTION:
        return Grant("table", _COLLECTION[privilege])
    if privilege in _OWNER_ONLY:
        raise Unsupported(
            f"privilege {privilege} is not supported by pgvec: in PostgreSQL only the owner "
            "of a table may do that (make the role a member of the owning role instead)"
        )
    if privilege in _SCHEMA or privilege in _DATABASE:
        raise Unsupported(f"privilege {privilege} is a Global privilege, not a Collection one")
    raise Unsupported(
        f"privilege {privilege} is not supported by pgvec (privilege groups "
        "other than Milvus's built-in ones are not supported)"
    )


def global_grant(privilege: str) -> Grant:
    """The schema (Milvus database) or database privileges of a Milvus global privilege."""
    if privilege in _SCHEMA:
        return Grant("schema", _SCHEMA[privilege])
    if privilege in _DATABASE:
        return Grant("database", _DATABASE[privilege])
    if privilege in _COLLECTION:  # granted on every collection of the database
        return Grant("table", _COLLECTION[privilege])
    raise Unsupported(f"global privilege {privilege} is not supported by pgvec")


def grant_for(object_type: str, privilege: str) -> Grant:
    if object_type == COLLECTION:
        return collection_grant(privilege)
    if object_type == GLOBAL:
        return global_grant(privilege)
    raise Unsupported(f"privileges on {object_type or 'no'} object are not supported by pgvec")


def table_privileges_as_milvus(granted: set[str]) -> list[str]:
    """The Milvus privileges that a table's granted PostgreSQL privileges cover."""
    if granted >= TABLE_ALL:
        return [ALL]
    out = []
    if "SELECT" in granted:
        out += ["Query", "Search"]
    if "INSERT" in granted:
        out.append("Insert")
    if "DELETE" in granted:
        out.append("Delete")
    if {"INSERT", "UPDATE"} <= granted:
        out.append("Upsert")
    return out


def schema_privileges_as_milvus(granted: set[str]) -> list[str]:
    """The Milvus global privileges that a schema's granted PostgreSQL privileges cover."""
    if granted >= SCHEMA_ALL:
        return [ALL]
    out = []
    if "CREATE" in granted:
        out.append("CreateCollection")
    if "USAGE" in granted:
        out.append("ShowCollections")
    return out
