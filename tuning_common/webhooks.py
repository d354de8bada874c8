"""Webhooks, free of any domain: each service that posts events (the tracking service's registry,
the suggestion service's studies) brings its tables, its event enum and its payloads; this module
holds what they share.

- validation of a webhook's name, URL, events and secret;
- the signature (``X-Tuning-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``)
  and the retry schedule (exponential backoff with jitter);
- ``define_tables``: a service's three tables (webhooks, the delivery outbox, the attempts), to
  which it adds its own scope and subject columns; ``WebhookStore``: every statement over them,
  including the senders' leases;
- ``WebhookService``: the use cases behind the Create/Get/List/Update/Delete/Test webhook RPCs
  and the delivery log;
- ``WebhookProtos``, ``WebhookRpcs``: the conversions of a service's webhook messages, of the
  same shape in each, and the webhook RPCs' decode, call and encode;
- ``WebhookSender``: the threads that post due deliveries, and their settings (``--webhook-*``).

Deliveries are rows written in the transaction of the event they carry (the outbox pattern):
the event and its deliveries commit together or not at all, so a crash can neither lose a
delivery of a committed event nor invent one for a rolled-back change.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import hmac
import http.client
import json
import logging
import random
import re
import secrets
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tuning_common import paging
from tuning_common.database import Database
from tuning_common.errors import AlreadyExists, InvalidArgument, NotFound
from tuning_common.settings import add_option

log = logging.getLogger(__name__)

MAX_URL = 2_000
MIN_SECRET, MAX_SECRET = 16, 200
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")

SIGNATURE_HEADER = "X-Tuning-Signature"
EVENT_HEADER = "X-Tuning-Event"
DELIVERY_HEADER = "X-Tuning-Delivery"
USER_AGENT = "tuning-webhooks/1"
MAX_ERROR = 1_000
# What is read of an answer: only its status matters; the rest is drained so the connection
# closes cleanly, but a receiver cannot keep a sender busy with an endless body.
MAX_ANSWER_BYTES = 64 * 1024
# Every service's event enum has this member, made by TestWebhook only; no webhook subscribes to it.
TEST = "TEST"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Webhook:
    id: int
    name: str
    url: str
    events: tuple[enum.Enum, ...]
    # The one model (registry) or study (suggestion service) it follows; "": all of them.
    scope: str
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
    event: enum.Enum
    status: DeliveryStatus
    create_ms: int
    next_attempt_ms: int
    attempts: tuple[Attempt, ...]
    # The service's own columns of the delivery (what the event was about), by name.
    subject: Mapping[str, Any]


@dataclass(frozen=True)
class ClaimedDelivery:
    """What a sender needs to post a delivery it holds the lease on."""

    id: int
    claim: str
    attempts: int
    url: str
    secret: str
    event: str
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


def check_events(events: list[enum.Enum], field: str = "events") -> tuple[enum.Enum, ...]:
    if not events:
        raise InvalidArgument(field, "must name at least one event")
    seen: list[enum.Enum] = []
    for event in events:
        if event.value == TEST:
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


# -- the tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTables:
    """A service's three webhook tables (``define_tables``) and the names of its own columns."""

    webhooks: sa.Table
    deliveries: sa.Table
    attempts: sa.Table
    # The webhooks column naming the model or study a webhook follows ("" for all).
    scope: str
    # The deliveries columns saying what an event was about (defaulted by the database for test
    # deliveries).
    subject: tuple[str, ...]


