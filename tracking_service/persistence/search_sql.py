"""Turns parsed searches (:mod:`tuning_types.search`) into SQLAlchemy Core expressions.

Nothing from a filter reaches SQL as text: keys, values and patterns are all bound parameters,
and identifiers only select among the columns listed here.

Semantics shared by every entity, on SQLite and PostgreSQL alike:

* A metric, param or tag the entity lacks satisfies no comparison (``!=``, ``NOT LIKE`` and
  ``NOT IN`` included); ``IS NULL`` matches exactly the entities lacking the key. The same holds
  for an attribute whose column is NULL.
* A NaN metric is unordered: it satisfies no comparison, only ``IS NOT NULL``.
* LIKE is case-sensitive and ILIKE case-insensitive; ``%`` and ``_`` are wildcards and a
  backslash makes the next character literal. (SQLite folds the case of ASCII letters only.)
* Ordering puts entities lacking the key last in both directions (after NaN metrics, which
  come after every number), compares strings by code point, and ends with the entity's id.

Each ``*_condition`` gives a WHERE clause on the entity's table and each ``*_ordering`` its ORDER
BY clauses, built from correlated subqueries, so a caller needs no joins::

    select(runs).where(runs.c.experiment_id.in_(ids), run_condition(node, dialect_name))
                .order_by(*run_ordering(keys, dialect_name))
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from tracking_service.persistence import tables as t
from tuning_types.search import ATTRIBUTES, And, Comparison, Node, Op, Or, OrderKey, Value

Condition = ColumnElement[bool]


@dataclass(frozen=True)
class _KeyValues:
    """A table of (owner, key, value) rows, such as params; ``links`` pair its owner columns with the entity's."""

    table: sa.Table
    links: tuple[tuple[sa.Column, sa.Column], ...]
    is_nan: sa.Column | None = None
    # An indexed prefix of ``value`` (t.VALUE_HEAD characters) that equality filters narrow by first.
    head: sa.Column | None = None
    # Where an owner has several rows of a key (a logged model's metric per run and dataset):
    # ordering takes the first row in this order (the latest point); filters match any row.
    latest: tuple[ColumnElement, ...] = ()

    def rows(self, key: str) -> list[Condition]:
        return [mine == owner for mine, owner in self.links] + [self.table.c.key == key]


@dataclass(frozen=True)
class _Entity:
    attributes: Mapping[str, ColumnElement]
    namespaces: Mapping[str, _KeyValues]
    default_order: tuple[OrderKey, ...]
    tie_breakers: tuple[ColumnElement, ...]


def _times(table: sa.Table) -> dict[str, ColumnElement]:
    return {"creation_time": table.c.create_ms, "last_update_time": table.c.update_ms}


_RUNS = _Entity(
    attributes={
        "run_id": t.runs.c.id,
        "run_name": t.runs.c.name,
        "status": t.runs.c.status,
        "user": t.runs.c.user,
        "start_time": t.runs.c.start_ms,
        "end_time": t.runs.c.end_ms,
        "experiment_id": t.runs.c.experiment_id,
        "parent_run_id": t.runs.c.parent_run_id,
        "run_group": t.runs.c.run_group,
        "lifecycle_stage": t.runs.c.lifecycle_stage,
        "trial_study": t.runs.c.trial_study,
        "trial_id": t.runs.c.trial_id,
        "trial_number": t.runs.c.trial_number,
    },
    namespaces={
        "metrics": _KeyValues(t.latest_metrics, ((t.latest_metrics.c.run_id, t.runs.c.id),), t.latest_metrics.c.is_nan),
        "params": _KeyValues(t.params, ((t.params.c.run_id, t.runs.c.id),), head=t.params.c.value_head),
        "tags": _KeyValues(t.tags, ((t.tags.c.run_id, t.runs.c.id),), head=t.tags.c.value_head),
    },
    default_order=(OrderKey(ATTRIBUTES, "start_time", descending=True),),
    tie_breakers=(t.runs.c.id,),
)

