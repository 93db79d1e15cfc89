"""Milvus users and roles are PostgreSQL roles: the RBAC RPCs, a mixin of MilvusService.

- A Milvus **user** is a PostgreSQL role with LOGIN; a Milvus **role** is one without.
  Both are cluster-wide, as PostgreSQL's roles are. Every statement runs as the caller,
  so PostgreSQL decides who may do what: creating users and roles needs CREATEROLE,
  granting on a table needs its ownership or the grant option.
- ``create_user`` is ``CREATE ROLE name LOGIN PASSWORD ...``. The password travels to
  PostgreSQL only as the SCRAM-SHA-256 verifier computed here (as psql's ``\\password``
  does): the plaintext is in no statement, no server log and no pgvec log.
- ``update_password`` checks the old password by connecting with it (where pg_hba.conf
  trusts a connection instead of checking passwords, any old password passes), then
  ``ALTER ROLE ... PASSWORD``; the user's pooled connections are closed, so the old
  password stops working through pgvec too.
- ``grant_role`` / ``revoke_role`` are ``GRANT role TO user`` / ``REVOKE``.
- Milvus's built-in roles: ``public`` is PostgreSQL's PUBLIC (every role is in it;
  privileges granted to it are granted TO PUBLIC); ``admin`` is the SUPERUSER attribute
  (superusers are described with role ``admin``; making one is ``ALTER ROLE ... SUPERUSER``
  in SQL, not a grant). There is no ``root`` user: pgvec creates none (the embedded
  server's superuser is ``postgres``).
- Descriptions of users and roles are ``COMMENT ON ROLE``.
- Privileges map as :mod:`pgvec.milvus.privileges` says; describe_role reads them back
  from the catalogs (``aclexplode`` of the collections' tables and the schema).
  Privilege groups other than Milvus's built-in ones are not supported.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import psycopg
from psycopg import sql
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from pgvec.milvus import catalog
from pgvec.milvus.base import ServiceBase
from pgvec.milvus.context import Caller
from pgvec.milvus.privileges import ALL, COLLECTION, GLOBAL, Grant, grant_for
from pgvec.milvus.privileges import schema_privileges_as_milvus as schema_as_milvus
from pgvec.milvus.privileges import table_privileges_as_milvus as table_as_milvus
from pgvec.milvus.rpc import rpc
from pgvec.milvus.status import MilvusError, NotAuthenticated, ParameterInvalid, Unsupported

ADMIN = "admin"
PUBLIC = "public"

_ROLE_SQL = "SELECT oid, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s"

_USERS_SQL = """
SELECT r.rolname::text, r.rolsuper, coalesce(shobj_description(r.oid, 'pg_authid'), ''),
       array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r
WHERE r.rolcanlogin AND r.rolname !~ '^pg_' AND (%(name)s::text IS NULL OR r.rolname = %(name)s)
ORDER BY 1
"""

_ROLES_SQL = """
SELECT r.rolname::text, coalesce(shobj_description(r.oid, 'pg_authid'), ''),
       array(SELECT u.rolname::text FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
             WHERE m.roleid = r.oid AND u.rolcanlogin ORDER BY 1)
