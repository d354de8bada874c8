"""MLflow's search filters and order_by keys, rewritten into the tracking service's language.

Ours was modelled on MLflow's (docs/TRACKING.md), so a filter is parsed with the service's own
parser against a schema that knows MLflow's names, the names that differ are mapped, and the tree
is written back out with every key quoted and every value escaped. A malformed filter is refused
here with the position of the offending token in the text the user wrote.

What differs, for runs: ``attributes.user_id`` is our ``user``; ``created``/``Created`` are the
start time; ``tags.mlflow.runName``, ``tags.mlflow.parentRunId`` and ``tags.mlflow.user`` are
the run's name, parent and user (so runs created through either API match); ``parameter(s).``
and ``run.`` prefixes are spelled ``params.`` and ``attributes.``; ``run name``/``Run name``
is ``run_name``; ordering by ``artifact_uri`` orders by experiment id, then run id (what the
URI is made of). Not supported (refused as INVALID_PARAMETER_VALUE): ``datasets.*``, and
filtering by ``attributes.artifact_uri``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.mlflow.errors import MlflowError
from tuning_common.errors import InvalidArgument
from tuning_types import search as s

_N, _S = s.ValueType.NUMBER, s.ValueType.STRING

# Prefixes MLflow accepts that the service's tokenizer does not: rewritten before parsing.
_PREFIXES = {"parameter": "params", "parameters": "params", "run": "attributes"}
_UNSUPPORTED_PREFIXES = {"dataset", "datasets"}


@dataclass(frozen=True)
class Dialect:
    """One entity's MLflow names: ``schema`` parses them, ``attributes`` maps an attribute to ours
    (None: not supported), ``tags`` maps a tag key to one of our attributes."""

    schema: s.EntitySchema
    attributes: Mapping[str, str | None]
    tags: Mapping[str, str]
    # Tags whose absence satisfies != and NOT IN, as MLflow's registry treats the prompt marker
    # its client filters by (``tags.`mlflow.prompt.is_prompt` != 'true'`` must keep plain models).
    absent_unequal: frozenset[str] = frozenset()
    # Attributes we cannot filter by but can order by, as the keys of ours that give their order.
    order_only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Attribute values spelled differently: attribute -> {MLflow's value: ours}.
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _dialect(entity: str, namespaces: dict, attributes: dict[str, tuple[s.ValueType, str | None, tuple[str, ...]]],
             tags: Mapping[str, str] | None = None, absent_unequal: frozenset[str] = frozenset(),
             order_only: Mapping[str, tuple[str, ...]] | None = None,
             values: Mapping[str, Mapping[str, str]] | None = None) -> Dialect:
    schema = s._schema(entity, namespaces, *((name, kind, aliases) for name, (kind, _, aliases) in attributes.items()))
    return Dialect(schema, {name: ours for name, (_, ours, _) in attributes.items()}, tags or {}, absent_unequal,
                   order_only or {}, values or {})


PROMPT_TAG = frozenset({"mlflow.prompt.is_prompt"})


RUNS = _dialect(
    "runs", {"metrics": _N, "params": _S, "tags": _S},
    {
        "run_id": (_S, "run_id", ("run_uuid", "id")),
        "run_name": (_S, "run_name", ("run name", "Run name", "Run Name")),
        "status": (_S, "status", ()),
        "user_id": (_S, "user", ("user",)),
        "start_time": (_N, "start_time", ("created", "Created")),
        "end_time": (_N, "end_time", ()),
        "experiment_id": (_N, "experiment_id", ()),
        "lifecycle_stage": (_S, "lifecycle_stage", ()),
        "artifact_uri": (_S, None, ()),
        # Ours, usable from MLflow too.
        "parent_run_id": (_S, "parent_run_id", ()),
        "run_group": (_S, "run_group", ()),
        "trial_study": (_S, "trial_study", ()),
        "trial_id": (_N, "trial_id", ()),
        "trial_number": (_N, "trial_number", ()),
    },
    {"mlflow.runName": "run_name", "mlflow.parentRunId": "parent_run_id", "mlflow.user": "user"},
    # MLflow's artifact_uri of a run is mlflow-artifacts:/<experiment id>/<run id>/artifacts.
    order_only={"artifact_uri": ("experiment_id", "run_id")},
)
EXPERIMENTS = _dialect(
    "experiments", {"tags": _S},
    {
        "name": (_S, "name", ()),
        "experiment_id": (_N, "experiment_id", ("id",)),
        "creation_time": (_N, "creation_time", ("create_time",)),
        "last_update_time": (_N, "last_update_time", ("update_time",)),
    },
)
REGISTERED_MODELS = _dialect(
    "registered models", {"tags": _S},
    {
        "name": (_S, "name", ()),
        "creation_timestamp": (_N, "creation_time", ("creation_time",)),
        "last_updated_timestamp": (_N, "last_update_time", ("timestamp", "last_update_time")),
    },
    absent_unequal=PROMPT_TAG,
)
MODEL_VERSIONS = _dialect(
    "model versions", {"tags": _S},
    {
        "name": (_S, "name", ()),
        "version_number": (_N, "version", ("version",)),
        "run_id": (_S, "run_id", ()),
        "source_path": (_S, "source_path", ()),
        "current_stage": (_S, "current_stage", ()),
        "creation_timestamp": (_N, "creation_time", ("creation_time",)),
        "last_updated_timestamp": (_N, "last_update_time", ("timestamp", "last_update_time")),
    },
    absent_unequal=PROMPT_TAG,
)


def _invalid(error: InvalidArgument, what: str) -> MlflowError:
    return MlflowError.invalid(f"invalid {what}: {error.description}")


def _respell_prefixes(text: str, field: str) -> str:
    """``parameters.x`` -> ``params.x``, ``run.x`` -> ``attributes.x``; dataset keys are refused."""
    out, last = [], 0
    for token in s.tokenize(text, field):
        if token.kind is not s.Kind.IDENTIFIER or token.value[0] is None:
            continue
        prefix = token.value[0]
        if prefix.lower() in _UNSUPPORTED_PREFIXES:
            raise MlflowError.invalid(f"invalid {field}: filtering or ordering by {token.text} is not supported "
                                      "by this server (dataset keys)")
        if prefix in _PREFIXES:
            start = token.position - 1
            out.append(text[last:start] + _PREFIXES[prefix])
            last = start + len(prefix)
    out.append(text[last:])
    return "".join(out)


def _quote_key(key: str) -> str:
    return "`" + key.replace("`", "``") + "`"


def _literal(value: s.Scalar) -> str:
    if isinstance(value, str):
        return s.quote_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise MlflowError.invalid("filter values must be finite numbers")
    return repr(value)


def _identifier(dialect: Dialect, namespace: str, key: str, text: str) -> str:
    if namespace == s.ATTRIBUTES:
        ours = dialect.attributes.get(key)
        if ours is None:
            doing = "ordered" if text == "order_by" else "searched"
            raise MlflowError.invalid(f"{text}: {dialect.schema.entity} cannot be {doing} by {key!r} on this server")
        return f"attributes.{ours}"
    if namespace == "tags" and key in dialect.tags:
        return f"attributes.{dialect.tags[key]}"
    return f"{namespace}.{_quote_key(key)}"


def _write(dialect: Dialect, node: s.Node, text: str) -> str:
    if isinstance(node, s.And):
        return " AND ".join(f"({_write(dialect, item, text)})" for item in node.items)
    if isinstance(node, s.Or):
        return " OR ".join(f"({_write(dialect, item, text)})" for item in node.items)
    name = _identifier(dialect, node.namespace, node.key, text)
    if node.op in (s.Op.IS_NULL, s.Op.IS_NOT_NULL):
        return f"{name} {node.op.value}"
    spelled = dialect.values.get(node.key, {}) if node.namespace == s.ATTRIBUTES else {}

    def literal(value: s.Scalar) -> str:
        return _literal(spelled.get(value, value) if isinstance(value, str) else value)

    if node.op in (s.Op.IN, s.Op.NOT_IN):
        text = f"{name} {node.op.value} ({', '.join(literal(v) for v in node.value)})"
    else:
        text = f"{name} {node.op.value} {literal(node.value)}"
    if node.namespace == "tags" and node.key in dialect.absent_unequal and node.op in (s.Op.NE, s.Op.NOT_IN):
        return f"{name} IS NULL OR {text}"
    return text


def translate_filter(dialect: Dialect, text: str | None) -> str:
    """Our filter for MLflow's ``text`` ('' for none)."""
    if not text or not text.strip():
        return ""
    try:
        node = s.parse_filter(_respell_prefixes(text, "filter"), dialect.schema)
    except InvalidArgument as error:
        raise _invalid(error, "filter") from None
    return "" if node is None else _write(dialect, node, "filter")


