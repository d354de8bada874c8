"""Use cases of the model registry: registered models, versions, stages, aliases and the audit log.

As in :mod:`tracking_service.service`, each use case is one short transaction, validated before
it starts. Writes to a model take its row lock first, so concurrent versions get distinct
numbers and concurrent transitions of one model happen one after the other. Every change of a
version's stage or aliases, and every deletion or rename, is written to the audit log in the
same transaction as the change itself.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence

from tracking_service.artifacts import ArtifactStore, clean_relative_path
from tracking_service.domain.model import MAX_TAG_VALUE, check_key, check_run_id, check_tags, check_text
from tracking_service.persistence import Transaction
from tracking_service.persistence.repository import RunRepository
from tracking_service.registry.domain.model import (
    READY,
    RUNS_SCHEME,
    ModelVersion,
    RegisteredModel,
    RegistryAction,
    RegistryEvent,
    Stage,
    check_actor,
    check_alias,
    check_description,
    check_reason,
    check_version,
)
from tracking_service.registry.persistence.repository import RegistryRepository
from tracking_service.service import live_run, now_ms, paged_search
from tuning_common import paging
from tuning_common.access import record_creation
from tuning_common.database import Database
from tuning_common.errors import AlreadyExists, InvalidArgument, NotFound
from tuning_common.paging import page_size
from tuning_types import search


class RegistryService:
    def __init__(self, db: Database, store: ArtifactStore):
        self.db, self.store = db, store
        self.repo, self.runs = RegistryRepository(), RunRepository()

    # -- registered models ----------------------------------------------------------------------

    def create_model(self, name: str, description: str = "", tags: dict[str, str] | None = None) -> RegisteredModel:
        check_key(name, "name")
        check_description(description)
        tags = check_tags(tags or {}, "tags")

        def work(conn: Transaction) -> RegisteredModel:
            if self.repo.find_model_id(conn, name) is not None:
                raise AlreadyExists(f"a registered model named {name!r} exists")
            model_id = self.repo.insert_model(conn, name, description, now_ms())
            self.repo.set_model_tags(conn, model_id, tags)
            record_creation(conn, name)
            return self.repo.get_models(conn, [model_id])[0]

        return self.db.run(work, write=True)

    def get_model(self, name: str) -> RegisteredModel:
        check_key(name, "name")
        return self.db.run(lambda conn: self.repo.get_models(conn, [self._model_id(conn, name)])[0], write=False)

    def _model_id(self, conn: Transaction, name: str, *, for_update: bool = False) -> int:
        model_id = self.repo.find_model_id(conn, name, for_update=for_update)
        if model_id is None:
            raise NotFound(f"no registered model named {name!r}")
        return model_id

    def search_models(self, filter_text: str = "", order_by: Sequence[str] = (), size: int = 0, token: str = "",
                      readable: Collection[str] | None = None) -> tuple[list[RegisteredModel], str]:
        """``readable``: only the models these subjects have a role on
        (tuning_common.access.readable_subjects); None: all."""
        return paged_search(self.db, search.REGISTERED_MODELS, functools.partial(self.repo.search_models,
                                                                                 readable=readable),
                            filter_text=filter_text, order_by=order_by, size=size, token=token, default_size=100,
                            max_size=1_000, scope=tuple(sorted(readable or ())))

    def rename_model(self, name: str, new_name: str, actor: str = "") -> RegisteredModel:
        check_key(name, "name")
        check_key(new_name, "new_name")
        check_actor(actor)

        def work(conn: Transaction) -> RegisteredModel:
            model_id = self._model_id(conn, name, for_update=True)
            if new_name != name:
                if self.repo.find_model_id(conn, new_name) is not None:
                    raise AlreadyExists(f"a registered model named {new_name!r} exists")
                now = now_ms()
                self.repo.update_model(conn, model_id, now, name=new_name)
                # The log is kept by name: the model's history follows it to the new one.
                self.repo.rename_events(conn, name, new_name)
                self.repo.add_event(conn, new_name, 0, RegistryAction.RENAME_MODEL, now, from_value=name,
                               to_value=new_name, actor=actor)
            return self.repo.get_models(conn, [model_id])[0]

        return self.db.run(work, write=True)

    def update_model(self, name: str, description: str) -> RegisteredModel:
        check_key(name, "name")
        check_description(description)

        def work(conn: Transaction) -> RegisteredModel:
            model_id = self._model_id(conn, name, for_update=True)
            self.repo.update_model(conn, model_id, now_ms(), description=description)
            return self.repo.get_models(conn, [model_id])[0]

        return self.db.run(work, write=True)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        check_key(name, "name")
        check_key(key, "key")
        check_text(value, "value", MAX_TAG_VALUE)

        def work(conn: Transaction) -> None:
            model_id = self._model_id(conn, name, for_update=True)
            self.repo.set_model_tags(conn, model_id, {key: value})
            self.repo.update_model(conn, model_id, now_ms())

        self.db.run(work, write=True)

    def delete_model_tag(self, name: str, key: str) -> None:
        check_key(name, "name")
        check_key(key, "key")

        def work(conn: Transaction) -> None:
            model_id = self._model_id(conn, name, for_update=True)
            if not self.repo.delete_model_tag(conn, model_id, key):
                raise NotFound(f"registered model {name!r} has no tag {key!r}")
            self.repo.update_model(conn, model_id, now_ms())

        self.db.run(work, write=True)

    def delete_model(self, name: str, actor: str = "") -> None:
        check_key(name, "name")
        check_actor(actor)

        def work(conn: Transaction) -> None:
            model_id = self._model_id(conn, name, for_update=True)
            self.repo.delete_model(conn, model_id)
            self.repo.add_event(conn, name, 0, RegistryAction.DELETE_MODEL, now_ms(), actor=actor)

        self.db.run(work, write=True)

    # -- model versions -------------------------------------------------------------------------

    def create_version(self, name: str, source: str, run_id: str = "", description: str = "",
                       tags: dict[str, str] | None = None, actor: str = "") -> ModelVersion:
        """The model's next version from ``source``; creates the model if it does not exist."""
        check_key(name, "name")
        check_description(description)
        tags = check_tags(tags or {}, "tags")
        check_actor(actor)
        if not source:
            raise InvalidArgument("source", "must not be empty")
        if source.startswith(RUNS_SCHEME):
            source_run_id, path = _run_source(source)
            if run_id and run_id != source_run_id:
                raise InvalidArgument("run_id", f"is {run_id!r:.80} but the source names run {source_run_id}")
            run_id, location = source_run_id, None
        else:
            if run_id:
                check_run_id(run_id, "run_id")
            path, location = None, self.store.check_location(source, "source")

        def work(conn: Transaction) -> ModelVersion:
            storage_uri = location
            if run_id:
                artifact_uri = live_run(self.runs, conn, run_id).artifact_uri
                if path is not None:
                    storage_uri = f"{artifact_uri}/{path}"
            # A file-system check inside the transaction: the run cannot be deleted in between.
            if not self.store.exists(storage_uri):
                raise NotFound(f"source: nothing is stored at {source!r:.300}")
            now = now_ms()
            self.repo.ensure_model(conn, name, now)
            model_id = self._model_id(conn, name, for_update=True)
            version = self.repo.next_version(conn, model_id)
            self.repo.insert_version(conn, model_id, version, source=source, storage_uri=storage_uri,
                                run_id=run_id or None, status=READY, description=description, user=actor, now=now)
            self.repo.set_version_tags(conn, model_id, version, tags)
            self.repo.update_model(conn, model_id, now)
            self.repo.add_event(conn, name, version, RegistryAction.CREATE_VERSION, now, to_value=source, actor=actor)
            return self.repo.get_versions(conn, [(model_id, version)])[0]

        return self.db.run(work, write=True)

    def get_version(self, name: str, version: int) -> ModelVersion:
        check_key(name, "name")
        check_version(version)
        return self.db.run(lambda conn: self._version(conn, name, version)[1], write=False)

    def _version(self, conn: Transaction, name: str, version: int, *, for_update: bool = False
                 ) -> tuple[int, ModelVersion]:
        """The model's id and the version; NotFound for either."""
        model_id = self._model_id(conn, name, for_update=for_update)
        found = self.repo.get_versions(conn, [(model_id, version)])
        if not found:
            raise NotFound(f"registered model {name!r} has no version {version}")
        return model_id, found[0]

    def search_versions(self, filter_text: str = "", order_by: Sequence[str] = (), size: int = 0, token: str = "",
                        readable: Collection[str] | None = None) -> tuple[list[ModelVersion], str]:
        """``readable``: only the versions of models these subjects have a role on; None: all."""
        return paged_search(self.db, search.MODEL_VERSIONS, functools.partial(self.repo.search_versions,
                                                                              readable=readable),
                            filter_text=filter_text, order_by=order_by, size=size, token=token, default_size=1_000,
                            max_size=10_000, scope=tuple(sorted(readable or ())))

    def update_version(self, name: str, version: int, description: str) -> ModelVersion:
        check_key(name, "name")
        check_version(version)
        check_description(description)

        def work(conn: Transaction) -> ModelVersion:
            model_id, _ = self._version(conn, name, version, for_update=True)
            self.repo.update_version(conn, model_id, version, now_ms(), description=description)
            return self.repo.get_versions(conn, [(model_id, version)])[0]

        return self.db.run(work, write=True)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        check_key(name, "name")
        check_version(version)
        check_key(key, "key")
        check_text(value, "value", MAX_TAG_VALUE)

        def work(conn: Transaction) -> None:
            model_id, _ = self._version(conn, name, version, for_update=True)
            self.repo.set_version_tags(conn, model_id, version, {key: value})
            self.repo.update_version(conn, model_id, version, now_ms())

        self.db.run(work, write=True)

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        check_key(name, "name")
        check_version(version)
        check_key(key, "key")

        def work(conn: Transaction) -> None:
            model_id, _ = self._version(conn, name, version, for_update=True)
            if not self.repo.delete_version_tag(conn, model_id, version, key):
                raise NotFound(f"version {version} of registered model {name!r} has no tag {key!r}")
            self.repo.update_version(conn, model_id, version, now_ms())

        self.db.run(work, write=True)

    def delete_version(self, name: str, version: int, actor: str = "") -> None:
        check_key(name, "name")
        check_version(version)
        check_actor(actor)

        def work(conn: Transaction) -> None:
            model_id, _ = self._version(conn, name, version, for_update=True)
            now = now_ms()
            aliases = self.repo.delete_version(conn, model_id, version)
            self.repo.update_model(conn, model_id, now)
            self.repo.add_event(conn, name, version, RegistryAction.DELETE_VERSION, now, actor=actor)
            # The aliases went with the version; the log says so, or it would show them still set.
            for alias in aliases:
                self.repo.add_event(conn, name, version, RegistryAction.DELETE_ALIAS, now, from_value=str(version),
                               alias=alias, actor=actor, reason=f"deleted with version {version}")

        self.db.run(work, write=True)

    def transition_stage(self, name: str, version: int, stage: Stage, *, archive_existing_versions: bool = False,
                         actor: str = "", reason: str = "") -> ModelVersion:
        check_key(name, "name")
        check_version(version)
        if archive_existing_versions and stage not in (Stage.STAGING, Stage.PRODUCTION):
            raise InvalidArgument("archive_existing_versions",
                                  f"applies to transitions to Staging or Production, not {stage.value}")
        check_actor(actor)
        check_reason(reason)

        def work(conn: Transaction) -> ModelVersion:
            model_id, current = self._version(conn, name, version, for_update=True)
            if current.stage is stage:
                return current
            now = now_ms()
            self.repo.update_version(conn, model_id, version, now, stage=stage)
            self.repo.add_event(conn, name, version, RegistryAction.TRANSITION_STAGE, now, from_value=current.stage.value,
                           to_value=stage.value, actor=actor, reason=reason)
            if archive_existing_versions:
                for other in self.repo.versions_in_stage(conn, model_id, stage):
                    if other == version:
                        continue
                    self.repo.update_version(conn, model_id, other, now, stage=Stage.ARCHIVED)
                    self.repo.add_event(conn, name, other, RegistryAction.TRANSITION_STAGE, now, from_value=stage.value,
                                   to_value=Stage.ARCHIVED.value, actor=actor,
                                   reason=f"archived by the transition of version {version}")
            self.repo.update_model(conn, model_id, now)
            return self.repo.get_versions(conn, [(model_id, version)])[0]

        return self.db.run(work, write=True)

    def download_uri(self, name: str, version: int) -> str:
        return self.get_version(name, version).storage_uri

    # -- aliases --------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, actor: str = "", reason: str = "") -> None:
        check_key(name, "name")
        check_alias(alias)
        check_version(version)
        check_actor(actor)
        check_reason(reason)

        def work(conn: Transaction) -> None:
            model_id, _ = self._version(conn, name, version, for_update=True)
            previous = self.repo.alias_version(conn, model_id, alias)
            if previous == version:
                return
            now = now_ms()
            self.repo.set_alias(conn, model_id, alias, version)
            self.repo.update_model(conn, model_id, now)
            self.repo.add_event(conn, name, version, RegistryAction.SET_ALIAS, now,
                           from_value="" if previous is None else str(previous), to_value=str(version), alias=alias,
                           actor=actor, reason=reason)

        self.db.run(work, write=True)

    def delete_alias(self, name: str, alias: str, actor: str = "", reason: str = "") -> None:
        check_key(name, "name")
        check_alias(alias)
        check_actor(actor)
        check_reason(reason)

        def work(conn: Transaction) -> None:
            model_id = self._model_id(conn, name, for_update=True)
            version = self.repo.alias_version(conn, model_id, alias)
            if version is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            now = now_ms()
            self.repo.delete_alias(conn, model_id, alias)
            self.repo.update_model(conn, model_id, now)
            self.repo.add_event(conn, name, version, RegistryAction.DELETE_ALIAS, now, from_value=str(version),
                           alias=alias, actor=actor, reason=reason)

        self.db.run(work, write=True)

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        check_key(name, "name")
        check_alias(alias)

        def work(conn: Transaction) -> ModelVersion:
            model_id = self._model_id(conn, name)
            version = self.repo.alias_version(conn, model_id, alias)
            if version is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            return self.repo.get_versions(conn, [(model_id, version)])[0]

        return self.db.run(work, write=False)

    # -- audit log ------------------------------------------------------------------------------

    def list_events(self, name: str, version: int = 0, size: int = 0, token: str = ""
                    ) -> tuple[list[RegistryEvent], str]:
        """Newest first; kept by name, so a deleted model's log is still there."""
        check_key(name, "name")
        if version < 0:
            raise InvalidArgument("version", f"must be 0 (every version) or a version number, got {version}")
        size = page_size(size, 100, 1_000)
        fingerprint = paging.fingerprint("registry_events", name, version)
        # Keyset on the event id: the log grows at the front while someone pages through it.
        before = paging.decode_keyset_token(token, fingerprint, (int,))[0] if token else None
        found = self.db.run(lambda conn: self.repo.select_events(conn, name, version, before, size + 1), write=False)
        if len(found) <= size:
            return found, ""
        page = found[:size]
        return page, paging.encode_keyset_token([page[-1].id], fingerprint)


def _run_source(source: str) -> tuple[str, str]:
    """(run id, cleaned path) of a ``runs:/<run_id>/<path>`` source."""
    run_id, _, path = source.removeprefix(RUNS_SCHEME).partition("/")
    check_run_id(run_id, "source")
    return run_id, clean_relative_path(path, "source")