# Column types as both services' schemas declare them.
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def define_tables(metadata: sa.MetaData, prefix: str, *, scope: sa.Column,
                  subject: Sequence[sa.Column]) -> WebhookTables:
    """The webhooks, their delivery outbox and its attempts, in ``metadata`` (a service's schema),
    their names starting with ``prefix``; ``scope`` is the webhooks' column naming what a webhook
    follows, ``subject`` the deliveries' columns saying what an event was about. The secret is
    kept as given: signing needs it in clear."""
    webhooks = sa.Table(
        f"{prefix}webhooks",
        metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        # Comma-separated event names (MODEL_VERSION_CREATED,STAGE_CHANGED).
        sa.Column("events", sa.String(200), nullable=False),
        scope,
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    # The outbox: one row per (event, webhook), written in the transaction of the event.
    # ``claim``/``claimed_until_ms`` are a sender's lease on the row while it posts.
    deliveries = sa.Table(
        f"{prefix}webhook_deliveries",
        metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", _ID, sa.ForeignKey(f"{prefix}webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        *subject,
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("claimed_until_ms", sa.BigInteger, nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Index(f"ix_{prefix}webhook_deliveries_due", "status", "next_attempt_ms"),
        sa.Index(f"ix_{prefix}webhook_deliveries_webhook", "webhook_id", "id"),
        sqlite_autoincrement=True,
    )
    attempts = sa.Table(
        f"{prefix}webhook_attempts",
        metadata,
        sa.Column("delivery_id", _ID, sa.ForeignKey(f"{prefix}webhook_deliveries.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("duration_ms", sa.BigInteger, nullable=False),
    )
    return WebhookTables(webhooks, deliveries, attempts, scope.name, tuple(column.name for column in subject))


class WebhookStore:
    """Every statement over one service's webhook tables (``define_tables``; rows never leave it)."""

    def __init__(self, tables: WebhookTables, *, events: type[enum.Enum]):
        self.webhooks, self.deliveries_table, self.attempts = tables.webhooks, tables.deliveries, tables.attempts
        self.scope, self.events, self.subject = tables.scope, events, tables.subject

    def _webhook(self, row) -> Webhook:
        events = tuple(self.events(name) for name in row.events.split(",") if name)
        return Webhook(row.id, row.name, row.url, events, getattr(row, self.scope), bool(row.active),
                       bool(row.secret), row.create_ms, row.update_ms)

    # -- webhooks -----------------------------------------------------------------------------

    def insert_webhook(self, conn: Connection, *, name: str, url: str, events: tuple[enum.Enum, ...], scope: str,
                       secret: str, active: bool, now: int) -> int:
        try:
            result = conn.execute(self.webhooks.insert().values(
                name=name, url=url, events=",".join(e.value for e in events), secret=secret, active=active,
                create_ms=now, update_ms=now, **{self.scope: scope}))
        except IntegrityError as error:  # a concurrent twin wrote the name after our check
            raise AlreadyExists(f"a webhook named {name!r} exists") from error
        return int(result.inserted_primary_key[0])

    def find_webhook(self, conn: Connection, name: str, *, for_update: bool = False) -> Webhook | None:
        query = sa.select(self.webhooks).where(self.webhooks.c.name == name)
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else self._webhook(row)

    def get_webhook(self, conn: Connection, webhook_id: int) -> Webhook:
        return self._webhook(conn.execute(sa.select(self.webhooks).where(self.webhooks.c.id == webhook_id)).one())

    def list_webhooks(self, conn: Connection, after_name: str | None, limit: int) -> list[Webhook]:
        query = sa.select(self.webhooks)
        if after_name is not None:
            query = query.where(self.webhooks.c.name > after_name)
        return [self._webhook(row) for row in conn.execute(query.order_by(self.webhooks.c.name).limit(limit))]

    def update_webhook(self, conn: Connection, webhook_id: int, now: int, *, url: str | None = None,
                       events: tuple[enum.Enum, ...] | None = None, scope: str | None = None,
                       secret: str | None = None, active: bool | None = None) -> None:
        values = {"url": url, self.scope: scope, "secret": secret, "active": active,
                  "events": None if events is None else ",".join(e.value for e in events)}
        conn.execute(self.webhooks.update().where(self.webhooks.c.id == webhook_id)
                     .values(update_ms=now, **{k: v for k, v in values.items() if v is not None}))

    def delete_webhook(self, conn: Connection, webhook_id: int) -> None:
        # Deliveries and their attempts go by ON DELETE CASCADE.
        conn.execute(self.webhooks.delete().where(self.webhooks.c.id == webhook_id))

    # -- the outbox ---------------------------------------------------------------------------

    def _subscribers(self, conn: Connection, event: enum.Enum, scope: str) -> list[tuple[int, str]]:
        w = self.webhooks.c
        query = sa.select(w.id, w.name, w.events).where(w.active == sa.true(), w[self.scope].in_(["", scope]))
        return [(row.id, row.name) for row in conn.execute(query.order_by(w.id))
                if event.value in row.events.split(",")]

    def wanted(self, conn: Connection, event: enum.Enum, scope: str) -> bool:
        """Whether an active webhook asks for ``event`` of ``scope`` (spares working out a payload
        nobody is sent)."""
        return bool(self._subscribers(conn, event, scope))

    def enqueue(self, conn: Connection, event: enum.Enum, scope: str, now: int, payload: Mapping[str, Any],
                subject: Mapping[str, Any]) -> int:
        """Deliveries of an event just written, in its transaction: one per active webhook that wants
        it. The posted JSON is {"delivery_id", "webhook", "event", **payload, "time"}."""
        subscribers = self._subscribers(conn, event, scope)
        for webhook_id, name in subscribers:
            self.insert_delivery(conn, webhook_id, event, {"webhook": name, "event": event.value, **payload,
                                                           "time": iso_time(now)}, now, subject)
        return len(subscribers)

    def insert_delivery(self, conn: Connection, webhook_id: int, event: enum.Enum, payload: Mapping[str, Any],
                        now: int, subject: Mapping[str, Any]) -> int:
        result = conn.execute(self.deliveries_table.insert().values(
            webhook_id=webhook_id, event=event.value, payload=json.dumps(payload, separators=(",", ":")),
            status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_ms=now, create_ms=now, **subject))
        return int(result.inserted_primary_key[0])

    def deliveries(self, conn: Connection, webhook: Webhook, status: DeliveryStatus | None, before_id: int | None,
                   limit: int) -> list[Delivery]:
        c = self.deliveries_table.c
        query = sa.select(self.deliveries_table).where(c.webhook_id == webhook.id)
        if status is not None:
            query = query.where(c.status == status.value)
        if before_id is not None:
            query = query.where(c.id < before_id)
        rows = list(conn.execute(query.order_by(c.id.desc()).limit(limit)))
        return self._deliveries(conn, rows, webhook.name)

    def get_delivery(self, conn: Connection, delivery_id: int, webhook_name: str) -> Delivery:
        rows = list(conn.execute(sa.select(self.deliveries_table).where(self.deliveries_table.c.id == delivery_id)))
        return self._deliveries(conn, rows, webhook_name)[0]

    def _deliveries(self, conn: Connection, rows: list, webhook_name: str) -> list[Delivery]:
        attempts: dict[int, list[Attempt]] = defaultdict(list)
        if rows:
            a = self.attempts.c
            query = (sa.select(self.attempts).where(a.delivery_id.in_([row.id for row in rows]))
                     .order_by(a.delivery_id, a.number))
            for found in conn.execute(query):
                attempts[found.delivery_id].append(Attempt(found.number, found.time_ms, found.status_code,
                                                           found.error, found.duration_ms))
        return [Delivery(row.id, webhook_name, self.events(row.event), DeliveryStatus(row.status), row.create_ms,
                         row.next_attempt_ms, tuple(attempts[row.id]),
                         {name: getattr(row, name) for name in self.subject}) for row in rows]

    # -- senders ------------------------------------------------------------------------------

    def due(self, conn: Connection, now: int, limit: int) -> list[tuple[int, int]]:
        """(id, attempts made) of deliveries due for an attempt and not leased by a live sender."""
        c = self.deliveries_table.c
        query = (sa.select(c.id, c.attempts)
                 .where(c.status == DeliveryStatus.PENDING.value, c.next_attempt_ms <= now,
                        sa.or_(c.claimed_until_ms.is_(None), c.claimed_until_ms < now))
                 .order_by(c.next_attempt_ms, c.id).limit(limit))
        return [(row.id, row.attempts) for row in conn.execute(query)]

    def claim(self, conn: Connection, delivery_id: int, attempts: int, claim: str, now: int, until: int) -> bool:
        """Takes the lease on a delivery for its next attempt; False when another sender has it.

        A conditional UPDATE rather than SELECT ... FOR UPDATE SKIP LOCKED, because it works the
        same on SQLite and PostgreSQL: the WHERE repeats what ``due`` saw (still pending, the same
        attempt number, no live lease), and the database applies it atomically. On PostgreSQL a
        concurrent claimer blocks on the row, then re-checks the WHERE against the committed row
        and updates nothing; on SQLite writers are serialised anyway. So of several replicas that
        saw the row due, exactly one gets rowcount 1 and posts that attempt. A sender that dies
        holding a lease leaves the row to others once ``claimed_until_ms`` passes: delivery is at
        least once, and receivers deduplicate by the delivery id.
        """
        c = self.deliveries_table.c
        result = conn.execute(self.deliveries_table.update().where(
            c.id == delivery_id, c.status == DeliveryStatus.PENDING.value, c.attempts == attempts,
            c.next_attempt_ms <= now, sa.or_(c.claimed_until_ms.is_(None), c.claimed_until_ms < now),
        ).values(claim=claim, claimed_until_ms=until))
        return result.rowcount == 1

    def claimed(self, conn: Connection, delivery_id: int) -> ClaimedDelivery:
        d, w = self.deliveries_table.c, self.webhooks.c
        row = conn.execute(sa.select(d.id, d.claim, d.attempts, d.event, d.payload, w.url, w.secret)
                           .join(self.webhooks, w.id == d.webhook_id).where(d.id == delivery_id)).one()
        return ClaimedDelivery(row.id, row.claim, row.attempts, row.url, row.secret, row.event, row.payload)

    def record_attempt(self, conn: Connection, delivery: ClaimedDelivery, attempt: Attempt, status: DeliveryStatus,
                       next_attempt_ms: int) -> bool:
        """Logs an attempt and moves the delivery on, if this sender still holds its lease (False if not:
        the webhook was deleted, or the lease ran out and another sender took over)."""
        c = self.deliveries_table.c
        result = conn.execute(self.deliveries_table.update().where(
            c.id == delivery.id, c.claim == delivery.claim, c.attempts == delivery.attempts,
        ).values(attempts=attempt.number, status=status.value, next_attempt_ms=next_attempt_ms, claim=None,
                 claimed_until_ms=None))
        if result.rowcount != 1:
            return False
        conn.execute(self.attempts.insert().values(
            delivery_id=delivery.id, number=attempt.number, time_ms=attempt.time_ms, status_code=attempt.status_code,
            error=attempt.error, duration_ms=attempt.duration_ms))
        return True


# -- the use cases -----------------------------------------------------------------------------


class WebhookService:
    """Create, read, change and delete webhooks, queue a test delivery, read the delivery log.

    ``check_scope`` validates a non-empty scope (a model or study name) and names its field;
    ``test_payload`` is what a TEST delivery carries besides webhook, event and time (the event
    payload's fields, blank)."""

    def __init__(self, db: Database, store: WebhookStore, *, check_scope: Callable[[str], object],
                 test_payload: Mapping[str, Any]):
        self.db, self.store = db, store
        self.check_scope, self.test_payload = check_scope, dict(test_payload)
        # Set when a test delivery is queued, so a sender of this process posts it without waiting
        # for its next poll.
        self.wake = threading.Event()

    def _webhook(self, conn: Connection, name: str, *, for_update: bool = False) -> Webhook:
        webhook = self.store.find_webhook(conn, name, for_update=for_update)
        if webhook is None:
            raise NotFound(f"no webhook named {name!r}")
        return webhook

    def create(self, name: str, url: str, events: list[enum.Enum], scope: str = "", secret: str = "",
               active: bool = True) -> tuple[Webhook, str]:
        """The webhook and the secret generated for it ("" when ``secret`` was given)."""
        check_webhook_name(name)
        check_url(url)
        wanted = check_events(events)
        if scope:
            self.check_scope(scope)
        generated = "" if secret else secrets.token_urlsafe(32)
        if secret:
            check_secret(secret)

        def work(conn: Connection) -> Webhook:
            if self.store.find_webhook(conn, name) is not None:
                raise AlreadyExists(f"a webhook named {name!r} exists")
            webhook_id = self.store.insert_webhook(conn, name=name, url=url, events=wanted, scope=scope,
                                                   secret=secret or generated, active=active, now=now_ms())
            return self.store.get_webhook(conn, webhook_id)

        return self.db.run(work, write=True), generated

    def get(self, name: str) -> Webhook:
        check_webhook_name(name)
        return self.db.run(lambda conn: self._webhook(conn, name), write=False)

    def list_webhooks(self, size: int = 0, token: str = "") -> tuple[list[Webhook], str]:
        size = paging.page_size(size, 100, 1_000)
        fingerprint = paging.fingerprint("webhooks")
        after = paging.decode_keyset_token(token, fingerprint, (str,))[0] if token else None
        found = self.db.run(lambda conn: self.store.list_webhooks(conn, after, size + 1), write=False)
        if len(found) <= size:
            return found, ""
        page = found[:size]
        return page, paging.encode_keyset_token([page[-1].name], fingerprint)

    def update(self, name: str, *, url: str | None = None, events: list[enum.Enum] | None = None,
               scope: str | None = None, secret: str | None = None, active: bool | None = None) -> Webhook:
        check_webhook_name(name)
        if url is not None:
            check_url(url)
        wanted = None if events is None else check_events(events)
        if scope:
            self.check_scope(scope)
        if secret is not None:
            check_secret(secret)

        def work(conn: Connection) -> Webhook:
            webhook = self._webhook(conn, name, for_update=True)
            self.store.update_webhook(conn, webhook.id, now_ms(), url=url, events=wanted, scope=scope,
                                      secret=secret, active=active)
            return self.store.get_webhook(conn, webhook.id)

        return self.db.run(work, write=True)

    def delete(self, name: str) -> None:
        check_webhook_name(name)
        self.db.run(lambda conn: self.store.delete_webhook(conn, self._webhook(conn, name, for_update=True).id),
                    write=True)

    def test(self, name: str) -> Delivery:
        check_webhook_name(name)

        def work(conn: Connection) -> Delivery:
            webhook, now = self._webhook(conn, name), now_ms()
            event = self.store.events(TEST)
            payload = {"webhook": webhook.name, "event": TEST, **self.test_payload, "time": iso_time(now)}
            return self.store.get_delivery(conn, self.store.insert_delivery(conn, webhook.id, event, payload, now, {}),
                                           name)

        delivery = self.db.run(work, write=True)
        self.wake.set()
        return delivery

    def deliveries(self, name: str, status: DeliveryStatus | None = None, size: int = 0, token: str = ""
                   ) -> tuple[list[Delivery], str]:
        """Newest first, each with its attempts."""
        check_webhook_name(name)
        size = paging.page_size(size, 100, 1_000)
        fingerprint = paging.fingerprint("webhook_deliveries", name, status.value if status else "")
        before = paging.decode_keyset_token(token, fingerprint, (int,))[0] if token else None

        def work(conn: Connection) -> list[Delivery]:
            return self.store.deliveries(conn, self._webhook(conn, name), status, before, size + 1)

        found = self.db.run(work, write=False)
        if len(found) <= size:
            return found, ""
        page = found[:size]
        return page, paging.encode_keyset_token([page[-1].id], fingerprint)


# -- proto conversions ---------------------------------------------------------------------------


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


class WebhookProtos:
    """Proto <-> values for one service's webhook messages: ``pb`` is its generated module with
    WebhookEvent, WebhookDeliveryStatus, Webhook, WebhookDelivery and WebhookDeliveryAttempt;
    ``scope_field`` the Webhook field of its scope; each delivery's ``subject`` goes to the
    WebhookDelivery fields of the same names."""

    def __init__(self, pb: Any, events: type[enum.Enum], scope_field: str):
        self.pb, self.scope_field = pb, scope_field
        self._events = {event: pb.WebhookEvent.Value(f"WEBHOOK_EVENT_{event.name}") for event in events}
        self._event_from = {v: k for k, v in self._events.items() if k.value != TEST}
        self._statuses = {status: pb.WebhookDeliveryStatus.Value(f"WEBHOOK_DELIVERY_STATUS_{status.name}")
                          for status in DeliveryStatus}
        self._status_from = {v: k for k, v in self._statuses.items()}

    def events_from_proto(self, values, field: str = "events") -> list[enum.Enum]:
        out = []
        for i, value in enumerate(values):
            if value not in self._event_from:
                names = ", ".join(self.pb.WebhookEvent.Name(v) for v in self._event_from)
                raise InvalidArgument(f"{field}[{i}]", f"must be one of {names}, got {value}")
            out.append(self._event_from[value])
        return out

    def status_from_proto(self, value: int, field: str = "status") -> DeliveryStatus | None:
        if value == 0:  # WEBHOOK_DELIVERY_STATUS_UNSPECIFIED
            return None
        if value not in self._status_from:
            raise InvalidArgument(field, f"must be a WebhookDeliveryStatus, got {value}")
        return self._status_from[value]

    def webhook_to_proto(self, w: Webhook):
        # No secret field: the secret is write-only.
        return self.pb.Webhook(name=w.name, url=w.url, events=[self._events[e] for e in w.events], active=w.active,
                               has_secret=w.has_secret, create_time=_timestamp(w.create_ms),
                               update_time=_timestamp(w.update_ms), **{self.scope_field: w.scope})

    def delivery_to_proto(self, d: Delivery):
        pending = d.status is DeliveryStatus.PENDING
        return self.pb.WebhookDelivery(
            id=d.id, webhook=d.webhook, event=self._events[d.event], status=self._statuses[d.status],
            create_time=_timestamp(d.create_ms), next_attempt_time=_timestamp(d.next_attempt_ms) if pending else None,
            attempts=[self.pb.WebhookDeliveryAttempt(number=a.number, time=_timestamp(a.time_ms),
                                                     status_code=a.status_code, error=a.error,
                                                     duration_ms=a.duration_ms) for a in d.attempts],
            **{name: value for name, value in d.subject.items() if value is not None})


class WebhookRpcs:
    """The webhook RPCs of a servicer, decoded, called and encoded: ``api`` is the module of the
    service's request and response messages, ``infix`` "" (CreateWebhook) or "Study"
    (CreateStudyWebhook). A servicer's methods hand their request to the method of the same verb."""

    def __init__(self, service: WebhookService, protos: WebhookProtos, api: Any, infix: str):
        self.service, self.protos, self.api, self.infix = service, protos, api, infix

    def _response(self, verb: str, plural: str = "", **fields: Any) -> Any:
        return getattr(self.api, f"{verb}{self.infix}Webhook{plural}Response")(**fields)

    def create(self, request) -> Any:
        webhook, secret = self.service.create(
            request.name, request.url, self.protos.events_from_proto(request.events),
            getattr(request, self.protos.scope_field), request.secret,
            request.active if request.HasField("active") else True)
        return self._response("Create", webhook=self.protos.webhook_to_proto(webhook), secret=secret)

    def get(self, request) -> Any:
        return self._response("Get", webhook=self.protos.webhook_to_proto(self.service.get(request.name)))

    def list(self, request) -> Any:
        found, token = self.service.list_webhooks(request.page_size, request.page_token)
        return self._response("List", "s", webhooks=[self.protos.webhook_to_proto(w) for w in found],
                              next_page_token=token)

    def update(self, request) -> Any:
        def given(field: str):
            return getattr(request, field) if request.HasField(field) else None

        events = (self.protos.events_from_proto(request.events.events, "events.events")
                  if request.HasField("events") else None)
        webhook = self.service.update(request.name, url=given("url"), events=events,
                                      scope=given(self.protos.scope_field), secret=given("secret"),
                                      active=given("active"))
        return self._response("Update", webhook=self.protos.webhook_to_proto(webhook))

    def delete(self, request) -> Any:
        self.service.delete(request.name)
        return self._response("Delete")

    def test(self, request) -> Any:
        return self._response("Test", delivery=self.protos.delivery_to_proto(self.service.test(request.name)))

    def deliveries(self, request) -> Any:
        found, token = self.service.deliveries(request.name, self.protos.status_from_proto(request.status),
                                               request.page_size, request.page_token)
        return self._response("List", "Deliveries", deliveries=[self.protos.delivery_to_proto(d) for d in found],
                              next_page_token=token)


# -- the sender --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderSettings:
    threads: int = 1
    attempts: int = 8
    backoff_s: float = 10.0
    max_backoff_s: float = 3_600.0
    timeout_s: float = 10.0
    poll_s: float = 1.0
    batch: int = 20

    def __post_init__(self):
        for name, low in (("threads", 0), ("attempts", 1), ("batch", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"webhook {name} must be at least {low}, got {getattr(self, name)}")
        for name in ("backoff_s", "max_backoff_s", "timeout_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"webhook {name} must be more than 0, got {getattr(self, name)}")

    @property
    def lease_ms(self) -> int:
        # Longer than any one attempt (connect, send and read each get the timeout), so a live
        # sender never loses its lease mid-post; a dead one's deliveries wait this long.
        return int((3 * self.timeout_s + 30) * 1000)


def add_sender_options(parser: argparse.ArgumentParser) -> None:
    """The ``--webhook-*`` settings of a service that posts webhooks (docs/OPERATIONS.md)."""
    add_option(parser, "--webhook-senders", env="TUNING_WEBHOOK_SENDERS", default=1, type=int,
               help="threads posting webhook deliveries (0: this replica posts none)")
    add_option(parser, "--webhook-attempts", env="TUNING_WEBHOOK_ATTEMPTS", default=8, type=int,
               help="attempts per webhook delivery before it is marked FAILED")
    add_option(parser, "--webhook-backoff", env="TUNING_WEBHOOK_BACKOFF", default=10.0, type=float,
               help="seconds before a delivery's 2nd attempt; doubled for each later one (with jitter)")
    add_option(parser, "--webhook-max-backoff", env="TUNING_WEBHOOK_MAX_BACKOFF", default=3600.0, type=float,
               help="longest wait between two attempts of a delivery, in seconds")
    add_option(parser, "--webhook-timeout", env="TUNING_WEBHOOK_TIMEOUT", default=10.0, type=float,
               help="seconds to connect to a receiver, and to wait for each read of its answer")
    add_option(parser, "--webhook-poll", env="TUNING_WEBHOOK_POLL", default=1.0, type=float,
               help="seconds between two looks for due deliveries when there is nothing to post")


def sender_settings(args: argparse.Namespace) -> SenderSettings:
    """The settings of ``add_sender_options``; ValueError for one out of range."""
    return SenderSettings(threads=args.webhook_senders, attempts=args.webhook_attempts,
                          backoff_s=args.webhook_backoff, max_backoff_s=args.webhook_max_backoff,
                          timeout_s=args.webhook_timeout, poll_s=args.webhook_poll)


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """(HTTP status, error text): status 0 when no answer came; error "" for a 2xx. Redirects are
    not followed (a 3xx is a failed attempt): following one would let a receiver point the signed
    payload anywhere."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout_s,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        kind = "timed out" if isinstance(error, socket.timeout | TimeoutError) else type(error).__name__
        return 0, f"{kind}: {error}"[:MAX_ERROR]
    finally:
        connection.close()
    if 200 <= status < 300:
        return status, ""
    if 300 <= status < 400:
        return status, f"HTTP {status}: redirects are not followed"
    return status, f"HTTP {status}"


class WebhookSender:
    """Threads that post queued deliveries.

    Each pass takes the due deliveries, claims each with a lease (so that replicas sharing the
    database never post the same attempt twice; see ``WebhookStore.claim``), posts it, and records
    the attempt: DELIVERED on a 2xx answer, else PENDING again after an exponential backoff with
    jitter, or FAILED once ``attempts`` are made.
    """

    def __init__(self, db: Database, store: WebhookStore, settings: SenderSettings,
                 wake: threading.Event | None = None):
        self.db, self.store, self.settings = db, store, settings
        self.wake = wake or threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"webhook-sender-{i}", daemon=True)
                         for i in range(settings.threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # a database outage must not end the thread; the next pass retries
                log.exception("webhook sender pass failed")
                worked = 0
            if not worked:
                self.wake.wait(self.settings.poll_s)
                self.wake.clear()

    def run_once(self) -> int:
        """Posts the deliveries due now that this sender can claim; how many it posted."""
        now = now_ms()
        due = self.db.run(lambda conn: self.store.due(conn, now, self.settings.batch), write=False)
        posted = 0
        for delivery_id, attempts in due:
            if self._stop.is_set():
                break
            claim = secrets.token_hex(16)

            def take(conn, delivery_id=delivery_id, attempts=attempts, claim=claim) -> ClaimedDelivery | None:
                now = now_ms()
                if not self.store.claim(conn, delivery_id, attempts, claim, now, now + self.settings.lease_ms):
                    return None
                return self.store.claimed(conn, delivery_id)

            delivery = self.db.run(take, write=True)
            if delivery is not None:
                self._attempt(delivery)
                posted += 1
        return posted

    def _attempt(self, delivery: ClaimedDelivery) -> None:
        number = delivery.attempts + 1
        body = json.dumps({"delivery_id": delivery.id, **json.loads(delivery.payload)},
                          separators=(",", ":")).encode()
        started_ms, started = now_ms(), time.monotonic()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   EVENT_HEADER: delivery.event, DELIVERY_HEADER: str(delivery.id),
                   SIGNATURE_HEADER: signature(delivery.secret, int(time.time()), body)}
        status_code, error = post(delivery.url, body, headers, self.settings.timeout_s)
        attempt = Attempt(number, started_ms, status_code, error, int((time.monotonic() - started) * 1000))
        if not error:
            status, next_ms = DeliveryStatus.DELIVERED, now_ms()
        elif number >= self.settings.attempts:
            status, next_ms = DeliveryStatus.FAILED, now_ms()
        else:
            delay = backoff_s(number, self.settings.backoff_s, self.settings.max_backoff_s)
            status, next_ms = DeliveryStatus.PENDING, now_ms() + int(delay * 1000)
        recorded = self.db.run(lambda conn: self.store.record_attempt(conn, delivery, attempt, status, next_ms),
                               write=True)
        if not recorded:
            log.info("webhook delivery %d: lease lost before its attempt was recorded", delivery.id)
        elif error:
            log.info("webhook delivery %d attempt %d failed: %s", delivery.id, number, error)
