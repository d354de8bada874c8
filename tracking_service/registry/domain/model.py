"""Plain values of the model registry and its limits: registered models, versions, stages,
aliases and the audit log's events. Validation lives here, as in
:mod:`tracking_service.domain.model`, whose run-level values (TrialLink, keys, tags) it shares.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from tracking_service.domain.model import MAX_KEY, MAX_TAG_VALUE, TrialLink, check_text
from tuning_common.errors import InvalidArgument

MAX_DESCRIPTION = MAX_TAG_VALUE  # a model's description is as long as a run's may be
MAX_REASON = 1_000

RUNS_SCHEME = "runs:/"
READY = "READY"

_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,250}")
# "latest" and "v<digits>" name versions where a model URI takes an alias (models:/wine@champion).
_RESERVED_ALIAS = re.compile(r"latest|v\d+.*", re.IGNORECASE)


class Stage(enum.Enum):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


class RegistryAction(enum.Enum):
    CREATE_VERSION = "CREATE_VERSION"
    TRANSITION_STAGE = "TRANSITION_STAGE"
    SET_ALIAS = "SET_ALIAS"
    DELETE_ALIAS = "DELETE_ALIAS"
    DELETE_VERSION = "DELETE_VERSION"
    RENAME_MODEL = "RENAME_MODEL"
    DELETE_MODEL = "DELETE_MODEL"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    source: str
    storage_uri: str
    run_id: str | None
    status: str
    stage: Stage
    description: str
    user: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    create_ms: int
    update_ms: int
    # Provenance through the run (None when registered from a plain URI).
    experiment_id: int | None = None
    trial: TrialLink | None = None


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_versions: tuple[ModelVersion, ...]
    create_ms: int
    update_ms: int


@dataclass(frozen=True)
class RegistryEvent:
    id: int
    model_name: str
    version: int
    action: RegistryAction
    from_value: str
    to_value: str
    alias: str
    actor: str
    reason: str
    time_ms: int


# -- validation ------------------------------------------------------------------------------


def check_alias(alias: str, field: str = "alias") -> str:
    if not _ALIAS.fullmatch(alias):
        raise InvalidArgument(field, f"must be 1-250 letters, digits, '_' or '-', got {alias!r:.80}")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidArgument(field, f"{alias!r:.80} is reserved: 'latest' and 'v<digits>...' refer to versions")
    return alias


def check_version(version: int, field: str = "version") -> int:
    if version <= 0:
        raise InvalidArgument(field, f"must be a version number (1 or more), got {version}")
    return version


def check_actor(actor: str) -> str:
    return check_text(actor, "actor", MAX_KEY)


def check_reason(reason: str) -> str:
    return check_text(reason, "reason", MAX_REASON)


def check_description(description: str) -> str:
    return check_text(description, "description", MAX_DESCRIPTION)
