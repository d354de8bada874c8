"""Use cases of logged models (MLflow 3's LoggedModel): create, read, finalize, delete, params,
tags, linked metrics and search. Domain objects and domain errors only; the SQL is in
:mod:`tracking_service.persistence.logged_models`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from tracking_service.domain.logged_model import (
    MAX_MODEL_TYPE,
    LoggedModel,
    LoggedModelStatus,
    ModelMetric,
    check_model_id,
    check_model_metrics,
    check_model_tags,
    check_optional_run_id,
    check_params,
    new_model_id,
)
from tracking_service.domain.model import MAX_TAG_VALUE, LifecycleStage, check_key, check_text
from tracking_service.persistence import Transaction
from tracking_service.persistence.logged_models import LoggedModelRepository
from tracking_service.persistence.repository import ExperimentRepository, RunRepository
from tracking_service.service import live_run, now_ms, paged_search
from tuning_common.database import Database
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound
from tuning_types import search


class LoggedModelService:
    def __init__(self, db: Database):
        self.db = db
        self.models, self.runs, self.experiments = LoggedModelRepository(), RunRepository(), ExperimentRepository()

    def _model(self, conn: Transaction, model_id: str) -> LoggedModel:
        found = self.models.get(conn, [model_id])
        if not found:
            raise NotFound(f"no logged model {model_id}")
        return found[0]

    def _existing(self, conn: Transaction, model_id: str) -> None:
        # Locked: writers of one model queue on its row (PostgreSQL), so a delete cannot interleave.
        if not self.models.exists(conn, model_id, lock=True):
            raise NotFound(f"no logged model {model_id}")

    def create(self, experiment_id: int, name: str = "", *, source_run_id: str = "", model_type: str = "",
               params: Sequence[tuple[str, str]] = (), tags: Sequence[tuple[str, str]] = (),
               artifact_run_id: str = "") -> LoggedModel:
        name = name or f"model-{secrets.token_hex(3)}"
        check_key(name, "name")
        source = check_optional_run_id(source_run_id, "source_run_id")
        holder = check_optional_run_id(artifact_run_id, "artifact_run_id") or source
        check_text(model_type, "model_type", MAX_MODEL_TYPE)
        checked_params = check_params(list(params))
        checked_tags = check_model_tags(list(tags))

        def work(conn: Transaction) -> LoggedModel:
            experiment = self.experiments.find(conn, experiment_id=experiment_id)
            if experiment is None:
                raise NotFound(f"no experiment with id {experiment_id}")
            if experiment.lifecycle_stage is LifecycleStage.DELETED:
                raise FailedPrecondition(f"experiment {experiment_id} is deleted; restore it first",
                                         reason="EXPERIMENT_DELETED")
            for run_id, field in ((source, "source_run_id"), (holder, "artifact_run_id")):
                if run_id:
                    state = live_run(self.runs, conn, run_id)
                    if state.experiment_id != experiment_id:
                        raise InvalidArgument(field, f"run {run_id} belongs to experiment {state.experiment_id}, "
                                                     f"not {experiment_id}")
            now = now_ms()
            model = LoggedModel(
                id=new_model_id(), experiment_id=experiment_id, name=name, source_run_id=source,
                status=LoggedModelStatus.PENDING, status_message="", model_type=model_type, artifact_run_id=holder,
                params=checked_params, tags=checked_tags, metrics=(), create_ms=now, update_ms=now)
            self.models.insert(conn, model)
            return model

        return self.db.run(work, write=True)

    def get(self, model_id: str) -> LoggedModel:
        check_model_id(model_id)
        return self.db.run(lambda conn: self._model(conn, model_id), write=False)

    def _update(self, model_id: str, change: Callable[[Transaction], None], *, returning: bool = False,
                **fields) -> LoggedModel | None:
        """Applies ``change`` to an existing model under its row lock and stamps its update time
        (with ``fields``: status, status_message); the model as stored after, when ``returning``.
        The caller has checked ``model_id``."""

        def work(conn: Transaction) -> LoggedModel | None:
            self._existing(conn, model_id)
            change(conn)
            self.models.touch(conn, model_id, now_ms(), **fields)
            return self._model(conn, model_id) if returning else None

        return self.db.run(work, write=True)

    def finalize(self, model_id: str, status: LoggedModelStatus | None, message: str = "") -> LoggedModel:
        check_model_id(model_id)
        if status is None:
            raise InvalidArgument("status", "must be PENDING, READY or FAILED")
        check_text(message, "status_message", MAX_TAG_VALUE)
        return self._update(model_id, lambda conn: None, returning=True, status=status, status_message=message)

    def delete(self, model_id: str) -> None:
        check_model_id(model_id)

        def work(conn: Transaction) -> None:
            self._existing(conn, model_id)
            self.models.delete(conn, model_id)

        self.db.run(work, write=True)

    def set_tags(self, model_id: str, tags: Sequence[tuple[str, str]]) -> LoggedModel:
        check_model_id(model_id)
        checked = check_model_tags(list(tags))
        return self._update(model_id, lambda conn: self.models.set_tags(conn, model_id, checked), returning=True)

    def delete_tag(self, model_id: str, key: str) -> None:
        check_model_id(model_id)
        check_key(key, "key")

        def change(conn: Transaction) -> None:
            if not self.models.delete_tag(conn, model_id, key):
                raise NotFound(f"logged model {model_id} has no tag {key!r:.250}")

        self._update(model_id, change)

    def log_params(self, model_id: str, params: Sequence[tuple[str, str]]) -> None:
        check_model_id(model_id)
        checked = check_params(list(params))
        self._update(model_id, lambda conn: self.models.set_params(conn, model_id, checked))

    def log_metrics(self, model_id: str, metrics: Sequence[ModelMetric]) -> None:
        check_model_id(model_id)
        items = list(metrics)
        check_model_metrics(items)
        self._update(model_id, lambda conn: self.models.link_metrics(conn, model_id, items))

    def search(self, experiment_ids: Sequence[int], filter_text: str = "", order_by: Sequence[str] = (),
               size: int = 0, token: str = "") -> tuple[list[LoggedModel], str]:
        if not experiment_ids:
            raise InvalidArgument("experiment_ids", "name at least one experiment")
        if len(experiment_ids) > 1_000:
            raise InvalidArgument("experiment_ids", f"at most 1000 experiments, got {len(experiment_ids)}")

        def fetch(conn: Transaction, node, keys, offset: int, limit: int) -> list[LoggedModel]:
            return self.models.search(conn, node, keys, experiment_ids, offset, limit)

        return paged_search(self.db, search.LOGGED_MODELS, fetch, filter_text=filter_text, order_by=order_by,
                            size=size, token=token, default_size=100, max_size=1_000,
                            scope=(sorted(experiment_ids),))