_EXPERIMENTS = _Entity(
    attributes={"name": t.experiments.c.name, "experiment_id": t.experiments.c.id, **_times(t.experiments)},
    namespaces={"tags": _KeyValues(t.experiment_tags, ((t.experiment_tags.c.experiment_id, t.experiments.c.id),))},
    default_order=(OrderKey(ATTRIBUTES, "creation_time", descending=True),),
    tie_breakers=(t.experiments.c.id,),
)

_REGISTERED_MODELS = _Entity(
    attributes={"name": t.registered_models.c.name, **_times(t.registered_models)},
    namespaces={
        "tags": _KeyValues(t.registered_model_tags, ((t.registered_model_tags.c.model_id, t.registered_models.c.id),)),
    },
    default_order=(OrderKey(ATTRIBUTES, "name"),),
    tie_breakers=(t.registered_models.c.id,),
)

_MODEL_VERSIONS = _Entity(
    attributes={
        # A version only knows its model's id; the name comes from a correlated lookup by primary key.
        "name": sa.select(t.registered_models.c.name)
        .where(t.registered_models.c.id == t.model_versions.c.model_id)
        .scalar_subquery(),
        "version": t.model_versions.c.version,
        "run_id": t.model_versions.c.run_id,
        "source_path": t.model_versions.c.source,
        "current_stage": t.model_versions.c.stage,
        **_times(t.model_versions),
    },
    namespaces={
        "tags": _KeyValues(
            t.model_version_tags,
            ((t.model_version_tags.c.model_id, t.model_versions.c.model_id),
             (t.model_version_tags.c.version, t.model_versions.c.version)),
        ),
    },
    default_order=(OrderKey(ATTRIBUTES, "name"), OrderKey(ATTRIBUTES, "version", descending=True)),
    tie_breakers=(t.model_versions.c.model_id, t.model_versions.c.version),
)

_M = t.logged_model_metrics
_LOGGED_MODELS = _Entity(
    attributes={
        "model_id": t.logged_models.c.id,
        "name": t.logged_models.c.name,
        "status": t.logged_models.c.status,
        "model_type": t.logged_models.c.model_type,
        "source_run_id": t.logged_models.c.source_run_id,
        "experiment_id": t.logged_models.c.experiment_id,
        **_times(t.logged_models),
    },
    namespaces={
        "metrics": _KeyValues(_M, ((_M.c.model_id, t.logged_models.c.id),), _M.c.is_nan,
                              latest=(_M.c.step.desc(), _M.c.timestamp_ms.desc(), _M.c.is_nan.asc(),
                                      _M.c.value.desc())),
        "params": _KeyValues(t.logged_model_params, ((t.logged_model_params.c.model_id, t.logged_models.c.id),),
                             head=t.logged_model_params.c.value_head),
        "tags": _KeyValues(t.logged_model_tags, ((t.logged_model_tags.c.model_id, t.logged_models.c.id),),
                           head=t.logged_model_tags.c.value_head),
    },
    default_order=(OrderKey(ATTRIBUTES, "creation_time", descending=True),),
    tie_breakers=(t.logged_models.c.id,),
)


# --- conditions ------------------------------------------------------------------------

_SIMPLE: dict[Op, Callable[[ColumnElement, object], Condition]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.IN: lambda column, values: column.in_(values),
    Op.NOT_IN: lambda column, values: column.not_in(values),
    Op.IS_NULL: lambda column, _: column.is_(None),
    Op.IS_NOT_NULL: lambda column, _: column.is_not(None),
}

_LIKE_WILDCARDS = {"%": "*", "_": "?"}
# GLOB's own wildcards and set syntax, written as one-character sets so they match literally.
_GLOB_LITERAL = {"*": "[*]", "?": "[?]", "[": "[[]"}


