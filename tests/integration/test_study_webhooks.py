"""Study webhooks end to end: a real suggestion server (port 0, SQLite and PostgreSQL) posts to a
real HTTP receiver on loopback (port 0); the delivery log is read back through the API and the
client, and the HTTP routes through a real gateway.

The sender's backoff and timeouts are shortened so that retries take a fraction of a second;
tests wait for outcomes (a delivery reaching a final status), never for durations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.server import GatewayOptions
from gateway.server import serve as serve_gateway
from suggestion_service.server import serve
from tests.integration.test_webhooks import Receiver, receiver, verify  # noqa: F401 (fixture)
from trial_worker import Float, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning.suggestion.v1 import webhook_pb2 as wpb
from tuning_common.errors import AlreadyExists, InvalidArgument, NotFound
from tuning_common.grpc_server import RunningServer, ServerOptions
from tuning_common.webhooks import SenderSettings

FAST = SenderSettings(threads=1, attempts=3, backoff_s=0.05, max_backoff_s=0.2, timeout_s=0.5, poll_s=0.05)
COMPLETED, BEST, BUDGET = (wpb.WEBHOOK_EVENT_STUDY_COMPLETED, wpb.WEBHOOK_EVENT_BEST_IMPROVED,
                           wpb.WEBHOOK_EVENT_BUDGET_SPENT)
PENDING, DELIVERED, FAILED = (wpb.WEBHOOK_DELIVERY_STATUS_PENDING, wpb.WEBHOOK_DELIVERY_STATUS_DELIVERED,
                              wpb.WEBHOOK_DELIVERY_STATUS_FAILED)
SPACE = [Float("x", 0.0, 1.0)]


@dataclass
class Suggestion:
    running: RunningServer
    client: SuggestionClient

    def close(self) -> None:
        self.client.close()
        self.running.stop()

    def study(self, name: str, *, objectives: dict[str, str] | None = None, **spec):
        return self.client.create_study(name, SPACE, objectives=objectives or {"loss": "minimize"},
                                        algorithm="random", seed=1, **spec)

    def deliveries(self, name: str, status: int = 0) -> list[wpb.WebhookDelivery]:
        return list(self.client.list_study_webhook_deliveries(name, status=status))

    def settled(self, name: str, count: int = 1, timeout: float = 20) -> list[wpb.WebhookDelivery]:
        """The delivery log, oldest first, once ``count`` deliveries reached DELIVERED or FAILED."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.deliveries(name)
            if len([d for d in found if d.status in (DELIVERED, FAILED)]) >= count:
                return found[::-1]
            time.sleep(0.02)
        raise AssertionError(f"deliveries did not settle: {found}")


def start(database_url: str, settings: SenderSettings = FAST) -> Suggestion:
    running = serve(database_url, ServerOptions(port=0, grace_seconds=1), model_workers=0, webhooks=settings)
    return Suggestion(running, SuggestionClient(running.address, token=""))


@pytest.fixture
def suggestion(database_url: str) -> Iterator[Suggestion]:
    server = start(database_url)
    yield server
    server.close()


@pytest.fixture
def sqlite_suggestion(sqlite_url: str) -> Iterator[Suggestion]:
    server = start(sqlite_url)
    yield server
    server.close()


def payloads(secret: str, receiver: Receiver, count: int) -> list[dict]:  # noqa: F811
    """The verified payloads of the first ``count`` posts, in delivery id order."""
    return sorted((verify(secret, got) for got in receiver.wait(count)), key=lambda p: p["delivery_id"])


# -- the events --------------------------------------------------------------------------------


