"""The registry's webhook events. What webhooks share with the suggestion service's (validation,
signature, retries, the outbox) is tuning_common.webhooks."""

from __future__ import annotations

import enum

from tracking_service.registry.domain.model import RegistryAction


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
