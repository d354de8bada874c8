"""Time to first render of the dashboard's study page (1,000 and 10,000 trials) and runs page
(an experiment of 100,000 runs), in headless Chromium; optuna-dashboard's study page on the
same trials where it is installed (``--optuna-python``: an interpreter with optuna and
optuna-dashboard).

Setup, not measured: a LocalSuite (both services on SQLite, the gateway) in a temporary folder.
The studies are made through the SuggestionClient (ask in batches of 1,000, then a tell per
trial; every fifth trial reports 5 intermediate values first). The runs are written in bulk
straight into the tracking service's tables (the rows CreateRun and LogBatch write: two params,
two metrics a run), as benchmarks/tracking.py does: 100,000 CreateRun calls would take minutes
and measure nothing of the page.

Measured: from navigation start to the study page's own marks (``performance.mark``):
"rendered" once its first screen (the facts, the history chart) is drawn and painted, and
"complete" once the table and every other chart but the importance are (the page draws them one
after the other, a paint between each); for the runs page, its DOMContentLoaded (its table is
server-rendered). In a fresh tab each repetition.
The study page's first repetition is cold (the gateway reads every trial); the later ones find
the finished trials in the gateway's cache, as a second visitor would. ``complete`` adds the
importance panel (fANOVA, computed by the suggestion service per request).
For optuna-dashboard: from navigation start until its history plot has drawn one point per trial.

    python benchmarks/dashboard_render.py [--repeats 5] [--optuna-python /path/to/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import mlflow_side as side  # noqa: E402  (benchmarks/ is not a package)

from tests.e2e.browser import Browser  # noqa: E402
from trial_worker import SuggestionClient  # noqa: E402
from trial_worker.local_suite import LocalSuite  # noqa: E402
from trial_worker.space import Categorical, Float, Int  # noqa: E402

SPACE = [Float("lr", 1e-4, 1.0, log=True), Float("dropout", 0.0, 0.5), Int("layers", 1, 8),
         Categorical("optimizer", ["adam", "sgd", "rmsprop"])]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def loss_of(params: dict) -> float:
    import math

    return (math.log10(params["lr"]) + 2.5) ** 2 + params["dropout"] + 0.05 * params["layers"] + \
        (0.1 if params["optimizer"] == "sgd" else 0.0)


def make_study(address: str, name: str, trials: int) -> list[dict]:
    """A study of ``trials`` completed trials; returns each trial's params and loss (for Optuna)."""
    made = []
    with SuggestionClient(address) as client:
        study = client.create_study(name, SPACE, objectives={"loss": "minimize"}, seed=7)
        while len(made) < trials:
            for trial in study.ask_batch(min(1000, trials - len(made))):
                loss = loss_of(trial.params)
                steps = []
                if trial.number % 5 == 0:
                    for step in range(1, 6):
                        value = loss + 1.0 / step
                        trial.report(step, {"loss": value})
                        steps.append((step, value))
                study.tell(trial, loss)
                made.append({"params": dict(trial.params), "loss": loss, "steps": steps})
    return made


def make_runs(suite: LocalSuite, count: int) -> int:
    from trial_worker.tracking import TrackingClient

    with TrackingClient(suite.tracking_address) as client:
        experiment = client.create_experiment("many-runs")
    location = experiment.artifact_location.rstrip("/")
    rows = list(side.search_rows(count, 1))
    engine = side.bulk_engine(str(Path(suite.home) / "tracking.db"))
    try:
        with engine.begin() as conn:
            side.insert_our_runs(conn, experiment.id, location, rows)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return experiment.id


def navigation_ms(browser: Browser, url: str, ready: str, mark: str) -> dict:
    """A fresh document: navigate from about:blank, wait for ``ready``, read the timings."""
    browser.open("about:blank", ready="true")
    browser.open(url, ready=ready, timeout=120)
    timing = browser.evaluate(f"(() => {{ const m = {mark}; return m; }})()")
    if browser.report.errors():  # a chart that failed (a CSP violation, say) must not pass for fast
        raise RuntimeError(f"{url}: {browser.report.errors()}")
    return timing


def study_timing(browser: Browser, url: str) -> tuple[float, float, float]:
    """(first screen, every chart, with the importance) in ms from navigation start."""
    first = navigation_ms(browser, url, "document.body && document.body.dataset.rendered === '1'",
                          "performance.getEntriesByName('rendered')[0].startTime")
    browser.wait_for("document.body.dataset.ready === '1'", timeout=120)
    charts = browser.evaluate("performance.getEntriesByName('complete')[0].startTime")
    return first, charts, browser.evaluate("performance.now()")


