"""The study page's plots for multi-objective, constrained and conditional studies, in headless
Chromium against the real services and gateway.

Two studies are told by hand through the SuggestionClient (CreateTrial, then ask and tell), with
values chosen so that the Pareto set, the hypervolume after each trial and the infeasible trials
are known in advance (worked out in the comments below):

* ``mo3``: three objectives (loss and latency minimised, score maximised), a constraint
  (memory), a conditional parameter (rate_drop, active only when booster is dart);
* ``mo2``: two objectives (loss minimised, score maximised), for the 2-D hypervolume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.server import RunningGateway
from tests.conftest import gateway_suite
from tests.e2e.test_dashboard import browser, shots, visit  # noqa: F401 (fixtures)
from trial_worker import SuggestionClient
from trial_worker.space import Categorical, Float

pytestmark = pytest.mark.timeout(300)

# mo3's trials: (booster, rate_drop or None when inactive, lr), (loss, latency, score), memory.
# memory > 0 violates the constraint. In loss space (score negated) the feasible points are
#   0: (0, 8, -4)   1: (3, 3, -6)   2: (6, 0, -10)   3: (5, 5, -5)   5: (2, 6, -8)   6: (10, 10, 0)
# 3 is dominated by 1, 6 by every other; 4 would dominate 1 and 3 but is infeasible, so the
# Pareto set is {0, 1, 2, 5}.
MO3 = [
    (("gbtree", None, 0.01), (0.0, 8.0, 4.0), -1.0),
    (("dart", 0.1, 0.1), (3.0, 3.0, 6.0), -1.0),
    (("dart", 0.3, 0.5), (6.0, 0.0, 10.0), -2.0),
    (("gbtree", None, 0.05), (5.0, 5.0, 5.0), -1.0),
    (("dart", 0.2, 0.02), (1.0, 1.0, 9.0), 2.0),
    (("gbtree", None, 0.3), (2.0, 6.0, 8.0), 0.0),
    (("dart", 0.4, 0.005), (10.0, 10.0, 0.0), -1.0),
]
MO3_FRONT = [0, 1, 2, 5]
MO3_INFEASIBLE = [4]
MO3_INACTIVE = [0, 3, 5]  # gbtree: rate_drop inactive
# Reference point: each objective's worst feasible value moved out by 10% of its range (all
# three ranges are 10): loss 11, latency 11, score -1. Hypervolume after each feasible trial,
# by inclusion-exclusion of the boxes [p, r] (volumes 165, 448, 605, 216, 405, 1):
#   after 0: 165
#   after 1: 165 + 448 - 120 (the boxes' overlap [(3, 8, -4), r]) = 493
#   after 2: 493 + 605 - 75 - 280 + 75 = 818
#   after 3: 818 (dominated)
#   after 5: slicing along score: 2*55 + 2*75 + 2*84 + 5*90 = 878
#   after 6: 878 (dominated)
MO3_HYPERVOLUME = {0: 165.0, 1: 493.0, 2: 818.0, 3: 818.0, 5: 878.0, 6: 878.0}
MO3_REFERENCE = [11.0, 11.0, -1.0]

# mo2's trials: (loss, score). In loss space: (0, -2), (2, -6), (6, -10), (4, -4) dominated by
# the second, (10, 0) dominated by all. Reference point (11, score -1); the 2-D sweep gives
# 11*3 = 33, then + 9*4 = 69, then + 5*4 = 89.
MO2 = [(0.0, 2.0), (2.0, 6.0), (6.0, 10.0), (4.0, 4.0), (10.0, 0.0)]
MO2_FRONT = [0, 1, 2]
MO2_HYPERVOLUME = {0: 33.0, 1: 69.0, 2: 89.0, 3: 89.0, 4: 89.0}


@dataclass
class World:
    gateway: RunningGateway
    suggestion: str

    @property
    def url(self) -> str:
        return self.gateway.url


def _populate(address: str) -> None:
    with SuggestionClient(address) as client:
        study = client.create_study(
            "mo3", [Categorical("booster", ["gbtree", "dart"]), Float("rate_drop", 0.0, 0.5, when={"booster": ["dart"]}),
                    Float("lr", 1e-3, 1.0, log=True)],
            objectives={"loss": "minimize", "latency": "minimize", "score": "maximize"}, constraints=["memory"],
            algorithm="random", seed=1)
        for number, ((booster, rate_drop, lr), (loss, latency, score), memory) in enumerate(MO3):
            params = {"booster": booster, "lr": lr, **({} if rate_drop is None else {"rate_drop": rate_drop})}
            study.enqueue(params)
            trial = study.ask()
            assert trial.number == number and dict(trial.params) == params
            told = study.tell(trial, {"loss": loss, "latency": latency, "score": score}, constraints=[memory])
            assert told.feasible == (memory <= 0)
        # A pruned trial: in the table, in no plot of results.
        study.enqueue({"booster": "dart", "rate_drop": 0.25, "lr": 0.2})
        study.prune(study.ask())

        study = client.create_study("mo2", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize", "score": "maximize"},
                                    algorithm="random", seed=1)
        for number, (loss, score) in enumerate(MO2):
            study.enqueue({"x": number / 10})
            study.tell(study.ask(), {"loss": loss, "score": score})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with gateway_suite(tmp_path_factory.mktemp("dashboard-plots")) as suite:
        _populate(suite.suggestion.address)
        yield World(suite.gateway, suite.suggestion.address)


def _plot(browser, name: str, expression: str):
    return browser.evaluate(f"(() => {{ const p = document.getElementById('{name}-plot'); return {expression}; }})()")


def _traces(browser, name: str) -> dict[str, dict]:
    return {t["name"]: t for t in _plot(browser, name, "p.data.map(t => ({name: t.name ?? null, x: t.x, y: t.y, z: t.z, "
                                                       "text: t.text, symbol: t.marker && t.marker.symbol}))")}


def _numbers(trace: dict) -> list[int]:
    return sorted(int(text.split()[1]) for text in trace["text"])


def _rows(browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('#trials tbody tr')).map(r => r.id)")


def _drag(browser, plot: str, axis: float, y0: float, y1: float, *, shift: bool = False) -> None:
    """A user's drag in ``plot`` across ``axis`` (x data units) from y0 to y1 (y data units)."""
    x0, top, x1, bottom = browser.evaluate(
        f"(() => {{ const n = document.getElementById('{plot}'); n.scrollIntoView({{block: 'center'}});"
        "const r = n.querySelector('.nsewdrag').getBoundingClientRect(); const L = n._fullLayout;"
        f"return [r.left + L.xaxis.l2p({axis} - 0.15), r.top + L.yaxis.l2p({y0}), r.left + L.xaxis.l2p({axis} + 0.15),"
        f" r.top + L.yaxis.l2p({y1})]; }})()")
    modifiers = 8 if shift else 0

    def mouse(kind: str, x: float, y: float, **extra) -> None:
        browser.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "modifiers": modifiers, **extra},
                     session=True)

    mouse("mouseMoved", x0, top)
    mouse("mousePressed", x0, top, button="left", clickCount=1)
    for k in range(1, 11):
        mouse("mouseMoved", x0 + (x1 - x0) * k / 10, top + (bottom - top) * k / 10, button="left", buttons=1)
    mouse("mouseReleased", x1, bottom, button="left", clickCount=1)


