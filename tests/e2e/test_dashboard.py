"""The dashboard in headless Chromium (over the DevTools protocol) against real services: a real
study tuned by ``tune.Tuner`` with ASHA pruning and logged models, a registered version with an
alias and a stage, and hostile names. Every page must render its charts with no console error,
no exception, no CSP violation and no dialog; user text must show as text.

Screenshots (fixture-*.png, of this hostile fixture) go to a temporary folder, or to
$TUNING_DASHBOARD_SCREENSHOTS when set; docs/images' page screenshots are the demo's, made by
scripts/dashboard_screenshots.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.server import GatewayOptions, RunningGateway, serve
from suggestion_service.algorithms.importance import MIN_TRIALS
from tests.conftest import gateway_suite, require
from trial_worker import SuggestionClient, tune
from trial_worker.space import Categorical, Float
from trial_worker.tracking import TrackingClient
from trial_worker.tracking.client import metric
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning_types.study import Fidelity

pytestmark = pytest.mark.timeout(300)

STUDY = "quadratic"
MODEL = "quadratic-model"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TRIALS = 16
PLOT = ".js-plotly-plot .main-svg"
SPACE = {
    "x": tune.uniform(0.0, 1.0),
    "lr": tune.loguniform(1e-3, 1.0),
    "kind": tune.choice(["linear", "tree", SCRIPT]),
}


def train(ctx):
    """A quick objective (mostly x), reported over 8 epochs; completed trials log a model."""
    x, lr, kind = ctx.params["x"], ctx.params["lr"], ctx.params["kind"]
    final = (x - 0.3) ** 2 + 0.002 * lr + (0.005 if kind == "tree" else 0.0)
    for epoch in range(1, 9):
        if ctx.report(epoch, loss=final + 0.5 / epoch, accuracy=1 - final - 0.5 / epoch):
            return None
    from sklearn.linear_model import LinearRegression

    ctx.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, x]))
    return {"loss": final, "accuracy": 1 - final}


@dataclass
class World:
    gateway: RunningGateway
    suggestion: str
    tracking: str
    runs: list[tpb.Run]  # the study's runs, by trial number
    best_run: str
    version: int
    hostile_experiment: int
    hostile_run: str

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("dashboard")
    with gateway_suite(folder) as suite:
        yield _populate(folder, suite.gateway, suite.suggestion.address, suite.tracking.address)


def _populate(folder: Path, gateway: RunningGateway, suggestion: str, tracking: str) -> World:
    config = tune.TunerConfig(
        metric="loss", mode="min", algorithm="random", num_trials=TRIALS, max_concurrent_trials=1, seed=4,
        pruner="asha", fidelity=Fidelity("epoch", 4, 8, 2), study_name=STUDY,
        suggestion_address=suggestion, tracking_address=tracking, progress=False)
    results = tune.Tuner(train, SPACE, config).run()
    assert results.count(spb.TRIAL_STATE_PRUNED) >= 2, "ASHA pruned nothing: the study is not what the test needs"
    assert results.count(spb.TRIAL_STATE_COMPLETED) >= 5, "too few completed trials for the importance"
    with TrackingClient(tracking) as client:
        experiment = client.get_experiment_by_name(STUDY)
        runs = sorted(client.search_runs([experiment.id]), key=lambda r: r.trial.trial_number)
        best = results.best_run_id
        client.log_inputs(best, [tpb.DatasetInput(
            dataset=tpb.Dataset(name="quadratic-data", digest="d1g3st", source_type="code", source="tests"),
            context="training")])
        version = client.create_model_version(MODEL, f"runs:/{best}/model", run_id=best, actor="ana").version
        client.set_registered_model_alias(MODEL, "champion", version, actor="ana", reason="best loss")
        client.transition_model_version_stage(MODEL, version, "Staging", actor="ana", reason="first look")
        client.transition_model_version_stage(MODEL, version, "Production", actor="bob",
                                              reason=f"beats the baseline {IMG}")

        # Hostile names everywhere a user can type one.
        hostile = client.create_experiment(SCRIPT, tags={IMG: SCRIPT})
        run = client.create_run(hostile.id, name=IMG, tags={"note": SCRIPT})
        client.log_batch(run.id, params={"p": SCRIPT, IMG: "1"},
                         metrics=[metric(IMG, 1.0 / (s + 1), step=s) for s in range(5)])
        model_file = folder / "model.txt"
        model_file.write_text("weights")
        client.upload_file(run.id, model_file, "model")
        client.create_model_version(SCRIPT, f"runs:/{run.id}/model", run_id=run.id, description=IMG, actor=IMG)
        client.transition_model_version_stage(SCRIPT, 1, "Staging", actor=SCRIPT, reason=IMG)
        client.update_registered_model(SCRIPT, IMG)
        client.set_registered_model_tag(SCRIPT, IMG, SCRIPT)
        client.update_run(run.id, status="FINISHED")
    return World(gateway, suggestion, tracking, runs, best, version, hostile.id, run.id)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("TUNING_DASHBOARD_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        return Path(wanted)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    require(shutil.which("chromium") is not None, "the dashboard tests need Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("websockets") is not None, "the dashboard tests need websockets (dev extra)")
    from tests.e2e.browser import Browser

    chromium = Browser(shutil.which("chromium"))
    yield chromium
    chromium.close()


def visit(browser, world: World, path: str, *, plots: int = 0, status: int = 200) -> str:
    """Opens a page, checks it said nothing wrong and drew ``plots`` charts; returns its text."""
    browser.open(world.url + path)
    browser.pump(0.2)  # late console messages
    errors = browser.report.errors()
    if status != 200:  # the browser logs the page's own status as an error
        errors = [e for e in errors if f"status of {status}" not in e]
    assert errors == [], f"{path}: {errors}"
    if plots:
        assert browser.count(PLOT) >= plots, f"{path}: {browser.count(PLOT)} charts drawn, wanted {plots}"
    return browser.text()


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# --- pages -------------------------------------------------------------------------------------------


def test_studies_list(browser, world: World):
    text = visit(browser, world, "/")
    assert browser.evaluate("location.pathname") == "/ui/"
    assert STUDY in text and "completed" in text and "random" in text and "asha" in text
    row = browser.evaluate("Array.from(document.querySelectorAll('#studies tbody tr')).map(r => r.innerText)")
    assert len(row) == 1 and f"{TRIALS} / {TRIALS}" in row[0]


def test_study_page(browser, world: World, shots: Path):
    text = visit(browser, world, f"/ui/studies/{STUDY}", plots=4)
    for chart in ("history", "importance", "parallel", "intermediate"):
        assert browser.count(f"#{chart}-plot.js-plotly-plot .main-svg") >= 1, chart
    # History: the trials and the best-so-far line.
    assert browser.evaluate("document.getElementById('history-plot').data.length") == 2
    # Importance: one bar per parameter, summing to 1, with the method explained.
    bars = browser.evaluate("document.getElementById('importance-plot').data[0].x")
    assert len(bars) == 3 and abs(sum(bars) - 1) < 1e-6
    assert "needs at least" not in browser.evaluate("document.getElementById('importance-note').textContent")
    assert "fanova" in browser.evaluate("document.querySelector('h2 .help').title").lower()
    assert "fANOVA importance" in browser.evaluate("document.getElementById('importance-note').textContent")
    # Intermediate values: a line per trial, pruned ones marked.
    traces = browser.evaluate("document.getElementById('intermediate-plot').data.map(t => [t.name, t.line.dash])")
    assert len(traces) == TRIALS and ["pruned", "dash"] in traces and ["completed", "solid"] in traces
    assert "pruned trials" in browser.evaluate("document.getElementById('intermediate-note').textContent")
    # The trial table: every trial, sortable, runs linked.
    assert browser.count("#trials tbody tr") == TRIALS
    links = browser.evaluate("Array.from(document.querySelectorAll('#trials a')).map(a => a.pathname)")
    assert f"/ui/runs/{world.runs[0].id}" in links
    browser.evaluate("document.querySelector('#trials thead th.metric').click()")
    values = browser.evaluate("Array.from(document.querySelectorAll('#trials tbody tr td:nth-child(3)'))"
                              ".map(td => td.dataset.sort).filter(v => v !== '').map(Number)")
    completed = sum(r.status == tpb.RUN_STATUS_FINISHED and not _pruned(r) for r in world.runs)
    assert values == sorted(values) and len(values) == completed
    # A categorical choice that looks like markup is text.
    assert SCRIPT in text and browser.count("#trials script") == 0
    assert "live updates stopped" in text  # the study is completed: no polling
    browser.screenshot(shots / "fixture-study.png", max_height=1600)


def _plot(browser, name: str, expression: str):
    return browser.evaluate(f"(() => {{ const p = document.getElementById('{name}-plot'); return {expression}; }})()")


def _choose(browser, select: str, value: str) -> None:
    browser.evaluate(f"(() => {{ const s = document.getElementById('{select}'); s.value = {json.dumps(value)}; "
                     "s.dispatchEvent(new Event('change')); })()")


def test_study_page_slice_contour_rank_edf_and_timeline(browser, world: World, http: httpx.Client, shots: Path):
    visit(browser, world, f"/ui/studies/{STUDY}", plots=9)
    trials = browser.evaluate("JSON.parse(document.getElementById('page-data').textContent).trials")
    completed = [t for t in trials if t["state"] == "COMPLETED"]
    assert len(completed) == sum(not _pruned(r) for r in world.runs) >= 5
    by_number = {t["number"]: t for t in completed}
    for chart in ("slice", "contour", "rank", "edf", "timeline"):
        assert browser.count(f"#{chart}-plot.js-plotly-plot .main-svg") >= 1, chart

    # Slice: a point per completed trial, at its value, coloured by trial number; log and categorical axes.
    options = browser.evaluate("Array.from(document.getElementById('slice-param').options).map(o => o.value)")
    assert set(options) == {"x", "lr", "kind"}
    for name, axis in (("x", "linear"), ("lr", "log"), ("kind", "category")):
        _choose(browser, "slice-param", name)
        browser.wait_for(f"document.getElementById('slice-plot').layout.xaxis.title.text === '{name}'", timeout=10)
        points = _plot(browser, "slice", "[p.data[0].x, p.data[0].y, p.data[0].marker.color, p.layout.xaxis.type]")
        assert len(points[0]) == len(completed) and points[3] == axis, name
        assert sorted(points[2]) == sorted(by_number)
        for value, objective, number in zip(*points[:3]):
            assert objective == by_number[number]["objectives"][0]
            if name != "kind":
                assert value == by_number[number]["params"][name]

    # Contour: by default the two most important numeric parameters; the trials as dots.
    ranked = [r["param"] for r in http.get(f"/ui/api/importance/{STUDY}").json()["importances"] if r["param"] != "kind"]
    pair = browser.evaluate("[document.getElementById('contour-x').value, document.getElementById('contour-y').value]")
    assert pair == ranked[:2]
    assert _plot(browser, "contour", "p.data.length") == 2
    assert _plot(browser, "contour", "p.data[0].type") == "contour"
    assert len(_plot(browser, "contour", "p.data[1].x")) == len(completed)
    assert len(_plot(browser, "rank", "p.data[0].x")) == len(completed)
    # Choosing the pair redraws both, lr on a log axis.
    _choose(browser, "contour-x", "lr")
    _choose(browser, "contour-y", "x")
    browser.wait_for("document.getElementById('contour-plot').layout.xaxis.title.text === 'lr' && "
                     "document.getElementById('contour-plot').layout.yaxis.title.text === 'x'", timeout=10)
    assert _plot(browser, "contour", "[p.layout.xaxis.type, p.layout.yaxis.type]") == ["log", "linear"]
    assert sorted(_plot(browser, "contour", "p.data[1].x")) == sorted(t["params"]["lr"] for t in completed)
    assert _plot(browser, "rank", "p.layout.xaxis.title.text") == "lr"
    ranks = _plot(browser, "rank", "p.data[0].marker.color")
    assert len(ranks) == len(completed) and min(ranks) == 0 and max(ranks) == 1
    top = browser.evaluate("Math.floor(document.getElementById('slice-plot').closest('.grid')"
                           ".getBoundingClientRect().top + scrollY) - 12")
    browser.screenshot(shots / "fixture-study-plots.png", max_height=1240, top=top)
    _choose(browser, "contour-y", "lr")  # the same parameter twice: nothing to draw
    browser.wait_for("document.getElementById('contour-plot').data.length === 0", timeout=10)

    # EDF: every completed trial's objective, sorted, rising to 1.
    edf = _plot(browser, "edf", "[p.data[0].x, p.data[0].y]")
    assert edf[0] == sorted(t["objectives"][0] for t in completed) and edf[1][-1] == 1

    # Timeline: a bar per started trial, a trace per state, a row per worker.
    bars = _plot(browser, "timeline", "p.data.map(t => [t.name, t.x.length, t.y])")
    assert sum(count for _, count, _ in bars) == TRIALS
    assert {"completed", "pruned"} <= {name for name, _, _ in bars}
    assert {y for _, _, ys in bars for y in ys} == {t["worker"] or "(no worker)" for t in trials}
    assert browser.report.errors() == []


def test_study_page_updates_live_and_stops_when_the_study_completes(browser, world: World):
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("live", [Float("x", 0.0, 1.0), Categorical("c", ["a", "b"])],
                                    objectives={"loss": "minimize", "accuracy": "maximize"}, max_trials=10, seed=1)
        first = study.ask()
        first.report(1, {"loss": 0.9})
        study.tell(first, {"loss": 0.5, "accuracy": 0.6})
        visit(browser, world, "/ui/studies/live?refresh=1", plots=5)
        assert browser.count("#trials tbody tr") == 1
        assert browser.count("#pareto-plot .main-svg") >= 1  # two objectives: a Pareto front
        # One numeric parameter: no contour, and no error.
        assert "needs two numeric parameters" in browser.evaluate(
            "document.getElementById('contour-plot').layout.annotations[0].text")
        assert browser.evaluate("document.getElementById('edf-plot').data[0].x") == [0.5]
        note = browser.evaluate("document.getElementById('importance-note').textContent")
        assert f"needs at least {MIN_TRIALS} completed trials" in note and "(1 so far)" in note
        assert "live: every 1 s" in browser.evaluate("document.getElementById('live-status').textContent")
        second = study.ask()
        second.report(1, {"loss": 0.7})
        browser.wait_for("document.querySelectorAll('#trials tbody tr').length === 2", timeout=10,
                         what="the new trial to appear")
        browser.wait_for("document.getElementById('intermediate-plot').data.length === 2", timeout=10)
        study.tell(second, {"loss": 0.25, "accuracy": 0.5})
        browser.wait_for("document.getElementById('best-value').textContent.startsWith('0.25')", timeout=10)
        # Neither trial beats the other on both objectives: both are on the front.
        # (The charts are drawn one after the other once the facts above them are.)
        browser.wait_for("document.getElementById('pareto-plot').data[1].x.length === 2", timeout=10)
        study.set_state(spb.STUDY_STATE_COMPLETED)
        browser.wait_for("document.getElementById('live-status').textContent.includes('stopped')", timeout=10)
    assert browser.report.errors() == []


def test_experiments_and_runs_table(browser, world: World, shots: Path):
    text = visit(browser, world, "/ui/experiments")
    assert STUDY in text and SCRIPT in text
    experiment = world.runs[0].experiment_id
    text = visit(browser, world, f"/ui/experiments/{experiment}")
    assert browser.count("#runs tbody tr") == TRIALS
    headers = browser.evaluate("Array.from(document.querySelectorAll('#runs th')).map(th => th.textContent)")
    assert {"x", "lr", "kind", "loss", "accuracy"} <= set(headers)
    assert browser.evaluate("document.getElementById('compare-button').disabled") is True
    browser.evaluate("document.querySelectorAll('.run-select').forEach((box, i) => { if (i < 2) box.click(); })")
    assert browser.evaluate("document.getElementById('compare-button').disabled") is False
    # Sorting is the server's (SearchRuns order_by), over every run, not only the page's.
    browser.evaluate("document.querySelector('#runs th.metric a').click()")
    browser.wait_for("document.querySelector('#runs th.metric') && "
                     "document.querySelector('#runs th.metric').getAttribute('aria-sort') === 'ascending'")
    browser.screenshot(shots / "fixture-runs.png")
    # The filter goes to SearchRuns.
    visit(browser, world, f"/ui/experiments/{experiment}?filter={quote('metrics.loss < 0.2')}")
    assert 0 < browser.count("#runs tbody tr") < TRIALS
    text = visit(browser, world, f"/ui/experiments/{experiment}?filter={quote('metrics.loss <')}")
    assert browser.count(".error-message") == 1 and browser.count("#runs tbody tr") == TRIALS


def test_wide_tables_scroll_inside_their_panel_and_values_stay_whole(browser, world: World):
    # Thirty long parameter names: the table is wider than the page.
    with TrackingClient(world.tracking) as client:
        experiment = client.create_experiment("wide")
        for i in range(3):
            run = client.create_run(experiment.id, name=f"wide-{i}")
            client.log_batch(run.id, params={f"a_rather_long_parameter_name_{k:02d}": f"gbtree{i}x{k:02d}histogram"
                                             for k in range(30)})
    visit(browser, world, f"/ui/experiments/{experiment.id}")
    layout = browser.evaluate("""(() => {
      const wrap = document.querySelector('#runs').closest('.table-wrap');
      const rows = Array.from(document.querySelectorAll('#runs tbody tr'));
      const line = parseFloat(getComputedStyle(document.querySelector('#runs td')).lineHeight) || 20;
      return {page: document.documentElement.scrollWidth, viewport: window.innerWidth,
              inner: wrap.scrollWidth, box: wrap.clientWidth, line,
              tallest: Math.max(...rows.map((r) => r.getBoundingClientRect().height))};
    })()""")
    assert layout["page"] <= layout["viewport"], layout  # the page itself never scrolls sideways
    assert layout["inner"] > layout["box"], layout  # the table scrolls inside its panel
    assert layout["tallest"] < 2 * layout["line"] + 12, layout  # no value broken over two lines


def _pruned(run: tpb.Run) -> bool:
    return {t.key: t.value for t in run.tags}.get("tuning.trial_state") == "PRUNED"


def test_pruned_trials_never_read_as_results(browser, world: World):
    # A pruned trial stopped at an intermediate step, where its loss can read better than a
    # finished trial's: it gets no value in the trial table, sorts below every result in the
    # runs table, and its run page says so.
    pruned = [r for r in world.runs if _pruned(r)]
    visit(browser, world, f"/ui/studies/{STUDY}", plots=4)
    rows = browser.evaluate("Array.from(document.querySelectorAll('#trials tbody tr')).map(tr => "
                            "[tr.children[1].textContent, tr.children[2].textContent, tr.lastChild.textContent])")
    stopped = [row for row in rows if row[0] == "pruned"]
    assert len(stopped) == len(pruned) and all(row[1] == "–" or row[1] == "" for row in stopped), stopped
    assert all(re.fullmatch(r"pruned at step \d+ \(.*loss .*\)", row[2]) for row in stopped), stopped
    best = browser.evaluate("document.getElementById('best-value').textContent")
    best_number = int(re.search(r"trial (\d+)", best).group(1))
    assert not _pruned(world.runs[best_number])

    visit(browser, world, f"/ui/experiments/{world.runs[0].experiment_id}")
    browser.evaluate("Array.from(document.querySelectorAll('#runs th.metric')).find(th => th.textContent === 'loss')"
                     ".querySelector('a').click()")
    browser.wait_for("Array.from(document.querySelectorAll('#runs th.metric')).some(th => "
                     "th.textContent === 'loss' && th.getAttribute('aria-sort') === 'ascending')")
    states = browser.evaluate("Array.from(document.querySelectorAll('#runs tbody tr')).map(tr => "
                              "tr.querySelector('td.intermediate') ? 'pruned' : 'result')")
    assert states == ["result"] * (TRIALS - len(pruned)) + ["pruned"] * len(pruned)

    text = visit(browser, world, f"/ui/runs/{pruned[0].id}", plots=1)
    assert "its latest values are intermediate ones" in text
    assert "intermediate ones" not in visit(browser, world, f"/ui/runs/{world.best_run}", plots=1)


def test_run_page(browser, world: World):
    text = visit(browser, world, f"/ui/runs/{world.best_run}", plots=2)
    assert browser.count(f"#metric-charts {PLOT}") >= 2  # loss and accuracy, by epoch
    assert "quadratic-data" in text and "d1g3st" in text and "training" in text
    trial_link = browser.evaluate("document.getElementById('trial-link').getAttribute('href')")
    best = next(r for r in world.runs if r.id == world.best_run)
    assert trial_link == f"/ui/trials/{best.trial.trial_id}"
    assert f"{MODEL} v{world.version}" in text
    downloads = browser.evaluate("Array.from(document.querySelectorAll('#artifacts a')).map(a => a.href)")
    assert downloads and all(f"/v1/runs/{world.best_run}/artifacts/model/" in href for href in downloads)
    with httpx.Client(timeout=30) as http:
        answer = http.get(downloads[0])
        assert answer.status_code == 200 and answer.content and answer.headers["x-checksum-sha256"]


def test_trial_link_highlights_the_trial(browser, world: World):
    number = world.runs[3].trial.trial_number
    visit(browser, world, f"/ui/studies/{STUDY}#trial-{number}", plots=4)
    assert browser.evaluate(f"document.getElementById('trial-{number}').classList.contains('highlight')")


def test_a_failed_trials_reason_shows_in_full(browser, world: World):
    reason = "ValueError: " + "the column QUALITY is missing " * 12 + "(end)\nsecond line"
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("failing", [Float("x", 0, 1)], objectives={"loss": "minimize"})
        study.fail(study.ask(), reason)
    visit(browser, world, "/ui/studies/failing")
    shown = browser.evaluate("document.querySelector('#trials tbody tr td:last-child').textContent")
    assert shown == reason


def test_infeasible_trials_are_marked_in_the_table_and_greyed_in_the_history(browser, world: World):
    with SuggestionClient(world.suggestion) as client:
        study = client.create_study("constrained", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                    constraints=["memory_over"], seed=1)
        told = []
        for loss, violation in ((0.1, 2.0), (0.5, -1.0), (0.3, 0.0), (0.05, 0.5)):
            trial = study.ask()
            study.tell(trial, loss, constraints=[violation])
            told.append((trial.number, violation > 0))
    visit(browser, world, "/ui/studies/constrained", plots=1)
    traces = browser.evaluate("document.getElementById('history-plot').data.map(t => [t.name, t.x])")
    by_name = dict((name, x) for name, x in traces)
    infeasible = sorted(number for number, bad in told if bad)
    assert sorted(by_name["infeasible"]) == infeasible
    assert sorted(by_name["loss"]) == sorted(number for number, bad in told if not bad)
    # The best-so-far line follows feasible trials only: 0.5, then 0.3.
    assert browser.evaluate("document.getElementById('history-plot').data[1].y") == [0.5, 0.3]
    rows = browser.evaluate("Array.from(document.querySelectorAll('#trials tbody tr'))"
                            ".filter(r => r.classList.contains('infeasible')).map(r => r.id)")
    assert sorted(rows) == [f"trial-{n}" for n in infeasible]
    assert browser.count("#trials tbody .badge.state-infeasible") == len(infeasible)
    assert browser.evaluate("document.querySelector('#trials thead th.constraint').textContent") == "memory_over"
    assert browser.evaluate("document.getElementById('best-value').textContent").startswith("0.3")


def test_compare_view(browser, world: World, shots: Path):
    completed = [r for r in world.runs if {t.key: t.value for t in r.tags}.get("tuning.trial_state") == "COMPLETED"]
    pruned = [r for r in world.runs if {t.key: t.value for t in r.tags}.get("tuning.trial_state") == "PRUNED"]
    picked = [completed[0], completed[1], pruned[0]]
    query = "&".join(f"runs={r.id}" for r in picked)
    text = visit(browser, world, f"/ui/compare?{query}", plots=2)
    assert all(r.name in text for r in picked)
    assert browser.count("#compare-table tr.differs") >= 3  # x, lr and the metrics at least
    curves = browser.evaluate("document.querySelector('#compare-charts .js-plotly-plot').data.length")
    assert curves == 3
    shown = browser.evaluate("document.querySelectorAll('#compare-table tbody tr').length")
    browser.evaluate("document.getElementById('only-differences').click()")
    visible = browser.evaluate("Array.from(document.querySelectorAll('#compare-table tbody tr'))"
                               ".filter(r => r.offsetParent !== null).length")
    assert visible < shown
    browser.evaluate("document.getElementById('only-differences').click()")
    browser.screenshot(shots / "fixture-compare.png")
    # One run is not a comparison.
    visit(browser, world, f"/ui/compare?runs={picked[0].id}", status=400)
    assert browser.count(".error-message") == 1


def test_registry_pages(browser, world: World, shots: Path):
    text = visit(browser, world, "/ui/models")
    assert MODEL in text and "Production" in text and "@champion" in text
    text = visit(browser, world, f"/ui/models/{MODEL}")
    row = browser.evaluate(f"document.getElementById('version-{world.version}').innerText")
    assert "Production" in row and "@champion" in row and f"{STUDY} #" in row
    links = browser.evaluate(f"Array.from(document.querySelectorAll('#version-{world.version} a'))"
                             ".map(a => a.getAttribute('href'))")
    assert f"/ui/runs/{world.best_run}" in links
    assert any(link.startswith("/ui/trials/") for link in links)
    events = browser.evaluate("Array.from(document.querySelectorAll('#events tbody tr')).map(r => r.innerText)")
    assert len(events) == 4  # created, alias, two transitions: newest first
    assert "transition stage" in events[0] and "bob" in events[0] and "Staging" in events[0]
    assert "Production" in events[0] and IMG in events[0]
    assert any("set alias" in e and "@champion" in e and "ana" in e for e in events)
    assert any("create version" in e for e in events)
    browser.screenshot(shots / "fixture-model.png")


def test_hostile_names_render_as_text(browser, world: World):
    pages = ["/ui/experiments", f"/ui/experiments/{world.hostile_experiment}", f"/ui/runs/{world.hostile_run}",
             "/ui/models", f"/ui/models/{quote(SCRIPT)}",
             f"/ui/compare?runs={world.hostile_run}&runs={world.best_run}", f"/ui/studies/{STUDY}"]
    for path in pages:
        text = visit(browser, world, path)
        assert SCRIPT in text, path
        if path != "/ui/experiments" and not path.startswith("/ui/studies"):
            assert IMG in text, path
        # No element came from the data: no <img>, no inline <script>.
        assert browser.count("img") == 0, path
        assert browser.evaluate("Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json')"
                                ".length") == 0, path
    browser.pump(0.5)
    assert browser.report.dialogs == []


# --- HTTP: headers, static files, errors -----------------------------------------------------------


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=30) as client:
        yield client


def test_pages_carry_security_headers(http: httpx.Client):
    page = http.get(f"/ui/studies/{STUDY}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # The page's data is JSON that cannot close its <script> block.
    block = page.text.split('<script type="application/json" id="page-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and json.loads(block)["study"]["name"] == STUDY
    assert http.get("/ui/api/studies/quadratic").headers["x-content-type-options"] == "nosniff"


def test_plotly_is_served_offline_with_caching(http: httpx.Client):
    assert "plotly" not in http.get("/ui/studies").text  # only pages with charts load it
    page = http.get(f"/ui/studies/{STUDY}").text
    src = page.split('<script src="', 1)[1].split('"', 1)[0]
    assert src.startswith("/ui/static/plotly.min.js?v=")
    script = http.get(src, headers={"accept-encoding": "gzip"})
    assert script.status_code == 200 and script.headers["content-encoding"] == "gzip"
    assert b"plotly.js" in script.content[:200] and len(script.content) > 1_000_000
    assert "immutable" in script.headers["cache-control"] and script.headers["x-content-type-options"] == "nosniff"
    assert http.get(src, headers={"if-none-match": script.headers["etag"]}).status_code == 304
    assert http.get("/ui/static/nope.js").status_code == 404


def test_missing_things_are_404_pages(http: httpx.Client):
    for path in ("/ui/studies/nope", "/ui/runs/" + "0" * 32, "/ui/models/nope"):
        page = http.get(path)
        assert page.status_code == 404 and "NOT_FOUND" in page.text and page.headers["content-security-policy"]
    answer = http.get("/ui/api/studies/nope")
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"



def test_the_dashboard_is_behind_the_gateways_tokens():
    from tuning_common.auth import TokenStore

    read = "r" * 24
    tokens = TokenStore.parse(f"read {read} viewer", "test", commas=False)
    # No services behind it: past the token check, pages say the services are unavailable.
    guarded = serve(GatewayOptions(suggestion_address="127.0.0.1:1", tracking_address="127.0.0.1:1", tokens=tokens))
    try:
        with httpx.Client(base_url=guarded.url, timeout=30) as http:
            for path in ("/ui/studies", f"/ui/studies/{STUDY}"):  # a browser goes to the login page
                answer = http.get(path)
                assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login?next="), path
            assert http.get("/ui/api/studies/x").status_code == 401
            assert http.get("/ui/static/common.js").status_code == 200  # package data; the login page needs it
            page = http.get("/ui/studies", headers={"authorization": f"Bearer {read}"})
            assert page.status_code == 503 and "UNAVAILABLE" in page.text
            assert http.get("/ui/static/common.js", headers={"authorization": f"Bearer {read}"}).status_code == 200
    finally:
        guarded.stop()
