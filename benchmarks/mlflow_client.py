"""The real `mlflow` client's logging speed against our gateway next to `mlflow server`.

    python benchmarks/mlflow_client.py            # needs .venv-mlflow with mlflow 3.x for the server side

The same workload script runs in two client processes: with this project's virtualenv
(mlflow-skinny) against the gateway (in front of our services on SQLite), and with
``.venv-mlflow`` (full mlflow) against ``mlflow server`` on SQLite with a local artifact folder.
Per run: create it, log 10 params, 100 ``log_metric`` calls (one HTTP request each),
one ``log_metrics`` batch of 100 keys, 5 tags, a small artifact, then end it; then one
``search_runs`` with a filter over all runs. Times are per call, medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def workload(uri: str, runs: int) -> dict:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"bench-{os.getpid()}")
    timings: dict[str, list[float]] = {}

    def timed(name: str, calls: int, action) -> None:
        began = time.perf_counter()
        action()
        timings.setdefault(name, []).append((time.perf_counter() - began) / calls)

    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder, "notes.txt")
        artifact.write_text("x" * 10_000)
        for index in range(runs):
            began = time.perf_counter()
            run = mlflow.start_run(run_name=f"run-{index}")
            timings.setdefault("start_run", []).append(time.perf_counter() - began)
            timed("log_param", 10, lambda: [mlflow.log_param(f"p{i}", i) for i in range(10)])
            timed("log_metric", 100, lambda: [mlflow.log_metric("loss", 1 / (s + 1), step=s) for s in range(100)])
            timed("log_metrics (100 keys)", 1, lambda: mlflow.log_metrics({f"m{i}": i for i in range(100)}))
            timed("set_tag", 5, lambda: [mlflow.set_tag(f"t{i}", "v") for i in range(5)])
            timed("log_artifact (10 kB)", 1, lambda: mlflow.log_artifact(str(artifact)))
            timed("end_run", 1, mlflow.end_run)
            del run
    began = time.perf_counter()
    found = mlflow.search_runs(filter_string="metrics.loss < 0.5 and params.p3 = '3'")
    timings["search_runs"] = [time.perf_counter() - began]
    assert len(found) == runs, len(found)
    return {name: statistics.median(values) * 1000 for name, values in timings.items()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer")


def run_client(python: str, uri: str, runs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    result = subprocess.run([python, __file__, "--role", "client", "--uri", uri, "--runs", str(runs)],
                            capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"client against {uri} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("driver", "client"), default="driver")
    parser.add_argument("--uri", default="")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mlflow-python", default=str(ROOT / ".venv-mlflow" / "bin" / "python"))
    args = parser.parse_args()
    if args.role == "client":
        print(json.dumps(workload(args.uri, args.runs)))
        return 0
    from trial_worker.local_suite import LocalSuite

    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs; "
          f"{' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as home:
        with LocalSuite(Path(home, "ours"), gateway_port=0) as suite:
            ours = run_client(sys.executable, suite.gateway_url, args.runs)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(args.mlflow_python).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{home}/mlflow.db", "--artifacts-destination", f"{home}/mlartifacts",
             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(f"http://127.0.0.1:{port}/health")
            theirs = run_client(args.mlflow_python, f"http://127.0.0.1:{port}", args.runs)
        finally:
            server.terminate()
            server.wait(30)
    print("\n| call (ms, median per call) | gateway | mlflow server | ratio |\n|---|---:|---:|---:|")
    for name in ours:
        print(f"| {name} | {ours[name]:.2f} | {theirs[name]:.2f} | {theirs[name] / ours[name]:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