def test_best_improved_is_sent_for_a_new_best_only(suggestion: Suggestion, receiver: Receiver):  # noqa: F811
    webhook, secret = suggestion.client.create_study_webhook("best", receiver.url, ["BEST_IMPROVED"], study_name="s")
    assert list(webhook.events) == [BEST] and webhook.study_name == "s" and webhook.has_secret and secret
    study, other = suggestion.study("s"), suggestion.study("other")
    told = {}
    for loss in (5.0, 7.0, 3.0, 3.0, 4.0):  # first, worse, better, a tie, worse
        trial = study.ask()
        study.tell(trial, {"loss": loss, "seconds": 1.5})
        told[trial.number] = (loss, trial.params)
    study.fail(study.ask(), "crashed")
    other_trial = other.ask()
    other.tell(other_trial, 0.1)  # another study: filtered out

    found = suggestion.settled("best", count=2)
    assert [(d.event, d.study_name, d.trial_number, d.status) for d in found] == \
        [(BEST, "s", 0, DELIVERED), (BEST, "s", 2, DELIVERED)]
    posted = payloads(secret, receiver, 2)
    for delivery, payload in zip(found, posted, strict=True):
        loss, params = told[delivery.trial_number]
        trial = payload["trial"]
        assert payload == {"delivery_id": delivery.id, "webhook": "best", "event": "BEST_IMPROVED", "study": "s",
                           "reason": "", "trial": trial, "time": payload["time"]}
        assert (trial["number"], trial["state"], trial["values"], trial["metrics"], trial["params"]) == \
            (delivery.trial_number, "COMPLETED", {"loss": loss}, {"loss": loss, "seconds": 1.5}, params)
        assert trial["create_time"] <= trial["end_time"] <= payload["time"] and payload["time"].endswith("Z")
    [received] = [r for r in receiver.received if r.headers["x-tuning-delivery"] == str(found[0].id)]
    assert received.headers["x-tuning-event"] == "BEST_IMPROVED"
    time.sleep(0.2)  # a late, wrong delivery would arrive within the senders' poll interval
    assert len(receiver.received) == 2


def test_concurrent_tells_announce_only_successive_bests(database_url: str):
    # No senders: the delivery log alone is checked. Its ids follow the order in which the tells
    # took the study's lock, so the announced values, in that order, must each beat the last.
    server = start(database_url, SenderSettings(threads=0))
    try:
        server.client.create_study_webhook("race", "http://127.0.0.1:9/", [BEST])
        study = server.study("race")
        trials = study.ask_batch(16)
        values = {trial.number: float((7 * i) % 16) for i, trial in enumerate(trials)}
        barrier = threading.Barrier(len(trials))

        def tell(trial) -> None:
            barrier.wait()
            study.tell(trial, values[trial.number])

        threads = [threading.Thread(target=tell, args=(trial,)) for trial in trials]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        announced = [values[d.trial_number] for d in server.deliveries("race")[::-1]]
        assert announced and announced[-1] == 0.0
        assert all(later < earlier for earlier, later in zip(announced, announced[1:], strict=False)), announced
    finally:
        server.close()


def test_best_improved_with_several_objectives_is_a_change_of_the_pareto_front(sqlite_suggestion: Suggestion,
                                                                               receiver: Receiver):  # noqa: F811
    client = sqlite_suggestion.client
    client.create_study_webhook("front", receiver.url, ["best_improved"])
    study = sqlite_suggestion.study("mo", objectives={"a": "minimize", "b": "maximize"})
    joined = []
    for (a, b), joins in (((1, 3), True), ((2, 2), False), ((3, 5), True), ((1, 3), False), ((0.5, 6), True)):
        trial = study.ask()
        study.tell(trial, {"a": a, "b": b})
        if joins:
            joined.append(trial.number)
    found = sqlite_suggestion.settled("front", count=3)
    assert [d.trial_number for d in found] == joined


def test_budget_spent_then_completed_when_the_last_trial_ends(suggestion: Suggestion,
                                                              receiver: Receiver):  # noqa: F811
    _, secret = suggestion.client.create_study_webhook("ends", receiver.url, ["BUDGET_SPENT", "STUDY_COMPLETED"])
    study = suggestion.study("budget", max_trials=3)
    first = study.ask()
    queued = study.enqueue({"x": 0.25})  # a trial of the user's own counts against the budget too
    last = study.ask_batch(2)  # the queued trial, then the last the budget allows
    assert [t.number for t in last] == [queued.number, 2]
    assert suggestion.deliveries("ends")[0].event == BUDGET
    for trial in (first, *last):
        study.tell(trial, 1.0)
    assert study.ask() is None and study.last_suggest.done_reason == api.DONE_REASON_BUDGET_SPENT
    assert study.ask() is None  # asking again completes nothing again

    found = suggestion.settled("ends", count=2)
    assert [(d.event, d.trial_number, d.status) for d in found] == [(BUDGET, 2, DELIVERED), (COMPLETED, 0, DELIVERED)]
    assert found[0].HasField("trial_number") and not found[1].HasField("trial_number")
    spent, completed = payloads(secret, receiver, 2)
    assert (spent["event"], spent["study"], spent["trial"]["number"], spent["trial"]["state"],
            spent["trial"]["values"], spent["trial"]["end_time"]) == ("BUDGET_SPENT", "budget", 2, "ACTIVE", {}, None)
    assert (completed["event"], completed["study"], completed["reason"], completed["trial"]) == \
        ("STUDY_COMPLETED", "budget", "BUDGET_SPENT", None)


