"""Where a service keeps the roles given on its resources, and the audit of every change to them.

Each service keeps the permissions of its own resources in its own database (studies in the
suggestion service's; experiments and registered models in the tracking service's), in two
tables of the same shape, defined here once for both schemas (:func:`define_tables`; each
service's migration creates them). Their names start with a prefix of the service's own
(``study_`` for the suggestion service, none for the tracking service), as both services'
schemas may live in one database:

- ``permissions``: one row per (resource type, resource id, subject) with the role given.
  Subjects are ``user:NAME`` or ``group:NAME`` (:mod:`tuning_common.access`).
- ``permission_audit``: who changed what and when: a grant (or a changed role), a revoke,
  the rows dropped with a deleted resource and the rows moved to a renamed one. Rows are only
  ever added.

A change and its audit row are written in one transaction, so neither exists without the other.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tuning_common.database import Database
from tuning_common.errors import NotFound

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Audit actions.
GRANT, REVOKE, DROP, MOVE = "GRANT", "REVOKE", "DROP", "MOVE"


@dataclass(frozen=True)
class Tables:
    permissions: sa.Table
    audit: sa.Table


def define_tables(metadata: sa.MetaData, prefix: str) -> Tables:
    """The two tables, in ``metadata`` (a service's schema), their names starting with ``prefix``."""
    permissions = sa.Table(
        f"{prefix}permissions",
        metadata,
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(250), primary_key=True),
        sa.Column("subject", sa.String(260), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        # Listings ask "which resources of this type may these subjects read".
        sa.Index(f"ix_{prefix}permissions_subject", "resource_type", "subject"),
    )
    audit = sa.Table(
        f"{prefix}permission_audit",
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(250), nullable=False),
        sa.Column("subject", sa.String(260), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.String(250), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    return Tables(permissions, audit)


def create_tables_v1(op, prefix: str) -> None:
    """Creates the two tables as :func:`define_tables` first declared them, with Alembic's
    ``op``: the migrations that add them (0007 in both services) call it. Never change it: a later change is a new migration in each service."""
    op.create_table(
        f"{prefix}permissions",
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(250), primary_key=True),
        sa.Column("subject", sa.String(260), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_index(f"ix_{prefix}permissions_subject", f"{prefix}permissions", ["resource_type", "subject"])
    op.create_table(
        f"{prefix}permission_audit",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(250), nullable=False),
        sa.Column("subject", sa.String(260), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.String(250), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )


def drop_tables_v1(op, prefix: str) -> None:
    """Undoes :func:`create_tables_v1`."""
    op.drop_table(f"{prefix}permission_audit")
    op.drop_index(f"ix_{prefix}permissions_subject", table_name=f"{prefix}permissions")
    op.drop_table(f"{prefix}permissions")


@dataclass(frozen=True)
class Resource:
    """A resource roles are given on: its type (``study``, ``experiment``, ``registered_model``)
    and id (a study's or a registered model's name, an experiment's id), as text."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type.replace('_', ' ')} {self.id!r}"


@dataclass(frozen=True)
class AuditEntry:
    time_ms: int
    actor: str
    action: str
    resource: Resource
    subject: str
    role: str
    detail: str


def readable(permissions: sa.Table, column: sa.ColumnElement, resource_type: str,
             subjects: Collection[str]) -> sa.ColumnElement:
    """A condition on ``column`` (the resources' id column) keeping the resources of
    ``resource_type`` that ``subjects`` have a role on: listings filter in their own query,
    so that paging stays right."""
    ids = sa.select(sa.cast(permissions.c.resource_id, column.type)).where(
        permissions.c.resource_type == resource_type, permissions.c.subject.in_(subjects))
    return column.in_(ids)


class PermissionStore:
    """Reads and changes the ``permissions`` of one database; every change is audited."""

    def __init__(self, db: Database, tables: Tables):
        self.db = db
        self.tables = tables

    # --- reading ---

    def roles(self, resource: Resource, subjects: Collection[str]) -> list[str]:
        """The roles ``subjects`` have on ``resource`` (one per subject with a row)."""
        table = self.tables.permissions
        query = sa.select(table.c.role).where(table.c.resource_type == resource.type,
                                              table.c.resource_id == resource.id, table.c.subject.in_(subjects))
        return self.db.run(lambda conn: list(conn.execute(query).scalars()), write=False)

    def list(self, resource: Resource) -> list[tuple[str, str]]:
        """``(subject, role)`` of every row on ``resource``, by subject."""
        table = self.tables.permissions
        query = (sa.select(table.c.subject, table.c.role)
                 .where(table.c.resource_type == resource.type, table.c.resource_id == resource.id)
                 .order_by(table.c.subject))
        return self.db.run(lambda conn: [tuple(row) for row in conn.execute(query)], write=False)

    def audit(self, resource: Resource | None = None) -> list[AuditEntry]:
        """The audit, oldest first (of one resource, or all)."""
        table = self.tables.audit
        query = sa.select(table).order_by(table.c.id)
        if resource is not None:
            query = query.where(table.c.resource_type == resource.type, table.c.resource_id == resource.id)
        return self.db.run(lambda conn: [
            AuditEntry(row.time_ms, row.actor, row.action, Resource(row.resource_type, row.resource_id),
                       row.subject, row.role, row.detail) for row in conn.execute(query)], write=False)

    # --- changing ---

    def set(self, resource: Resource, subject: str, role: str, actor: str) -> None:
        """Gives ``subject`` ``role`` on ``resource`` (replacing the role it had)."""

        def work(conn: Connection) -> None:
            self._upsert(conn, resource, subject, role)
            self._audit(conn, actor, GRANT, resource, subject, role)

        self.db.run(work, write=True)

    def reset(self, conn: Connection, resource: Resource, subject: str, role: str, actor: str) -> None:
        """Leaves ``subject`` the only one with a role on ``resource``, in the caller's transaction
        ``conn`` (the one that makes the resource): a resource just made (its creator) never
        inherits the roles of a deleted one that had the same name."""
        table = self.tables.permissions
        conn.execute(sa.delete(table).where(table.c.resource_type == resource.type,
                                            table.c.resource_id == resource.id, table.c.subject != subject))
        self._upsert(conn, resource, subject, role)
        self._audit(conn, actor, GRANT, resource, subject, role, detail="creator")

    def delete(self, resource: Resource, subject: str, actor: str) -> None:
        """Takes ``subject``'s role on ``resource`` away; NotFound (PERMISSION_NOT_FOUND) if it had none."""
        table = self.tables.permissions

        def work(conn: Connection) -> None:
            deleted = conn.execute(sa.delete(table).where(
                table.c.resource_type == resource.type, table.c.resource_id == resource.id,
                table.c.subject == subject).returning(table.c.role)).scalars().all()
            if not deleted:
                raise NotFound(f"{subject} has no role on {resource}", reason="PERMISSION_NOT_FOUND")
            self._audit(conn, actor, REVOKE, resource, subject, deleted[0])

        self.db.run(work, write=True)

    def drop(self, resource: Resource, actor: str) -> None:
        """Forgets every role on a deleted resource, so that one made later under the same name
        does not inherit them."""
        table = self.tables.permissions

        def work(conn: Connection) -> None:
            if conn.execute(sa.delete(table).where(table.c.resource_type == resource.type,
                                                   table.c.resource_id == resource.id)).rowcount:
                self._audit(conn, actor, DROP, resource, "", "")

        self.db.run(work, write=True)

    def move(self, resource: Resource, new_id: str, actor: str) -> None:
        """Carries the roles on ``resource`` over to its new id (a renamed registered model)."""
        table = self.tables.permissions

        def work(conn: Connection) -> None:
            if conn.execute(sa.update(table).where(table.c.resource_type == resource.type,
                                                   table.c.resource_id == resource.id)
                            .values(resource_id=new_id)).rowcount:
                self._audit(conn, actor, MOVE, resource, "", "", detail=new_id)

        self.db.run(work, write=True)

    def _upsert(self, conn: Connection, resource: Resource, subject: str, role: str) -> None:
        # One statement, so that two grants to the same subject at once both succeed (the last wins).
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[conn.dialect.name]
        statement = insert(self.tables.permissions).values(resource_type=resource.type, resource_id=resource.id,
                                                           subject=subject, role=role)
        conn.execute(statement.on_conflict_do_update(index_elements=["resource_type", "resource_id", "subject"],
                                                     set_={"role": role}))

    def _audit(self, conn: Connection, actor: str, action: str, resource: Resource, subject: str, role: str,
               detail: str = "") -> None:
        conn.execute(sa.insert(self.tables.audit).values(
            time_ms=int(time.time() * 1000), actor=actor, action=action, resource_type=resource.type,
            resource_id=resource.id, subject=subject, role=role, detail=detail))
