"""Registry webhooks end to end: a real tracking server (port 0, SQLite and PostgreSQL) posts to a
real HTTP receiver on loopback (port 0), and the delivery log is read back through the API.

The sender's backoff and timeouts are shortened so that retries take a fraction of a second;
tests wait for outcomes (a delivery reaching a final status), never for durations.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest

from gateway.server import GatewayOptions
from gateway.server import serve as serve_gateway
from tests.integration.test_registry import Stubs, model_run, transition
from tracking_service.server import serve
from trial_worker.tracking.client import TrackingClient
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rapi_grpc
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning.tracking.v1 import webhook_pb2 as wpb
from tuning_common.grpc_server import RunningServer, ServerOptions
from tuning_common.webhooks import SenderSettings

FAST = SenderSettings(threads=1, attempts=3, backoff_s=0.05, max_backoff_s=0.2, timeout_s=0.5, poll_s=0.05)
STAGE_CHANGED, ALIAS_SET = wpb.WEBHOOK_EVENT_STAGE_CHANGED, wpb.WEBHOOK_EVENT_ALIAS_SET
CREATED = wpb.WEBHOOK_EVENT_MODEL_VERSION_CREATED
PENDING, DELIVERED, FAILED = (wpb.WEBHOOK_DELIVERY_STATUS_PENDING, wpb.WEBHOOK_DELIVERY_STATUS_DELIVERED,
                              wpb.WEBHOOK_DELIVERY_STATUS_FAILED)


# -- the receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on a loopback port of its own. ``answers`` are the statuses of the next
    requests in turn (then 200); "hang" holds the request without answering until the test ends."""

    answers: list = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def wait(self, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} requests arrived, {count} expected")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                answer = state.answers.pop(0) if state.answers else 200
            if answer == "hang":
                state.released.wait(30)
                return
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/registry?source=test"
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


# -- the tracking server -----------------------------------------------------------------------


@dataclass
class Tracking:
    running: RunningServer
    stubs: Stubs
    channel: grpc.Channel

    @property
    def registry(self) -> rapi_grpc.ModelRegistryServiceStub:
        return self.stubs.registry

    def close(self) -> None:
        self.channel.close()
        self.running.stop()


def start(database_url: str, folder: Path, settings: SenderSettings = FAST) -> Tracking:
    running = serve(database_url, str(folder / "artifacts"), ServerOptions(port=0, grace_seconds=1),
                    webhooks=settings)
    channel = grpc.insecure_channel(running.address)
    stubs = Stubs(api_grpc.TrackingServiceStub(channel), rapi_grpc.ModelRegistryServiceStub(channel),
                  folder / "artifacts")
    return Tracking(running, stubs, channel)


@pytest.fixture
def tracking(database_url: str, tmp_path: Path) -> Iterator[Tracking]:
    server = start(database_url, tmp_path)
    yield server
    server.close()


@pytest.fixture
def sqlite_tracking(sqlite_url: str, tmp_path: Path) -> Iterator[Tracking]:
    server = start(sqlite_url, tmp_path)
    yield server
    server.close()


def version_of(tracking: Tracking, name: str) -> int:
    run = model_run(tracking.stubs)
    return tracking.registry.CreateModelVersion(rapi.CreateModelVersionRequest(
        name=name, source=f"runs:/{run.id}/model", actor="ana")).model_version.version


def deliveries(tracking: Tracking, name: str) -> list[wpb.WebhookDelivery]:
    return list(tracking.registry.ListWebhookDeliveries(rapi.ListWebhookDeliveriesRequest(name=name)).deliveries)


