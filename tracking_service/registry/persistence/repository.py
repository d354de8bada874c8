"""Reads and writes of the model registry: registered models, their versions, tags, aliases and
the audit log. Rows never leave this module: callers get domain objects (or plain ids and
numbers), and a name taken by a concurrent twin comes back as AlreadyExists. Every method takes
the connection of the caller's transaction; the repository keeps no state of its own.

Models are addressed by id here; the service resolves names to ids (under a row lock where the
use case writes) so that a rename never splits one transaction's view of a model.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tracking_service.domain.model import TrialLink
from tracking_service.persistence import search_sql
from tracking_service.persistence.repository import delete_tag, unique, upsert, upsert_tags
from tracking_service.persistence.tables import (
    REGISTERED_MODEL,
    model_aliases,
    model_version_tags,
    model_versions,
    permission_tables,
    registered_model_tags,
    registered_models,
    registry_events,
    runs,
)
from tracking_service.registry.domain.model import ModelVersion, RegisteredModel, RegistryAction, RegistryEvent, Stage
from tracking_service.registry.persistence import webhooks
from tuning_common import permissions
from tuning_types.search import Node, OrderKey

# The order of RegisteredModel.latest_versions.
_STAGE_ORDER = {stage: i for i, stage in enumerate(Stage)}

VersionKey = tuple[int, int]  # (model id, version number)



def _readable_model(model_id: sa.ColumnElement, readable: Collection[str]) -> sa.ColumnElement:
    """``model_id`` is of a registered model that the ``readable`` subjects have a role on
    (roles are given on model names)."""
    return model_id.in_(sa.select(registered_models.c.id).where(
        permissions.readable(permission_tables.permissions, registered_models.c.name, REGISTERED_MODEL, readable)))


class RegistryRepository:

    # -- registered models --------------------------------------------------------------------

    def find_model_id(self, conn: Connection, name: str, *, for_update: bool = False) -> int | None:
        query = sa.select(registered_models.c.id).where(registered_models.c.name == name)
        if for_update:
            query = query.with_for_update()
        return conn.execute(query).scalar()

    def insert_model(self, conn: Connection, name: str, description: str, now: int) -> int:
        """The new model's id; AlreadyExists when a concurrent twin took the name first."""
        with unique(f"a registered model named {name!r} exists"):
            result = conn.execute(registered_models.insert().values(
                name=name, description=description, last_version=0, create_ms=now, update_ms=now))
        return int(result.inserted_primary_key[0])

    def ensure_model(self, conn: Connection, name: str, now: int) -> None:
        """Creates the model unless it exists. ON CONFLICT, because concurrent first versions of one new
        model race to create it; on PostgreSQL the losers wait for the winner's commit, then do nothing."""
        conn.execute(upsert(conn, registered_models).values(
            name=name, description="", last_version=0, create_ms=now, update_ms=now).on_conflict_do_nothing())

    def update_model(self, conn: Connection, model_id: int, now: int, *, name: str | None = None,
                     description: str | None = None) -> None:
        """Sets what is given and the update time (only that, to mark the model changed).
        A new ``name`` taken by a concurrent twin first is AlreadyExists."""
        values = {column: value for column, value in (("name", name), ("description", description))
                  if value is not None}
        statement = registered_models.update().where(registered_models.c.id == model_id).values(update_ms=now, **values)
        with unique(f"a registered model named {name!r} exists") if name is not None else contextlib.nullcontext():
            conn.execute(statement)

    def next_version(self, conn: Connection, model_id: int) -> int:
        """Takes the model's next version number; the caller holds the model's row lock."""
        conn.execute(registered_models.update().where(registered_models.c.id == model_id)
                     .values(last_version=registered_models.c.last_version + 1))
        return int(conn.execute(sa.select(registered_models.c.last_version)
                                .where(registered_models.c.id == model_id)).scalar_one())

    def delete_model(self, conn: Connection, model_id: int) -> None:
        # Versions, their tags, the model's tags and aliases go by ON DELETE CASCADE.
        conn.execute(registered_models.delete().where(registered_models.c.id == model_id))

    def get_models(self, conn: Connection, model_ids: Sequence[int]) -> list[RegisteredModel]:
        """Whole models (tags, aliases, latest version per stage) in the order of ``model_ids``."""
        if not model_ids:
            return []
        rows = {row.id: row for row in conn.execute(sa.select(registered_models)
                                                    .where(registered_models.c.id.in_(model_ids)))}
        tag_map: dict[int, dict[str, str]] = defaultdict(dict)
        tag_query = sa.select(registered_model_tags).where(registered_model_tags.c.model_id.in_(model_ids))
        for row in conn.execute(tag_query):
            tag_map[row.model_id][row.key] = row.value
        alias_map: dict[int, dict[str, int]] = defaultdict(dict)
        query = (sa.select(model_aliases).where(model_aliases.c.model_id.in_(model_ids))
                 .order_by(model_aliases.c.model_id, model_aliases.c.alias))
        for row in conn.execute(query):
            alias_map[row.model_id][row.alias] = row.version
        latest = (sa.select(model_versions.c.model_id, sa.func.max(model_versions.c.version))
                  .where(model_versions.c.model_id.in_(model_ids))
                  .group_by(model_versions.c.model_id, model_versions.c.stage))
        latest_map: dict[int, list[ModelVersion]] = defaultdict(list)
        for (model_id, _), version in self._versions(conn, [(row[0], row[1]) for row in conn.execute(latest)]).items():
            latest_map[model_id].append(version)
        out = []
        for model_id in model_ids:
            row = rows.get(model_id)
            if row is None:
                continue
            versions = tuple(sorted(latest_map[model_id], key=lambda v: _STAGE_ORDER[v.stage]))
            out.append(RegisteredModel(row.name, row.description, tag_map[model_id], alias_map[model_id], versions,
                                       row.create_ms, row.update_ms))
        return out

    def search_models(self, conn: Connection, node: Node | None, keys: Sequence[OrderKey], offset: int,
                      limit: int, readable: Collection[str] | None = None) -> list[RegisteredModel]:
        dialect = conn.dialect.name
        query = (sa.select(registered_models.c.id).where(search_sql.registered_model_condition(node, dialect))
                 .order_by(*search_sql.registered_model_ordering(keys, dialect)).offset(offset).limit(limit))
        if readable is not None:
            query = query.where(_readable_model(registered_models.c.id, readable))
        return self.get_models(conn, list(conn.execute(query).scalars()))

    def set_model_tags(self, conn: Connection, model_id: int, items: dict[str, str]) -> None:
        upsert_tags(conn, registered_model_tags, {"model_id": model_id}, items.items())

    def delete_model_tag(self, conn: Connection, model_id: int, key: str) -> bool:
        return delete_tag(conn, registered_model_tags, {"model_id": model_id}, key)

    # -- model versions -----------------------------------------------------------------------

    def insert_version(self, conn: Connection, model_id: int, version: int, *, source: str, storage_uri: str,
                       run_id: str | None, status: str, description: str, user: str, now: int) -> None:
        conn.execute(model_versions.insert().values(
            model_id=model_id, version=version, source=source, storage_uri=storage_uri, run_id=run_id, status=status,
            stage=Stage.NONE.value, description=description, user=user, create_ms=now, update_ms=now))

    def get_versions(self, conn: Connection, keys: Sequence[VersionKey]) -> list[ModelVersion]:
        """Whole versions (tags, aliases, the run's experiment and trial) in the order of ``keys``."""
        found = self._versions(conn, keys)
        return [found[key] for key in keys if key in found]

    def _versions(self, conn: Connection, keys: Sequence[VersionKey]) -> dict[VersionKey, ModelVersion]:
        if not keys:
            return {}
        mv = model_versions.c
        wanted = sa.tuple_(mv.model_id, mv.version).in_(list(keys))
        query = (sa.select(model_versions, registered_models.c.name, runs.c.experiment_id, runs.c.trial_study,
                           runs.c.trial_id, runs.c.trial_number)
                 .join(registered_models, registered_models.c.id == mv.model_id)
                 .outerjoin(runs, runs.c.id == mv.run_id)
                 .where(wanted))
        rows = {(row.model_id, row.version): row for row in conn.execute(query)}
        tag_map: dict[VersionKey, dict[str, str]] = defaultdict(dict)
        tag_query = sa.select(model_version_tags).where(
            sa.tuple_(model_version_tags.c.model_id, model_version_tags.c.version).in_(list(keys)))
        for row in conn.execute(tag_query):
            tag_map[(row.model_id, row.version)][row.key] = row.value
        alias_map: dict[VersionKey, list[str]] = defaultdict(list)
        alias_query = (sa.select(model_aliases)
                       .where(sa.tuple_(model_aliases.c.model_id, model_aliases.c.version).in_(list(keys)))
                       .order_by(model_aliases.c.alias))
        for row in conn.execute(alias_query):
            alias_map[(row.model_id, row.version)].append(row.alias)
        out = {}
        for key, row in rows.items():
            trial = (TrialLink(row.trial_study, row.trial_id or 0, row.trial_number or 0)
                     if row.trial_study is not None else None)
            out[key] = ModelVersion(row.name, row.version, row.source, row.storage_uri, row.run_id, row.status,
                                    Stage(row.stage), row.description, row.user, tag_map[key], tuple(alias_map[key]),
                                    row.create_ms, row.update_ms, row.experiment_id, trial)
        return out

    def search_versions(self, conn: Connection, node: Node | None, keys: Sequence[OrderKey], offset: int,
                        limit: int, readable: Collection[str] | None = None) -> list[ModelVersion]:
        dialect = conn.dialect.name
        query = (sa.select(model_versions.c.model_id, model_versions.c.version)
                 .where(search_sql.model_version_condition(node, dialect))
                 .order_by(*search_sql.model_version_ordering(keys, dialect)).offset(offset).limit(limit))
        if readable is not None:
            query = query.where(_readable_model(model_versions.c.model_id, readable))
        return self.get_versions(conn, [(row.model_id, row.version) for row in conn.execute(query)])

    def versions_in_stage(self, conn: Connection, model_id: int, stage: Stage) -> list[int]:
        query = (sa.select(model_versions.c.version)
                 .where(model_versions.c.model_id == model_id, model_versions.c.stage == stage.value)
                 .order_by(model_versions.c.version))
        return list(conn.execute(query).scalars())

    def update_version(self, conn: Connection, model_id: int, version: int, now: int, *, stage: Stage | None = None,
                       description: str | None = None) -> None:
        """Sets what is given and the update time (only that, to mark the version changed)."""
        values = {column: value for column, value in (
            ("stage", None if stage is None else stage.value), ("description", description)) if value is not None}
        conn.execute(model_versions.update().where(model_versions.c.model_id == model_id,
                                                   model_versions.c.version == version)
                     .values(update_ms=now, **values))

    def delete_version(self, conn: Connection, model_id: int, version: int) -> list[str]:
        """Deletes the version (its tags cascade) and the aliases pointing at it; returns those aliases."""
        aliases = self.aliases_of(conn, model_id, version)
        conn.execute(model_aliases.delete().where(model_aliases.c.model_id == model_id,
                                                  model_aliases.c.version == version))
        conn.execute(model_versions.delete().where(model_versions.c.model_id == model_id,
                                                   model_versions.c.version == version))
        return aliases

    def set_version_tags(self, conn: Connection, model_id: int, version: int, items: dict[str, str]) -> None:
        upsert_tags(conn, model_version_tags, {"model_id": model_id, "version": version}, items.items())

    def delete_version_tag(self, conn: Connection, model_id: int, version: int, key: str) -> bool:
        return delete_tag(conn, model_version_tags, {"model_id": model_id, "version": version}, key)

    # -- aliases ------------------------------------------------------------------------------

    def alias_version(self, conn: Connection, model_id: int, alias: str) -> int | None:
        return conn.execute(sa.select(model_aliases.c.version).where(
            model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)).scalar()

    def aliases_of(self, conn: Connection, model_id: int, version: int) -> list[str]:
        return list(conn.execute(sa.select(model_aliases.c.alias).where(
            model_aliases.c.model_id == model_id, model_aliases.c.version == version).order_by(model_aliases.c.alias))
            .scalars())

    def set_alias(self, conn: Connection, model_id: int, alias: str, version: int) -> None:
        statement = upsert(conn, model_aliases).values(model_id=model_id, alias=alias, version=version)
        conn.execute(statement.on_conflict_do_update(index_elements=["model_id", "alias"], set_={"version": version}))

    def delete_alias(self, conn: Connection, model_id: int, alias: str) -> None:
        conn.execute(model_aliases.delete().where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias))

    # -- audit log ----------------------------------------------------------------------------

    def add_event(self, conn: Connection, model_name: str, version: int, action: RegistryAction, now: int, *,
                  from_value: str = "", to_value: str = "", alias: str = "", actor: str = "", reason: str = "") -> None:
        result = conn.execute(registry_events.insert().values(
            model_name=model_name, version=version, action=action.value, from_value=from_value, to_value=to_value,
            alias=alias, actor=actor, reason=reason, time_ms=now))
        # The webhooks' deliveries of the event, in its transaction (the outbox: see webhooks.py).
        webhooks.enqueue(conn, int(result.inserted_primary_key[0]), action, model_name, version, now,
                            from_value=from_value, to_value=to_value, alias=alias, actor=actor, reason=reason)

    def rename_events(self, conn: Connection, old_name: str, new_name: str) -> None:
        conn.execute(registry_events.update().where(registry_events.c.model_name == old_name)
                     .values(model_name=new_name))

    def select_events(self, conn: Connection, model_name: str, version: int, before_id: int | None,
                      limit: int) -> list[RegistryEvent]:
        """Newest first; ``version`` 0 means every version's and the model's; ``before_id`` resumes a page."""
        c = registry_events.c
        query = sa.select(registry_events).where(c.model_name == model_name)
        if version:
            query = query.where(c.version == version)
        if before_id is not None:
            query = query.where(c.id < before_id)
        query = query.order_by(c.id.desc()).limit(limit)
        return [RegistryEvent(row.id, row.model_name, row.version, RegistryAction(row.action), row.from_value,
                              row.to_value, row.alias, row.actor, row.reason, row.time_ms)
                for row in conn.execute(query)]