def test_budget_spent_by_create_trial_and_completed_by_set_study_state(sqlite_suggestion: Suggestion,
                                                                       receiver: Receiver):  # noqa: F811
    _, secret = sqlite_suggestion.client.create_study_webhook("all", receiver.url, [BUDGET, COMPLETED])
    small = sqlite_suggestion.study("small", max_trials=1)
    made = small.enqueue({"x": 0.5})
    unlimited = sqlite_suggestion.study("unlimited")
    unlimited.enqueue({"x": 0.5})  # no max_trials: never BUDGET_SPENT
    unlimited.set_state(pb.STUDY_STATE_STOPPED)
    unlimited.set_state(pb.STUDY_STATE_COMPLETED)
    unlimited.set_state(pb.STUDY_STATE_COMPLETED)  # already completed: no second event
    spent, completed = payloads(secret, receiver, 2)
    assert (spent["event"], spent["study"], spent["trial"]["number"], spent["trial"]["params"],
            spent["trial"]["state"]) == ("BUDGET_SPENT", "small", made.number, {"x": 0.5}, "QUEUED")
    assert (completed["event"], completed["study"], completed["reason"]) == \
        ("STUDY_COMPLETED", "unlimited", "SET_STUDY_STATE")
    assert len(sqlite_suggestion.settled("all", count=2)) == 2


# -- delivery ----------------------------------------------------------------------------------


def test_a_receiver_failing_twice_gets_the_delivery_on_the_third_attempt(sqlite_suggestion: Suggestion,
                                                                         receiver: Receiver):  # noqa: F811
    receiver.answers = [500, 503]
    secret = "s" * 16 + "-of-the-test"
    webhook, generated = sqlite_suggestion.client.create_study_webhook("flaky", receiver.url, [COMPLETED],
                                                                       secret=secret)
    assert generated == ""  # given, so not answered back
    sqlite_suggestion.study("done").set_state(pb.STUDY_STATE_COMPLETED)
    [delivery] = sqlite_suggestion.settled("flaky")
    assert delivery.status == DELIVERED
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == \
        [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, "")]
    posts = receiver.wait(3)
    assert len({p.body for p in posts}) == 1  # the same payload each time, re-signed
    assert verify(secret, posts[-1])["reason"] == "SET_STUDY_STATE"


def test_a_receiver_that_never_answers_is_marked_failed_after_the_last_attempt(sqlite_suggestion: Suggestion,
                                                                               receiver: Receiver):  # noqa: F811
    receiver.answers = ["hang"] * 10
    sqlite_suggestion.client.create_study_webhook("silent", receiver.url, [COMPLETED])
    sqlite_suggestion.study("done").set_state(pb.STUDY_STATE_COMPLETED)
    [delivery] = sqlite_suggestion.settled("silent")
    assert delivery.status == FAILED and not delivery.HasField("next_attempt_time")
    assert [a.number for a in delivery.attempts] == [1, 2, 3]
    assert all(a.status_code == 0 and a.error.startswith("timed out") for a in delivery.attempts)
    assert [d.id for d in sqlite_suggestion.deliveries("silent", FAILED)] == [delivery.id]
    assert sqlite_suggestion.deliveries("silent", PENDING) == []


def test_test_study_webhook_delivers_a_test_event(sqlite_suggestion: Suggestion, receiver: Receiver):  # noqa: F811
    client = sqlite_suggestion.client
    _, secret = client.create_study_webhook("ping", receiver.url, [COMPLETED], active=False)
    queued = client.test_study_webhook("ping")
    assert (queued.status, queued.event, queued.study_name, list(queued.attempts)) == \
        (PENDING, wpb.WEBHOOK_EVENT_TEST, "", [])
    [delivery] = sqlite_suggestion.settled("ping")
    assert delivery.id == queued.id and delivery.status == DELIVERED
    payload = verify(secret, receiver.wait(1)[0])
    assert payload == {"delivery_id": queued.id, "webhook": "ping", "event": "TEST", "study": "", "reason": "",
                       "trial": None, "time": payload["time"]}
    sqlite_suggestion.study("done").set_state(pb.STUDY_STATE_COMPLETED)  # inactive: no delivery for events
    assert [d.id for d in sqlite_suggestion.deliveries("ping")] == [queued.id]