def settled(tracking: Tracking, name: str, count: int = 1, timeout: float = 20) -> list[wpb.WebhookDelivery]:
    """The delivery log once ``count`` deliveries have reached DELIVERED or FAILED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deliveries(tracking, name)
        if len([d for d in found if d.status in (DELIVERED, FAILED)]) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"deliveries did not settle: {found}")


def verify(secret: str, received: Received, tolerance_s: int = 300) -> dict:
    """What a receiver does (docs/TRACKING.md): recompute the HMAC over "<t>.<body>", compare in
    constant time, refuse stale timestamps; then trust the JSON."""
    parts = dict(item.split("=", 1) for item in received.headers["x-tuning-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])
    assert abs(time.time() - int(parts["t"])) < tolerance_s
    return json.loads(received.body)


def create(tracking: Tracking, name: str, url: str, events, **fields) -> rapi.CreateWebhookResponse:
    return tracking.registry.CreateWebhook(rapi.CreateWebhookRequest(name=name, url=url, events=events, **fields))


# -- the tests ---------------------------------------------------------------------------------


def test_a_stage_change_delivers_a_payload_signed_with_the_secret(tracking: Tracking, receiver: Receiver):
    created = create(tracking, "deploy", receiver.url, [STAGE_CHANGED], model_name="wine")
    secret = created.secret
    assert len(secret) >= 32 and created.webhook.has_secret and created.webhook.active
    version = version_of(tracking, "wine")  # MODEL_VERSION_CREATED: not asked for
    version_of(tracking, "beer")
    transition(tracking.stubs, "beer", 1, rpb.STAGE_STAGING)  # another model: filtered out
    transition(tracking.stubs, "wine", version, rpb.STAGE_PRODUCTION, actor="bob", reason="best so far")

    [delivery] = settled(tracking, "deploy")
    [got] = receiver.wait(1)
    payload = verify(secret, got)
    event = tracking.registry.ListRegistryEvents(rapi.ListRegistryEventsRequest(name="wine")).events[0]
    assert payload == {
        "delivery_id": delivery.id, "webhook": "deploy", "event": "STAGE_CHANGED", "event_id": event.id,
        "model_name": "wine", "version": version, "from": "None", "to": "Production", "alias": "", "actor": "bob",
        "reason": "best so far", "time": payload["time"]}
    assert payload["time"].endswith("Z") and payload["time"].startswith(str(time.gmtime().tm_year))
    assert got.headers["x-tuning-event"] == "STAGE_CHANGED"
    assert got.headers["x-tuning-delivery"] == str(delivery.id)
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(AssertionError):
        verify("not-the-secret-at-all", got)
    assert (delivery.status, delivery.event, delivery.registry_event_id, delivery.model_name, delivery.version) == \
        (DELIVERED, STAGE_CHANGED, event.id, "wine", version)
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == [(1, 200, "")]
    assert len(receiver.received) == 1


def test_a_receiver_failing_twice_gets_the_delivery_on_the_third_attempt(sqlite_tracking: Tracking,
                                                                         receiver: Receiver):
    tracking = sqlite_tracking
    receiver.answers = [500, 500]
    secret = "s" * 16 + "-of-the-test"
    created = create(tracking, "flaky", receiver.url, [ALIAS_SET], secret=secret)
    assert created.secret == ""  # given, so not answered back
    version = version_of(tracking, "wine")
    tracking.registry.SetRegisteredModelAlias(rapi.SetRegisteredModelAliasRequest(
        name="wine", alias="champion", version=version, actor="ana"))

    [delivery] = settled(tracking, "flaky")
    assert delivery.status == DELIVERED
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == \
        [(1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, "")]
    assert all(a.time.ToMilliseconds() > 0 and a.duration_ms >= 0 for a in delivery.attempts)
    posts = receiver.wait(3)
    assert len({p.body for p in posts}) == 1  # the same payload each time, re-signed
    payload = verify(secret, posts[-1])
    assert (payload["event"], payload["alias"], payload["to"], payload["from"]) == ("ALIAS_SET", "champion",
                                                                                    str(version), "")


def test_a_receiver_that_never_answers_is_marked_failed_after_the_last_attempt(sqlite_tracking: Tracking,
                                                                               receiver: Receiver):
    tracking = sqlite_tracking
    receiver.answers = ["hang"] * 10
    create(tracking, "silent", receiver.url, [CREATED])
    version_of(tracking, "wine")
    [delivery] = settled(tracking, "silent")
    assert delivery.status == FAILED and not delivery.HasField("next_attempt_time")
    assert [a.number for a in delivery.attempts] == [1, 2, 3]
    assert all(a.status_code == 0 and a.error.startswith("timed out") for a in delivery.attempts)
    failed = tracking.registry.ListWebhookDeliveries(rapi.ListWebhookDeliveriesRequest(name="silent", status=FAILED))
    assert [d.id for d in failed.deliveries] == [delivery.id]
    pending = tracking.registry.ListWebhookDeliveries(rapi.ListWebhookDeliveriesRequest(name="silent",
                                                                                         status=PENDING))
    assert list(pending.deliveries) == []


def test_a_refused_connection_and_a_redirect_are_failed_attempts(sqlite_tracking: Tracking, receiver: Receiver):
    tracking = sqlite_tracking
    receiver.answers = [302, 302, 302]
    create(tracking, "moved", receiver.url, [CREATED])
    # A port nobody listens on: the receiver's, once it is closed, would race; port 1 needs root to open.
    create(tracking, "nobody", "http://127.0.0.1:1/", [CREATED])
    version_of(tracking, "wine")
    [moved] = settled(tracking, "moved")
    [nobody] = settled(tracking, "nobody")
    assert moved.status == FAILED and {a.error for a in moved.attempts} == {"HTTP 302: redirects are not followed"}
    assert nobody.status == FAILED and all(a.status_code == 0 and "Refused" in a.error for a in nobody.attempts)


def test_test_webhook_delivers_a_test_event(sqlite_tracking: Tracking, receiver: Receiver):
    tracking = sqlite_tracking
    secret = create(tracking, "ping", receiver.url, [CREATED], active=False).secret
    queued = tracking.registry.TestWebhook(rapi.TestWebhookRequest(name="ping")).delivery
    assert (queued.status, queued.event, queued.registry_event_id, list(queued.attempts)) == \
        (PENDING, wpb.WEBHOOK_EVENT_TEST, 0, [])
    [delivery] = settled(tracking, "ping")
    assert delivery.id == queued.id and delivery.status == DELIVERED
    payload = verify(secret, receiver.wait(1)[0])
    assert (payload["event"], payload["delivery_id"], payload["webhook"]) == ("TEST", queued.id, "ping")
    version_of(tracking, "wine")  # inactive: no delivery for real events
    assert [d.id for d in deliveries(tracking, "ping")] == [queued.id]


def test_the_secret_is_never_answered_by_grpc_or_http(sqlite_tracking: Tracking, receiver: Receiver):
    tracking = sqlite_tracking
    created = create(tracking, "quiet", receiver.url, [STAGE_CHANGED, ALIAS_SET])
    generated = created.secret
    given = "given-secret-0123456789"
    create(tracking, "told", receiver.url, [CREATED], secret=given)
    updated = tracking.registry.UpdateWebhook(rapi.UpdateWebhookRequest(name="quiet", secret=given + "-2"))
    answers = [
        created.webhook, updated,
        tracking.registry.GetWebhook(rapi.GetWebhookRequest(name="quiet")),
        tracking.registry.ListWebhooks(rapi.ListWebhooksRequest()),
        tracking.registry.TestWebhook(rapi.TestWebhookRequest(name="told")),
        tracking.registry.ListWebhookDeliveries(rapi.ListWebhookDeliveriesRequest(name="told")),
    ]
    for answer in answers:
        wire = answer.SerializeToString()
        assert generated.encode() not in wire and given.encode() not in wire, answer
    gateway = serve_gateway(GatewayOptions(port=0, tracking_address=tracking.running.address,
                                           suggestion_address=tracking.running.address))
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            made = http.post("/v1/webhooks", json={"name": "web", "url": receiver.url,
                                                   "events": ["WEBHOOK_EVENT_STAGE_CHANGED"]})
            assert made.status_code == 200, made.text
            web_secret = made.json()["secret"]
            assert made.json()["webhook"]["has_secret"] is True and "secret" not in made.json()["webhook"]
            texts = [http.get(path).text for path in ("/v1/webhooks", "/v1/webhooks/web", "/v1/webhooks/quiet",
                                                      "/v1/webhooks/told/deliveries")]
            texts.append(http.patch("/v1/webhooks/web", json={"secret": "rotated-secret-0123456789"}).text)
            texts.append(http.post("/v1/webhooks/web:test", json={}).text)
            assert '"name":"web"' in texts[1].replace(" ", "")
            for text in texts:
                assert all(s not in text for s in (web_secret, generated, given, "rotated-secret")), text
            bad = http.post("/v1/webhooks", json={"name": "bad", "url": "ftp://example.com/", "events": [
                "WEBHOOK_EVENT_STAGE_CHANGED"]})
            assert bad.status_code == 400 and "url" in bad.text
    finally:
        gateway.stop()


BAD_CREATES = [
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "https://user:pass@example.com/hook"}, "url"),
    ({"url": "https://token@example.com/hook"}, "url"),
    ({"url": ""}, "url"),
    ({"url": "http:///no-host"}, "url"),
    ({"url": "http://example.com:99999/"}, "url"),
    ({"url": "http://example.com/a b"}, "url"),
    ({"url": "http://example.com/#frag"}, "url"),
    ({"events": []}, "events"),
    ({"events": [wpb.WEBHOOK_EVENT_UNSPECIFIED]}, "events[0]"),
    ({"events": [STAGE_CHANGED, 99]}, "events[1]"),
    ({"events": [STAGE_CHANGED, STAGE_CHANGED]}, "events"),
    ({"events": [wpb.WEBHOOK_EVENT_TEST]}, "events[0]"),
    ({"secret": "short"}, "secret"),
    ({"name": "no spaces"}, "name"),
    ({"name": ""}, "name"),
    ({"model_name": "x" * 300}, "model_name"),
]


def test_bad_webhooks_are_refused_naming_the_field(sqlite_tracking: Tracking):
    registry = sqlite_tracking.registry
    base = {"name": "ok", "url": "https://127.0.0.1:9/hook", "events": [STAGE_CHANGED]}

    def refused(call: Callable, request, field: str) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            call(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert caught.value.details().startswith(f"{field}:"), caught.value.details()

    for change, field_name in BAD_CREATES:
        refused(registry.CreateWebhook, rapi.CreateWebhookRequest(**{**base, **change}), field_name)
    assert list(registry.ListWebhooks(rapi.ListWebhooksRequest()).webhooks) == []
    registry.CreateWebhook(rapi.CreateWebhookRequest(**base))
    with pytest.raises(grpc.RpcError) as caught:
        registry.CreateWebhook(rapi.CreateWebhookRequest(**base))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    refused(registry.UpdateWebhook, rapi.UpdateWebhookRequest(name="ok", url="gopher://x/"), "url")
    refused(registry.UpdateWebhook, rapi.UpdateWebhookRequest(name="ok", events=rapi.WebhookEvents()), "events")
    refused(registry.UpdateWebhook, rapi.UpdateWebhookRequest(
        name="ok", events=rapi.WebhookEvents(events=[42])), "events.events[0]")
    refused(registry.UpdateWebhook, rapi.UpdateWebhookRequest(name="ok", secret=""), "secret")
    refused(registry.ListWebhookDeliveries, rapi.ListWebhookDeliveriesRequest(name="ok", status=9), "status")
    for call, request in ((registry.GetWebhook, rapi.GetWebhookRequest(name="nope")),
                          (registry.DeleteWebhook, rapi.DeleteWebhookRequest(name="nope")),
                          (registry.TestWebhook, rapi.TestWebhookRequest(name="nope"))):
        with pytest.raises(grpc.RpcError) as caught:
            call(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_update_changes_only_what_it_sets_and_a_delete_drops_the_log(sqlite_tracking: Tracking):
    registry = sqlite_tracking.registry
    # A closed loopback port: the test delivery below posts nowhere else.
    create(sqlite_tracking, "hook", "https://127.0.0.1:9/a", [STAGE_CHANGED], model_name="wine")
    updated = registry.UpdateWebhook(rapi.UpdateWebhookRequest(
        name="hook", url="http://127.0.0.1:9/b", events=rapi.WebhookEvents(events=[ALIAS_SET, CREATED]),
        active=False)).webhook
    assert (updated.url, list(updated.events), updated.model_name, updated.active) == \
        ("http://127.0.0.1:9/b", [ALIAS_SET, CREATED], "wine", False)
    cleared = registry.UpdateWebhook(rapi.UpdateWebhookRequest(name="hook", model_name="")).webhook
    assert (cleared.model_name, cleared.url, cleared.active) == ("", "http://127.0.0.1:9/b", False)
    registry.TestWebhook(rapi.TestWebhookRequest(name="hook"))
    registry.DeleteWebhook(rapi.DeleteWebhookRequest(name="hook"))
    assert list(registry.ListWebhooks(rapi.ListWebhooksRequest()).webhooks) == []


def test_the_outbox_survives_a_restart(sqlite_url: str, tmp_path: Path, receiver: Receiver):
    # No sender threads: the event's delivery is committed with it but nothing posts it.
    first = start(sqlite_url, tmp_path, SenderSettings(threads=0))
    try:
        secret = create(first, "durable", receiver.url, [CREATED]).secret
        version_of(first, "wine")
        [queued] = deliveries(first, "durable")
        assert queued.status == PENDING and list(queued.attempts) == []
    finally:
        first.close()
    assert receiver.received == []
    second = start(sqlite_url, tmp_path)
    try:
        [delivery] = settled(second, "durable")
        assert delivery.id == queued.id and delivery.status == DELIVERED
        assert verify(secret, receiver.wait(1)[0])["delivery_id"] == queued.id
    finally:
        second.close()


def test_replicas_on_one_database_post_each_delivery_once(database_url: str, tmp_path: Path, receiver: Receiver):
    many = SenderSettings(threads=3, attempts=3, backoff_s=0.05, max_backoff_s=0.2, timeout_s=2, poll_s=0.01)
    replicas = [start(database_url, tmp_path, many), start(database_url, tmp_path, many)]
    try:
        create(replicas[0], "once", receiver.url, [CREATED, ALIAS_SET])
        for i in range(6):
            version = version_of(replicas[i % 2], "wine")
            replicas[i % 2].registry.SetRegisteredModelAlias(rapi.SetRegisteredModelAliasRequest(
                name="wine", alias=f"a{i}", version=version))
        found = settled(replicas[1], "once", count=12)
        assert all(d.status == DELIVERED and len(d.attempts) == 1 for d in found)
        ids = [r.headers["x-tuning-delivery"] for r in receiver.wait(12)]
        time.sleep(0.2)  # a late duplicate would arrive within the senders' poll interval
        assert sorted(r.headers["x-tuning-delivery"] for r in receiver.received) == sorted(ids)
        assert len(set(ids)) == 12
    finally:
        for replica in replicas:
            replica.close()


def test_the_tracking_client_covers_the_webhook_rpcs(sqlite_tracking: Tracking, receiver: Receiver):
    with TrackingClient(sqlite_tracking.running.address, token="") as client:
        webhook, secret = client.create_webhook("cli", receiver.url, ["STAGE_CHANGED", "alias_set"],
                                                model_name="wine")
        assert list(webhook.events) == [STAGE_CHANGED, ALIAS_SET] and secret
        assert client.get_webhook("cli").model_name == "wine"
        assert [w.name for w in client.list_webhooks(page_size=1)] == ["cli"]
        changed = client.update_webhook("cli", events=["MODEL_VERSION_CREATED"], active=False)
        assert (list(changed.events), changed.active, changed.url) == ([CREATED], False, receiver.url)
        queued = client.test_webhook("cli")
        [delivery] = settled(sqlite_tracking, "cli")
        assert [d.id for d in client.list_webhook_deliveries("cli", status=DELIVERED)] == [queued.id]
        verify(secret, receiver.wait(1)[0])
        client.delete_webhook("cli")
        assert list(client.list_webhooks()) == []
