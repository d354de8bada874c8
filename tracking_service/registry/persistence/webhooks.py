"""The registry's webhook store and the deliveries of its audit log's events (written in the
event's transaction: the outbox, see tuning_common.webhooks)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from tracking_service.persistence.tables import webhook_tables
from tracking_service.registry.domain.model import RegistryAction
from tracking_service.registry.domain.webhook import ACTION_EVENTS, WebhookEvent
from tuning_common.webhooks import WebhookStore

STORE = WebhookStore(webhook_tables, events=WebhookEvent)

# A TestWebhook delivery's payload: the fields of an event's, blank.
TEST_PAYLOAD = {"event_id": 0, "model_name": "", "version": 0, "from": "", "to": "", "alias": "", "actor": "",
                "reason": ""}


def enqueue(conn: Connection, event_id: int, action: RegistryAction, model_name: str, version: int, now: int,
            **fields: str) -> None:
    """Deliveries of a registry event just written, one per active webhook that wants it."""
    event = ACTION_EVENTS.get(action)
    if event is None:
        return
    payload = {"event_id": event_id, "model_name": model_name, "version": version,
               "from": fields.get("from_value", ""), "to": fields.get("to_value", ""),
               "alias": fields.get("alias", ""), "actor": fields.get("actor", ""), "reason": fields.get("reason", "")}
    STORE.enqueue(conn, event, model_name, now, payload,
                  {"registry_event_id": event_id, "model_name": model_name, "version": version})