def test_replicas_on_one_database_post_each_delivery_once(database_url: str, receiver: Receiver):  # noqa: F811
    many = SenderSettings(threads=3, attempts=3, backoff_s=0.05, max_backoff_s=0.2, timeout_s=2, poll_s=0.01)
    replicas = [start(database_url, many), start(database_url, many)]
    try:
        replicas[0].client.create_study_webhook("once", receiver.url, [BEST, BUDGET, COMPLETED])
        studies = [replica.study("shared", max_trials=6) for replica in replicas]
        for i in range(6):  # each tell a new best, through either replica
            study = studies[i % 2]
            study.tell(study.ask(), 10.0 - i)
        studies[0].set_state(pb.STUDY_STATE_COMPLETED)
        found = replicas[1].settled("once", count=8)
        assert sorted(d.event for d in found) == sorted([BEST] * 6 + [BUDGET, COMPLETED])
        assert all(d.status == DELIVERED and len(d.attempts) == 1 for d in found)
        ids = [r.headers["x-tuning-delivery"] for r in receiver.wait(8)]
        time.sleep(0.2)  # a late duplicate would arrive within the senders' poll interval
        assert sorted(r.headers["x-tuning-delivery"] for r in receiver.received) == sorted(ids)
        assert len(set(ids)) == 8
    finally:
        for replica in replicas:
            replica.close()


# -- the API -----------------------------------------------------------------------------------


def test_the_secret_is_never_answered_by_grpc_or_http(sqlite_suggestion: Suggestion,
                                                      receiver: Receiver):  # noqa: F811
    client = sqlite_suggestion.client
    created = client.call("CreateStudyWebhook", api.CreateStudyWebhookRequest(
        name="quiet", url=receiver.url, events=[BEST, COMPLETED]))
    generated = created.secret
    assert len(generated) >= 32 and created.webhook.has_secret
    given = "given-secret-0123456789"
    client.create_study_webhook("told", receiver.url, [BUDGET], secret=given)
    answers = [
        created.webhook,
        client.call("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(name="quiet", secret=given + "-2")),
        client.call("GetStudyWebhook", api.GetStudyWebhookRequest(name="quiet")),
        client.call("ListStudyWebhooks", api.ListStudyWebhooksRequest()),
        client.call("TestStudyWebhook", api.TestStudyWebhookRequest(name="told")),
        client.call("ListStudyWebhookDeliveries", api.ListStudyWebhookDeliveriesRequest(name="told")),
    ]
    for answer in answers:
        wire = answer.SerializeToString()
        assert generated.encode() not in wire and given.encode() not in wire, answer
    address = sqlite_suggestion.running.address
    gateway = serve_gateway(GatewayOptions(port=0, tracking_address=address, suggestion_address=address))
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            made = http.post("/v1/study-webhooks", json={"name": "web", "url": receiver.url, "study_name": "s",
                                                         "events": ["WEBHOOK_EVENT_BEST_IMPROVED"]})
            assert made.status_code == 200, made.text
            web_secret = made.json()["secret"]
            assert made.json()["webhook"]["has_secret"] is True and "secret" not in made.json()["webhook"]
            listed = http.get("/v1/study-webhooks")
            assert [w["name"] for w in listed.json()["webhooks"]] == ["quiet", "told", "web"]
            texts = [listed.text] + [http.get(path).text for path in (
                "/v1/study-webhooks/web", "/v1/study-webhooks/quiet", "/v1/study-webhooks/told/deliveries")]
            texts.append(http.patch("/v1/study-webhooks/web", json={"secret": "rotated-secret-0123456789"}).text)
            texts.append(http.post("/v1/study-webhooks/web:test", json={}).text)
            assert '"study_name":"s"' in texts[1].replace(" ", "")
            for text in texts:
                assert all(s not in text for s in (web_secret, generated, given, "rotated-secret")), text
            bad = http.post("/v1/study-webhooks", json={"name": "bad", "url": "ftp://example.com/",
                                                        "events": ["WEBHOOK_EVENT_STUDY_COMPLETED"]})
            assert bad.status_code == 400 and "url" in bad.text
            assert http.delete("/v1/study-webhooks/web").status_code == 200
            assert http.get("/v1/study-webhooks/web").status_code == 404
    finally:
        gateway.stop()


BAD_CREATES = [
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "https://user:pass@example.com/hook"}, "url"),
    ({"url": ""}, "url"),
    ({"url": "http://example.com/#frag"}, "url"),
    ({"events": []}, "events"),
    ({"events": [wpb.WEBHOOK_EVENT_UNSPECIFIED]}, "events[0]"),
    ({"events": [BEST, 99]}, "events[1]"),
    ({"events": [BEST, BEST]}, "events"),
    ({"events": [wpb.WEBHOOK_EVENT_TEST]}, "events[0]"),
    ({"secret": "short"}, "secret"),
    ({"name": "no spaces"}, "name"),
    ({"name": ""}, "name"),
    ({"study_name": "x" * 200}, "study_name"),
    ({"study_name": "no/slash"}, "study_name"),
]


