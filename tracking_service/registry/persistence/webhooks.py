"""Reads and writes of registry webhooks and their delivery outbox.

Deliveries are rows written in the transaction of the registry event they carry (the outbox
pattern): the event and its deliveries commit together or not at all, so a crash can neither
lose a delivery of a committed event nor invent one for a rolled-back change. Senders then
take rows by a lease (see ``claim``) and record each attempt.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tracking_service.persistence.repository import unique
from tracking_service.persistence.tables import webhook_attempts, webhook_deliveries, webhooks
from tracking_service.registry.domain.model import RegistryAction
from tracking_service.registry.domain.webhook import (
    ACTION_EVENTS,
    Attempt,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookEvent,
)


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _webhook(row) -> Webhook:
    events = tuple(WebhookEvent(name) for name in row.events.split(",") if name)
    return Webhook(row.id, row.name, row.url, events, row.model_name, bool(row.active), bool(row.secret),
                   row.create_ms, row.update_ms)


class WebhookRepository:
    # -- webhooks -----------------------------------------------------------------------------

    def insert_webhook(self, conn: Connection, *, name: str, url: str, events: tuple[WebhookEvent, ...],
                       model_name: str, secret: str, active: bool, now: int) -> int:
        with unique(f"a webhook named {name!r} exists"):
            result = conn.execute(webhooks.insert().values(
                name=name, url=url, events=",".join(e.value for e in events), model_name=model_name, secret=secret,
                active=active, create_ms=now, update_ms=now))
        return int(result.inserted_primary_key[0])

    def find_webhook(self, conn: Connection, name: str, *, for_update: bool = False) -> Webhook | None:
        query = sa.select(webhooks).where(webhooks.c.name == name)
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else _webhook(row)

    def get_webhook(self, conn: Connection, webhook_id: int) -> Webhook:
        return _webhook(conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id)).one())

    def list_webhooks(self, conn: Connection, after_name: str | None, limit: int) -> list[Webhook]:
        query = sa.select(webhooks)
        if after_name is not None:
            query = query.where(webhooks.c.name > after_name)
        return [_webhook(row) for row in conn.execute(query.order_by(webhooks.c.name).limit(limit))]

    def update_webhook(self, conn: Connection, webhook_id: int, now: int, *, url: str | None = None,
                       events: tuple[WebhookEvent, ...] | None = None, model_name: str | None = None,
                       secret: str | None = None, active: bool | None = None) -> None:
        values = {"url": url, "model_name": model_name, "secret": secret, "active": active,
                  "events": None if events is None else ",".join(e.value for e in events)}
        conn.execute(webhooks.update().where(webhooks.c.id == webhook_id)
                     .values(update_ms=now, **{k: v for k, v in values.items() if v is not None}))

    def delete_webhook(self, conn: Connection, webhook_id: int) -> None:
        # Deliveries and their attempts go by ON DELETE CASCADE.
        conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))

    # -- the outbox ---------------------------------------------------------------------------

    def enqueue(self, conn: Connection, event_id: int, action: RegistryAction, model_name: str, version: int,
                now: int, **fields: str) -> None:
        """Deliveries of a registry event just written, one per active webhook that wants it."""
        event = ACTION_EVENTS.get(action)
        if event is None:
            return
        query = sa.select(webhooks.c.id, webhooks.c.name, webhooks.c.events).where(
            webhooks.c.active == sa.true(), webhooks.c.model_name.in_(["", model_name]))
        for row in conn.execute(query):
            if event.value not in row.events.split(","):
                continue
            payload = {"webhook": row.name, "event": event.value, "event_id": event_id, "model_name": model_name,
                       "version": version, "from": fields.get("from_value", ""), "to": fields.get("to_value", ""),
                       "alias": fields.get("alias", ""), "actor": fields.get("actor", ""),
                       "reason": fields.get("reason", ""), "time": iso_time(now)}
            self._insert_delivery(conn, row.id, event, event_id, model_name, version, payload, now)

    def enqueue_test(self, conn: Connection, webhook: Webhook, now: int) -> int:
        payload = {"webhook": webhook.name, "event": WebhookEvent.TEST.value, "event_id": 0, "model_name": "",
                   "version": 0, "from": "", "to": "", "alias": "", "actor": "", "reason": "", "time": iso_time(now)}
        return self._insert_delivery(conn, webhook.id, WebhookEvent.TEST, None, "", 0, payload, now)

    def _insert_delivery(self, conn: Connection, webhook_id: int, event: WebhookEvent, event_id: int | None,
                         model_name: str, version: int, payload: dict, now: int) -> int:
        result = conn.execute(webhook_deliveries.insert().values(
            webhook_id=webhook_id, event=event.value, registry_event_id=event_id, model_name=model_name,
            version=version, payload=json.dumps(payload, separators=(",", ":")), status=DeliveryStatus.PENDING.value,
            attempts=0, next_attempt_ms=now, create_ms=now))
        return int(result.inserted_primary_key[0])

    def deliveries(self, conn: Connection, webhook: Webhook, status: DeliveryStatus | None, before_id: int | None,
                   limit: int) -> list[Delivery]:
        c = webhook_deliveries.c
        query = sa.select(webhook_deliveries).where(c.webhook_id == webhook.id)
        if status is not None:
            query = query.where(c.status == status.value)
        if before_id is not None:
            query = query.where(c.id < before_id)
        rows = list(conn.execute(query.order_by(c.id.desc()).limit(limit)))
        return self._deliveries(conn, rows, webhook.name)

    def get_delivery(self, conn: Connection, delivery_id: int, webhook_name: str) -> Delivery:
        rows = list(conn.execute(sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)))
        return self._deliveries(conn, rows, webhook_name)[0]

    def _deliveries(self, conn: Connection, rows: list, webhook_name: str) -> list[Delivery]:
        attempts: dict[int, list[Attempt]] = defaultdict(list)
        if rows:
            query = (sa.select(webhook_attempts)
                     .where(webhook_attempts.c.delivery_id.in_([row.id for row in rows]))
                     .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.number))
            for a in conn.execute(query):
                attempts[a.delivery_id].append(Attempt(a.number, a.time_ms, a.status_code, a.error, a.duration_ms))
        return [Delivery(row.id, webhook_name, WebhookEvent(row.event), row.registry_event_id, row.model_name,
                         row.version, DeliveryStatus(row.status), row.create_ms, row.next_attempt_ms,
                         tuple(attempts[row.id])) for row in rows]

    # -- senders ------------------------------------------------------------------------------

    def due(self, conn: Connection, now: int, limit: int) -> list[tuple[int, int]]:
        """(id, attempts made) of deliveries due for an attempt and not leased by a live sender."""
        c = webhook_deliveries.c
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
        c = webhook_deliveries.c
        result = conn.execute(webhook_deliveries.update().where(
            c.id == delivery_id, c.status == DeliveryStatus.PENDING.value, c.attempts == attempts,
            c.next_attempt_ms <= now, sa.or_(c.claimed_until_ms.is_(None), c.claimed_until_ms < now),
        ).values(claim=claim, claimed_until_ms=until))
        return result.rowcount == 1

    def claimed(self, conn: Connection, delivery_id: int) -> ClaimedDelivery:
        d, w = webhook_deliveries.c, webhooks.c
        row = conn.execute(sa.select(d.id, d.claim, d.attempts, d.event, d.payload, w.url, w.secret)
                           .join(webhooks, w.id == d.webhook_id).where(d.id == delivery_id)).one()
        return ClaimedDelivery(row.id, row.claim, row.attempts, row.url, row.secret, WebhookEvent(row.event),
                               row.payload)

    def record_attempt(self, conn: Connection, delivery: ClaimedDelivery, attempt: Attempt, status: DeliveryStatus,
                       next_attempt_ms: int) -> bool:
        """Logs an attempt and moves the delivery on, if this sender still holds its lease (False if not:
        the webhook was deleted, or the lease ran out and another sender took over)."""
        c = webhook_deliveries.c
        result = conn.execute(webhook_deliveries.update().where(
            c.id == delivery.id, c.claim == delivery.claim, c.attempts == delivery.attempts,
        ).values(attempts=attempt.number, status=status.value, next_attempt_ms=next_attempt_ms, claim=None,
                 claimed_until_ms=None))
        if result.rowcount != 1:
            return False
        conn.execute(webhook_attempts.insert().values(
            delivery_id=delivery.id, number=attempt.number, time_ms=attempt.time_ms, status_code=attempt.status_code,
            error=attempt.error, duration_ms=attempt.duration_ms))
        return True