def test_pareto_front_hypervolume_and_infeasible_trials_of_three_objectives(browser, world: World, shots: Path):
    visit(browser, world, "/ui/studies/mo3", plots=10)
    feasible = sorted(MO3_HYPERVOLUME)
    # 2-D front: the study's Pareto set over all three objectives, dominated apart, infeasible as grey crosses.
    pareto = _traces(browser, "pareto")
    assert _numbers(pareto["Pareto front"]) == MO3_FRONT
    assert _numbers(pareto["dominated"]) == sorted(set(feasible) - set(MO3_FRONT))
    assert _numbers(pareto["infeasible"]) == MO3_INFEASIBLE and pareto["infeasible"]["symbol"] == "x"
    assert pareto["Pareto front"]["x"] == [MO3[n][1][0] for n in MO3_FRONT]  # loss against latency
    assert pareto["Pareto front"]["y"] == [MO3[n][1][1] for n in MO3_FRONT]
    assert "4 trials on the Pareto front, 2 dominated, 1 infeasible" in browser.evaluate(
        "document.getElementById('pareto-note').textContent")
    # The picker: score on y.
    browser.evaluate("(() => { const s = document.getElementById('pareto-y'); s.value = '2';"
                     "s.dispatchEvent(new Event('change')); })()")
    browser.wait_for("document.getElementById('pareto-plot').layout.yaxis.title.text === 'score (maximize)'", timeout=10)
    assert _traces(browser, "pareto")["Pareto front"]["y"] == [MO3[n][1][2] for n in MO3_FRONT]
    # 3-D: the same groups over the three objectives.
    three = _traces(browser, "pareto3")
    assert _plot(browser, "pareto3", "p.data[0].type") == "scatter3d"
    assert _numbers(three["Pareto front"]) == MO3_FRONT and _numbers(three["infeasible"]) == MO3_INFEASIBLE
    assert three["Pareto front"]["z"] == [MO3[n][1][2] for n in MO3_FRONT]
    # Hypervolume after each feasible trial, exact, against the hand-computed values, and its last
    # value GetBestTrials' (the same reference point).
    x, y = _plot(browser, "hypervolume", "[p.data[0].x, p.data[0].y]")
    assert x == feasible
    assert y == pytest.approx([MO3_HYPERVOLUME[n] for n in feasible], abs=1e-9)
    with SuggestionClient(world.suggestion) as client:
        best = client.get_study("mo3").best_response()
    assert list(best.reference_point) == pytest.approx(MO3_REFERENCE)
    assert y[-1] == pytest.approx(best.hypervolume)
    assert sorted(t.number for t in best.trials) == MO3_FRONT
    note = browser.evaluate("document.getElementById('hypervolume-note').textContent")
    assert "Reference point: loss 11, latency 11, score -1." in note and "1 infeasible trials are left out" in note
    top = browser.evaluate("Math.floor(document.getElementById('pareto-plot').closest('.grid')"
                           ".getBoundingClientRect().top + scrollY) - 12")
    browser.screenshot(shots / "dashboard-study-pareto.png", max_height=1000, top=top)