def translate_order_by(dialect: Dialect, items: list[str]) -> list[str]:
    keys = []
    for i, item in enumerate(items):
        try:
            key = s.parse_order_by([_respell_prefixes(item, "order_by")], dialect.schema)[0]
        except InvalidArgument as error:
            raise MlflowError.invalid(f"invalid order_by[{i}] {item!r}: {error.description}") from None
        if key.namespace == s.ATTRIBUTES and key.key in dialect.order_only:
            names = [f"attributes.{ours}" for ours in dialect.order_only[key.key]]
        else:
            names = [_identifier(dialect, key.namespace, key.key, "order_by")]
        keys += [f"{name} DESC" if key.descending else name for name in names]
    return keys


LOGGED_MODELS = _dialect(
    "logged models", {"metrics": _N, "params": _S, "tags": _S},
    {
        "name": (_S, "name", ()),
        "model_id": (_S, "model_id", ()),
        "model_type": (_S, "model_type", ()),
        "status": (_S, "status", ()),
        "source_run_id": (_S, "source_run_id", ()),
        "experiment_id": (_N, "experiment_id", ()),
        "creation_timestamp": (_N, "creation_time", ("creation_time",)),
        "last_updated_timestamp": (_N, "last_update_time", ("last_update_time",)),
    },
    # MLflow's statuses are ours with a prefix (and FAILED is UPLOAD_FAILED there).
    values={"status": {"LOGGED_MODEL_PENDING": "PENDING", "LOGGED_MODEL_READY": "READY",
                       "LOGGED_MODEL_UPLOAD_FAILED": "FAILED", "UPLOAD_FAILED": "FAILED"}},
)


def quote(value: str) -> str:
    """A string literal of our language."""
    return s.quote_string(value)
