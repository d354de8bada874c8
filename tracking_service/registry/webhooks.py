"""Use cases of registry webhooks (tuning_common.webhooks.WebhookService over the registry's
tables). Deliveries of registry events are queued by the registry's own writes (see
:mod:`tracking_service.registry.persistence.webhooks`) and posted by the sender threads that
tracking_service.server starts."""

from __future__ import annotations

from tracking_service.domain.model import check_key
from tracking_service.registry.persistence.webhooks import STORE, TEST_PAYLOAD
from tuning_common.database import Database
from tuning_common.webhooks import WebhookService


def webhook_service(db: Database) -> WebhookService:
    return WebhookService(db, STORE, check_scope=lambda name: check_key(name, "model_name"), test_payload=TEST_PAYLOAD)