def test_infeasible_trials_are_marked_in_every_plot_of_completed_trials(browser, world: World):
    visit(browser, world, "/ui/studies/mo3", plots=10)
    feasible = sorted(MO3_HYPERVOLUME)
    history = _traces(browser, "history")
    assert history["infeasible"]["x"] == MO3_INFEASIBLE and history["loss"]["x"] == feasible
    browser.evaluate("(() => { const s = document.getElementById('slice-param'); s.value = 'lr';"
                     "s.dispatchEvent(new Event('change')); })()")
    browser.wait_for("document.getElementById('slice-plot').layout.xaxis.title.text === 'lr'", timeout=10)
    slice_ = _traces(browser, "slice")
    assert len(slice_["loss"]["x"]) == len(feasible) and _numbers(slice_["infeasible"]) == MO3_INFEASIBLE
    assert slice_["infeasible"]["symbol"] == "x"
    # Contour and rank over rate_drop and lr: the dart trials (rate_drop active), the infeasible one marked.
    for select, value in (("contour-x", "rate_drop"), ("contour-y", "lr")):
        browser.evaluate(f"(() => {{ const s = document.getElementById('{select}'); s.value = '{value}';"
                         "s.dispatchEvent(new Event('change')); })()")
    browser.wait_for("document.getElementById('contour-plot').layout.xaxis.title.text === 'rate_drop'", timeout=10)
    dart = [n for n, ((booster, _, _), _, _) in enumerate(MO3) if booster == "dart"]
    feasible_dart = [n for n in dart if n not in MO3_INFEASIBLE]
    contour = _plot(browser, "contour", "p.data.map(t => [t.type, t.name, (t.x || []).length])")
    assert contour[1] == ["scatter", None, len(feasible_dart)] and contour[2] == ["scatter", "infeasible", 1]
    rank = _traces(browser, "rank")
    assert len(rank["infeasible"]["x"]) == 1 and _plot(browser, "rank", "p.data[0].x.length") == len(feasible_dart)
    # EDF: the infeasible trial left out and counted.
    assert len(_plot(browser, "edf", "p.data[0].x")) == len(feasible)
    assert browser.evaluate("document.getElementById('edf-note').textContent") == "1 infeasible trials are left out."
    # Timeline: the infeasible completed trial in a group of its own.
    assert [len(t["x"]) for t in _traces(browser, "timeline").values()] == [len(feasible), 1, 1]
    assert set(_traces(browser, "timeline")) == {"completed", "completed, infeasible", "pruned"}
    # Parallel coordinates: the infeasible line grey, counted.
    traces = _plot(browser, "parallel", "p.data.filter(t => t.name === 'infeasible').map(t => [t.line.color, t.text[0]])")
    assert traces == [["#98a2b3", "trial 4 (infeasible)<br>booster = dart"]]
    assert "1 infeasible trials drawn grey" in browser.evaluate("document.getElementById('parallel-note').textContent")


