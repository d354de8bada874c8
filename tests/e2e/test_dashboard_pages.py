"""The trial page, the model-version page and the registry actions, in headless Chromium against
real services: a small study asked and told through the SuggestionClient (a completed trial with a
run and registered versions, a pruned trial, a failed trial with a long multi-line reason that the
study's retry policy queued again), a gateway without tokens and one with tokens in front of the
same services. Each page must open with no console error, exception, CSP violation or dialog;
links are followed by clicking; registry actions are made in the page and checked through the
tracking client.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.server import GatewayOptions, RunningGateway, serve
from tests.conftest import gateway_suite, require
from trial_worker import SuggestionClient
from trial_worker.space import Categorical, Float, Int
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning_common.auth import TokenStore

pytestmark = pytest.mark.timeout(300)

STUDY = "pages"
MODEL = "pages-model"
SLASHED = "team/pages-model"
PLOT = ".js-plotly-plot .main-svg"
REASON = ("Traceback (most recent call last):\n  File \"train.py\", line 12, in <module>\n"
          + "    " + "the column QUALITY is missing from the frame " * 10 + "\nValueError: (end of the reason)")
WRITE_TOKEN, READ_TOKEN = "w" * 24, "r" * 24


@dataclass
class Pages:
    gateway: RunningGateway
    guarded: RunningGateway
    suggestion: str
    tracking: str
    completed: spb.Trial
    pruned: spb.Trial
    failed: spb.Trial
    retry: spb.Trial
    run_id: str
    experiment_id: int

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    folder = tmp_path_factory.mktemp("pages")
    with gateway_suite(folder) as suite:
        tokens = TokenStore.parse(f"write {WRITE_TOKEN} ana-token\nread {READ_TOKEN} viewer", "test")
        guarded = serve(GatewayOptions(suggestion_address=suite.suggestion.address,
                                       tracking_address=suite.tracking.address, tokens=tokens))
        try:
            yield _populate(folder, suite.gateway, guarded, suite.suggestion.address, suite.tracking.address)
        finally:
            guarded.stop()


def _populate(folder: Path, gateway: RunningGateway, guarded: RunningGateway, suggestion: str,
              tracking: str) -> Pages:
    with SuggestionClient(suggestion) as client:
        study = client.create_study(
            STUDY, [Float("x", 0.0, 1.0), Categorical("kind", ["a", "b"]), Int("depth", 1, 5, when={"kind": ["b"]})],
            objectives={"loss": "minimize"}, algorithm="random", seed=3, constraints=["memory_over"],
            max_retries=1, retry_failed=True)
        study.worker_id = "worker-7"
        asked = [study.ask() for _ in range(8)]
        # A trial where the conditional "depth" is inactive, for the parameters table.
        first = next(t for t in asked if t.params["kind"] == "a")
        others = [t for t in asked if t is not first]
        for step in (1, 2, 3):
            first.report(step, {"loss": 1.0 / step, "accuracy": 0.5 + step / 10})
        with TrackingClient(tracking) as tracker:
            experiment = tracker.create_experiment(STUDY)
            run = tracker.create_run(experiment.id, name="pages-run", trial=tpb.TrialLink(
                study=STUDY, trial_id=first.id, trial_number=first.number))
            model_file = folder / "model.txt"
            model_file.write_text("weights")
            tracker.upload_file(run.id, model_file, "model")
            first.link_run(run.id)
            completed = study.tell(first, {"loss": 0.25, "accuracy": 0.8}, constraints=[-1.0])
            for version in (1, 2, 3):
                tracker.create_model_version(MODEL, f"runs:/{run.id}/model", run_id=run.id, actor="ana",
                                             description=f"version {version}")
            tracker.transition_model_version_stage(MODEL, 1, "Production", actor="ana", reason="first")
            tracker.create_model_version(SLASHED, f"runs:/{run.id}/model", run_id=run.id, actor="ana")
            tracker.update_run(run.id, status="FINISHED")
        to_prune, to_fail, *rest = others
        to_prune.report(1, {"loss": 2.0})
        to_prune.report(2, {"loss": 1.5})
        pruned = to_prune.prune()
        failed = study.fail(to_fail, REASON)
        retry = study.ask()
        assert retry.info.retry_of == failed.id, "the failed trial was not retried first"
        retry = study.tell(retry, 0.5, constraints=[0.5])
        for trial in rest:
            study.tell(trial, trial.params["x"], constraints=[-0.5])
    return Pages(gateway, guarded, suggestion, tracking, completed, pruned, failed, retry, run.id, experiment.id)


@pytest.fixture(scope="module")
def browser():
    require(shutil.which("chromium") is not None, "the dashboard tests need Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("websockets") is not None, "the dashboard tests need websockets (dev extra)")
    from tests.e2e.browser import Browser

    chromium = Browser(shutil.which("chromium"))
    chromium.call("Network.enable", session=True)
    yield chromium
    chromium.close()


def visit(browser, url: str, *, plots: int = 0, status: int = 200) -> str:
    browser.open(url)
    browser.pump(0.2)
    errors = browser.report.errors()
    if status != 200:
        errors = [e for e in errors if f"status of {status}" not in e]
    assert errors == [], f"{url}: {errors}"
    if plots:
        assert browser.count(PLOT) >= plots, f"{url}: {browser.count(PLOT)} charts drawn, wanted {plots}"
    return browser.text()


def click(browser, selector: str, pathname: str) -> str:
    """Clicks a link and waits for the page it leads to; returns its text."""
    browser.evaluate(f"delete document.body.dataset.ready; document.querySelector({json.dumps(selector)}).click()")
    browser.wait_for(f"location.pathname === {json.dumps(pathname)} && document.body.dataset.ready === '1'",
                     what=f"{selector} to lead to {pathname}")
    assert browser.report.errors() == []
    return browser.text()


def act(browser, script: str) -> None:
    """Runs ``script`` (filling a form, clicking its button) and waits for the page to reload."""
    browser.evaluate("delete document.body.dataset.ready; document.body.dataset.before = '1'")
    browser.evaluate(script)
    browser.wait_for("document.body.dataset.ready === '1' && !document.body.dataset.before",
                     what="the page to show the change")
    assert browser.report.errors() == []


def refused(browser, form: str, script: str, status: int) -> str:
    """Runs ``script`` and waits for the refusal (HTTP ``status``) to show next to ``form``; returns its text."""
    browser.evaluate(script)
    selector = json.dumps(f"{form} .form-error")
    message = browser.wait_for(f"document.querySelector({selector}).textContent", what=f"an error in {form}")
    browser.pump(0.2)
    # The browser logs the refused request itself; nothing else may go wrong.
    assert [e for e in browser.report.errors() if f"status of {status}" not in e] == []
    browser.clear()
    return message


def rows(browser, selector: str) -> list[str]:
    return browser.evaluate(f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(r => r.innerText)")


def headers(browser, token: str | None) -> None:
    browser.call("Network.setExtraHTTPHeaders",
                 {"headers": {"authorization": f"Bearer {token}"} if token else {}}, session=True)


def version_url(version: int, name: str = MODEL) -> str:
    return f"/ui/model-versions/{version}/{name}"


# --- the trial page --------------------------------------------------------------------------------


def test_the_trial_page_shows_the_trial(browser, pages: Pages):
    trial = pages.completed
    text = visit(browser, f"{pages.url}/ui/trials/{trial.id}", plots=1)
    assert f"Trial #{trial.number}" in text and browser.evaluate("document.getElementById('trial-state').textContent") \
        == "completed"
    assert browser.evaluate("document.getElementById('study-link').getAttribute('href')") == f"/ui/studies/{STUDY}"
    assert browser.evaluate("document.getElementById('trial-worker').textContent") == "worker-7"
    # Parameters: the conditional one is inactive (kind is "a"), shown as such.
    params = {r.split("\t")[0]: r for r in rows(browser, "#trial-params tbody tr")}
    assert set(params) == {"x", "kind", "depth"}
    assert "inactive" in params["depth"] and "needs kind in b" in params["depth"]
    assert browser.evaluate("document.querySelector('#trial-params tr[data-param=depth]').className") == "inactive"
    assert "\ta\t" in params["kind"] + "\t"
    # Values: the objective first, then the other final metric; the constraint and feasibility.
    values = rows(browser, "#trial-values tbody tr")
    assert values[0].startswith("loss\t0.25") and "objective (minimize)" in values[0] and values[1].startswith("accuracy")
    assert rows(browser, "#trial-constraints tbody tr") == ["memory_over\t-1\tyes"]
    assert browser.evaluate("document.getElementById('feasibility').textContent") == "Feasible."
    # Intermediate values: a line per metric, three steps each.
    traces = browser.evaluate("document.getElementById('trial-intermediate').data.map(t => [t.name, t.x])")
    assert sorted(traces) == [["accuracy", [1, 2, 3]], ["loss", [1, 2, 3]]]
    # History: asked, leased by the worker, reported, completed.
    events = rows(browser, "#trial-history tbody tr")
    assert [e.split("\t")[0] for e in events] == ["created", "started", "reported", "completed"]
    assert "suggested by the study's algorithm" in events[0] and "leased by worker worker-7" in events[1]
    assert "3 intermediate value(s), steps 1 to 3" in events[2]
    # The suggestion's metadata: every key, the documented ones first and labelled.
    keys = browser.evaluate("Array.from(document.querySelectorAll('#trial-suggestion tr[data-key]'))"
                            ".map(r => r.dataset.key)")
    assert keys[:2] == ["algorithm", "seed"] and "index" in keys
    suggestion = {r.split("\t")[0]: r.split("\t")[1] for r in rows(browser, "#trial-suggestion tbody tr")}
    assert suggestion["algorithm"] == "random" and suggestion["index in the seeded sequence"].isdigit()
    # The run and the versions made from it.
    assert browser.evaluate("document.querySelector('#trial-run a').getAttribute('href')") == f"/ui/runs/{pages.run_id}"
    versions = browser.evaluate("Array.from(document.querySelectorAll('#trial-models a')).map(a => a.getAttribute('href'))")
    assert set(versions) >= {version_url(v) for v in (1, 2)} and f"/ui/model-versions/1/{SLASHED.replace('/', '%2F')}" \
        in versions


def test_a_pruned_trial_says_where_it_stopped(browser, pages: Pages):
    visit(browser, f"{pages.url}/ui/trials/{pages.pruned.id}", plots=1)
    assert "Pruned at step 2" in browser.evaluate("document.getElementById('stopped-at').textContent")
    end = rows(browser, "#trial-history tbody tr")[-1]
    assert end.startswith("pruned") and "at step 2" in end and "stopped early" in end
    assert browser.evaluate("document.getElementById('trial-intermediate').layout.shapes[0].x0") == 2
    assert browser.evaluate("document.getElementById('trial-reason').textContent") == "stopped early"


def test_a_failed_trial_shows_its_reason_in_full_and_its_retry(browser, pages: Pages):
    visit(browser, f"{pages.url}/ui/trials/{pages.failed.id}")
    assert browser.evaluate("document.getElementById('trial-reason').textContent") == REASON
    history = rows(browser, "#trial-history tbody tr")
    assert history[-2].startswith("failed") and "ValueError: (end of the reason)" in history[-2]
    assert history[-1].startswith("retried") and f"trial #{pages.retry.number}" in history[-1]
    assert "no intermediate values" in browser.evaluate("document.getElementById('intermediate-note').textContent")
    # Following the retry by clicking: the retry says what it retries, and both attempts are listed.
    text = click(browser, "#trial-history tr[data-event=retried] a", f"/ui/trials/{pages.retry.id}")
    created = rows(browser, "#trial-history tbody tr")[0]
    assert "attempt 2: a retry of" in created and f"trial #{pages.failed.number} (failed)" in created
    assert rows(browser, "#trial-attempts li") == [f"trial #{pages.failed.number} — failed",
                                                   f"this trial (#{pages.retry.number}) — completed"]
    assert "Infeasible: a constraint value is above 0." in text


def test_links_between_trials_runs_versions_and_studies(browser, pages: Pages):
    trial = pages.completed
    # Study table -> trial page -> run page -> trial page -> version page -> lineage.
    visit(browser, f"{pages.url}/ui/studies/{STUDY}", plots=1)
    browser.wait_for("document.querySelector('#trials a.trial-link') !== null")
    click(browser, f"#trial-{trial.number} a.trial-link", f"/ui/trials/{trial.id}")
    click(browser, "#run-link", f"/ui/runs/{pages.run_id}")
    assert browser.evaluate("document.getElementById('study-link').getAttribute('href')").startswith(f"/ui/studies/{STUDY}")
    assert browser.evaluate("document.getElementById('experiment-link').getAttribute('href')") \
        == f"/ui/experiments/{pages.experiment_id}"
    assert browser.count("#run-models a") == 4
    click(browser, "#trial-link", f"/ui/trials/{trial.id}")
    text = click(browser, f"#trial-models a[href='{version_url(1)}']", version_url(1))
    assert f"{MODEL} v1" in text and "Production" in text and "version 1" in text
    lineage = browser.evaluate("document.getElementById('lineage').innerText")
    assert "pages-run" in lineage and f"trial #{trial.number}" in lineage and STUDY in lineage
    assert browser.evaluate("document.getElementById('lineage-experiment').getAttribute('href')") \
        == f"/ui/experiments/{pages.experiment_id}"
    click(browser, "#lineage-trial", f"/ui/trials/{trial.id}")
    visit(browser, pages.url + version_url(1))
    click(browser, "#lineage-study", f"/ui/studies/{STUDY}")
    # The models page and the model page link to versions.
    visit(browser, f"{pages.url}/ui/models")
    click(browser, f"#models a[href='{version_url(1)}']", version_url(1))
    visit(browser, f"{pages.url}/ui/models/{MODEL}")
    click(browser, "#version-2 a.version-link", version_url(2))


def test_missing_trials_and_versions_are_404_pages(browser, pages: Pages):
    visit(browser, f"{pages.url}/ui/trials/987654", status=404)
    assert "NOT_FOUND" in browser.text() and browser.count(".error-message") == 1
    visit(browser, f"{pages.url}{version_url(99)}", status=404)
    assert "NOT_FOUND" in browser.text()


# --- registry actions ------------------------------------------------------------------------------


def _version(pages: Pages, version: int) -> rpb.ModelVersion:
    with TrackingClient(pages.tracking) as client:
        return client.get_model_version(MODEL, version)


def test_a_stage_transition_from_the_page(browser, pages: Pages):
    visit(browser, pages.url + version_url(2))
    assert browser.evaluate("document.getElementById('actor') !== null")  # no tokens: a name to give
    act(browser, """
        document.getElementById('actor').value = 'carol';
        const form = document.getElementById('stage-form');
        form.elements.stage.value = 'STAGE_PRODUCTION';
        form.elements.archive.checked = true;
        form.elements.reason.value = 'better loss';
        form.querySelector('button[type=submit]').click();""")
    assert _version(pages, 2).stage == rpb.STAGE_PRODUCTION
    assert _version(pages, 1).stage == rpb.STAGE_ARCHIVED  # archived by the transition
    assert browser.evaluate("document.getElementById('version-stage').textContent") == "Production"
    assert "Moved v2 to Production." in browser.evaluate("document.getElementById('action-done').textContent")
    events = rows(browser, "#events tbody tr")
    assert events[0].split("\t")[1:6] == ["carol", "transition stage", "no stage", "Production", "—"]
    assert "better loss" in events[0]
    # No audit cell reads "None", on this page or the model's.
    cells = browser.evaluate("Array.from(document.querySelectorAll('#events td')).map(td => td.textContent)")
    assert "None" not in cells
    visit(browser, f"{pages.url}/ui/models/{MODEL}")
    cells = browser.evaluate("Array.from(document.querySelectorAll('#events td')).map(td => td.textContent)")
    assert "None" not in cells and any(c == "no stage" for c in cells)
    archived = rows(browser, "#events tbody tr")
    assert any("archived by the transition of version 2" in e and "v1" in e for e in archived)


def test_aliases_description_and_tags_from_the_page(browser, pages: Pages):
    visit(browser, pages.url + version_url(3))
    act(browser, """
        const form = document.getElementById('alias-form');
        form.elements.alias.value = 'candidate';
        form.elements.reason.value = 'try it';
        form.querySelector('button[type=submit]').click();""")
    with TrackingClient(pages.tracking) as client:
        assert client.get_model_version_by_alias(MODEL, "candidate").version == 3
    assert rows(browser, "#events tbody tr")[0].split("\t")[2:6] == ["set alias", "—", "3", "@candidate"]
    # A reserved alias: the registry's refusal, in text, next to the form; nothing changes.
    message = refused(browser, "#alias-form", """
        const form = document.getElementById('alias-form');
        form.elements.alias.value = 'v9';
        form.querySelector('button[type=submit]').click();""", 400)
    assert "alias" in message and "reserved" in message
    act(browser, "document.querySelector('button.delete-alias[data-alias=candidate]').click()")
    assert "candidate" not in _version(pages, 3).aliases
    assert rows(browser, "#events tbody tr")[0].split("\t")[2] == "delete alias"

    act(browser, """
        const form = document.getElementById('description-form');
        form.elements.description.value = 'line one\\n<b>not bold</b>';
        form.querySelector('button[type=submit]').click();""")
    assert _version(pages, 3).description == "line one\n<b>not bold</b>"
    assert browser.evaluate("document.getElementById('version-description').textContent") == "line one\n<b>not bold</b>"

    act(browser, """
        const form = document.getElementById('tag-form');
        form.elements.key.value = 'owner/team';
        form.elements.value.value = 'vision';
        form.querySelector('button[type=submit]').click();""")
    assert {t.key: t.value for t in _version(pages, 3).tags} == {"owner/team": "vision"}
    assert rows(browser, "#version-tags tbody tr")[0].startswith("owner/team\tvision")
    act(browser, "document.querySelector('button.delete-tag').click()")
    assert list(_version(pages, 3).tags) == []


def test_deleting_a_version_asks_in_the_page(browser, pages: Pages):
    with TrackingClient(pages.tracking) as client:
        run = next(client.search_model_versions(f"name = '{MODEL}'")).run_id
        doomed = client.create_model_version(MODEL, f"runs:/{run}/model", run_id=run, actor="ana").version
    visit(browser, pages.url + version_url(doomed))
    assert browser.evaluate("document.getElementById('delete-confirm').hidden")
    browser.evaluate("document.getElementById('delete-ask').click()")
    assert not browser.evaluate("document.getElementById('delete-confirm').hidden")
    browser.evaluate("document.getElementById('delete-no').click()")  # changed my mind
    assert browser.evaluate("document.getElementById('delete-confirm').hidden")
    browser.evaluate("document.getElementById('delete-ask').click()")
    browser.evaluate("delete document.body.dataset.ready; document.getElementById('delete-yes').click()")
    browser.wait_for(f"location.pathname === '/ui/models/{MODEL}' && document.body.dataset.ready === '1'")
    assert browser.report.errors() == [] and browser.report.dialogs == []
    assert browser.count(f"#version-{doomed}") == 0
    assert rows(browser, "#events tbody tr")[0].split("\t")[2:4] == ["delete version", f"v{doomed}"]
    with TrackingClient(pages.tracking) as client:
        assert doomed not in [v.version for v in client.search_model_versions(f"name = '{MODEL}'")]


def test_a_model_name_with_a_slash_has_no_actions(browser, pages: Pages):
    visit(browser, pages.url + f"/ui/model-versions/1/{SLASHED}")
    assert "cannot carry" in browser.evaluate("document.getElementById('actions-off').textContent")
    assert browser.count("#stage-form") == 0


def test_with_tokens_a_read_token_is_refused_and_a_write_token_is_the_actor(browser, pages: Pages):
    try:
        headers(browser, READ_TOKEN)
        visit(browser, pages.guarded.url + version_url(3))
        message = refused(browser, "#stage-form", """
            const form = document.getElementById('stage-form');
            form.elements.stage.value = 'STAGE_STAGING';
            form.querySelector('button[type=submit]').click();""", 403)
        assert message == "this token may only read"
        assert _version(pages, 3).stage == rpb.STAGE_NONE
        assert browser.evaluate("document.getElementById('action-done').hidden")

        headers(browser, WRITE_TOKEN)
        visit(browser, pages.guarded.url + version_url(3))
        # The gateway records the token's name: the page says so and offers no name to type.
        assert browser.count("#actor") == 0
        assert browser.evaluate("document.getElementById('actor-name').textContent") == "ana-token"
        act(browser, """
            const form = document.getElementById('stage-form');
            form.elements.stage.value = 'STAGE_STAGING';
            form.querySelector('button[type=submit]').click();""")
        assert _version(pages, 3).stage == rpb.STAGE_STAGING
        assert rows(browser, "#events tbody tr")[0].split("\t")[1:3] == ["ana-token", "transition stage"]
    finally:
        headers(browser, None)


def test_the_http_api_records_the_tokens_principal_as_the_actor(pages: Pages):
    path = f"/v1/registered-models/{MODEL}/aliases/by-api"
    with httpx.Client(base_url=pages.guarded.url, timeout=30,
                      headers={"authorization": f"Bearer {WRITE_TOKEN}"}) as http:
        answer = http.put(path, json={"version": "3", "actor": "mallory"})
        assert answer.status_code == 400
        assert answer.json()["error"]["message"].startswith("actor: is recorded from your token, as 'ana-token'")
        assert http.put(path, json={"version": "3"}).status_code == 200
        events = http.get(f"/v1/registered-models/{MODEL}/events", params={"version": 3}).json()["events"]
        assert events[0]["alias"] == "by-api" and events[0]["actor"] == "ana-token"


# --- the compare view ------------------------------------------------------------------------------


def test_compare_columns_stay_aligned_with_long_names_and_values(browser, pages: Pages):
    long_name = "a-run-name-without-spaces-" + "that-goes-on-" * 8
    with TrackingClient(pages.tracking) as client:
        experiment = client.create_experiment("compare-widths")
        ids = []
        for i, name in enumerate(["short", long_name, "third run with a name " * 4 + "end"]):
            run = client.create_run(experiment.id, name=name)
            client.log_batch(run.id, params={"lr": str(i), "a_parameter_name_" + "long_" * 10: "x" * (20 + 60 * i)})
            client.set_tag(run.id, "note", "word " * (15 * i))
            ids.append(run.id)
    visit(browser, pages.url + "/ui/compare?" + "&".join(f"runs={i}" for i in ids))
    widths = browser.evaluate("Array.from(document.querySelectorAll('#compare-table thead th'))"
                              ".slice(1).map(th => th.getBoundingClientRect().width)")
    assert max(widths) - min(widths) < 1, f"run columns of unequal width: {widths}"
    # Three runs fit the page: nothing pushed off to the right.
    assert browser.evaluate("document.getElementById('compare-table').getBoundingClientRect().right <= "
                            "document.querySelector('.table-wrap').getBoundingClientRect().right + 0.5")
    # Every cell starts where its column's header starts (no right-aligned numbers under left-aligned names).
    misaligned = browser.evaluate("""(() => {
        const heads = Array.from(document.querySelectorAll('#compare-table thead th')).map(th => th.getBoundingClientRect().left);
        const bad = [];
        for (const row of document.querySelectorAll('#compare-table tbody tr:not(.section)')) {
          Array.from(row.cells).forEach((cell, i) => {
            const style = getComputedStyle(cell);
            if (Math.abs(cell.getBoundingClientRect().left - heads[i]) > 0.5 || style.textAlign !== 'left') bad.push(row.innerText);
          });
        }
        return bad; })()""")
    assert misaligned == []
    assert browser.evaluate("getComputedStyle(document.querySelector('#compare-table thead th:nth-child(3)')).whiteSpace") \
        == "normal"


def test_mlflows_api_records_the_tokens_principal_too(pages: Pages):
    with httpx.Client(base_url=pages.guarded.url, timeout=30,
                      headers={"authorization": f"Bearer {WRITE_TOKEN}"}) as http:
        answer = http.post("/api/2.0/mlflow/registered-models/alias",
                           json={"name": MODEL, "alias": "by-mlflow", "version": "3"})
        assert answer.status_code == 200, answer.text
        events = http.get(f"/v1/registered-models/{MODEL}/events", params={"version": 3}).json()["events"]
        assert events[0]["alias"] == "by-mlflow" and events[0]["actor"] == "ana-token"


def test_hostile_text_on_the_trial_and_version_pages_is_text(browser, pages: Pages):
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    with SuggestionClient(pages.suggestion) as client:
        study = client.create_study("hostile-pages", [Categorical("kind", [hostile, "plain"])],
                                    objectives={"loss": "minimize"}, algorithm="random", seed=1)
        trial = study.ask()
        study.fail(trial, hostile)
    with TrackingClient(pages.tracking) as client:
        version = client.create_model_version(hostile, f"runs:/{pages.run_id}/model", run_id=pages.run_id,
                                              description=hostile, tags={hostile: hostile}, actor=hostile).version
        client.set_registered_model_alias(hostile, "a1", version, actor=hostile, reason=hostile)
    from urllib.parse import quote

    for path in (f"/ui/trials/{trial.id}", f"/ui/model-versions/{version}/{quote(hostile, safe='')}"):
        text = visit(browser, pages.url + path)
        assert hostile in text, path
        assert browser.count("img") == 0, path
        assert browser.evaluate("Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json')"
                                ".length") == 0, path
    browser.pump(0.3)
    assert browser.report.dialogs == []


def test_an_active_trial_shows_its_lease(browser, pages: Pages):
    with SuggestionClient(pages.suggestion) as client:
        study = client.create_study("leased", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                    algorithm="random", seed=2, lease_seconds=600)
        study.worker_id = "worker-9"
        trial = study.ask()
        trial.report(1, 0.5)
    visit(browser, f"{pages.url}/ui/trials/{trial.id}", plots=1)
    events = rows(browser, "#trial-history tbody tr")
    assert [e.split("\t")[0] for e in events] == ["created", "started", "reported", "lease expires"]
    assert "leased by worker worker-9" in events[1]
    assert "lease expires" in browser.evaluate("document.getElementById('trial-facts').innerText").lower()