def _like_to_glob(pattern: str) -> str:
    """The GLOB pattern matching what LIKE ``pattern`` (with backslash escapes) matches, case-sensitively."""
    out = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(_GLOB_LITERAL.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(_LIKE_WILDCARDS.get(char) or _GLOB_LITERAL.get(char, char))
    return "".join(out)


def _like(column: ColumnElement, pattern: str, dialect_name: str) -> Condition:
    # SQLite's LIKE ignores ASCII case (short of a connection-wide PRAGMA); its GLOB does not.
    if dialect_name == "sqlite":
        return column.op("GLOB", is_comparison=True)(_like_to_glob(pattern))
    return column.like(pattern, escape="\\")


def _ilike(column: ColumnElement, pattern: str) -> Condition:
    # ILIKE on PostgreSQL, lower(column) LIKE lower(pattern) elsewhere.
    return column.ilike(pattern, escape="\\")


def _typed(value: Value) -> Value | sa.BindParameter | tuple[sa.BindParameter, ...]:
    """Numbers bound with their own type. Left to SQLAlchemy, an int compared with a float column (or
    the first of an IN list) gives PostgreSQL an INTEGER cast, which would truncate 0.1 to 0."""
    if isinstance(value, tuple):
        return tuple(_typed(item) for item in value)
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger)
    if isinstance(value, float):
        return sa.literal(value, sa.Float(precision=53))
    return value


def _compare(column: ColumnElement, op: Op, value: Value, dialect_name: str) -> Condition:
    value = _typed(value)
    if op is Op.LIKE:
        return _like(column, value, dialect_name)
    if op is Op.NOT_LIKE:
        return sa.not_(_like(column, value, dialect_name))
    if op is Op.ILIKE:
        return _ilike(column, value)
    if op is Op.NOT_ILIKE:
        return sa.not_(_ilike(column, value))
    return _SIMPLE[op](column, value)


def _key_condition(values: _KeyValues, comparison: Comparison, dialect_name: str) -> Condition:
    """Owners that have the key (with a matching value).

    With a single owner column this is ``owner IN (SELECT ... WHERE key = ? AND value op ?)``
    rather than a correlated EXISTS: the database can then start from the key's rows (for
    metrics, a range of the (key, value) index) instead of probing every owner in scope,
    which on 100,000 runs was the difference between ~300 ms and a few tens.
    """
    conditions = [values.table.c.key == comparison.key]
    if comparison.op not in (Op.IS_NULL, Op.IS_NOT_NULL):
        if values.is_nan is not None:
            conditions.append(sa.not_(values.is_nan))
        conditions.append(_compare(values.table.c.value, comparison.op, comparison.value, dialect_name))
        if values.head is not None and comparison.op in (Op.EQ, Op.IN):
            heads = comparison.value if comparison.op is Op.IN else (comparison.value,)
            conditions.append(values.head.in_(sorted({str(v)[:t.VALUE_HEAD] for v in heads})))
    if len(values.links) == 1:
        [(mine, owner)] = values.links
        found = owner.in_(sa.select(mine).where(*conditions))
    else:
        found = sa.exists().where(*(mine == owner for mine, owner in values.links), *conditions)
    return sa.not_(found) if comparison.op is Op.IS_NULL else found


def _condition(node: Node | None, entity: _Entity, dialect_name: str) -> Condition:
    if node is None:
        return sa.true()
    if isinstance(node, And):
        return sa.and_(*(_condition(item, entity, dialect_name) for item in node.items))
    if isinstance(node, Or):
        return sa.or_(*(_condition(item, entity, dialect_name) for item in node.items))
    if node.namespace == ATTRIBUTES:
        return _compare(entity.attributes[node.key], node.op, node.value, dialect_name)
    return _key_condition(entity.namespaces[node.namespace], node, dialect_name)


# --- ordering --------------------------------------------------------------------------


def _by_code_point(expression: ColumnElement, dialect_name: str) -> ColumnElement:
    """Strings compare by code point, as SQLite does, rather than by the database's locale."""
    if dialect_name == "postgresql" and isinstance(expression.type, sa.String):
        return expression.collate("C")
    return expression


def _directed(expression: ColumnElement, descending: bool, nullable: bool) -> ColumnElement:
    ordered = expression.desc() if descending else expression.asc()
    # NULLS LAST only where NULLs can occur: it would keep PostgreSQL from reading an index backwards.
    return ordered.nulls_last() if nullable else ordered