def test_parallel_coordinates_show_inactive_values_and_brushing_filters_the_table(browser, world: World, shots: Path):
    visit(browser, world, "/ui/studies/mo3", plots=10)
    everyone = [f"trial-{n}" for n in range(len(MO3) + 1)]
    assert sorted(_rows(browser)) == everyone and browser.evaluate("document.getElementById('brush-note').hidden")
    # A line per completed trial through booster, rate_drop, lr and the objective.
    assert _plot(browser, "parallel", "p.layout.xaxis.ticktext") == ["booster", "rate_drop", "lr", "loss"]
    lines = _plot(browser, "parallel", "p.data.filter(t => t.mode === 'lines+markers')"
                                       ".reduce((n, t) => n + t.x.filter(v => v === null).length, 0)")
    assert lines == len(MO3)
    # rate_drop's axis has an 'inactive' tick below its range, where the gbtree trials' lines pass.
    ticks = _plot(browser, "parallel", "p.layout.annotations.filter(a => a.x === 1).map(a => [a.text, a.y])")
    inactive = [y for text, y in ticks if text == "inactive"]
    assert len(inactive) == 1 and inactive[0] < min(y for text, y in ticks if text != "inactive")
    passing = _plot(browser, "parallel", "p.data.flatMap(t => (t.text || []).map((s, i) => [s, t.x[i], t.y[i]]))"
                                         ".filter(([s, x]) => x === 1 && s && s.endsWith('rate_drop = inactive'))"
                                         ".map(([s, x, y]) => [Number(s.split(' ')[1].split('<')[0]), y])")
    assert sorted(n for n, _ in passing) == MO3_INACTIVE and all(y == inactive[0] for _, y in passing)
    # Brushing: a drag over the top half of booster keeps the dart trials (the pruned one has no line).
    _drag(browser, "parallel-plot", 0, 0.5, 1.02)
    browser.wait_for("!document.getElementById('brush-note').hidden", timeout=10)
    dart = [n for n, ((booster, _, _), _, _) in enumerate(MO3) if booster == "dart"]
    assert sorted(_rows(browser)) == [f"trial-{n}" for n in dart]
    assert browser.evaluate("document.getElementById('brush-text').textContent") == \
        f"{len(dart)} of {len(MO3) + 1} trials shown (brushed on booster) —"
    # A second axis narrows further: loss at most 5 (its axis runs 0 to 10) leaves trials 1 and 4.
    _drag(browser, "parallel-plot", 3, -0.05, 0.5)
    browser.wait_for("document.getElementById('brush-text').textContent.includes('booster, loss')", timeout=10)
    assert sorted(_rows(browser)) == ["trial-1", "trial-4"]
    # Shift adds a range on the same axis: loss from 9.5 up brings trial 6 back.
    _drag(browser, "parallel-plot", 3, 0.95, 1.05, shift=True)
    browser.wait_for("document.querySelectorAll('#trials tbody tr').length === 3", timeout=10)
    assert sorted(_rows(browser)) == ["trial-1", "trial-4", "trial-6"]
    faint = _plot(browser, "parallel", "p.data.filter(t => t.name === 'outside').map(t => t.x.filter(v => v === null).length)")
    assert faint == [len(MO3) - 3]
    assert _plot(browser, "parallel", "p.layout.shapes.filter(s => s.type === 'rect').length") == 3
    browser.screenshot(shots / "dashboard-study-brush.png", max_height=900,
                       top=browser.evaluate("Math.floor(document.getElementById('parallel-plot')"
                                            ".getBoundingClientRect().top + scrollY) - 60"))
    # Brushing the inactive tick of rate_drop alone: the gbtree trials.
    browser.evaluate("document.getElementById('brush-clear').click()")
    browser.wait_for("document.getElementById('brush-note').hidden", timeout=10)
    assert sorted(_rows(browser)) == everyone
    _drag(browser, "parallel-plot", 1, -0.05, 0.05)
    browser.wait_for("!document.getElementById('brush-note').hidden", timeout=10)
    assert sorted(_rows(browser)) == [f"trial-{n}" for n in MO3_INACTIVE]
    browser.evaluate("document.getElementById('brush-clear').click()")
    browser.wait_for("document.getElementById('brush-note').hidden", timeout=10)
    assert sorted(_rows(browser)) == everyone
    assert _plot(browser, "parallel", "p.layout.shapes.filter(s => s.type === 'rect').length") == 0
    assert browser.report.errors() == []


