"""A client install: `pip install tuning-suite` without the `server` extra, in a fresh virtual
environment that holds the package and its declared base dependencies and nothing else. A
worker (the `tuning` command) and a Tuner in it run a study against a suite started elsewhere.

The dependencies come from this environment, linked file by file into a folder the new
environment reads through a .pth file, so the test needs no network; `pip check` there proves
the package's declared base requirements are exactly what it has.
"""

from __future__ import annotations

import email.parser
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT
from trial_worker import SuggestionClient
from trial_worker.local_suite import LocalSuite
from trial_worker.tracking import TrackingClient

PACKAGES = ("tuning", "tuning_common", "tuning_types", "suggestion_service", "tracking_service", "trial_worker",
            "gateway", "tuning_suite")


def base_requirements(requires: list[str]) -> list[str]:
    """The names among ``requires`` (Requires-Dist lines) that apply without extras."""
    names = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def closure(wheel: Path) -> set[str]:
    """The distributions the wheel needs without extras, transitively, as installed here."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    todo = base_requirements(email.parser.Parser().parsestr(text).get_all("Requires-Dist") or [])
    seen: set[str] = set()
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key not in seen:
            seen.add(key)
            todo += base_requirements(dist.requires or [])
    return seen


def link_distributions(names: set[str], target: Path) -> None:
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            source = Path(dist.locate_file(file)).resolve()
            if file.parts[0] == ".." or "__pycache__" in file.parts or not source.is_file():
                continue  # console scripts live outside site-packages; bytecode is rebuilt
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                destination.symlink_to(source)


@pytest.fixture(scope="module")
def client_env(tmp_path_factory) -> Path:
    """A virtual environment with the package (a built wheel) and its base dependencies only."""
    work = tmp_path_factory.mktemp("client-install")
    source = work / "source"
    source.mkdir()
    for item in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / item).exists():
            shutil.copy(ROOT / item, source / item)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheels), str(source)], check=True, capture_output=True, text=True)
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    dependencies = work / "dependencies"
    wheel = next(wheels.glob("tuning_suite-*.whl"))
    link_distributions(closure(wheel), dependencies)
    (site / "client-dependencies.pth").write_text(f"{dependencies}\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, text=True)
    return env_dir


def run_client(env_dir: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    # Nothing of this checkout on the path: only what the environment itself holds.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TUNING_HOME"] = str(cwd / "home")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, **kwargs)


def test_the_base_requirements_are_complete_and_hold_no_server_dependency(client_env, tmp_path):
    python = str(client_env / "bin" / "python")
    check = run_client(client_env, python, "-m", "pip", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    absent = run_client(client_env, python, "-c", textwrap.dedent("""
        import importlib.util
        print(sorted(m for m in ("sqlalchemy", "alembic", "scipy", "numpy", "pandas", "starlette", "uvicorn",
                                 "jinja2", "plotly", "sklearn") if importlib.util.find_spec(m) is not None))
        """), cwd=tmp_path)
    assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr
    # What a caller imports loads no service package.
    loaded = run_client(client_env, python, "-c", textwrap.dedent("""
        import sys
        import trial_worker, trial_worker.tracking, trial_worker.tune, trial_worker.worker, trial_worker.cli
        print(sorted({m.split(".")[0] for m in sys.modules} & {"suggestion_service", "tracking_service", "gateway"}))
        """), cwd=tmp_path)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_the_commands_that_run_services_say_what_to_install(client_env, tmp_path):
    tuning = str(client_env / "bin" / "tuning")
    for command in (["serve", "suggestion", "--port", "0"], ["up"], ["demo"], ["db", "check"]):
        result = run_client(client_env, tuning, *command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "pip install 'tuning-suite[server]'" in result.stderr and "Traceback" not in result.stderr, command


def test_a_worker_and_a_tuner_of_a_client_install_run_against_a_suite_elsewhere(client_env, tmp_path):
    python, tuning = str(client_env / "bin" / "python"), str(client_env / "bin" / "tuning")
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        def train(ctx):
            for step in (1, 2):
                ctx.report(step, loss=(ctx.params["x"] - 0.3) ** 2 + 1 / step)
            return {"loss": (ctx.params["x"] - 0.3) ** 2}
        """))
    (tmp_path / "study.yaml").write_text(textwrap.dedent("""
        name: client-install
        parameters:
          - {name: x, type: float, low: 0.0, high: 1.0}
        objectives:
          - {metric: loss, direction: minimize}
        algorithm: tpe
        max_trials: 8
        """))
    with LocalSuite(tmp_path / "suite") as suite:
        addresses = ["--suggestion-address", suite.suggestion_address, "--tracking-address", suite.tracking_address]
        created = run_client(client_env, tuning, "study", "create", "study.yaml", "--address",
                             suite.suggestion_address, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        worker = run_client(client_env, tuning, "worker", "--study", "client-install", "--train", "train:train",
                            *addresses, cwd=tmp_path)
        assert worker.returncode == 0, worker.stdout + worker.stderr
        tuner = run_client(client_env, python, "-c", textwrap.dedent(f"""
            from trial_worker import tune
            from train import train
            config = tune.TunerConfig(metric="loss", mode="min", num_trials=6, max_concurrent_trials=2, seed=1,
                                      study_name="client-install-tuner", progress=False,
                                      suggestion_address={suite.suggestion_address!r},
                                      tracking_address={suite.tracking_address!r})
            results = tune.Tuner(train, {{"x": tune.uniform(0, 1)}}, config).run()
            print(len(results.trials), results.best_run_id)
            """), cwd=tmp_path)
        assert tuner.returncode == 0, tuner.stdout + tuner.stderr
        count, best_run = tuner.stdout.split()
        assert count == "6"
        with SuggestionClient(suite.suggestion_address) as client:
            for name, trials in (("client-install", 8), ("client-install-tuner", 6)):
                study = client.get_study(name)
                assert study.info.trial_counts.completed == trials, name
        with TrackingClient(suite.tracking_address) as client:
            run = client.get_run(best_run)
            assert run.trial.study == "client-install-tuner"
            assert [m.key for m in client.get_metric_history(best_run, "loss")]
