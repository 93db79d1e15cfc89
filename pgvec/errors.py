"""The one exception hierarchy of pgvec.

Every error carries the SQLSTATE sent to PostgreSQL clients and the Milvus status code
sent to gRPC clients, so the edges (proxy, Milvus service, CLI) convert without guessing.
Classes register by SQLSTATE, in the way psycopg's error classes do.
"""

from __future__ import annotations

from typing import ClassVar


class PgvecError(Exception):
    """Root of every error pgvec raises on purpose."""

    sqlstate: ClassVar[str] = "XX000"
    #: Milvus ErrorCode (common.proto): 1 = UnexpectedError.
    milvus_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail
        #: 1-based character position in the statement of what is wrong (PostgreSQL's
        #: error position: psql's ``LINE 1: ... ^``), where known
        self.position: int | None = None

    def __str__(self) -> str:
        return self.message


class DataError(PgvecError):
    """A value is wrong: SQLSTATE class 22."""

    sqlstate = "22000"
    milvus_code = 5  # IllegalArgument


class InvalidVector(DataError):
    """Text that is not a vector, e.g. ``'[1,2,x]'``."""

    sqlstate = "22P02"


class NonFiniteVector(DataError):
    """NaN or infinity in a vector."""

    sqlstate = "22000"


class DimensionMismatch(DataError):
    """A vector with the wrong number of dimensions."""

    sqlstate = "22000"
    milvus_code = 5


class TooManyDimensions(DimensionMismatch):
    """A vector of more dimensions than pgvector's type holds (program_limit_exceeded)."""

    sqlstate = "54000"


class InvalidParameter(DataError):
    """An index or search option that is unknown or out of range."""

    sqlstate = "22023"


class FeatureNotSupported(PgvecError):
    sqlstate = "0A000"
    milvus_code = 1


class DatatypeMismatch(PgvecError):
    """An operator class or metric of the other kind of vector (float or binary)."""

    sqlstate = "42804"
    milvus_code = 5  # IllegalArgument


class InvalidTableDefinition(PgvecError):
    """A table pgvec cannot index, e.g. one without a single-column primary key."""

    sqlstate = "42P16"
    milvus_code = 5


class UndefinedObject(PgvecError):
    sqlstate = "42704"
    milvus_code = 4  # CollectionNotExists (closest)


class UndefinedColumn(PgvecError):
    sqlstate = "42703"
    milvus_code = 5


class DuplicateObject(PgvecError):
    sqlstate = "42710"
    milvus_code = 5


class DuplicateRelation(DuplicateObject):
    """A relation of that name exists already (``relation "x" already exists``)."""

    sqlstate = "42P07"


class InsufficientPrivilege(PgvecError):
    """The client's role may not do this (``must be owner of table t``)."""

    sqlstate = "42501"


class InFailedTransaction(PgvecError):
    """A statement sent in a transaction that failed, before its ROLLBACK."""

    sqlstate = "25P02"


class ActiveTransaction(PgvecError):
    """A statement that cannot run inside a transaction block."""

    sqlstate = "25001"


class ObjectInUse(PgvecError):
    """The index is busy, e.g. being built."""

    sqlstate = "55006"


class ObjectNotInPrerequisiteState(PgvecError):
    sqlstate = "55000"


class IndexNotLoaded(ObjectNotInPrerequisiteState):
    """A search on an index released from memory (Milvus: "collection not loaded")."""

    milvus_code = 1  # Milvus 2.3+ reports merr 101, CollectionNotLoaded


class ProtocolViolation(PgvecError):
    """The peer sent bytes that are not a valid protocol stream (a message too long or
    too short for its type, an unknown message type, a bad startup packet)."""

    sqlstate = "08P01"


class QueryCanceled(PgvecError):
    """An index build stopped because its index was dropped."""

    sqlstate = "57014"


class InternalError(PgvecError):
    """A bug: an unexpected exception while pgvec answered a statement."""

    sqlstate = "XX000"

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        """The error a client gets for the unexpected exception ``exc``."""
        return cls(
            f"pgvec internal error: {exc!r}",
            hint="The statement failed; the session is still usable. Please report this "
            "with the pgvec server log.",
        )


class EngineError(PgvecError):
    """The index engine failed (FAISS, files on disk)."""

    sqlstate = "XX000"


class CorruptIndex(EngineError):
    sqlstate = "XX001"


class CatalogError(PgvecError):
    """The pgvec schema is missing, too old or inconsistent."""

    sqlstate = "55000"


class UpstreamError(PgvecError):
    """An error PostgreSQL raised for a statement pgvec ran on a client's behalf."""

    def __init__(self, sqlstate: str, message: str, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.sqlstate = sqlstate  # type: ignore[misc]
