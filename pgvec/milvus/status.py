"""Milvus's status codes, and how pgvec's errors and PostgreSQL's become them.

A Milvus reply carries ``common.Status``: ``code`` (the 2.3+ codes of Milvus's ``merr``
package), ``error_code`` (the legacy enum pymilvus still reads for a few cases:
CollectionNotExists 4 makes ``has_collection`` answer False, IndexNotExist 25 means "no
index") and ``reason``, the message users see in ``MilvusException``. Every error a
handler raises is answered this way; none becomes a gRPC failure, which pymilvus would
retry for a minute.
"""

from __future__ import annotations

import psycopg
from pymilvus.grpc_gen import common_pb2

from pgvec.errors import PgvecError

#: legacy ErrorCode values pgvec uses
UNEXPECTED = 1
COLLECTION_NOT_EXISTS = 4
ILLEGAL_ARGUMENT = 5
INDEX_NOT_EXIST = 25
PERMISSION_DENIED = 52  # ErrorCode.PermissionDenied


class MilvusError(PgvecError):
    """An error answered with Milvus's codes (``code``: merr's, ``error_code``: legacy)."""

    code = 1
    error_code = UNEXPECTED
    input_error = False


class ParameterInvalid(MilvusError):
    code = 1100
    error_code = ILLEGAL_ARGUMENT
    input_error = True


class CollectionNotFound(MilvusError):
    code = 100
    error_code = COLLECTION_NOT_EXISTS


class CollectionNotLoaded(MilvusError):
    code = 101


class PartitionNotFound(MilvusError):
    code = 200


class PartitionNotLoaded(MilvusError):
    code = 201


class IndexNotFound(MilvusError):
    code = 700
    error_code = INDEX_NOT_EXIST


class DatabaseNotFound(MilvusError):
    code = 800


class DatabaseExists(MilvusError):
    code = 802


class PrivilegeDenied(MilvusError):
    code = 1401
    error_code = PERMISSION_DENIED


class NotAuthenticated(MilvusError):
    """merr's PrivilegeNotAuthenticated: a wrong password where one is checked."""

    code = 1400
    error_code = 3  # ErrorCode.ConnectFailed
    input_error = True


class AuthenticationFailed(MilvusError):
    code = 1800
    error_code = 3  # ErrorCode.ConnectFailed


class Unsupported(MilvusError):
    """Milvus has it; pgvec does not yet."""

    code = 1100
    error_code = ILLEGAL_ARGUMENT


#: PostgreSQL SQLSTATE classes and codes that are the caller's input
_INPUT_STATES = ("22", "23", "42601", "42703", "42804", "42883", "0A000")


def status_of(exc: BaseException) -> common_pb2.Status:
    """The Status a reply carries for ``exc``."""
    if isinstance(exc, MilvusError):
        return _status(exc.code, exc.error_code, str(exc), exc.input_error)
    sqlstate = None
    if isinstance(exc, PgvecError):
        sqlstate = exc.sqlstate
    elif isinstance(exc, psycopg.Error) and exc.diag.sqlstate:
        sqlstate = exc.diag.sqlstate
    message = _message(exc)
    if sqlstate == "42501":
        return _status(PrivilegeDenied.code, PERMISSION_DENIED, message, False)
    if sqlstate == "23505":  # a duplicate primary key
        return _status(ParameterInvalid.code, ILLEGAL_ARGUMENT, message, True)
    if sqlstate is not None and sqlstate.startswith(_INPUT_STATES):
        return _status(ParameterInvalid.code, ILLEGAL_ARGUMENT, message, True)
    return _status(1, UNEXPECTED, message, False)


def _message(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        return exc.diag.message_primary + (f" ({detail})" if detail else "")
    return str(exc) or type(exc).__name__


def _status(code: int, error_code: int, reason: str, input_error: bool) -> common_pb2.Status:
    status = common_pb2.Status(code=code, error_code=error_code, reason=reason)
    if input_error:
        status.extra_info["is_input_error"] = "true"
    return status


OK = common_pb2.Status()
