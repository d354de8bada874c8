"""Filters, sorting and pages of the dashboard, in headless Chromium against real services: the
trial table's view kept in the URL (and restored from it), the runs page paged, filtered and
sorted by the tracking service, the study document's deltas and the sampled intermediate
values. A study of 60 trials made through the SuggestionClient, an experiment of 250 runs made
through the tracking client.
"""

from __future__ import annotations

import importlib.util
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.dashboard.data import sample_measured
from gateway.server import RunningGateway
from tests.conftest import gateway_suite, require
from trial_worker import SuggestionClient
from trial_worker.space import Categorical, Float
from trial_worker.tracking import TrackingClient
from trial_worker.tracking.client import metric
from tuning.suggestion.v1 import study_pb2 as spb

pytestmark = pytest.mark.timeout(300)

STUDY = "filters"
TRIALS = 60
RUNS = 250
KINDS = ["linear", "tree", "forest"]


@dataclass
class World:
    gateway: RunningGateway
    suggestion: str
    trials: list[dict]  # number, state, x, kind, loss (None unless completed)
    experiment: int
    runs: dict[str, dict]  # run id: team, score

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("filters")
    with gateway_suite(folder) as suite:
        trials = []
        with SuggestionClient(suite.suggestion.address) as client:
            study = client.create_study(STUDY, [Float("x", 0.0, 1.0), Categorical("kind", KINDS)],
                                        objectives={"loss": "minimize"}, seed=3)
            for trial in study.ask_batch(TRIALS):
                x, n = trial.params["x"], trial.number
                loss = None
                if n % 10 == 3:
                    trial.report(1, {"loss": 2.0})
                    study.prune(trial)
                    state = "PRUNED"
                elif n % 10 == 7:
                    study.fail(trial, "boom")
                    state = "FAILED"
                else:
                    if n % 4 == 0:
                        trial.report(1, {"loss": 1.0 + x})
                    loss = round((x - 0.4) ** 2, 6)
                    study.tell(trial, loss)
                    state = "COMPLETED"
                trials.append({"number": n, "state": state, "x": x, "kind": trial.params["kind"], "loss": loss})
        runs = {}
        with TrackingClient(suite.tracking.address) as client:
            experiment = client.create_experiment("many-runs").id
            for i in range(RUNS):
                team = "red" if i % 5 == 0 else "blue"
                run = client.create_run(experiment, name=f"run-{i:03d}", tags={"team": team})
                client.log_batch(run.id, params={"depth": str(i % 7)}, metrics=[metric("score", i / RUNS)])
                runs[run.id] = {"team": team, "score": i / RUNS}
        yield World(suite.gateway, suite.suggestion.address, trials, experiment, runs)


@pytest.fixture(scope="module")
def browser():
    require(shutil.which("chromium") is not None, "the dashboard tests need Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("websockets") is not None, "the dashboard tests need websockets (dev extra)")
    from tests.e2e.browser import Browser

    chromium = Browser(shutil.which("chromium"))
    yield chromium
    chromium.close()


def visit(browser, world: World, path: str) -> None:
    browser.open(world.url + path)
    browser.pump(0.2)
    assert browser.report.errors() == [], path


def shown_numbers(browser) -> list[int]:
    return browser.evaluate("Array.from(document.querySelectorAll('#trials tbody tr'))"
                            ".map(tr => Number(tr.id.replace('trial-', '')))")


def query(browser) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(browser.evaluate("location.search").lstrip("?")))


def study_path(**params: str) -> str:
    return f"/ui/studies/{STUDY}?" + urllib.parse.urlencode(params, safe=",.")


# --- the trial table ----------------------------------------------------------------------------------


def test_filters_narrow_the_trials_and_the_url_carries_them(browser, world: World):
    visit(browser, world, study_path(**{"state": "completed", "p.x": "0.2..0.6", "sort": "-loss"}))
    expected = sorted((t for t in world.trials if t["state"] == "COMPLETED" and 0.2 <= t["x"] <= 0.6),
                      key=lambda t: (-t["loss"], t["number"]))
    assert 0 < len(expected) < TRIALS
    assert shown_numbers(browser) == [t["number"] for t in expected]
    assert browser.evaluate("document.querySelector('#trials th[aria-sort]').textContent") == "loss"
    assert browser.evaluate("document.getElementById('trials-count').textContent") == \
        f"{len(expected)} of {TRIALS} trials match"
    assert browser.evaluate("document.getElementById('trial-filter-error').hidden") is True

    # A filter typed under a header narrows further and goes into the URL.
    browser.evaluate("(() => { const i = document.querySelector('input[data-field=\"m.loss\"]'); "
                     "i.value = '..0.02'; i.dispatchEvent(new Event('change', {bubbles: true})); })()")
    narrower = [t["number"] for t in expected if t["loss"] <= 0.02]
    assert shown_numbers(browser) == narrower
    assert query(browser) == {"state": "completed", "p.x": "0.2..0.6", "m.loss": "..0.02", "sort": "-loss"}

    # The URL restores the view.
    browser.open(browser.evaluate("location.href"))
    assert shown_numbers(browser) == narrower
    assert browser.evaluate("document.querySelector('input[data-field=\"m.loss\"]').value") == "..0.02"

    # States from the checkboxes; a categorical parameter by its values.
    visit(browser, world, study_path(**{"state": "pruned,failed", "p.kind": "tree,forest"}))
    assert shown_numbers(browser) == [t["number"] for t in world.trials
                                      if t["state"] in ("PRUNED", "FAILED") and t["kind"] in ("tree", "forest")]
    checked = browser.evaluate("Array.from(document.querySelectorAll('#state-filter input:checked'))"
                               ".map(i => i.value)")
    assert sorted(checked) == ["failed", "pruned"]
    browser.evaluate("(() => { const box = document.querySelector('#state-filter input[value=\"completed\"]'); "
                     "box.click(); })()")
    assert "state" not in query(browser)  # every state the study has: no state filter
    assert len(shown_numbers(browser)) == sum(t["kind"] in ("tree", "forest") for t in world.trials)


