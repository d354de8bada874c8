"""The `tuning` command against a real server process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from suggestion_service.persistence import MIGRATIONS
from tests.conftest import ROOT
from tracking_service.persistence import MIGRATIONS as TRACKING_MIGRATIONS
from trial_worker.examples import wine
from trial_worker.local_suite import alive
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning_types.study import Fidelity


def tuning(*args: str, env: dict[str, str] | None = None, timeout: float = 120, unset: tuple[str, ...] = (),
           input: str | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "tuning_suite", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=environment, input=input)


ADDRESS_VARIABLES = ("TUNING_SUGGESTION_ADDRESS", "TUNING_TRACKING_ADDRESS")


def test_study_commands(sqlite_url: str, spawn_server):
    address = spawn_server(sqlite_url).address
    created = tuning("study", "create", "examples/study.yaml", "--address", address)
    assert created.returncode == 0, created.stderr
    assert "created xgb-wine" in created.stdout
    assert "exists, same spec" in tuning("study", "create", "examples/study.yaml", "--address", address).stdout
    env = {"TUNING_SUGGESTION_ADDRESS": address}
    listing = tuning("study", "list", env=env)
    assert "xgb-wine" in listing.stdout and "quasi_random" in listing.stdout
    shown = tuning("study", "show", "xgb-wine", env=env)
    assert "val_f1 (maximize)" in shown.stdout and "0 trials" in shown.stdout
    assert tuning("study", "stop", "xgb-wine", env=env).returncode == 0
    assert "STOPPED" in tuning("study", "list", env=env).stdout
    refused = tuning("study", "delete", "xgb-wine", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert tuning("study", "delete", "xgb-wine", "--yes", env=env).returncode == 0
    missing = tuning("study", "show", "xgb-wine", env=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert tuning("db", "check", "--database-url", url).returncode == 1
    upgraded = tuning("db", "upgrade", "--database-url", url)
    assert upgraded.returncode == 0 and MIGRATIONS.head() in upgraded.stdout
    assert tuning("db", "check", "--database-url", url).returncode == 0
    # Each service has its own schema and version table, even in one database file.
    assert tuning("db", "check", "--service", "tracking", "--database-url", url).returncode == 1
    upgraded = tuning("db", "upgrade", "--service", "tracking", "--database-url", url)
    assert upgraded.returncode == 0 and TRACKING_MIGRATIONS.head() in upgraded.stdout
    assert tuning("db", "check", "--service", "tracking", "--database-url", url).returncode == 0


def test_demo_replays_the_reference_workflow(tmp_path, spawn_server):
    result = tuning("demo", env={"TUNING_HOME": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "wine-quality data: 13940 train, 3060 validation, 3000 test samples" in out
    assert ("tuning 8 hyperparameters (the seed's seven and the decision threshold): 50 trials, 4 at a time, auto, "
            "the baseline's configuration first, ASHA on validation log-loss") in out
    match = re.search(r"study (\S+): (\d+) completed, (\d+) pruned by ASHA on val_logloss(?: \((.*)\))?, 0 failed",
                      out)
    assert match and int(match[2]) + int(match[3]) == 50 and int(match[2]) >= 1, out
    # Where they stopped: rungs below the full 300 rounds, adding up to the pruned count.
    stops = re.findall(r"(\d+) at (\d+)", match[4] or "")
    assert sum(int(n) for n, _ in stops) == int(match[3]) and all(int(step) < 300 for _, step in stops), out
    baseline = re.search(r"baseline\s+(\S+)\s+(\S+)\s+([0-9a-f]{32})", out)
    assert baseline and float(baseline[1]) == pytest.approx(0.7554, abs=1e-4), out
    assert "registered wine-quality-xgb version 1 (alias champion, stage Production)" in out
    best_run = re.search(r"best \(trial \d+\)\s+\S+\s+(\S+)\s+([0-9a-f]{32})", out)
    assert best_run, out

    # What the demo stored outlives it: the champion, its run, and the run's trial.
    tracking = spawn_server(f"sqlite:///{tmp_path / 'tracking.db'}", "--artifacts", str(tmp_path / "artifacts"),
                            module="tracking_service")
    with TrackingClient(tracking.address) as client:
        champion = client.get_model_version_by_alias("wine-quality-xgb", "champion")
        assert champion.run_id == best_run[2] and champion.stage == rpb.STAGE_PRODUCTION
        run = client.get_run(champion.run_id)
        assert run.trial.study == match[1]
        latest = {m.key: m.value for m in run.latest_metrics}
        assert latest["test_f1"] == pytest.approx(float(best_run[1]), abs=1e-4)
        runs = list(client.search_runs([run.experiment_id]))
        assert len(runs) == 51  # the baseline and one run per trial
        # The baseline's configuration was the study's first trial, and scored as the baseline did
        # when it completed (ASHA may stop it at 100 rounds, its last, like any other trial).
        first = next(r for r in runs if r.HasField("trial") and r.trial.trial_number == 0)
        logged = {p.key: p.value for p in first.params}
        assert {k: logged[k] for k in wine.BASELINE_PARAMS} == {k: str(v) for k, v in wine.BASELINE_PARAMS.items()}
        if {t.key: t.value for t in first.tags}["tuning.trial_state"] == "COMPLETED":
            first_f1 = {m.key: m.value for m in first.latest_metrics}["val_f1"]
            assert first_f1 == pytest.approx(float(baseline[1]), abs=1e-4)
        baseline_run = client.get_run(baseline[3])
        assert {m.key: m.value for m in baseline_run.latest_metrics}["test_f1"] == pytest.approx(float(baseline[2]),
                                                                                                 abs=1e-4)


def test_up_starts_the_suite_and_stops_it_on_ctrl_c(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_suite", "up", "--suggestion-port", "0", "--tracking-port", "0",
         "--gateway-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TUNING_HOME": str(tmp_path)})
    try:
        suggestion = re.search(r"suggestion service\s+(\S+)", process.stdout.readline())[1]
        tracking = re.search(r"tracking service\s+(\S+)", process.stdout.readline())[1]
        gateway = re.search(r"gateway\s+(\S+)", process.stdout.readline())[1]
        assert "Ctrl-C stops them all" in process.stdout.readline()
        assert tuning("study", "create", "examples/study.yaml", "--address", suggestion).returncode == 0
        # The gateway serves what the services hold.
        assert httpx.get(f"{gateway}/v1/studies/xgb-wine", timeout=30).json()["study"]["name"] == "xgb-wine"
        with TrackingClient(tracking) as client:
            assert client.get_or_create_experiment("from-up").name == "from-up"
        status = tuning("status", env={"TUNING_HOME": str(tmp_path)})
        assert status.returncode == 0 and status.stdout.count("serving") == 3, status.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        assert not (tmp_path / "suite.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
    assert (tmp_path / "suggestion.db").is_file() and (tmp_path / "tracking.db").is_file()


@pytest.mark.postgres
def test_up_detached_on_postgresql_then_status_and_down(tmp_path, postgres_url):
    env = {"TUNING_HOME": str(tmp_path / "home")}
    artifacts = tmp_path / "elsewhere"
    started = tuning("up", "--detach", "--database", postgres_url, "--artifacts", str(artifacts),
                     "--suggestion-port", "0", "--tracking-port", "0", "--gateway-port", "0", env=env)
    assert started.returncode == 0, started.stderr
    suggestion = re.search(r"suggestion service\s+(\S+)", started.stdout)[1]
    tracking = re.search(r"tracking service\s+(\S+)", started.stdout)[1]
    assert "postgresql" in started.stdout and "in the background" in started.stdout
    state = json.loads((tmp_path / "home" / "suite.json").read_text())
    pids = [service["pid"] for service in state["services"]]
    try:
        status = tuning("status", env=env)
        assert status.returncode == 0 and status.stdout.count("serving") == 3, status.stdout
        again = tuning("up", "--detach", env=env)
        assert again.returncode == 1 and "tuning down" in again.stderr
        # Both services keep their tables in the one database, and artifacts go where asked.
        assert tuning("study", "create", "examples/study.yaml", "--address", suggestion).returncode == 0
        with TrackingClient(tracking) as client:
            run = client.create_run(client.get_or_create_experiment("detached").id)
            source = tmp_path / "notes.txt"
            source.write_text("hello")
            client.upload_file(run.id, source)
        assert list(artifacts.rglob("notes.txt"))
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        engine.dispose()
        assert {"studies", "trials", "experiments", "runs"} <= tables
    finally:
        down = tuning("down", env=env)
    assert down.returncode == 0 and "suggestion service" in down.stdout, down.stderr
    assert not any(alive(pid) for pid in pids)
    assert tuning("status", env=env).returncode == 1
    assert tuning("health", suggestion).returncode == 1


def test_health_says_whether_addresses_serve(spawn_server, sqlite_url):
    server = spawn_server(sqlite_url)
    assert tuning("health", server.address).returncode == 0
    down = tuning("health", server.address, "127.0.0.1:1")
    assert down.returncode == 1 and "127.0.0.1:1: not serving: UNAVAILABLE" in down.stdout


def test_a_service_that_cannot_start_says_why(tmp_path, spawn_server, sqlite_url):
    """A port in use or a data folder it cannot write: one line naming the problem, exit 2."""
    taken = spawn_server(sqlite_url).address.rsplit(":", 1)[1]
    busy = tuning("serve", "suggestion", "--port", taken, "--database-url", f"sqlite:///{tmp_path / 'b.db'}")
    assert busy.returncode == 2 and "suggestion-service cannot start" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    unwritable = tuning("serve", "tracking", "--port", "0", "--database-url", f"sqlite:///{blocked}/t.db")
    assert unwritable.returncode == 2 and "tracking-service cannot start" in unwritable.stderr, unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_client_commands_find_a_detached_suite_on_free_ports(tmp_path):
    home = tmp_path / "home"
    env = {"TUNING_HOME": str(home)}
    started = tuning("up", "--detach", "--suggestion-port", "0", "--tracking-port", "0", "--gateway-port", "0",
                     env=env, unset=ADDRESS_VARIABLES)
    assert started.returncode == 0, started.stderr
    suggestion = re.search(r"suggestion service\s+(\S+)", started.stdout)[1]
    tracking = re.search(r"tracking service\s+(\S+)", started.stdout)[1]
    assert suggestion != "127.0.0.1:50051"
    here = f"(the suite `tuning up` started in {home})"
    try:
        # No address anywhere: suite.json is the only way to the services, and each command says so.
        created = tuning("study", "create", "examples/study.yaml", env=env, unset=ADDRESS_VARIABLES)
        assert created.returncode == 0, created.stderr
        assert f"tuning: talking to the suggestion service at {suggestion} {here}" in created.stderr
        listed = tuning("study", "list", env=env, unset=ADDRESS_VARIABLES)
        assert "xgb-wine" in listed.stdout and suggestion in listed.stderr
        train = tmp_path / "train.py"
        train.write_text("def train(ctx):\n    return {'val_f1': ctx.params['subsample']}\n")
        worker = tuning("worker", "--study", "xgb-wine", "--max-trials", "1", "--train", f"{train}:train",
                        env=env, unset=ADDRESS_VARIABLES)
        assert worker.returncode == 0, worker.stdout + worker.stderr
        assert (f"worker: talking to the suggestion service at {suggestion} {here}; "
                f"the tracking service at {tracking} {here}") in worker.stderr
        with TrackingClient(tracking) as client:
            assert len(list(client.search_runs([client.get_or_create_experiment("xgb-wine").id]))) == 1
        status = tuning("status", env=env)
        assert status.stdout.startswith(f"suite in {home} (in the background)") and status.returncode == 0
        # An explicit address still wins over the record.
        other = tuning("study", "list", "--address", "127.0.0.1:1", env={**env, "TUNING_SUGGESTION_ADDRESS": ""})
        assert "the suggestion service at 127.0.0.1:1 (--address)" in other.stderr and other.returncode == 1
    finally:
        down = tuning("down", env=env)
    assert down.returncode == 0 and down.stdout.startswith(f"stopped the suite in {home}: "), down.stderr
    gone = tuning("study", "list", "--address", "", env=env, unset=ADDRESS_VARIABLES, timeout=60)
    assert f"the default: no suite recorded in {home / 'suite.json'}" in gone.stderr


def test_user_errors_are_one_line_with_usage_exit_codes(tmp_path, sqlite_url: str, spawn_server):
    address = spawn_server(sqlite_url).address
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nparameters:\n  - {name: a, type: float, low: 0 high: 1}\n")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def train(ctx)\n    return 1\n")
    cases = [
        (("study", "create", str(tmp_path / "missing.yaml")), 2, f"{tmp_path / 'missing.yaml'}: no such file"),
        (("study", "create", str(bad_yaml)), 2, f"{bad_yaml}:3:"),
        (("worker", "--study", "x", "--train", "no_such_module:train"), 2, "no module named 'no_such_module'"),
        (("worker", "--study", "x", "--train", "no_colon"), 2, "--train must look like package.module:function"),
        (("worker", "--study", "x", "--train", f"{syntax}:train"), 2, f"--train: {syntax}:1: expected ':'"),
        (("worker", "--study", "x", "--", "no-such-program-xyz"), 2, "'no-such-program-xyz' is not an executable"),
        (("worker", "--study", "x", "--no-tracking", "--train", f"{tmp_path}/missing.py:f"), 2, "no file"),
        (("study", "show", "no-such-study"), 1, "does not exist"),
        (("study", "frobnicate"), 2, "invalid choice"),
    ]
    for args, code, message in cases:
        result = tuning(*args, env={"TUNING_SUGGESTION_ADDRESS": address})
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
    # The YAML error says where: line 3, at the column of the missing comma.
    assert re.search(rf"{re.escape(str(bad_yaml))}:3:\d+: not valid YAML", tuning(
        "study", "create", str(bad_yaml), env={"TUNING_SUGGESTION_ADDRESS": address}).stderr)


def test_a_closed_output_pipe_is_no_traceback(sqlite_url: str, spawn_server):
    address = spawn_server(sqlite_url).address
    assert tuning("study", "create", "examples/study.yaml", "--address", address).returncode == 0
    read, write = os.pipe()
    os.close(read)  # as `| head` does once it has its lines: every write now fails with EPIPE
    try:
        result = subprocess.run([sys.executable, "-m", "tuning_suite", "study", "list", "--address", address],
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    finally:
        os.close(write)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_study_show_prints_a_failed_trials_reason_in_full(sqlite_url: str, spawn_server):
    from trial_worker import Float, SuggestionClient

    address = spawn_server(sqlite_url).address
    reason = "ValueError: " + "the column QUALITY is missing " * 10 + "(end)\nsecond line of the reason"
    with SuggestionClient(address) as client:
        study = client.create_study("reasons", [Float("x", 0, 1)], objectives={"loss": "minimize"})
        study.fail(study.ask(), reason)
        study.tell(study.ask(), 0.25)
    shown = tuning("study", "show", "reasons", "--address", address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if " FAILED " in line)
    assert lines[failed].endswith(reason.splitlines()[0])  # the whole first line, nothing cut
    assert lines[failed + 1].strip() == "second line of the reason"
    assert lines[failed + 1].index("second") == lines[failed].index("ValueError")  # under its column
    assert any(" COMPLETED " in line and "loss=0.25" in line for line in lines)


def test_study_show_says_where_a_pruned_trial_stopped_and_never_stars_it(sqlite_url: str, spawn_server):
    from trial_worker import Float, SuggestionClient

    address = spawn_server(sqlite_url).address
    with SuggestionClient(address) as client:
        study = client.create_study("stopped", [Float("x", 0, 1)], objectives={"loss": "minimize"})
        stopped, finished = study.ask(), study.ask()
        stopped.report(3, 0.125)  # better than the finished trial's result, but not a result
        stopped.prune()
        study.tell(finished, 0.5)
    shown = tuning("study", "show", "stopped", "--address", address)
    assert shown.returncode == 0, shown.stderr
    pruned = next(line for line in shown.stdout.splitlines() if " PRUNED " in line)
    assert pruned.rstrip().endswith("pruned at step 3: loss=0.125") and not pruned.lstrip().startswith("*")
    assert any(line.lstrip().startswith("*") and " COMPLETED " in line for line in shown.stdout.splitlines())


def test_study_show_marks_infeasible_trials_and_the_study_file_keeps_constraints(sqlite_url: str, spawn_server,
                                                                                 tmp_path):
    from trial_worker import Float, SuggestionClient

    address = spawn_server(sqlite_url).address
    with SuggestionClient(address) as client:
        study = client.create_study("cons", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                    constraints=["memory_over"], seed=1)
        infeasible, feasible = study.ask(), study.ask()
        study.tell(infeasible, 0.125, constraints=[1.5])
        study.tell(feasible, 0.75, constraints=[-0.5])
    shown = tuning("study", "show", "cons", "--address", address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "constraints memory_over (<= 0 is feasible)" in lines
    header = next(line for line in lines if line.startswith("#"))
    assert "feasible" in header.split()
    row_of = {line.split()[0]: line for line in lines if line[:2].strip().lstrip("*").isdigit()}
    assert "NO memory_over=1.5" in row_of[str(infeasible.number)] and "loss=0.125" in row_of[str(infeasible.number)]
    # The better loss is infeasible: the best (*) is the feasible trial.
    assert "yes memory_over=-0.5" in row_of[f"*{feasible.number}"]
    exported = tuning("study", "export", "cons", "--address", address)
    assert exported.returncode == 0 and "constraints: [memory_over]" in exported.stdout, exported.stdout
    path = tmp_path / "cons.yaml"
    path.write_text(exported.stdout)
    again = tuning("study", "create", str(path), "--address", address)
    assert again.returncode == 0, again.stderr  # the same spec again: the existing study


def test_study_show_marks_the_pareto_set_and_reports_the_hypervolume(sqlite_url: str, spawn_server, tmp_path):
    from trial_worker import Float, SuggestionClient

    address = spawn_server(sqlite_url).address
    with SuggestionClient(address) as client:
        study = client.create_study("mo", [Float("x", 0, 1)], objectives={"a": "minimize", "b": "minimize"},
                                    reference_point={"a": 2, "b": 2}, algorithm="tpe", seed=1)
        told = [study.ask() for _ in range(3)]
        for trial, (a, b) in zip(told, [(0.0, 1.0), (1.0, 0.0), (1.5, 1.5)]):
            study.tell(trial, {"a": a, "b": b})
    shown = tuning("study", "show", "mo", "--address", address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    row_of = {line.split()[0]: line for line in lines if line[:2].strip().lstrip("*").isdigit()}
    assert f"*{told[0].number}" in row_of and f"*{told[1].number}" in row_of
    assert str(told[2].number) in row_of and f"*{told[2].number}" not in row_of  # dominated
    assert any("* marks the Pareto set" in line for line in lines)
    assert "hypervolume 3  reference point a=2, b=2 (from the spec)" in lines
    exported = tuning("study", "export", "mo", "--address", address)
    assert exported.returncode == 0 and "reference_point: 2" in exported.stdout, exported.stdout
    path = tmp_path / "mo.yaml"
    path.write_text(exported.stdout)
    again = tuning("study", "create", str(path), "--address", address)
    assert again.returncode == 0, again.stderr  # the same spec again, reference point included


OLD_FORM = """\
name: xgb-wine
spec:
  parameters:
    - {name: learning_rate, float_range: {low: 0.001, high: 0.3, scale: SCALE_LOG}}
    - {name: max_depth, int_range: {low: 2, high: 10}}
    - {name: subsample, float_range: {low: 0.5, high: 1.0}}
    - name: booster
      categorical: {choices: [{string_value: gbtree}, {string_value: dart}]}
    - name: rate_drop
      float_range: {low: 0.0, high: 0.3}
      condition: {parent: booster, values: [{string_value: dart}]}
    - {name: random_state, fixed: {value: {int_value: 42}}}
  objectives:
    - {metric: val_f1, direction: DIRECTION_MAXIMIZE}
  algorithm: {name: quasi_random}
  seed: 7
  max_trials: 50
  max_parallel_trials: 8
  lease_duration: 120s