FROM pg_roles r
WHERE NOT r.rolcanlogin AND r.rolname !~ '^pg_' AND (%(name)s::text IS NULL OR r.rolname = %(name)s)
ORDER BY 1
"""

_SUPERUSERS_SQL = "SELECT rolname::text FROM pg_roles WHERE rolsuper AND rolcanlogin ORDER BY 1"

#: privileges granted to a grantee (0: PUBLIC) on the collections of a schema
_TABLE_GRANTS_SQL = """
SELECT c.relname::text, g.privilege_type, coalesce(gr.rolname::text, '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) g
LEFT JOIN pg_roles gr ON gr.oid = g.grantor
WHERE n.nspname = %(schema)s AND g.grantee = %(grantee)s
  AND c.oid IN (SELECT relid FROM pgvec.vector_columns)
  AND (%(name)s::text IS NULL OR c.relname = %(name)s)
ORDER BY 1, 2
"""

_SCHEMA_GRANTS_SQL = """
SELECT g.privilege_type, coalesce(gr.rolname::text, '')
FROM pg_namespace n
CROSS JOIN LATERAL aclexplode(n.nspacl) g
LEFT JOIN pg_roles gr ON gr.oid = g.grantor
WHERE n.nspname = %(schema)s AND g.grantee = %(grantee)s
ORDER BY 1
"""

#: objects a role owns, in any database: DROP OWNED BY would drop them
_OWNS_SQL = "SELECT count(*) FROM pg_shdepend WHERE refobjid = %s AND deptype = 'o'"


def _password(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ParameterInvalid("the password is not base64 of UTF-8 text") from None


def _verifier(conn: psycopg.AsyncConnection[Any], user: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password``: all it is sent."""
    raw = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    return bytes(raw).decode("ascii")


async def _with_password(
    conn: psycopg.AsyncConnection[Any], statement: str, user: str, password: str, description: str
) -> None:
    """CREATE or ALTER ROLE ``user`` with ``password`` (as its verifier) and description."""
    async with conn.transaction():
        verifier = _verifier(conn, user, password)
        await conn.execute(sql.SQL(statement).format(sql.Identifier(user), sql.Literal(verifier)))
        if description:
            await _comment(conn, user, description)


def _grantee(role: str) -> sql.Composable:
    if role == ADMIN:
        raise Unsupported(
            "role admin is PostgreSQL's SUPERUSER attribute: it holds every privilege, "
            "and privileges are not granted to it"
        )
    return sql.SQL("PUBLIC") if role == PUBLIC else sql.Identifier(role)


async def _role(conn: psycopg.AsyncConnection[Any], name: str) -> tuple[int, bool, bool] | None:
    """(oid, can log in, superuser) of role ``name``, or None."""
    cur = await conn.execute(_ROLE_SQL, (name,))
    row = await cur.fetchone()
    return None if row is None else (int(row[0]), bool(row[1]), bool(row[2]))


async def _comment(conn: psycopg.AsyncConnection[Any], role: str, text: str) -> None:
    await conn.execute(
        sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role), sql.Literal(text))
    )


def _check_new_role(name: str) -> None:
    if name in (ADMIN, PUBLIC):
        raise ParameterInvalid(f"role {name} is a built-in role")