def optuna_study(python: str, folder: Path, name: str, trials: list[dict]) -> str:
    """The same trials in an Optuna RDB study (SQLite); returns the storage URL."""
    storage = f"sqlite:///{folder / 'optuna.db'}"
    data = folder / f"{name}.json"
    data.write_text(json.dumps(trials))
    script = r"""
import json, sys
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage, name, path = sys.argv[1:]
trials = json.load(open(path))
dists = {"lr": FloatDistribution(1e-4, 1.0, log=True), "dropout": FloatDistribution(0.0, 0.5),
         "layers": IntDistribution(1, 8), "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"])}
study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
study.add_trials([optuna.trial.create_trial(params=t["params"], distributions=dists, value=t["loss"],
                  intermediate_values={s: v for s, v in t["steps"]}) for t in trials])
"""
    subprocess.run([python, "-c", script, storage, name, str(data)], check=True)
    return storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f}, "
            f"n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1000,10000", help="study sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optuna-python", default="", help="a Python with optuna and optuna-dashboard")
    args = parser.parse_args()
    sizes = [int(s) for s in args.trials.split(",") if s]
    results: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                     "python": platform.python_version(), "study": {}, "optuna": {}}
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory(prefix="tuning-render-") as home, LocalSuite(home, gateway_port=0) as suite:
        made = {}
        for size in sizes:
            began = time.perf_counter()
            made[size] = make_study(suite.suggestion_address, f"study-{size}", size)
            progress(f"study of {size} trials made in {time.perf_counter() - began:.1f} s")
        experiment = None
        if args.runs:
            began = time.perf_counter()
            experiment = make_runs(suite, args.runs)
            progress(f"{args.runs} runs written in {time.perf_counter() - began:.1f} s")
        browser = Browser(chromium, width=1400, height=1000)
        try:
            for size in sizes:
                rendered, charts, complete = [], [], []
                for _ in range(args.repeats + 1):
                    first, drawn, full = study_timing(browser, f"{suite.gateway_url}/ui/studies/study-{size}")
                    rendered.append(first)
                    charts.append(drawn)
                    complete.append(full)
                results["study"][size] = {"cold_ms": rendered[0], "warm_ms": rendered[1:], "cold_charts_ms": charts[0],
                                          "charts_ms": charts[1:], "complete_ms": complete[1:]}
                progress(f"study page, {size} trials: first screen cold {rendered[0]:.0f} ms, warm {summary(rendered[1:])}; "
                         f"every chart cold {charts[0]:.0f} ms, warm {summary(charts[1:])}; "
                         f"with importance {summary(complete[1:])}")
            if experiment is not None:
                times = []
                for _ in range(args.repeats + 1):
                    times.append(navigation_ms(browser, f"{suite.gateway_url}/ui/experiments/{experiment}",
                                               "document.body && document.body.dataset.ready === '1'",
                                               "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))
                results["runs"] = {"ms": times[1:], "first_ms": times[0]}
                progress(f"runs page, {args.runs} runs: first {times[0]:.0f} ms; then {summary(times[1:])}")
            if args.optuna_python:
                folder = Path(home)
                for size in sizes:
                    storage = optuna_study(args.optuna_python, folder, f"study-{size}", made[size])
                    port = free_port()
                    server = subprocess.Popen([str(Path(args.optuna_python).parent / "optuna-dashboard"), storage,
                                               "--host", "127.0.0.1", "--port", str(port)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        deadline = time.monotonic() + 60
                        while time.monotonic() < deadline:
                            with socket.socket() as s:
                                if s.connect_ex(("127.0.0.1", port)) == 0:
                                    break
                            time.sleep(0.2)
                        study_id = 1 + sizes.index(size)
                        url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
                        # Its history plot (plotly) with a point per trial.
                        ready = ("(() => { const p = Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                 ".find(n => n.data && n.data.some(t => t.x && t.x.length >= " + str(size) + "));"
                                 " return !!p; })()")
                        times = []
                        for _ in range(args.repeats + 1):
                            browser.open("about:blank", ready="true")
                            browser.open(url, ready=ready, timeout=180)
                            # Polled every 0.1 s: up to that much later than the draw itself.
                            times.append(browser.evaluate("performance.now()"))
                        results["optuna"][size] = {"ms": times[1:], "first_ms": times[0]}
                        progress(f"optuna-dashboard, {size} trials: first {times[0]:.0f} ms; then {summary(times[1:])}")
                    finally:
                        server.terminate()
                        server.wait(10)
        finally:
            browser.close()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
