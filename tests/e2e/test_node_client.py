"""The Node.js clients (examples/node/ask_tell.js, and the guide docs/CLIENT-NODE.md, run
from its own code blocks) against a real server process.

Node drives a whole study over gRPC; the Python client then checks what the server stored,
so both ends of the wire agree on the protos, int64 ids and metric values.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, require
from trial_worker import SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api

SCRIPT = ROOT / "examples" / "node" / "ask_tell.js"
MAX_TRIALS = 8
STEPS = [0, 1, 2]


@pytest.fixture(autouse=True)
def _node_available() -> None:
    require(
        bool(shutil.which("node")) and (ROOT / "node_modules" / "@grpc" / "grpc-js").exists(),
        "the Node example needs Node.js 20+ and its packages: install node, then run `npm install --no-save` at the repo root",
    )


def run_node(address: str, study: str) -> dict:
    result = subprocess.run(
        ["node", str(SCRIPT), address, study], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"node exited {result.returncode}:\n{result.stderr}"
    # The error-mapping demo must surface the gRPC code name, not just a message.
    assert "NOT_FOUND" in result.stderr, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got:\n{result.stdout}"
    return json.loads(lines[0])


def expected_loss(params: dict) -> float:
    """The same stand-in objective as lossOf() in ask_tell.js."""
    penalty = {"adam": 0.0, "rmsprop": 0.1, "sgd": 0.3}[params["optimizer"]]
    return (math.log10(params["learning_rate"]) + 2.5) ** 2 + 0.1 * abs(params["layers"] - 4) + penalty


def check_study(address: str, summary: dict) -> list[pb.Trial]:
    """Checks through the Python client what Node stored; returns the trials."""
    with SuggestionClient(address, retries=2, backoff=0.05) as client:
        study = client.get_study(summary["study"])
        trials = list(study.trials())
        assert len(trials) == MAX_TRIALS
        assert study.info.trial_counts.completed == MAX_TRIALS
        losses = {}
        for trial in trials:
            assert trial.state == pb.TRIAL_STATE_COMPLETED, trial
            metrics = {m.name: m.value for m in trial.metrics}
            assert set(metrics) == {"loss"}
            params = {name: getattr(v, v.WhichOneof("kind")) for name, v in trial.parameters.items()}
            assert params["batch_size"] == 32  # the fixed value, sent by Node as an int64
            assert metrics["loss"] == pytest.approx(expected_loss(params), rel=1e-12)
            losses[trial.id] = metrics["loss"]

            measurements = client.call("ListMeasurements", api.ListMeasurementsRequest(trial_id=trial.id)).measurements
            assert [m.step for m in measurements] == STEPS
            assert all([metric.name for metric in m.metrics] == ["loss"] for m in measurements)

    # int64 ids travel as decimal strings in the JSON line; a lossy id would not match.
    best_id = int(summary["best_trial_id"])
    assert best_id in losses
    assert summary["best_loss"] == losses[best_id]  # doubles survive JSON exactly
    assert summary["best_loss"] == min(losses.values())
    return trials


def test_node_client_runs_a_study(spawn_server, sqlite_url: str) -> None:
    server = spawn_server(sqlite_url)

    summary = run_node(server.address, "node-e2e")

    assert summary["study"] == "node-e2e"
    assert summary["completed"] == MAX_TRIALS
    check_study(server.address, summary)


def test_node_client_keeps_int64_ids_exact(spawn_server, sqlite_url: str) -> None:
    """Trial ids past 2**53 cannot be a JS number: 2**53 + 1 would round to a neighbour's id."""
    server = spawn_server(sqlite_url)
    # The server has created its schema by now; make the next trial id 2**53 + 1.
    with sqlite3.connect(sa.engine.make_url(sqlite_url).database) as db:
        if db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'trials'", (2**53,)).rowcount == 0:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('trials', ?)", (2**53,))

    summary = run_node(server.address, "node-int64")

    assert summary["completed"] == MAX_TRIALS
    trials = check_study(server.address, summary)
    assert sorted(t.id for t in trials) == list(range(2**53 + 1, 2**53 + 1 + MAX_TRIALS))


GUIDE = ROOT / "docs" / "CLIENT-NODE.md"


def guide_script() -> str:
    """The guide's ```js blocks, in order: the script the guide says they make up."""
    blocks = re.findall(r"^```js\n(.*?)^```$", GUIDE.read_text(), re.M | re.S)
    assert len(blocks) >= 5, "the guide's code blocks were not found"
    return "\n".join(blocks)