def _key_ordering(values: _KeyValues, key: OrderKey, dialect_name: str) -> list[ColumnElement]:
    rows = values.rows(key.key)
    def first(column: ColumnElement) -> ColumnElement:
        query = sa.select(column).where(*rows)
        if values.latest:
            query = query.order_by(*values.latest).limit(1)
        return query.scalar_subquery()

    value = _by_code_point(first(values.table.c.value), dialect_name)
    if values.is_nan is None:
        return [_directed(value, key.descending, nullable=True)]
    # Rank 0: a number, 1: NaN (stored as 0), 2: no such metric; numbers then sort by value.
    rank = first(sa.case((values.is_nan, 1), else_=0))
    return [sa.func.coalesce(rank, 2), _directed(value, key.descending, nullable=False)]


def _ordering(keys: Sequence[OrderKey], entity: _Entity, dialect_name: str) -> list[ColumnElement]:
    clauses = []
    for key in keys or entity.default_order:
        if key.namespace == ATTRIBUTES:
            attribute = entity.attributes[key.key]
            nullable = getattr(attribute, "nullable", True)
            clauses.append(_directed(_by_code_point(attribute, dialect_name), key.descending, nullable))
        else:
            clauses.extend(_key_ordering(entity.namespaces[key.namespace], key, dialect_name))
    clauses.extend(_by_code_point(column, dialect_name) for column in entity.tie_breakers)
    return clauses


# --- per entity ------------------------------------------------------------------------
# ``dialect_name`` is the engine's ``dialect.name``: "sqlite" or "postgresql".


def run_condition(node: Node | None, dialect_name: str) -> Condition:
    """A WHERE clause on ``runs`` for a filter parsed with the RUNS schema (None matches all)."""
    return _condition(node, _RUNS, dialect_name)


def run_ordering(keys: Sequence[OrderKey], dialect_name: str) -> list[ColumnElement]:
    """ORDER BY clauses for ``runs``; without keys, start_time DESC. Always ends with the run id."""
    return _ordering(keys, _RUNS, dialect_name)


def experiment_condition(node: Node | None, dialect_name: str) -> Condition:
    """A WHERE clause on ``experiments`` for a filter parsed with the EXPERIMENTS schema."""
    return _condition(node, _EXPERIMENTS, dialect_name)


def experiment_ordering(keys: Sequence[OrderKey], dialect_name: str) -> list[ColumnElement]:
    """ORDER BY clauses for ``experiments``; without keys, creation_time DESC. Ends with the id."""
    return _ordering(keys, _EXPERIMENTS, dialect_name)


def registered_model_condition(node: Node | None, dialect_name: str) -> Condition:
    """A WHERE clause on ``registered_models`` for a filter parsed with the REGISTERED_MODELS schema."""
    return _condition(node, _REGISTERED_MODELS, dialect_name)


def registered_model_ordering(keys: Sequence[OrderKey], dialect_name: str) -> list[ColumnElement]:
    """ORDER BY clauses for ``registered_models``; without keys, by name. Ends with the id."""
    return _ordering(keys, _REGISTERED_MODELS, dialect_name)


def model_version_condition(node: Node | None, dialect_name: str) -> Condition:
    """A WHERE clause on ``model_versions`` for a filter parsed with the MODEL_VERSIONS schema."""
    return _condition(node, _MODEL_VERSIONS, dialect_name)


def model_version_ordering(keys: Sequence[OrderKey], dialect_name: str) -> list[ColumnElement]:
    """ORDER BY clauses for ``model_versions``; without keys, model name then version DESC. Ends with the key."""
    return _ordering(keys, _MODEL_VERSIONS, dialect_name)


def logged_model_condition(node: Node | None, dialect_name: str) -> Condition:
    """A WHERE clause on ``logged_models`` for a filter parsed with the LOGGED_MODELS schema. A
    metric matches when any of the model's points of that key (per run and dataset) does."""
    return _condition(node, _LOGGED_MODELS, dialect_name)


def logged_model_ordering(keys: Sequence[OrderKey], dialect_name: str) -> list[ColumnElement]:
    """ORDER BY clauses for ``logged_models`` (a metric by its latest point); without keys,
    creation_time DESC. Ends with the model id."""
    return _ordering(keys, _LOGGED_MODELS, dialect_name)
