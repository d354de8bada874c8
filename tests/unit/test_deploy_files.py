"""What deploy/ ships must match the code: the image's sources and entry point, the workers'
Kubernetes manifests and the arguments they pass to `tuning worker`."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.conftest import ROOT
from trial_worker import cli

DEPLOY = ROOT / "deploy"


def documents(path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_image_copies_what_exists_and_runs_the_tuning_command():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "tuning"]' in dockerfile and "tuning" in scripts
    extras = re.search(r'pip install .* "\.\[([a-z,]+)\]"', dockerfile)[1].split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared)
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE), "the image must not run as root"


def test_the_worker_job_runs_a_real_train_function_with_valid_arguments(monkeypatch):
    [job] = documents(DEPLOY / "k8s" / "worker-job.yaml")
    [config] = documents(DEPLOY / "k8s" / "worker-config.yaml")
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    # The worker's grace period must end before Kubernetes kills the pod.
    assert pod["terminationGracePeriodSeconds"] > 20
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    command, *args = container["args"]
    assert command == "worker"
    parsed = cli.build_parser().parse_args(args)
    assert parsed.study == config["data"]["TUNING_STUDY"] and parsed.suggestion_address.endswith(":50051")
    assert callable(cli.load_callable(parsed.train))


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --study --study-file is required"),
])
def test_a_worker_needs_a_study(argv, message, monkeypatch, capsys):
    monkeypatch.delenv("TUNING_STUDY", raising=False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    assert message in capsys.readouterr().err
