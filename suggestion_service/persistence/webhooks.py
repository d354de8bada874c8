"""The study webhooks' store (tables: persistence/tables.py), for tuning_common.webhooks (statements, use cases, senders)."""

from __future__ import annotations

from suggestion_service.domain.webhook import WebhookEvent
from suggestion_service.persistence.tables import webhook_tables
from tuning_common.webhooks import WebhookStore

STORE = WebhookStore(webhook_tables, events=WebhookEvent)