def test_the_node_guide_runs_as_written(spawn_server, sqlite_url: str, tmp_path) -> None:
    server = spawn_server(sqlite_url)
    script = tmp_path / "guide.js"
    script.write_text(guide_script())
    env = {**os.environ, "NODE_PATH": str(ROOT / "node_modules"), "TUNING_PROTOS": str(ROOT / "protos"),
           "TUNING_SUGGESTION_ADDRESS": server.address}
    env.pop("TUNING_TOKEN", None)
    result = subprocess.run(["node", str(script), "guide"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"node exited {result.returncode}:\n{result.stderr}"
    summary = json.loads(result.stdout)

    seed = 2**53 + 1  # a JavaScript number would round it to 2**53
    assert summary["study"] == "guide" and summary["created"] is True and summary["seed"] == str(seed)
    # Every worker learnt that the budget is spent; together they ran the six trials.
    assert [w["reason"] for w in summary["workers"]] == ["DONE_REASON_BUDGET_SPENT"] * 2
    ran = [trial for worker in summary["workers"] for trial in worker["done"]]
    assert len(ran) == 6
    for trial in ran:
        assert trial["seed"] == trial["metadata"]["seed"] == str(seed)
        assert trial["metadata"]["algorithm"] == "tpe" and trial["outcome"] in ("OUTCOME_SUCCEEDED", "OUTCOME_PRUNED")
    # The error details, decoded in Node from the shipped google/rpc protos.
    refusals = summary["refusals"]
    assert refusals["typo"]["code"] == "INVALID_ARGUMENT" and refusals["typo"]["reason"] == "INVALID_ARGUMENT"
    assert refusals["typo"]["fields"] == ["spec.algorithm.settings.n_startup_trails"]
    assert refusals["badEnum"]["fields"] == ["spec.objectives[0].direction"]
    assert (refusals["missing"]["code"], refusals["missing"]["reason"]) == ("NOT_FOUND", "STUDY_NOT_FOUND")

    # What the server stored, read from Python.
    with SuggestionClient(server.address, retries=2, backoff=0.05) as client:
        study = client.get_study("guide")
        assert study.info.spec.seed == seed
        assert dict(study.info.spec.algorithm.settings) == {"n_startup_trials": 3, "gamma": 0.2}
        trials = list(study.trials())
        assert sorted(str(t.id) for t in trials) == sorted(t["id"] for t in ran)
        assert all(t.seed == seed for t in trials)
        assert {pb.TrialState.Name(t.state) for t in trials} <= {"TRIAL_STATE_COMPLETED", "TRIAL_STATE_PRUNED"}
        assert [s.name for s in client.list_studies()] == ["guide"]  # the refused ones created nothing


CONSTRAINED = """
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const definition = protoLoader.loadSync('tuning/suggestion/v1/suggestion_service.proto', {
  includeDirs: [process.env.TUNING_PROTOS], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const { SuggestionService } = grpc.loadPackageDefinition(definition).tuning.suggestion.v1;
const client = new SuggestionService(process.env.TUNING_SUGGESTION_ADDRESS, grpc.credentials.createInsecure());
const call = (method, request) => new Promise((resolve, reject) =>
  client[method](request, (err, res) => (err ? reject(err) : resolve(res))));

(async () => {
  await call('CreateStudy', { name: 'node-constrained', spec: {
    parameters: [{ name: 'x', float_range: { low: 0, high: 1 } }],
    objectives: [{ metric: 'loss', direction: 'DIRECTION_MINIMIZE' }],
    constraints: ['memory_over'], seed: 1 } });
  const { trials } = await call('SuggestTrials', { study: 'node-constrained', count: 2, worker_id: 'n', request_id: 'r' });
  const told = [];
  for (const [i, trial] of trials.entries()) {
    const answer = await call('CompleteTrial', { trial_id: trial.id, worker_id: 'n', outcome: 'OUTCOME_SUCCEEDED',
      metrics: [{ name: 'loss', value: i }], constraints: [i === 0 ? 1.5 : -1] });
    told.push({ id: answer.trial.id, constraints: answer.trial.constraints, feasible: answer.trial.feasible });
  }
  let refusal = null;
  try {
    await call('CompleteTrial', { trial_id: trials[0].id, worker_id: 'n', outcome: 'OUTCOME_SUCCEEDED',
      metrics: [{ name: 'loss', value: 0 }], constraints: [] });
  } catch (err) {
    refusal = grpc.status[err.code];
  }
  const best = await call('GetBestTrials', { study: 'node-constrained' });
  console.log(JSON.stringify({ told, best: best.trials.map((t) => t.id), refusal }));
})().catch((err) => { console.error(err); process.exit(1); });
"""


def test_node_client_tells_constraints_and_reads_feasibility(spawn_server, sqlite_url: str, tmp_path) -> None:
    server = spawn_server(sqlite_url)
    script = tmp_path / "constrained.js"
    script.write_text(CONSTRAINED)
    env = {**os.environ, "NODE_PATH": str(ROOT / "node_modules"), "TUNING_PROTOS": str(ROOT / "protos"),
           "TUNING_SUGGESTION_ADDRESS": server.address}
    result = subprocess.run(["node", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"node exited {result.returncode}:\n{result.stderr}"
    summary = json.loads(result.stdout)
    infeasible, feasible = summary["told"]
    assert infeasible["constraints"] == [1.5] and infeasible["feasible"] is False
    assert feasible["constraints"] == [-1] and feasible["feasible"] is True
    assert summary["best"] == [feasible["id"]]
    # A successful tell without the declared constraint's value is refused.
    assert summary["refusal"] == "INVALID_ARGUMENT"
