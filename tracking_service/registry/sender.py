"""The webhook sender: threads of the tracking service that post queued deliveries.

Each pass takes the due deliveries, claims each with a lease (so that replicas sharing the
database never post the same attempt twice; see ``WebhookRepository.claim``), posts it, and
records the attempt: DELIVERED on a 2xx answer, else PENDING again after an exponential backoff
with jitter, or FAILED once ``attempts`` are made. Redirects are not followed: a 3xx is a failed
attempt, since following one would let a receiver point the signed payload anywhere.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracking_service.registry.domain.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Attempt,
    ClaimedDelivery,
    DeliveryStatus,
    backoff_s,
    signature,
)
from tracking_service.registry.persistence.webhooks import WebhookRepository
from tracking_service.service import now_ms
from tuning_common.database import Database

log = logging.getLogger(__name__)

USER_AGENT = "tuning-webhooks/1"
MAX_ERROR = 1_000
# What is read of an answer: only its status matters; the rest is drained so the connection
# closes cleanly, but a receiver cannot keep a sender busy with an endless body.
MAX_ANSWER_BYTES = 64 * 1024


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


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """(HTTP status, error text): status 0 when no answer came; error "" for a 2xx."""
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
    def __init__(self, db: Database, settings: SenderSettings, wake: threading.Event | None = None):
        self.db, self.settings, self.repo = db, settings, WebhookRepository()
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
        due = self.db.run(lambda conn: self.repo.due(conn, now, self.settings.batch), write=False)
        posted = 0
        for delivery_id, attempts in due:
            if self._stop.is_set():
                break
            claim = secrets.token_hex(16)

            def take(conn, delivery_id=delivery_id, attempts=attempts, claim=claim) -> ClaimedDelivery | None:
                now = now_ms()
                if not self.repo.claim(conn, delivery_id, attempts, claim, now, now + self.settings.lease_ms):
                    return None
                return self.repo.claimed(conn, delivery_id)

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
                   EVENT_HEADER: delivery.event.value, DELIVERY_HEADER: str(delivery.id),
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
        recorded = self.db.run(lambda conn: self.repo.record_attempt(conn, delivery, attempt, status, next_ms),
                               write=True)
        if not recorded:
            log.info("webhook delivery %d: lease lost before its attempt was recorded", delivery.id)
        elif error:
            log.info("webhook delivery %d attempt %d failed: %s", delivery.id, number, error)
