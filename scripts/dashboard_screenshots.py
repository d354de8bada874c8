"""Screenshots of every dashboard page of a real study: the reference demo's.

    .venv/bin/python scripts/dashboard_screenshots.py                 # runs `tuning demo` in a temporary home
    .venv/bin/python scripts/dashboard_screenshots.py --home .tuning  # a home the demo already filled

It runs the demo (unless ``--home`` holds a finished one), starts the suite with its gateway over
that home, opens each page in headless Chromium (Debian's ``chromium``) and writes
``docs/images/dashboard-<page>.png``. A page that reports an error (console error, exception,
CSP violation) fails the script: a screenshot of a broken page is not documentation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.browser import Browser  # noqa: E402
from trial_worker.local_suite import LocalSuite  # noqa: E402

WIDTH = 1360
PLOTS_DRAWN = "document.querySelectorAll('.js-plotly-plot .main-svg').length"


def quote(text: str) -> str:
    return urllib.parse.quote(str(text), safe="")


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=30) as answer:
        return json.load(answer)


def run_demo(home: Path, trials: int) -> None:
    env = {**os.environ, "TUNING_HOME": str(home)}
    print(f"running the demo ({trials} trials) in {home} ...", flush=True)
    subprocess.run([sys.executable, "-m", "tuning_suite", "demo", "--trials", str(trials)], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def pages(base: str) -> list[tuple[str, str, int]]:
    """(file name, path, charts to wait for) of each page, found from the demo's data."""
    studies = get(base, "/v1/studies")["studies"]
    if not studies:
        raise SystemExit("no study in this home: run the demo first")
    study = max(studies, key=lambda s: s.get("create_time", ""))["name"]
    best = get(base, f"/v1/studies/{quote(study)}/trials:best")["trials"][0]
    experiment_id = get(base, f"/v1/runs/{best['run_id']}")["run"]["experiment_id"]
    runs_path = f"/ui/experiments/{experiment_id}"
    search = json.dumps({"experiment_ids": [experiment_id], "page_size": 3,
                         "order_by": ["metrics.val_f1 DESC"]}).encode()
    request = urllib.request.Request(base + "/v1/runs:search", data=search,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        top = [r["id"] for r in json.load(answer)["runs"]]
    model = get(base, "/v1/registered-models")["registered_models"][0]
    version = model["latest_versions"][-1]
    return [
        ("studies", "/ui/studies", 0),
        ("study", f"/ui/studies/{quote(study)}", 6),
        ("trial", f"/ui/trials/{best['id']}", 1),
        ("experiments", "/ui/experiments", 0),
        ("runs", runs_path, 0),
        ("run", f"/ui/runs/{best['run_id']}", 1),
        ("compare", "/ui/compare?runs=" + ",".join(top), 1),
        ("models", "/ui/models", 0),
        ("model", f"/ui/models/{quote(model['name'])}", 0),
        ("model-version", f"/ui/model-versions/{version['version']}/{quote(model['name'])}", 0),
    ]


def shoot(base: str, out: Path) -> list[Path]:
    browser = Browser(shutil.which("chromium") or "chromium", width=WIDTH, height=900)
    written = []
    try:
        for name, path, charts in pages(base):
            browser.open(base + path)
            if charts:
                browser.wait_for(f"{PLOTS_DRAWN} >= {charts}", what=f"{charts} charts on {path}")
            browser.pump(1.0)  # plotly's transitions, late polls
            errors = browser.report.errors()
            if errors:
                raise SystemExit(f"{path} reported errors: {errors}")
            written.append(browser.screenshot(out / f"dashboard-{name}.png", max_height=3200))
            print(f"  {path} -> {written[-1].relative_to(ROOT) if written[-1].is_relative_to(ROOT) else written[-1]}")
    finally:
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="a TUNING_HOME the demo already ran in (default: run it now)")
    parser.add_argument("--trials", type=int, default=50, help="the demo's trial budget when it runs here")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        parser.error("needs Chromium: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tuning-shots-") as scratch:
        home = args.home or Path(scratch) / "home"
        if args.home is None:
            run_demo(home, args.trials)
        with LocalSuite(home, gateway_port=0) as suite:
            shoot(suite.gateway_url, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
