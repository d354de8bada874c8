"""Use cases of registry webhooks: create, read, change and delete them, queue a test delivery,
read the delivery log. Deliveries of registry events are queued by the registry's own writes
(see :mod:`tracking_service.registry.persistence.webhooks`) and posted by
:mod:`tracking_service.registry.sender`.
"""

from __future__ import annotations

import secrets
import threading

from tracking_service.domain import paging
from tracking_service.domain.model import check_key
from tracking_service.persistence import Transaction
from tracking_service.registry.domain.webhook import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookEvent,
    check_events,
    check_secret,
    check_url,
    check_webhook_name,
)
from tracking_service.registry.persistence.webhooks import WebhookRepository
from tracking_service.service import now_ms, page_size
from tuning_common.database import Database
from tuning_common.errors import AlreadyExists, NotFound


def _check_model_name(model_name: str) -> str:
    return check_key(model_name, "model_name") if model_name else model_name


class WebhookService:
    def __init__(self, db: Database):
        self.db, self.repo = db, WebhookRepository()
        # Set when a test delivery is queued, so a sender of this process posts it without waiting
        # for its next poll.
        self.wake = threading.Event()

    def _webhook(self, conn: Transaction, name: str, *, for_update: bool = False) -> Webhook:
        webhook = self.repo.find_webhook(conn, name, for_update=for_update)
        if webhook is None:
            raise NotFound(f"no webhook named {name!r}")
        return webhook

    def create(self, name: str, url: str, events: list[WebhookEvent], model_name: str = "", secret: str = "",
               active: bool = True) -> tuple[Webhook, str]:
        """The webhook and the secret generated for it ("" when ``secret`` was given)."""
        check_webhook_name(name)
        check_url(url)
        wanted = check_events(events)
        _check_model_name(model_name)
        generated = "" if secret else secrets.token_urlsafe(32)
        if secret:
            check_secret(secret)

        def work(conn: Transaction) -> Webhook:
            if self.repo.find_webhook(conn, name) is not None:
                raise AlreadyExists(f"a webhook named {name!r} exists")
            webhook_id = self.repo.insert_webhook(conn, name=name, url=url, events=wanted, model_name=model_name,
                                                  secret=secret or generated, active=active, now=now_ms())
            return self.repo.get_webhook(conn, webhook_id)

        return self.db.run(work, write=True), generated

    def get(self, name: str) -> Webhook:
        check_webhook_name(name)
        return self.db.run(lambda conn: self._webhook(conn, name), write=False)

    def list_webhooks(self, size: int = 0, token: str = "") -> tuple[list[Webhook], str]:
        size = page_size(size, 100, 1_000)
        fingerprint = paging.fingerprint("webhooks")
        after = paging.decode_keyset_token(token, fingerprint, (str,))[0] if token else None
        found = self.db.run(lambda conn: self.repo.list_webhooks(conn, after, size + 1), write=False)
        if len(found) <= size:
            return found, ""
        page = found[:size]
        return page, paging.encode_keyset_token([page[-1].name], fingerprint)

    def update(self, name: str, *, url: str | None = None, events: list[WebhookEvent] | None = None,
               model_name: str | None = None, secret: str | None = None, active: bool | None = None) -> Webhook:
        check_webhook_name(name)
        if url is not None:
            check_url(url)
        wanted = None if events is None else check_events(events)
        if model_name is not None:
            _check_model_name(model_name)
        if secret is not None:
            check_secret(secret)

        def work(conn: Transaction) -> Webhook:
            webhook = self._webhook(conn, name, for_update=True)
            self.repo.update_webhook(conn, webhook.id, now_ms(), url=url, events=wanted, model_name=model_name,
                                     secret=secret, active=active)
            return self.repo.get_webhook(conn, webhook.id)

        return self.db.run(work, write=True)

    def delete(self, name: str) -> None:
        check_webhook_name(name)
        self.db.run(lambda conn: self.repo.delete_webhook(conn, self._webhook(conn, name, for_update=True).id),
                    write=True)

    def test(self, name: str) -> Delivery:
        check_webhook_name(name)

        def work(conn: Transaction) -> Delivery:
            webhook = self._webhook(conn, name)
            return self.repo.get_delivery(conn, self.repo.enqueue_test(conn, webhook, now_ms()), name)

        delivery = self.db.run(work, write=True)
        self.wake.set()
        return delivery

    def deliveries(self, name: str, status: DeliveryStatus | None = None, size: int = 0, token: str = ""
                   ) -> tuple[list[Delivery], str]:
        """Newest first, each with its attempts."""
        check_webhook_name(name)
        size = page_size(size, 100, 1_000)
        fingerprint = paging.fingerprint("webhook_deliveries", name, status.value if status else "")
        before = paging.decode_keyset_token(token, fingerprint, (int,))[0] if token else None

        def work(conn: Transaction) -> list[Delivery]:
            return self.repo.deliveries(conn, self._webhook(conn, name), status, before, size + 1)

        found = self.db.run(work, write=False)
        if len(found) <= size:
            return found, ""
        page = found[:size]
        return page, paging.encode_keyset_token([page[-1].id], fingerprint)