def test_bad_webhooks_are_refused_naming_the_field(sqlite_suggestion: Suggestion):
    client = sqlite_suggestion.client
    base = {"name": "ok", "url": "https://127.0.0.1:9/hook", "events": [BEST]}

    def refused(method: str, request, field: str) -> None:
        with pytest.raises(InvalidArgument) as caught:
            client.call(method, request)
        assert str(caught.value).startswith(f"{field}:"), str(caught.value)

    for change, field_name in BAD_CREATES:
        refused("CreateStudyWebhook", api.CreateStudyWebhookRequest(**{**base, **change}), field_name)
    assert list(client.list_study_webhooks()) == []
    client.call("CreateStudyWebhook", api.CreateStudyWebhookRequest(**base))
    with pytest.raises(AlreadyExists):
        client.call("CreateStudyWebhook", api.CreateStudyWebhookRequest(**base))
    refused("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(name="ok", url="gopher://x/"), "url")
    refused("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(name="ok", events=api.WebhookEvents()), "events")
    refused("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(
        name="ok", events=api.WebhookEvents(events=[42])), "events.events[0]")
    refused("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(name="ok", secret=""), "secret")
    refused("UpdateStudyWebhook", api.UpdateStudyWebhookRequest(name="ok", study_name="a b"), "study_name")
    refused("ListStudyWebhookDeliveries", api.ListStudyWebhookDeliveriesRequest(name="ok", status=9), "status")
    refused("ListStudyWebhooks", api.ListStudyWebhooksRequest(page_token="garbage"), "page_token")
    with pytest.raises(InvalidArgument, match="events"):
        client.create_study_webhook("typo", "https://127.0.0.1:9/", ["BEST_IMPROVD"])
    for method, request in (("GetStudyWebhook", api.GetStudyWebhookRequest(name="nope")),
                            ("DeleteStudyWebhook", api.DeleteStudyWebhookRequest(name="nope")),
                            ("TestStudyWebhook", api.TestStudyWebhookRequest(name="nope")),
                            ("ListStudyWebhookDeliveries", api.ListStudyWebhookDeliveriesRequest(name="nope"))):
        with pytest.raises(NotFound):
            client.call(method, request)


def test_an_update_changes_only_what_it_sets_and_a_delete_drops_the_log(sqlite_suggestion: Suggestion):
    client = sqlite_suggestion.client
    # A closed loopback port: the test delivery below posts nowhere else.
    client.create_study_webhook("hook", "https://127.0.0.1:9/a", [BEST], study_name="s")
    updated = client.update_study_webhook("hook", url="http://127.0.0.1:9/b", events=["BUDGET_SPENT", COMPLETED],
                                          active=False)
    assert (updated.url, list(updated.events), updated.study_name, updated.active) == \
        ("http://127.0.0.1:9/b", [BUDGET, COMPLETED], "s", False)
    cleared = client.update_study_webhook("hook", study_name="")
    assert (cleared.study_name, cleared.url, cleared.active) == ("", "http://127.0.0.1:9/b", False)
    assert client.get_study_webhook("hook") == cleared
    client.test_study_webhook("hook")
    assert len(sqlite_suggestion.deliveries("hook")) == 1
    client.delete_study_webhook("hook")
    assert list(client.list_study_webhooks()) == []


def test_the_outbox_survives_a_restart(sqlite_url: str, receiver: Receiver):  # noqa: F811
    # No sender threads: the event's delivery is committed with it but nothing posts it.
    first = start(sqlite_url, SenderSettings(threads=0))
    try:
        _, secret = first.client.create_study_webhook("durable", receiver.url, [COMPLETED])
        first.study("s").set_state(pb.STUDY_STATE_COMPLETED)
        [queued] = first.deliveries("durable")
        assert queued.status == PENDING and list(queued.attempts) == []
    finally:
        first.close()
    assert receiver.received == []
    second = start(sqlite_url)
    try:
        [delivery] = second.settled("durable")
        assert delivery.id == queued.id and delivery.status == DELIVERED
        assert verify(secret, receiver.wait(1)[0])["delivery_id"] == queued.id
    finally:
        second.close()