class UsersRPC(ServiceBase):
    """CreateCredential ... SelectGrant: users, roles and privileges as PostgreSQL's."""

    # -- users --------------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateCredential(self, request: Any, caller: Caller) -> Any:
        user, password = request.username, _password(request.password)
        _check_new_role(user)
        async with self.connections.connection(caller) as conn:
            await _with_password(
                conn, "CREATE ROLE {} LOGIN PASSWORD {}", user, password, request.description
            )
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def UpdateCredential(self, request: Any, caller: Caller) -> Any:
        user = request.username
        if not request.oldPassword and not request.newPassword:  # update_user
            async with self.connections.connection(caller) as conn:
                await _comment(conn, user, request.description)
            return common_pb2.Status()
        old, new = _password(request.oldPassword), _password(request.newPassword)
        if not await self.connections.verify(user, old):
            raise NotAuthenticated(f"old password not correct for {user}")
        async with self.connections.connection(caller) as conn:
            await _with_password(conn, "ALTER ROLE {} PASSWORD {}", user, new, request.description)
        await self.connections.forget(user)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def DeleteCredential(self, request: Any, caller: Caller) -> Any:
        user = request.username
        async with self.connections.connection(caller) as conn:
            found = await _role(conn, user)
            if found is None:
                return common_pb2.Status()  # as dropping a missing collection
            if not found[1]:
                raise ParameterInvalid(f"{user} is a role, not a user: drop it with drop_role")
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
        await self.connections.forget(user)
        return common_pb2.Status()

    @rpc(milvus_pb2.ListCredUsersResponse)
    async def ListCredUsers(self, request: Any, caller: Caller) -> Any:
        async with self.connections.connection(caller) as conn:
            cur = await conn.execute(_USERS_SQL, {"name": None})
            rows = await cur.fetchall()
        return milvus_pb2.ListCredUsersResponse(usernames=[r[0] for r in rows])

    @rpc(milvus_pb2.SelectUserResponse)
    async def SelectUser(self, request: Any, caller: Caller) -> Any:
        name = request.user.name if request.HasField("user") and request.user.name else None
        async with self.connections.connection(caller) as conn:
            cur = await conn.execute(_USERS_SQL, {"name": name})
            rows = await cur.fetchall()
        out = milvus_pb2.SelectUserResponse()
        for user, superuser, description, roles in rows:
            result = out.results.add(description=description)
            result.user.name = user
            if request.include_role_info:
                for role in ([ADMIN] if superuser else []) + list(roles):
                    result.roles.add(name=role)
        return out

    # -- roles --------------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreateRole(self, request: Any, caller: Caller) -> Any:
        name = request.entity.name
        _check_new_role(name)
        async with self.connections.connection(caller) as conn, conn.transaction():
            await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            if request.entity.description:
                await _comment(conn, name, request.entity.description)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def AlterRole(self, request: Any, caller: Caller) -> Any:
        _check_new_role(request.role_name)
        async with self.connections.connection(caller) as conn:
            await _comment(conn, request.role_name, request.description)
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def DropRole(self, request: Any, caller: Caller) -> Any:
        name = request.role_name
        if name in (ADMIN, PUBLIC):
            raise ParameterInvalid(f"the role[{name}] is a default role, which can't be dropped")
        async with self.connections.connection(caller) as conn, conn.transaction():
            found = await _role(conn, name)
            if found is None:
                raise ParameterInvalid(f"role {name} does not exist")
            if found[1]:
                raise ParameterInvalid(f"{name} is a user, not a role: drop it with drop_user")
            ident = sql.Identifier(name)
            if request.force_drop:
                cur = await conn.execute(_OWNS_SQL, (found[0],))
                row = await cur.fetchone()
                if row and row[0]:
                    raise MilvusError(
                        f"role {name} owns objects: reassign them in SQL (REASSIGN OWNED) first"
                    )
                await conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))  # its grants
            await conn.execute(sql.SQL("DROP ROLE {}").format(ident))
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def OperateUserRole(self, request: Any, caller: Caller) -> Any:
        user, role = request.username, request.role_name
        add = request.type == milvus_pb2.AddUserToRole
        if role == PUBLIC:
            if add:
                return common_pb2.Status()  # every role is in PUBLIC
            raise ParameterInvalid("every user is in role public")
        if role == ADMIN:
            raise Unsupported(
                "role admin is PostgreSQL's SUPERUSER attribute: ALTER ROLE ... SUPERUSER in SQL"
            )
        async with self.connections.connection(caller) as conn:
            found = await _role(conn, user)
            if found is None or not found[1]:
                raise ParameterInvalid(f"user {user} does not exist")
            verb = "GRANT {} TO {}" if add else "REVOKE {} FROM {}"
            await conn.execute(sql.SQL(verb).format(sql.Identifier(role), sql.Identifier(user)))
        return common_pb2.Status()

    @rpc(milvus_pb2.SelectRoleResponse)
    async def SelectRole(self, request: Any, caller: Caller) -> Any:
        name = request.role.name if request.HasField("role") and request.role.name else None
        async with self.connections.connection(caller) as conn:
            rows: list[tuple[str, str, list[str]]] = []
            if name in (None, ADMIN):
                cur = await conn.execute(_SUPERUSERS_SQL)
                rows.append((ADMIN, "PostgreSQL superusers", [r[0] for r in await cur.fetchall()]))
            if name in (None, PUBLIC):
                rows.append((PUBLIC, "PostgreSQL's PUBLIC: every role", []))
            if name not in (ADMIN, PUBLIC):
                cur = await conn.execute(_ROLES_SQL, {"name": name})
                rows += [(r[0], r[1], list(r[2])) for r in await cur.fetchall()]
        out = milvus_pb2.SelectRoleResponse()
        for role, description, users in rows:
            result = out.results.add()
            result.role.name = role
            result.role.description = description
            if request.include_user_info:
                for user in users:
                    result.users.add(name=user)
        return out

    # -- privileges ---------------------------------------------------------------

    @rpc(common_pb2.Status)
    async def OperatePrivilege(self, request: Any, caller: Caller) -> Any:
        e = request.entity
        await self._operate_privilege(
            caller,
            e.role.name,
            e.object.name,
            e.object_name,
            e.db_name or caller.db,
            e.grantor.privilege.name,
            grant=request.type == milvus_pb2.Grant,
        )
        return common_pb2.Status()

    @rpc(common_pb2.Status)
    async def OperatePrivilegeV2(self, request: Any, caller: Caller) -> Any:
        db, name = request.db_name or caller.db, request.collection_name
        if db == ALL:
            raise Unsupported("privileges on every database ('*') are not supported by pgvec")
        await self._operate_privilege(
            caller,
            request.role.name,
            GLOBAL if name == ALL else COLLECTION,
            name,
            db,
            request.grantor.privilege.name,
            grant=request.type == milvus_pb2.Grant,
        )
        return common_pb2.Status()

    async def _operate_privilege(
        self,
        caller: Caller,
        role: str,
        object_type: str,
        object_name: str,
        db: str,
        privilege: str,
        *,
        grant: bool,
    ) -> None:
        found = grant_for(object_type, privilege)
        grantee = _grantee(role)
        schema = sql.Identifier(catalog.schema_of(db))
        async with self.connections.connection(caller) as conn, conn.transaction():
            target = await _target(conn, found, schema, db, object_name)
            privileges = sql.SQL(", ").join(sql.SQL(p) for p in found.privileges)  # ours
            verb = "GRANT {} ON {} TO {}" if grant else "REVOKE {} ON {} FROM {}"
            await conn.execute(sql.SQL(verb).format(privileges, target, grantee))
            if grant and found.on == "table" and catalog.schema_of(db) != "public":
                # a collection is reached through its database: USAGE on the schema
                await conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, grantee)
                )

    @rpc(milvus_pb2.SelectGrantResponse)
    async def SelectGrant(self, request: Any, caller: Caller) -> Any:
        e = request.entity
        role, db = e.role.name, e.db_name or caller.db
        schema = catalog.schema_of(db)
        object_type = e.object.name if e.HasField("object") else ""
        out = milvus_pb2.SelectGrantResponse()

        def add(obj: str, name: str, privilege: str, grantor: str) -> None:
            g = out.entities.add(object_name=name, db_name=catalog.db_name_of(schema))
            g.role.name = role
            g.object.name = obj
            g.grantor.user.name = grantor
            g.grantor.privilege.name = privilege

        if role == ADMIN:
            add(GLOBAL, ALL, ALL, "")
            return out
        async with self.connections.connection(caller) as conn:
            grantee = 0
            if role != PUBLIC:
                found = await _role(conn, role)
                if found is None:
                    raise ParameterInvalid(f"role {role} does not exist")
                grantee = found[0]
            args = {"schema": schema, "grantee": grantee, "name": e.object_name or None}
            tables: dict[str, tuple[set[str], str]] = {}
            if object_type in ("", COLLECTION):
                cur = await conn.execute(_TABLE_GRANTS_SQL, args)
                for table, privilege, grantor in await cur.fetchall():
                    tables.setdefault(table, (set(), grantor))[0].add(privilege)
            granted: set[str] = set()
            schema_grantor = ""
            if object_type in ("", GLOBAL):
                cur = await conn.execute(_SCHEMA_GRANTS_SQL, args)
                for privilege, grantor in await cur.fetchall():
                    granted.add(privilege)
                    schema_grantor = grantor
        for table, (privileges, grantor) in tables.items():
            for privilege in table_as_milvus(privileges):
                add(COLLECTION, table, privilege, grantor)
        for privilege in schema_as_milvus(granted):
            add(GLOBAL, ALL, privilege, schema_grantor)
        return out

    # -- privilege groups ---------------------------------------------------------

    @rpc(common_pb2.Status)
    async def CreatePrivilegeGroup(self, request: Any, caller: Caller) -> Any:
        raise _no_groups()

    @rpc(common_pb2.Status)
    async def DropPrivilegeGroup(self, request: Any, caller: Caller) -> Any:
        raise _no_groups()

    @rpc(common_pb2.Status)
    async def OperatePrivilegeGroup(self, request: Any, caller: Caller) -> Any:
        raise _no_groups()

    @rpc(milvus_pb2.ListPrivilegeGroupsResponse)
    async def ListPrivilegeGroups(self, request: Any, caller: Caller) -> Any:
        raise _no_groups()


def _no_groups() -> Unsupported:
    return Unsupported(
        "privilege groups are not supported by pgvec: grant privileges to a role, and the "
        "role to users (the built-in groups CollectionReadOnly, CollectionReadWrite, "
        "CollectionAdmin, DatabaseReadOnly, DatabaseReadWrite and DatabaseAdmin can be granted)"
    )


async def _target(
    conn: psycopg.AsyncConnection[Any],
    grant: Grant,
    schema: sql.Identifier,
    db: str,
    object_name: str,
) -> sql.Composable:
    """What a GRANT names: a collection's table, all tables of a schema, the schema, or
    the database."""
    if grant.on == "table":
        if object_name in ("", ALL):
            return sql.SQL("ALL TABLES IN SCHEMA {}").format(schema)
        coll = await catalog.resolve(conn, db, object_name)
        return sql.SQL("TABLE {}").format(coll.ident)
    if grant.on == "schema":
        await catalog.list_names(conn, db)  # raises if there is no such database
        return sql.SQL("SCHEMA {}").format(schema)
    cur = await conn.execute("SELECT current_database()::text")
    row = await cur.fetchone()
    assert row is not None
    return sql.SQL("DATABASE {}").format(sql.Identifier(row[0]))