def test_sorting_by_a_header_and_several_ranges(browser, world: World):
    visit(browser, world, f"/ui/studies/{STUDY}")
    browser.evaluate("document.querySelector('#trials thead th[data-key=\"p.x\"]').click()")
    xs = sorted(world.trials, key=lambda t: t["x"])
    assert shown_numbers(browser) == [t["number"] for t in xs]
    assert query(browser) == {"sort": "x"}
    browser.evaluate("document.querySelector('#trials thead th[data-key=\"p.x\"]').click()")
    assert shown_numbers(browser) == [t["number"] for t in reversed(xs)]
    assert query(browser) == {"sort": "-x"}
    # Several ranges of one parameter: any of them matches.
    visit(browser, world, study_path(**{"p.x": "0..0.25,0.75..1", "sort": "number"}))
    assert shown_numbers(browser) == [t["number"] for t in world.trials if t["x"] <= 0.25 or t["x"] >= 0.75]


def test_a_bad_filter_is_named_not_dropped(browser, world: World):
    visit(browser, world, study_path(**{"p.nope": "1..2", "state": "done", "m.loss": "abc", "colour": "red",
                                        "sort": "weight", "p.x": "0.9..0.1"}))
    errors = browser.evaluate("Array.from(document.querySelectorAll('#trial-filter-error div')).map(d => d.textContent)")
    fields = sorted(e.split(":", 1)[0] for e in errors)
    assert fields == ["colour", "m.loss", "p.nope", "p.x", "sort", "state"], errors
    assert any("no parameter 'nope'" in e for e in errors) and any("unknown state 'done'" in e for e in errors)
    assert all("(not applied)" in e for e in errors)
    assert browser.evaluate("document.querySelector('input[data-field=\"m.loss\"]').classList.contains('invalid')")
    # The rest of the view still applies (nothing here): every trial, and the bad keys stay in the URL.
    assert len(shown_numbers(browser)) == TRIALS
    assert query(browser)["p.nope"] == "1..2"


def test_trial_pages(browser, world: World):
    visit(browser, world, study_path(page_size="25"))
    assert shown_numbers(browser) == list(range(25))
    assert browser.evaluate("document.getElementById('trials-previous').disabled") is True
    browser.evaluate("document.getElementById('trials-next').click()")
    assert shown_numbers(browser) == list(range(25, 50))
    assert query(browser) == {"page_size": "25", "page": "2"}
    browser.evaluate("document.getElementById('trials-next').click()")
    assert shown_numbers(browser) == list(range(50, 60))
    assert browser.evaluate("document.getElementById('trials-next').disabled") is True
    assert "page 3 of 3" in browser.evaluate("document.getElementById('trials-page').textContent")
    browser.evaluate("document.getElementById('trials-previous').click()")
    assert shown_numbers(browser) == list(range(25, 50))
    # A link to a trial opens its page.
    visit(browser, world, study_path(page_size="25") + "#trial-42")
    assert 42 in shown_numbers(browser) and query(browser)["page"] == "2"


# --- the runs page ---------------------------------------------------------------------------------


def run_ids(browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('#runs .run-select')).map(b => b.value)")


def test_runs_are_paged_by_the_server(browser, world: World):
    visit(browser, world, f"/ui/experiments/{world.experiment}?page_size=100")
    pages = [run_ids(browser)]
    assert len(pages[0]) == 100 and browser.count("#runs-pager-previous") == 0
    for expected in (100, 50):
        browser.evaluate("document.getElementById('runs-pager-next').click()")
        browser.wait_for(f"document.querySelectorAll('#runs .run-select').length === {expected} && "
                         f"!document.getElementById('runs-pager-status').textContent.includes('page {len(pages)}:')")
        pages.append(run_ids(browser))
    assert sorted(sum(pages, [])) == sorted(world.runs) and browser.count("#runs-pager-next") == 0
    assert "runs 201–250" in browser.evaluate("document.getElementById('runs-pager-status').textContent")
    browser.evaluate("document.getElementById('runs-pager-previous').click()")
    browser.wait_for("document.getElementById('runs-pager-status').textContent.includes('page 2')")
    assert run_ids(browser) == pages[1]
    # The compare checkboxes still work on a page.
    browser.evaluate("document.querySelectorAll('.run-select').forEach((box, i) => { if (i < 2) box.click(); })")
    assert browser.evaluate("document.getElementById('compare-button').disabled") is False


