"""Webhooks of the model registry as plain values: what a webhook asks for, its deliveries and
their attempts, validation, the payload's signature and the retry schedule.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracking_service.registry.domain.model import RegistryAction
from tuning_common.errors import InvalidArgument

MAX_URL = 2_000
MIN_SECRET, MAX_SECRET = 16, 200
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")

SIGNATURE_HEADER = "X-Tuning-Signature"
EVENT_HEADER = "X-Tuning-Event"
DELIVERY_HEADER = "X-Tuning-Delivery"


class WebhookEvent(enum.Enum):
    MODEL_VERSION_CREATED = "MODEL_VERSION_CREATED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    STAGE_CHANGED = "STAGE_CHANGED"
    # Made by TestWebhook only; no webhook subscribes to it.
    TEST = "TEST"


# The audit log's actions that webhooks can follow; the others (renames, deletions of versions
# and models) have no webhook event yet.
ACTION_EVENTS = {
    RegistryAction.CREATE_VERSION: WebhookEvent.MODEL_VERSION_CREATED,
    RegistryAction.SET_ALIAS: WebhookEvent.ALIAS_SET,
    RegistryAction.DELETE_ALIAS: WebhookEvent.ALIAS_DELETED,
    RegistryAction.TRANSITION_STAGE: WebhookEvent.STAGE_CHANGED,
}


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Webhook:
    id: int
    name: str
    url: str
    events: tuple[WebhookEvent, ...]
    model_name: str
    active: bool
    has_secret: bool
    create_ms: int
    update_ms: int


@dataclass(frozen=True)
class Attempt:
    number: int
    time_ms: int
    status_code: int
    error: str
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook: str
    event: WebhookEvent
    registry_event_id: int | None
    model_name: str
    version: int
    status: DeliveryStatus
    create_ms: int
    next_attempt_ms: int
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class ClaimedDelivery:
    """What a sender needs to post a delivery it holds the lease on."""

    id: int
    claim: str
    attempts: int
    url: str
    secret: str
    event: WebhookEvent
    payload: str


# -- validation ------------------------------------------------------------------------------


def check_webhook_name(name: str, field: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(field, f"must be 1-100 letters, digits, '.', '_' or '-', got {name!r:.80}")
    return name


def check_url(url: str, field: str = "url") -> str:
    if not url:
        raise InvalidArgument(field, "must not be empty")
    if len(url) > MAX_URL:
        raise InvalidArgument(field, f"must be at most {MAX_URL} characters, got {len(url)}")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise InvalidArgument(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise InvalidArgument(field, f"is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(field, f"must be an http:// or https:// URL, got scheme {parts.scheme!r:.20}")
    # Credentials in a URL end up in logs and in every reader's GetWebhook; the secret signs instead.
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidArgument(field, "must not contain credentials (user:password@); the secret signs each delivery")
    if not parts.hostname:
        raise InvalidArgument(field, "must name a host")
    if parts.fragment:
        raise InvalidArgument(field, "must not have a fragment (#...)")
    return url


def check_events(events: list[WebhookEvent], field: str = "events") -> tuple[WebhookEvent, ...]:
    if not events:
        raise InvalidArgument(field, "must name at least one event")
    seen: list[WebhookEvent] = []
    for event in events:
        if event is WebhookEvent.TEST:
            raise InvalidArgument(field, "TEST is only for TestWebhook's deliveries")
        if event in seen:
            raise InvalidArgument(field, f"names {event.value} twice")
        seen.append(event)
    return tuple(seen)


def check_secret(secret: str, field: str = "secret") -> str:
    # The message tells the length only: a secret is never echoed.
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise InvalidArgument(field, f"must be {MIN_SECRET}-{MAX_SECRET} characters, got {len(secret)}")
    if not secret.isprintable():
        raise InvalidArgument(field, "must be printable characters")
    return secret


# -- signing and retrying --------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Tuning-Signature`` value: HMAC-SHA256 over ``<timestamp>.<body>``. The timestamp is
    signed too, so a receiver can refuse old deliveries replayed by someone who captured one."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff_s(attempts_made: int, base_s: float, max_s: float) -> float:
    """Delay before the next attempt after ``attempts_made`` failures: exponential, capped, with
    jitter in [1/2, 1] of it, so that receivers coming back up are not hit by every sender at once."""
    delay = min(max_s, base_s * 2 ** (attempts_made - 1))
    return delay * random.uniform(0.5, 1.0)
