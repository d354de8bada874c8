"""The study webhooks' tables, for tuning_common.webhooks (statements, use cases, senders)."""

from __future__ import annotations

from suggestion_service.domain.webhook import WebhookEvent
from suggestion_service.persistence.tables import study_webhook_attempts, study_webhook_deliveries, study_webhooks
from tuning_common.webhooks import WebhookStore

STORE = WebhookStore(study_webhooks, study_webhook_deliveries, study_webhook_attempts, scope="study_name",
                     events=WebhookEvent, subject=("study_name", "trial_number"))
