"""The study page of a pbt study in headless Chromium: the population over time (each member's
score against the step, its hyperparameter schedule, exploits marked), with no console error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.server import RunningGateway
from tests.conftest import gateway_suite
from tests.e2e.test_dashboard import browser, shots, visit  # noqa: F401 (fixtures)
from tests.e2e.worker_functions import pbt_toy
from trial_worker import SuggestionClient, tune
from tuning.suggestion.v1 import study_pb2 as spb

pytestmark = pytest.mark.timeout(300)

STUDY = "toy-pbt"
MEMBERS, SEGMENTS = 4, 4


@dataclass
class World:
    gateway: RunningGateway
    exploits: int

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with gateway_suite(tmp_path_factory.mktemp("dashboard-pbt")) as suite:
        config = tune.TunerConfig(
            metric="q", mode="max", algorithm="pbt", num_trials=MEMBERS * SEGMENTS, max_concurrent_trials=2, seed=4,
            algorithm_settings={"population_size": MEMBERS, "perturbation_interval": 3, "max_steps": 3 * SEGMENTS},
            study_name=STUDY, suggestion_address=suite.suggestion.address, tracking_address=suite.tracking.address,
            progress=False)
        tune.Tuner(pbt_toy, {"h0": tune.uniform(0.0, 1.0), "h1": tune.uniform(0.0, 1.0)}, config).run()
        with SuggestionClient(suite.suggestion.address) as client:
            trials = list(client.get_study(STUDY).trials())
        exploits = sum(t.pbt_segment.decision == spb.PBT_DECISION_EXPLOIT for t in trials)
        assert exploits, "no member exploited another: the study is not what the test needs"
        yield World(suite.gateway, exploits)


def test_the_study_page_draws_the_population_over_time(browser, world: World, shots: Path):  # noqa: F811
    visit(browser, world, f"/ui/studies/{STUDY}", plots=5)
    names = browser.evaluate("document.getElementById('population-score-plot').data.map(t => t.name)")
    assert names == [f"member {m}" for m in range(MEMBERS)] + ["exploit"]
    # Each member's score runs over every step it trained (its segments' reports, end to end).
    steps = browser.evaluate("document.getElementById('population-score-plot').data[0].x")
    assert steps == list(range(1, 3 * SEGMENTS + 1))
    marks = browser.evaluate("document.getElementById('population-score-plot').data.at(-1)")
    assert len(marks["x"]) == world.exploits and all("took member" in text for text in marks["text"])
    # The schedule: a step line per member over [start, end) of each segment, for the chosen parameter.
    schedule = browser.evaluate("document.getElementById('population-schedule-plot').data[1]")
    assert schedule["x"] == [s for g in range(SEGMENTS) for s in (3 * g, 3 * g + 3)]
    assert schedule["line"]["shape"] == "hv"
    browser.evaluate("const s = document.getElementById('population-param'); s.value = 'h1';"
                     "s.dispatchEvent(new Event('change'))")
    browser.pump(0.3)
    assert browser.evaluate("document.getElementById('population-schedule-plot').layout.yaxis.title.text") == "h1"
    assert f"{MEMBERS} members, {world.exploits} exploits" in browser.evaluate(
        "document.getElementById('population-note').textContent")
    assert browser.report.errors() == []
    browser.screenshot(shots / "dashboard-pbt.png", max_height=1600)



def test_an_exploiting_trials_page_shows_its_segment(browser, world: World):  # noqa: F811
    trials = httpx.get(f"{world.url}/v1/studies/{STUDY}/trials", params={"page_size": 1000}, timeout=30).json()["trials"]
    exploit = next(t for t in trials if t["pbt_segment"]["decision"] == "PBT_DECISION_EXPLOIT")
    visit(browser, world, f"/ui/trials/{exploit['id']}", plots=1)
    segment = browser.evaluate("document.getElementById('trial-pbt').innerText")
    assert "exploit" in segment and f"member {exploit['pbt_segment']['parent_member']}" in segment
    parent = browser.evaluate("document.querySelector('#trial-pbt a').getAttribute('href')")
    assert parent == f"/ui/trials/{exploit['pbt_segment']['parent_trial_id']}"
    assert browser.evaluate("document.querySelector('#trial-suggestion tr[data-key=algorithm] td:last-child')"
                            ".textContent") == "pbt"