"""


def test_study_files_in_plain_words_old_form_still_read_and_export_round_trips(tmp_path, sqlite_url: str,
                                                                                 spawn_server):
    from trial_worker import Categorical, Float, Int, SuggestionClient

    env = {"TUNING_SUGGESTION_ADDRESS": spawn_server(sqlite_url).address}
    assert tuning("study", "create", "examples/study.yaml", env=env).returncode == 0
    old = tmp_path / "old.yaml"
    old.write_text(OLD_FORM)
    again = tuning("study", "create", str(old), env=env)  # the proto JSON form is the same study
    assert again.returncode == 0 and "exists, same spec: xgb-wine" in again.stdout, again.stderr
    exported = tuning("study", "export", "xgb-wine", env=env)
    assert exported.returncode == 0, exported.stderr
    assert "DIRECTION_" not in exported.stdout and "string_value" not in exported.stdout
    assert "  - {name: rate_drop, type: float, low: 0.0, high: 0.3, when: {booster: dart}}" in exported.stdout
    assert "  - {metric: val_f1, direction: maximize}" in exported.stdout

    # Everything a study can say survives export and create.
    with SuggestionClient(env["TUNING_SUGGESTION_ADDRESS"]) as client:
        client.create_study(
            "rich", [Categorical("kind", [1, 2.5, True, "a: b"]), Int("n", 1, 64, log=True),
                     Float("x", 0, 1, step=0.25, when={"kind": [1, 2.5]})],
            objectives={"loss": "minimize", "acc": "maximize"}, algorithm="random",
            max_retries=5, retry_failed=True, lease_seconds=30, fidelity=Fidelity("epochs", 1, 27, 3))
        single = client.create_study(
            "pruned", [Float("lr", 1e-4, 1, log=True)], objectives={"loss": "minimize"}, algorithm="tpe",
            algorithm_settings={"n_startup_trials": 4}, fidelity=Fidelity("epochs", 1, 9), pruner="asha",
            pruner_settings={"metric": "val_loss", "direction": "minimize"})
        assert single.created
        for name in ("rich", "pruned"):
            text = tuning("study", "export", name, env=env).stdout
            copy = tmp_path / f"{name}.yaml"
            copy.write_text(text.replace(f"name: {name}\n", f"name: {name}-copy\n", 1))
            created = tuning("study", "create", str(copy), env=env)
            assert created.returncode == 0 and f"created {name}-copy" in created.stdout, created.stderr
            assert client.get_study(f"{name}-copy").info.spec == client.get_study(name).info.spec, text


def test_study_file_mistakes_name_the_key(tmp_path):
    cases = {
        "name: s\nparameters:\n  - {name: x, type: float, low: 0, high: 1, lgo: true}\nobjectives: {loss: minimize}\n":
            "parameters[0].lgo: unknown key; expected one of: name, type, when, low, high, log, step",
        "name: s\nparameters: []\nobjectives: {loss: minimize}\ndirection: maximize\n":
            "direction: unknown key",
        "name: s\nparameters:\n  - {name: x, type: real, low: 0, high: 1}\nobjectives: {loss: minimize}\n":
            "parameters[0].type: must be one of float, int, categorical, fixed, got 'real'",
        "name: s\nparameters:\n  - {name: x, type: float, low: 0, high: 1}\nobjectives:\n  - {metric: loss, direction: min}\n":
            "objectives[0].direction: must be minimize or maximize, got 'min'",
        "name: s\nparameters:\n  - {name: x, type: float, low: zero, high: 1}\nobjectives: {loss: minimize}\n":
            "parameters[0].low: must be a number, got 'zero'",
        "name: s\nparameters:\n  - {name: x, type: float, low: 0, high: 1, log: 1}\nobjectives: {loss: minimize}\n":
            "parameters[0].log: must be true or false, got 1",
        "name: s\nparameters: []\n": "objectives: is required",
        "name: s\nparameters: []\nobjectives: {loss: minimize}\nalgorithm_settings: {gamma: 0.2}\n":
            "algorithm_settings: needs an algorithm",
        "name: s\nspec: {parameters: [], objectivs: []}\n": 'has no field named "objectivs"',
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(text)
        result = tuning("study", "create", str(path), "--address", "127.0.0.1:1")
        assert result.returncode == 2 and f"{path}: " in result.stderr and message in result.stderr, result.stderr


def _start_demo(home) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_suite", "demo", "--trials", "40", "--workers", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TUNING_HOME": str(home)})
    for line in process.stdout:  # the tuning has started once this line is out
        if line.startswith("tuning 8 hyperparameters"):
            return process
    raise AssertionError(f"the demo ended before tuning: {process.wait()} {process.stderr.read()}")


def _wait_for_running_trials(home, count: int) -> None:
    engine = sa.create_engine(f"sqlite:///{home / 'suggestion.db'}")
    try:
        for _ in range(600):
            with engine.connect() as conn:
                if conn.execute(sa.text("select count(*) from trials where state = 'ACTIVE'")).scalar() >= count:
                    return
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("no trials ran")


def test_ctrl_c_in_the_demo_hands_the_running_trials_back_and_says_so_once(tmp_path, spawn_server):
    process = _start_demo(tmp_path)
    try:
        _wait_for_running_trials(tmp_path, 2)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        code = process.wait(60)
        print(f"the demo exited {time.monotonic() - interrupted:.2f} s after Ctrl-C")
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert code == 130, stderr
    said = [line for line in stderr.splitlines() if not line.startswith("[")]  # progress lines start with [
    assert said == ["Ctrl-C: stopped asking for trials and handing the running ones back to the study "
                    "(Ctrl-C again quits at once)"], stderr

    # Every running trial was handed back, and its configuration waits, unspent, for the next asker.
    from trial_worker import SuggestionClient

    with SuggestionClient(spawn_server(f"sqlite:///{tmp_path / 'suggestion.db'}").address) as client:
        [info] = client.list_studies()
        trials = list(client.get_study(info.name).trials())
    handed = [t for t in trials if t.state == spb.TRIAL_STATE_STALE]
    assert handed and all(t.reason.endswith(": Ctrl-C") or "before the trial started" in t.reason
                          for t in handed), [t.reason for t in handed]
    queued = {t.retry_of: t for t in trials if t.state == spb.TRIAL_STATE_QUEUED}
    for trial in handed:
        assert queued[trial.id].parameters == trial.parameters and queued[trial.id].attempt == trial.attempt
    assert not [t for t in trials if t.state == spb.TRIAL_STATE_ACTIVE]


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    process = _start_demo(tmp_path)
    try:
        _wait_for_running_trials(tmp_path, 1)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:  # the first Ctrl-C is being handled: the second comes on top
            if line.startswith("Ctrl-C"):
                process.send_signal(signal.SIGINT)
                break
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert code == 130 and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("document", ["README.md", "docs/WORKERS.md"])
def test_the_docs_study_files_create_their_studies(document: str, tmp_path, sqlite_url: str, spawn_server):
    address = spawn_server(sqlite_url).address
    blocks = re.findall(r"^```yaml\n(.*?)^```", (ROOT / document).read_text(), flags=re.S | re.M)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"{i}.yaml"
        path.write_text(block)
        created = tuning("study", "create", str(path), "--address", address)
        assert created.returncode == 0 and "created" in created.stdout, (block, created.stderr)


def test_a_hangup_of_tuning_up_takes_its_services_along(tmp_path):
    """The services have a process group of their own (so Ctrl-C reaches `tuning up` alone): a
    closed terminal's SIGHUP, which reaches `tuning up` alone too, must not leave them running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_suite", "up", "--suggestion-port", "0", "--tracking-port", "0",
         "--gateway-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TUNING_HOME": str(tmp_path)})
    try:
        while "Ctrl-C stops them all" not in process.stdout.readline():
            pass
        pids = [service["pid"] for service in json.loads((tmp_path / "suite.json").read_text())["services"]]
        assert all(alive(pid) for pid in pids)
        process.send_signal(signal.SIGHUP)
        assert process.wait(30) == 128 + signal.SIGHUP
        for _ in range(300):
            if not any(alive(pid) for pid in pids):
                break
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids)
    finally:
        if process.poll() is None:
            process.kill()