def test_two_objectives_hypervolume_is_the_2d_sweep(browser, world: World):
    visit(browser, world, "/ui/studies/mo2", plots=6)
    assert browser.count("#pareto3-plot") == 0  # no 3-D view with two objectives
    pareto = _traces(browser, "pareto")
    assert _numbers(pareto["Pareto front"]) == MO2_FRONT and "infeasible" not in pareto
    x, y = _plot(browser, "hypervolume", "[p.data[0].x, p.data[0].y]")
    assert x == sorted(MO2_HYPERVOLUME) and y == pytest.approx([MO2_HYPERVOLUME[n] for n in x], abs=1e-9)
    with SuggestionClient(world.suggestion) as client:
        assert y[-1] == pytest.approx(client.get_study("mo2").hypervolume())
    assert browser.report.errors() == []


def test_more_than_three_objectives_say_the_hypervolume_is_not_drawn(browser, world: World):
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("mo4", [Float("x", 0.0, 1.0)], objectives={f"f{k}": "minimize" for k in range(4)},
                                    algorithm="random", seed=1)
        for k in range(3):
            study.tell(study.ask(), {f"f{j}": float((j + k) % 3) for j in range(4)})
    visit(browser, world, "/ui/studies/mo4", plots=6)
    assert browser.evaluate("document.getElementById('hypervolume-note').textContent") == \
        "The hypervolume is not drawn for more than three objectives."
    assert _plot(browser, "hypervolume", "p.data.length") == 0
    assert _plot(browser, "pareto3", "p.data[0].type") == "scatter3d"


def test_a_brush_outlives_live_updates(browser, world: World):
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("live-brush", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                                    algorithm="random", seed=1)
        for x in (0.1, 0.2, 0.8):
            study.enqueue({"x": x})
            study.tell(study.ask(), {"loss": x})
        visit(browser, world, "/ui/studies/live-brush?refresh=1", plots=3)
        _drag(browser, "parallel-plot", 0, -0.05, 0.5)  # x from 0 to 0.5
        browser.wait_for("!document.getElementById('brush-note').hidden", timeout=10)
        assert sorted(_rows(browser)) == ["trial-0", "trial-1"]
        study.enqueue({"x": 0.3})
        study.tell(study.ask(), {"loss": 0.3})
        study.enqueue({"x": 0.9})
        study.tell(study.ask(), {"loss": 0.9})
    browser.wait_for("document.getElementById('brush-text').textContent.startsWith('3 of 5 trials')", timeout=20)
    assert sorted(_rows(browser)) == ["trial-0", "trial-1", "trial-3"]
    assert _plot(browser, "parallel", "p.layout.shapes.filter(s => s.type === 'rect').length") == 1
    assert browser.report.errors() == []