def test_runs_quick_filter_and_sort_go_to_the_server(browser, world: World):
    visit(browser, world, f"/ui/experiments/{world.experiment}?page_size=20")
    browser.evaluate("document.getElementById('quick-tag-key').value = 'team'; "
                     "document.getElementById('quick-tag-value').value = 'red'; "
                     "document.getElementById('quick-add').click()")
    browser.wait_for("new URLSearchParams(location.search).get('filter') === \"tags.team = 'red'\"")
    browser.wait_for("document.body.dataset.ready === '1'")
    reds = sorted(r for r, v in world.runs.items() if v["team"] == "red")
    shown = run_ids(browser)
    assert len(shown) == 20 and set(shown) <= set(reds)
    assert browser.evaluate("document.getElementById('filter').value") == "tags.team = 'red'"
    browser.evaluate("Array.from(document.querySelectorAll('#runs th.metric a')).find(a => a.textContent === 'score')"
                     ".click()")
    browser.wait_for("new URLSearchParams(location.search).get('order_by') === 'metrics.score'")
    browser.wait_for("document.body.dataset.ready === '1'")
    scores = [world.runs[r]["score"] for r in run_ids(browser)]
    assert scores == sorted(v["score"] for v in world.runs.values() if v["team"] == "red")[:20]
    assert query(browser)["filter"] == "tags.team = 'red'"  # sorting keeps the filter
    # A page token from another query is refused by the service and said so.
    token = urllib.parse.parse_qs(urllib.parse.urlparse(
        browser.evaluate("document.getElementById('runs-pager-next').href")).query)["page_token"][0]
    visit(browser, world, f"/ui/experiments/{world.experiment}?page_token={token}")
    assert "page_token" in browser.evaluate("document.getElementById('runs-error').textContent")
    assert len(run_ids(browser)) == 100


# --- the study's JSON: deltas and the intermediate sample ---------------------------------------------


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=30) as client:
        yield client


def test_the_study_document_sends_only_what_changed(http: httpx.Client, world: World):
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("delta", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
        first, second = study.ask_batch(2)
        study.tell(first, 0.5)
        full = http.get("/ui/api/studies/delta").json()
        assert [t["number"] for t in full["trials"]] == [0, 1] and full["delta"] is False
        assert [t["number"] for t in http.get("/ui/api/studies/delta?after=1").json()["trials"]] == []
        study.tell(second, 0.25)
        third = study.ask()
        delta = http.get("/ui/api/studies/delta?after=1&open=1").json()
        assert delta["delta"] is True
        assert [(t["number"], t["state"]) for t in delta["trials"]] == [(1, "COMPLETED"), (2, "ACTIVE")]
        assert delta["study"]["counts"]["completed"] == 2
        study.tell(third, 0.1)
        assert [t["state"] for t in http.get("/ui/api/studies/delta").json()["trials"]] == ["COMPLETED"] * 3
    for bad, field in (("after=x", "after"), ("open=1", "open"), ("after=1&open=a", "open")):
        answer = http.get(f"/ui/api/studies/delta?{bad}")
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, bad


def test_intermediate_values_come_from_their_own_request(http: httpx.Client, world: World):
    answer = http.get(f"/ui/api/intermediate/{STUDY}").json()
    reported = [t for t in world.trials if t["state"] == "PRUNED" or (t["state"] == "COMPLETED" and t["number"] % 4 == 0)]
    assert answer["metric"] == "loss" and answer["metrics"] == ["loss"] and answer["groups"] == {"all": len(reported)}
    assert [t["number"] for t in answer["trials"]] == [t["number"] for t in reported]
    pruned = next(t for t in answer["trials"] if t["state"] == "PRUNED")
    assert pruned["points"] == [[1, 2.0]]
    wrong = http.get(f"/ui/api/intermediate/{STUDY}?metric=accuracy")
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "metric"


def test_the_intermediate_sample_is_bounded_and_keeps_the_best_and_the_latest():
    trials = []
    for n in range(1000):
        trial = spb.Trial(id=n + 1, number=n, state=spb.TRIAL_STATE_COMPLETED if n % 3 else spb.TRIAL_STATE_PRUNED)
        trial.metrics.add(name="loss", value=abs(n - 500))
        trials.append(trial)
    sample, groups = sample_measured(trials, {"metric": "loss", "direction": "minimize"}, group=20)
    numbers = [t.number for t in sample]
    assert len(sample) <= 60 and numbers == sorted(set(numbers))
    assert set(range(980, 1000)) <= set(numbers)  # the latest
    best = sorted((t for t in trials if t.state == spb.TRIAL_STATE_COMPLETED), key=lambda t: abs(t.number - 500))[:20]
    assert {t.number for t in best} <= set(numbers)
    assert groups == {"best": 20, "recent": 20, "spread": 20}
    assert sample_measured(trials[:50], None, group=20) == (trials[:50], {"all": 50})
