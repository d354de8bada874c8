"""What deploy/ ships must match the code: the image's sources and entry point; Docker Compose's
commands, health checks and telemetry; the OpenTelemetry Collector's configuration, Jaeger and
their Kubernetes manifests; the suite on Kubernetes (deploy/k8s: base, overlays, the workers'
Job): every container's arguments parsed by the real CLI, probes, Services, NetworkPolicies,
PodDisruptionBudgets and secrets that fit together, every manifest validated against
Kubernetes' schemas and every kustomization built with `kubectl kustomize`."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import ROOT, require
from trial_worker import cli

DEPLOY = ROOT / "deploy"


def documents(path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_image_copies_what_exists_and_runs_the_tuning_command():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
            copied.add(path)
    # Every top-level package the distribution holds, or the image's install lacks one.
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "benchmarks")}
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "tuning"]' in dockerfile and "tuning" in scripts
    extras = re.search(r'pip install .* "\.\[([a-z0-9,]+)\]"', dockerfile)[1].split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared) and "s3" in extras  # the image serves s3:// artifact stores
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE), "the image must not run as root"


def test_the_worker_job_runs_a_real_train_function_with_valid_arguments(monkeypatch):
    [job] = documents(WORKERS_JOB / "worker-job.yaml")
    [config] = documents(BASE / "worker-config.yaml")
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert container["args"][0] == "worker"
    parsed = parse_container(container, monkeypatch)
    assert parsed.command == [] and parsed.train, "the workers run a train function, not a command"
    # The worker's grace period must end before Kubernetes kills the pod.
    assert pod["terminationGracePeriodSeconds"] > parsed.grace_seconds
    assert parsed.study == config["data"]["TUNING_STUDY"] and parsed.suggestion_address.endswith(":50051")
    assert callable(cli.load_callable(parsed.train))
    # The Job runs the study to its end: no --wait.
    assert "--wait" not in container["args"]


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --study --study-file is required"),
])
def test_a_worker_needs_a_study(argv, message, monkeypatch, capsys):
    monkeypatch.delenv("TUNING_STUDY", raising=False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


# --- Docker Compose, the OpenTelemetry Collector, Jaeger and their Kubernetes manifests ---

COMPOSE = DEPLOY / "compose.yaml"
COLLECTOR_CONFIG = DEPLOY / "otel-collector.yaml"
K8S = DEPLOY / "k8s"
OBSERVABILITY = K8S / "observability"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"
WORKERS_JOB = K8S / "components" / "workers-job"
# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.34.0"
# What the suite needs to run in Compose, telemetry included.
SUITE_SERVICES = {"suggestion", "tracking", "gateway", "study", "worker"}
COMPOSE_SERVICES = SUITE_SERVICES | {"postgres", "otel-collector", "jaeger"}
# ${NAME}, ${NAME:-default} and ${NAME-default}, as Compose interpolates them.
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value):
    """A Compose value with every variable at its default (what `docker compose up` uses in a clean shell)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: m[2] or "", value)
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    return value


def environment(service: dict) -> dict[str, str]:
    env = interpolate(service.get("environment") or {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def parse_command(service: dict, monkeypatch) -> argparse.Namespace:
    """The service's command parsed by the real `tuning` CLI, under the service's environment."""
    from tuning_suite.cli import build_parser

    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    command = service["command"]
    return build_parser().parse_args(command if isinstance(command, list) else shlex.split(command))


def test_the_oidc_compose_file_sets_settings_the_services_take(monkeypatch):
    """compose.oidc.yaml over compose.yaml: every suite service's command still parses, with the
    OpenID Connect settings (the client and its secret file for the gateway only), and the
    gateway's health check asks for the login page, which needs no token."""
    override = yaml.safe_load((COMPOSE.parent / "compose.oidc.yaml").read_text())
    base = compose()["services"]
    for name, service in override["services"].items():
        merged = {**base[name], "environment": {**environment(base[name]), **environment(service)}}
        with monkeypatch.context() as patched:
            args = parse_command(merged, patched)
        assert args.oidc_issuer.startswith("https://") and args.oidc_audience, name
        if name == "gateway":
            assert args.oidc_client_id and args.oidc_client_secret_file == "/run/secrets/oidc-client-secret"
            assert service["secrets"] == ["oidc-client-secret"] and "oidc-client-secret" in override["secrets"]
            assert "/ui/login" in " ".join(service["healthcheck"]["test"])
        else:
            assert not hasattr(args, "oidc_client_id"), name


def collector_config() -> dict:
    return yaml.safe_load(COLLECTOR_CONFIG.read_text())


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def receiver_ports(config: dict) -> dict[str, int]:
    """The OTLP receiver's ports by protocol: {"grpc": 4317, "http": 4318}."""
    return {protocol: port_of(settings["endpoint"])
            for protocol, settings in config["receivers"]["otlp"]["protocols"].items()}


def kubernetes_documents() -> dict[Path, list[dict]]:
    """Every Kubernetes object under deploy/k8s by file: all YAML files but kustomizations and
    the files their generators read."""
    generated = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            generated |= {kustomization.parent / entry.split("=")[-1]
                          for entry in generator.get("files", []) + generator.get("envs", [])}
        generated |= {kustomization.parent / patch["path"] for patch in spec.get("patches", []) if "path" in patch}
    return {path: documents(path) for path in sorted(K8S.rglob("*.yaml"))
            if path.name != "kustomization.yaml" and path not in generated}


def kubernetes_objects(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for docs in kubernetes_documents().values() for doc in docs
            if doc["kind"] == kind}


def pod_of(service: dict) -> dict:
    """The pod spec of the one Deployment whose pods the Service selects."""
    selector = service["spec"]["selector"]
    [deployment] = [d for d in kubernetes_objects("Deployment").values()
                    if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    return deployment["spec"]["template"]["spec"]


def test_compose_runs_every_service_the_suite_needs():
    spec = compose()
    assert "version" not in spec, "the Compose Specification has no version key"
    services = spec["services"]
    assert COMPOSE_SERVICES <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts {source}, which is not in deploy/"
            else:
                assert source in spec["volumes"], f"{name} mounts the undeclared volume {source}"
        if name in SUITE_SERVICES:
            build = service["build"]
            assert (DEPLOY / build["context"]).resolve() == ROOT
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        else:
            # Third-party images are pinned to a release, never latest.
            assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", service["image"]), service["image"]
    assert services["suggestion"]["deploy"]["replicas"] >= 2
    # `--scale worker=N`: nothing that two containers could not share.
    assert not {"container_name", "ports"} & set(services["worker"])
    assert "8080:8080" in services["gateway"]["ports"]
    assert "16686:16686" in services["jaeger"]["ports"]
    assert "8889:8889" in services["otel-collector"]["ports"]


def test_compose_commands_parse_with_the_tuning_cli(monkeypatch):
    services = compose()["services"]
    parsed = {}
    for name in SUITE_SERVICES:
        with monkeypatch.context() as env:
            parsed[name] = parse_command(services[name], env)

    def target(address: str, service: str) -> None:
        host, port = address.rsplit(":", 1)
        assert host == service and int(port) == parsed[service].port, f"{address} is not the {service} service"

    for name in ("suggestion", "tracking", "gateway"):
        assert parsed[name].command == "serve" and parsed[name].service == name
        assert parsed[name].host == "0.0.0.0"
    init_sql = (DEPLOY / "postgres-init.sql").read_text()
    databases = {services["postgres"]["environment"]["POSTGRES_DB"], *re.findall(r"CREATE DATABASE (\w+)", init_sql)}
    for name in ("suggestion", "tracking"):
        url = sa.make_url(parsed[name].database_url)
        assert parsed[name].migrate and url.drivername == "postgresql" and url.host == "postgres"
        assert url.port == 5432 and url.database in databases
    assert sa.make_url(parsed["suggestion"].database_url).database != sa.make_url(
        parsed["tracking"].database_url).database
    target(parsed["gateway"].suggestion_address, "suggestion")
    target(parsed["gateway"].tracking_address, "tracking")
    target(parsed["study"].address, "suggestion")
    target(parsed["worker"].suggestion_address, "suggestion")
    target(parsed["worker"].tracking_address, "tracking")
    assert callable(cli.load_callable(parsed["worker"].train))


def test_the_tracking_service_writes_its_artifacts_on_a_volume_its_user_owns(monkeypatch):
    spec = compose()
    tracking = spec["services"]["tracking"]
    artifacts = parse_command(tracking, monkeypatch).artifacts
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    user = re.findall(r"^USER (\w+)", dockerfile, flags=re.MULTILINE)[-1]
    assert re.search(rf"useradd --create-home .*\b{user}\b", dockerfile)
    # A new named volume starts as a copy of the image's folder, owner included; a folder the
    # image lacks would be created for root. The user's home is theirs.
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in tracking["volumes"]}
    [mount] = [path for path in mounts if artifacts.startswith(path + "/")]
    assert mount == f"/home/{user}" and mounts[mount] in spec["volumes"]


def test_the_workers_run_the_study_the_study_service_creates(monkeypatch):
    from trial_worker.examples import wine
    from trial_worker.tune.space import to_parameters
    from tuning_suite import demo
    from tuning_types import convert

    services = compose()["services"]
    with monkeypatch.context() as env:
        study = parse_command(services["study"], env)
    with monkeypatch.context() as env:
        worker = parse_command(services["worker"], env)
    assert study.study_command == "create" and services["worker"]["command"].split()[0] == "worker"
    assert worker.command == [] and worker.train, "the workers run a train function, not a command"
    [mount] = [volume for volume in services["study"]["volumes"] if volume.split(":")[1] == study.file]
    request = cli.load_study_file(DEPLOY / mount.split(":")[0])
    assert worker.study == request.name
    # The demo's study: the train function's parameters, metric, fidelity and pruner.
    spec = convert.spec_from_proto(request.spec)
    assert spec.space.parameters == tuple(to_parameters(wine.SEARCH_SPACE))
    assert [objective.metric for objective in spec.objectives] == ["val_f1"]
    assert (spec.fidelity.name, spec.fidelity.min, spec.fidelity.max) == (
        demo.FIDELITY.name, demo.FIDELITY.min, demo.FIDELITY.max)
    assert spec.pruner.name == "asha" and spec.pruner.settings == demo.PRUNE_ON
    # The workers start once it exists, and it runs once.
    assert services["worker"]["depends_on"]["study"]["condition"] == "service_completed_successfully"
    assert services["study"]["restart"] == "no"


def test_compose_health_checks_and_dependencies_agree(monkeypatch):
    services = compose()["services"]
    for name in ("suggestion", "tracking", "gateway"):
        with monkeypatch.context() as env:
            port = parse_command(services[name], env).port
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        if name == "gateway":
            assert f"http://127.0.0.1:{port}/" in test[3]
        else:
            assert test[4] == f"127.0.0.1:{port}" and "grpc_health.v1" in test[3]
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {dependency: {"condition": "service_started"} for dependency in depends_on}
        for dependency, condition in depends_on.items():
            assert dependency in services, f"{name} depends on {dependency}, which is not a service"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency} to be healthy"


@pytest.mark.timeout(120)
def test_the_health_probes_pass_on_live_services_and_leave_no_trace(tmp_path, monkeypatch):
    """Compose's probes, run against the real services: exit 0 while they serve, and no span
    for the probes themselves (a trace every 10 s would bury the trials' in Jaeger)."""
    from trial_worker.local_suite import LocalSuite
    from tuning_common.otlp_receiver import OtlpReceiver

    services = compose()["services"]
    grpc_probe = services["suggestion"]["healthcheck"]["test"][3]
    http_probe = services["gateway"]["healthcheck"]["test"][3]
    assert services["tracking"]["healthcheck"]["test"][3] == grpc_probe
    unsampled = re.search(r"00-(\w{32})-\w{16}-00", http_probe)[1]

    def probe(script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=30)

    with OtlpReceiver() as receiver:
        for key, value in receiver.environment().items():
            monkeypatch.setenv(key, value)
        with LocalSuite(tmp_path, gateway_port=0) as suite:
            gateway = suite.gateway_url.removeprefix("http://")
            for script, address in ((grpc_probe, suite.suggestion_address), (grpc_probe, suite.tracking_address)):
                result = probe(script, address)
                assert result.returncode == 0, result.stderr
            script = http_probe.replace("127.0.0.1:8080", gateway)  # the compose address, here the live gateway's
            result = probe(script)
            assert result.returncode == 0, result.stderr
            # The gateway's probe in a sampled trace of ours is recorded: the gateway does export.
            sampled = uuid.uuid4().hex
            result = probe(script.replace(f"00-{unsampled}-", f"00-{sampled}-").replace("-00\"", "-01\""))
            assert result.returncode == 0, result.stderr
            assert receiver.wait_for(lambda: any(s.trace_id == sampled for s in receiver.spans), 30)
        # The services have flushed at exit: gRPC health checks are never traced.
        assert not [s for s in receiver.spans if s.trace_id == unsampled or "Health" in s.name]
        assert {s.service for s in receiver.spans} >= {"suggestion-service", "tracking-service"}
    # A server that is not there fails the probe.
    assert probe(grpc_probe, "127.0.0.1:1").returncode != 0


def test_every_suite_process_exports_to_the_collector():
    spec = compose()
    services = spec["services"]
    collector = services["otel-collector"]
    # The collector reads deploy/otel-collector.yaml.
    [config_path] = [arg.split("=", 1)[1] for arg in collector["command"] if arg.startswith("--config=")]
    assert f"./{COLLECTOR_CONFIG.name}:{config_path}:ro" in collector["volumes"]
    assert collector["image"].startswith("otel/opentelemetry-collector-contrib:")
    ports = receiver_ports(collector_config())
    for name in SUITE_SERVICES:
        env = environment(services[name])
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        assert endpoint.scheme == "http" and endpoint.hostname == "otel-collector", f"{name}: {endpoint}"
        assert endpoint.port == ports["http" if protocol == "http/protobuf" else "grpc"], f"{name}: {endpoint}"
        assert "OTEL_SERVICE_NAME" not in env, f"{name}: each process names itself"


def test_the_collector_pipelines_use_only_what_the_config_defines():
    config = collector_config()
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    used = {kind: set() for kind in ("receivers", "processors", "exporters")}
    for name, pipeline in pipelines.items():
        for kind in used:
            assert pipeline[kind], f"pipeline {name} has no {kind}"
            undefined = set(pipeline[kind]) - set(config[kind])
            assert not undefined, f"pipeline {name} uses undefined {kind}: {undefined}"
            used[kind] |= set(pipeline[kind])
        # memory_limiter first: it must refuse data before anything else holds it.
        assert pipeline["processors"][0] == "memory_limiter", name
    for kind, names in used.items():
        assert names == set(config[kind]), f"{kind} defined but in no pipeline: {set(config[kind]) - names}"
    assert set(config["service"]["extensions"]) == set(config["extensions"])
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger"] and pipelines["metrics"]["exporters"] == ["prometheus"]
    # In a container a localhost listener is unreachable: every server binds all interfaces.
    endpoints = [*[p["endpoint"] for p in config["receivers"]["otlp"]["protocols"].values()],
                 config["exporters"]["prometheus"]["endpoint"], config["extensions"]["health_check"]["endpoint"]]
    assert all(endpoint.startswith("0.0.0.0:") for endpoint in endpoints), endpoints


def test_the_collector_sends_traces_to_a_jaeger_that_listens_there():
    exporter = collector_config()["exporters"]["otlp/jaeger"]
    host, port = exporter["endpoint"].rsplit(":", 1)
    assert exporter["tls"]["insecure"] is True
    # Compose: a service of that name running Jaeger, which takes OTLP/gRPC on 4317.
    services = compose()["services"]
    assert services[host]["image"].startswith("jaegertracing/jaeger:2.") and int(port) == 4317
    # Kubernetes: a Service of that name with that port, onto a container port of Jaeger's pods.
    service = kubernetes_objects("Service")[host]
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    [container] = pod_of(service)["containers"]
    assert container["image"] == services[host]["image"]
    assert service_port["targetPort"] in {p["name"] for p in container["ports"]}


def test_kubernetes_uses_the_same_collector_config():
    assert (OBSERVABILITY / "otel-collector-config.yaml").read_text() == COLLECTOR_CONFIG.read_text(), (
        "deploy/k8s/observability/otel-collector-config.yaml must be a copy of deploy/otel-collector.yaml")


def test_the_kubernetes_observability_objects_fit_together():
    kustomization = yaml.safe_load((OBSERVABILITY / "kustomization.yaml").read_text())
    assert all((OBSERVABILITY / resource).is_file() for resource in kustomization["resources"])
    [generator] = kustomization["configMapGenerator"]
    [(key, source)] = [entry.split("=") for entry in generator["files"]]
    config = yaml.safe_load((OBSERVABILITY / source).read_text())
    deployments = {doc["metadata"]["name"]: doc for path, docs in kubernetes_documents().items()
                   if OBSERVABILITY in path.parents for doc in docs if doc["kind"] == "Deployment"}
    assert set(deployments) == {"otel-collector", "jaeger"}
    for deployment in deployments.values():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        pod = spec["template"]["spec"]
        for container in pod["containers"]:
            named_ports = {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in named_ports
            assert {"requests", "limits"} <= set(container["resources"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
    # The collector: the generated config, mounted where --config reads it; ports and probes as configured.
    collector = deployments["otel-collector"]["spec"]["template"]["spec"]
    [container] = collector["containers"]
    [mount] = container["volumeMounts"]
    [volume] = [v for v in collector["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == generator["name"]
    assert f"--config={mount['mountPath']}/{key}" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == port_of(config["extensions"]["health_check"]["endpoint"])
    assert ports["metrics"] == port_of(config["exporters"]["prometheus"]["endpoint"])
    assert {ports["otlp-grpc"], ports["otlp-http"]} == set(receiver_ports(config).values())
    service = kubernetes_objects("Service")["otel-collector"]
    assert {p["port"] for p in service["spec"]["ports"]} == {ports["otlp-grpc"], ports["otlp-http"], ports["metrics"]}
    assert pod_of(service) == collector


def test_the_suite_on_kubernetes_exports_to_the_collector_service():
    [config] = documents(BASE / "config.yaml")
    # Every process of the suite reads these settings.
    for _, _, container in suite_containers():
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    endpoint = urlsplit(config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    service = kubernetes_objects("Service")[endpoint.hostname.split(".")[0]]
    assert endpoint.port in {p["port"] for p in service["spec"]["ports"]}
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in config["data"]  # http/protobuf, the default
    assert endpoint.port == receiver_ports(collector_config())["http"]


def test_every_kubernetes_manifest_is_valid():
    require(importlib.util.find_spec("kubernetes_validate") is not None,
            "kubernetes-validate is not installed (pip install -c constraints.txt -e '.[dev]')")
    import kubernetes_validate

    manifests = kubernetes_documents()
    assert {OBSERVABILITY / "jaeger.yaml", WORKERS_JOB / "worker-job.yaml", BASE / "suggestion.yaml",
            OVERLAYS / "postgres" / "postgres.yaml"} <= set(manifests)
    for path, docs in manifests.items():
        assert docs, f"{path} holds no Kubernetes object"
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(map(str, error.path))
                pytest.fail(f"{path.relative_to(ROOT)}: {doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")


def test_kustomize_builds_the_observability_folder():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: `kubectl kustomize deploy/k8s/observability` not tried")
    result = subprocess.run([kubectl, "kustomize", str(OBSERVABILITY)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    [config_map] = [doc for doc in objects if doc["kind"] == "ConfigMap"]
    assert config_map["data"]["config.yaml"] == COLLECTOR_CONFIG.read_text()
    [deployment] = [doc for doc in objects if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "otel-collector"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert [v["configMap"]["name"] for v in volumes] == [config_map["metadata"]["name"]]
    assert {(doc["kind"], doc["metadata"]["name"]) for doc in objects} == {
        ("ConfigMap", config_map["metadata"]["name"]), ("Deployment", "otel-collector"), ("Service", "otel-collector"),
        ("Deployment", "jaeger"), ("Service", "jaeger")}


# --- The suite on Kubernetes: deploy/k8s/base, its overlays and the workers' Job ---

SUITE_IMAGE = "tuning-suite:latest"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# The mark of every secret value in deploy/k8s: a value to replace.
PLACEHOLDER = "REPLACE_ME"
# The services' Deployments by the component label of their pods.
SERVICE_DEPLOYMENTS = {"suggestion": "Deployment/suggestion-service", "tracking": "Deployment/tracking-service",
                       "gateway": "Deployment/gateway"}
# The workers: the base's Deployment, or the Job of components/workers-job in its place.
WORKERS = {"Deployment/tuning-workers", "Job/tuning-workers"}
SECRETS = "tuning-secrets"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")
KUSTOMIZATIONS = ["base", "overlays/postgres", "overlays/dev", "components/workers-job", "components/s3-artifacts",
                  "components/oidc"]


def kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def workloads(*, observability: bool = True) -> dict[str, dict]:
    """Every Deployment, StatefulSet and Job under deploy/k8s (the collector's and Jaeger's
    unless told not to), by 'Kind/name'."""
    found = {}
    for path, docs in kubernetes_documents().items():
        if OBSERVABILITY in path.parents and not observability:
            continue
        for doc in docs:
            if doc["kind"] in WORKLOAD_KINDS:
                key = f"{doc['kind']}/{doc['metadata']['name']}"
                assert key not in found, f"two {key} under deploy/k8s"
                found[key] = doc
    return found


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def suite_containers() -> list[tuple[str, dict, dict]]:
    """(workload key, workload, container) for every container that runs the suite's image."""
    return [(key, workload, container) for key, workload in workloads().items()
            for container in workload["spec"]["template"]["spec"]["containers"] if container["image"] == SUITE_IMAGE]


def secret_generators(folder: Path) -> dict[str, dict[str, str]]:
    """The literals of a kustomization's secretGenerator, by secret name."""
    return {generator["name"]: dict(literal.split("=", 1) for literal in generator.get("literals", []))
            for generator in kustomization(folder).get("secretGenerator", [])}


def container_environment(container: dict, config_maps: dict[str, dict], secrets: dict[str, dict]) -> dict[str, str]:
    """The container's environment as Kubernetes sets it, from these ConfigMaps and Secrets (by name)."""
    env = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in config_maps, f"{container['name']} reads the ConfigMap {name}, which is not there"
        env.update(config_maps[name]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable["valueFrom"]:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), f"{container['name']}: no secret {ref}"
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[variable["name"]] = "the-pod-name"
    return env


def parse_args(args: list[str], env: dict[str, str], monkeypatch) -> argparse.Namespace:
    """Arguments parsed by the real `tuning` CLI under this environment, and no other TUNING_* or OTEL_* variable."""
    from tuning_suite.cli import build_parser

    for key in list(os.environ):
        if key.startswith(("TUNING_", "OTEL_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return build_parser().parse_args(args)


def parse_container(container: dict, monkeypatch) -> argparse.Namespace:
    """A container of deploy/k8s parsed with the ConfigMaps there and the base's (placeholder) secrets."""
    env = container_environment(container, kubernetes_objects("ConfigMap"), secret_generators(BASE))
    return parse_args(container["args"], env, monkeypatch)


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator in ("Exists", "DoesNotExist"):
            matches = (key in labels) == (operator == "Exists")
        else:
            matches = (labels.get(key) in values) == (operator == "In")
        if not matches:
            return False
    return True


def selected(selector: dict) -> set[str]:
    """The workloads whose pods the selector selects."""
    return {key for key, workload in workloads().items() if selects(selector, pod_labels(workload))}


def container_port(workload: dict, port: int | str) -> int:
    """A container port of the workload, given by number or by name."""
    ports = {p["name"]: p["containerPort"]
             for container in workload["spec"]["template"]["spec"]["containers"] for p in container.get("ports", [])}
    name = workload["metadata"]["name"]
    if isinstance(port, str):
        assert port in ports, f"{name} has no port named {port}"
        return ports[port]
    assert port in ports.values(), f"{name} has no port {port}"
    return port


def service_target(address: str) -> tuple[str, int]:
    """Where 'service:port' leads: the workload its Service selects, and the container port."""
    host, port = address.rsplit(":", 1)
    service = kubernetes_objects("Service")[host.split(".")[0]]
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    [target] = selected({"matchLabels": service["spec"]["selector"]})
    return target, container_port(workloads()[target], service_port["targetPort"])


def admitted(target: str, port: int) -> set[str]:
    """The workloads whose pods the NetworkPolicies let connect to the target's pods on this port."""
    everyone = set(workloads())
    policies = [policy for policy in kubernetes_objects("NetworkPolicy").values()
                if "Ingress" in policy["spec"]["policyTypes"]
                and selects(policy["spec"]["podSelector"], pod_labels(workloads()[target]))]
    if not policies:
        return everyone
    sources = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = [p.get("port") for p in rule.get("ports", [{}])]
            if not any(p is None or container_port(workloads()[target], p) == port for p in ports):
                continue
            for peer in rule.get("from", [{}]):  # no `from`: from anywhere
                if "ipBlock" in peer or "namespaceSelector" in peer:
                    sources |= everyone
                else:
                    sources |= selected(peer.get("podSelector", {}))
    return sources


def label_selector(text: str) -> dict:
    """A kustomize target's labelSelector ('key in (a,b)', 'key=value') as a selector."""
    if match := re.fullmatch(r"(\S+) in \(([^)]*)\)", text):
        return {"matchExpressions": [{"key": match[1], "operator": "In", "values": match[2].split(",")}]}
    key, value = text.split("=")
    return {"matchLabels": {key: value}}


def test_every_suite_container_parses_with_the_tuning_cli_and_listens_where_it_is_probed(monkeypatch):
    from gateway.app import OPENAPI_PATH, default_allowed_hosts

    parsed, environments = {}, {}
    for key, _, container in suite_containers():
        environments[key] = container_environment(container, kubernetes_objects("ConfigMap"), secret_generators(BASE))
        with monkeypatch.context() as env:
            parsed[key] = parse_container(container, env)
    assert set(parsed) == set(SERVICE_DEPLOYMENTS.values()) | WORKERS
    for component, key in SERVICE_DEPLOYMENTS.items():
        args, workload = parsed[key], workloads()[key]
        pod = workload["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert args.command == "serve" and args.service == component and args.host == "0.0.0.0", key
        assert pod_labels(workload)["app.kubernetes.io/component"] == component
        assert [p["containerPort"] for p in container["ports"]] == [args.port], key
        # Kubernetes kills the pod only after the service has drained.
        assert pod["terminationGracePeriodSeconds"] > args.grace_seconds, key
        assert {"readinessProbe", "livenessProbe"} <= set(container), key
        for probe in (container[name] for name in PROBES if name in container):
            if component == "gateway":
                get = probe["httpGet"]
                assert container_port(workload, get["port"]) == args.port and get["path"] == OPENAPI_PATH
                # The kubelet's default Host (the pod's IP) is refused; this one is served.
                [host] = [h["value"] for h in get["httpHeaders"] if h["name"].lower() == "host"]
                assert host in default_allowed_hosts(args.host, args.allowed_hosts.split(","))
            else:
                # grpc.health.v1 Check of the whole server (service "").
                assert probe["grpc"]["port"] == args.port and probe["grpc"].get("service", "") == "", key
        if component == "gateway":
            # No tokens of its own (they would make its probe's GET a 401); the services check
            # the callers' tokens it forwards.
            assert args.tokens_file is None and "TUNING_TOKENS" not in environments[key]
        else:
            assert args.migrate is True and sa.make_url(args.database_url).drivername == "postgresql"
            assert environments[key]["TUNING_TOKENS"] == secret_generators(BASE)[SECRETS]["tokens"]
    # The gateway and the workers reach both services through their Services, on the ports they listen on.
    for key in (SERVICE_DEPLOYMENTS["gateway"], *WORKERS):
        for attribute, component in (("suggestion_address", "suggestion"), ("tracking_address", "tracking")):
            target, port = service_target(getattr(parsed[key], attribute))
            assert target == SERVICE_DEPLOYMENTS[component] and port == parsed[target].port, (key, attribute)
    [worker_config] = documents(BASE / "worker-config.yaml")
    for key in WORKERS:
        args = parsed[key]
        assert args.command == [] and callable(cli.load_callable(args.train)), key
        assert args.study == worker_config["data"]["TUNING_STUDY"]
        assert environments[key]["TUNING_TOKEN"] == secret_generators(BASE)[SECRETS]["worker-token"]
        assert workloads()[key]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > args.grace_seconds
    # The tracking service writes its artifacts on the claim every replica mounts.
    key = SERVICE_DEPLOYMENTS["tracking"]
    pod = workloads()[key]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    artifacts = parsed[key].artifacts
    [mount] = [m for m in container["volumeMounts"] if f"{artifacts}/".startswith(m["mountPath"].rstrip("/") + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = kubernetes_objects("PersistentVolumeClaim")[volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and not mount.get("readOnly")
    assert workloads()[key]["spec"]["replicas"] >= 2


@pytest.mark.timeout(60)
def test_the_gateway_answers_its_probes(monkeypatch):
    """The gateway, started with its container's arguments and environment, answers the probes'
    request (200); with the kubelet's default Host, the pod's IP, it would refuse it (400)."""
    import dataclasses
    import urllib.error
    import urllib.request

    from gateway import server

    [container] = workloads()[SERVICE_DEPLOYMENTS["gateway"]]["spec"]["template"]["spec"]["containers"]
    options = server.options_from(parse_container(container, monkeypatch))
    running = server.serve(dataclasses.replace(options, host="127.0.0.1", port=0))
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            headers = {header["name"]: header["value"] for header in get["httpHeaders"]}
            request = urllib.request.Request(running.url + get["path"], headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        request = urllib.request.Request(running.url + get["path"], headers={**headers, "Host": "10.1.2.3:8080"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
    finally:
        running.stop()


def test_the_worker_deployment_keeps_waiting_for_work(monkeypatch):
    [container] = workloads()["Deployment/tuning-workers"]["spec"]["template"]["spec"]["containers"]
    # A Deployment restarts whatever exits: its workers wait for work instead of exiting.
    assert "--wait" in container["args"]
    assert parse_container(container, monkeypatch).wait is True


def test_every_service_selects_the_pods_of_one_workload_on_ports_they_have():
    everything = workloads()
    for name, service in kubernetes_objects("Service").items():
        targets = selected({"matchLabels": service["spec"]["selector"]})
        assert len(targets) == 1, f"the Service {name} selects the pods of {targets or 'nothing'}"
        [target] = targets
        for port in service["spec"]["ports"]:
            container_port(everything[target], port["targetPort"])
    for key, workload in everything.items():
        if workload["kind"] == "Job":
            continue
        assert selects(workload["spec"]["selector"], pod_labels(workload)), key
        # Its own pods only (the workers' Deployment and Job carry the same labels: the
        # workers-job component puts the one in place of the other).
        others = selected(workload["spec"]["selector"]) - {key}
        assert others <= (WORKERS if key in WORKERS else set()), f"{key} also selects the pods of {others}"
        if workload["kind"] == "StatefulSet":
            service = kubernetes_objects("Service")[workload["spec"]["serviceName"]]
            assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(workload))


def test_network_policies_let_only_the_workers_and_the_gateway_reach_the_services(monkeypatch):
    ports = {}
    for component, key in SERVICE_DEPLOYMENTS.items():
        [container] = workloads()[key]["spec"]["template"]["spec"]["containers"]
        with monkeypatch.context() as env:
            ports[component] = parse_container(container, env).port
    for component in ("suggestion", "tracking"):
        assert admitted(SERVICE_DEPLOYMENTS[component], ports[component]) == WORKERS | {SERVICE_DEPLOYMENTS["gateway"]}
    # The gateway: anyone in the namespace.
    assert admitted(SERVICE_DEPLOYMENTS["gateway"], ports["gateway"]) == set(workloads())
    # The postgres overlay's database: the two services only.
    assert admitted("StatefulSet/postgres", 5432) == {SERVICE_DEPLOYMENTS["suggestion"], SERVICE_DEPLOYMENTS["tracking"]}
    # Every policy is about the pods of the suite it is named for.
    for name, policy in kubernetes_objects("NetworkPolicy").items():
        assert selected(policy["spec"]["podSelector"]) == {key for key in workloads() if key.endswith(f"/{name}")}, name


def test_pod_disruption_budgets_keep_one_replica_of_each_service():
    covered = set()
    for name, budget in kubernetes_objects("PodDisruptionBudget").items():
        assert budget["spec"]["minAvailable"] == 1, name
        [key] = selected(budget["spec"]["selector"])
        assert key.startswith("Deployment/"), name
        # With one replica, minAvailable 1 would block every node drain.
        assert workloads()[key]["spec"]["replicas"] >= 2, name
        covered.add(key)
    assert covered == set(SERVICE_DEPLOYMENTS.values())


def test_the_suite_runs_labelled_as_the_images_user_with_bounded_resources():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    uid = int(re.search(r"useradd .*--uid (\d+) \w+", dockerfile)[1])
    suite = workloads(observability=False)
    assert set(suite) == set(SERVICE_DEPLOYMENTS.values()) | WORKERS | {"StatefulSet/postgres"}
    for key, workload in suite.items():
        for labels in (workload["metadata"]["labels"], pod_labels(workload)):
            assert set(LABELS) <= set(labels) and labels["app.kubernetes.io/part-of"] == "tuning-suite", key
        pod = workload["spec"]["template"]["spec"]
        # No Service variables (a Service named tuning-... would set TUNING_*_PORT=tcp://...,
        # which the flags read), no API token: none of them calls the Kubernetes API.
        assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False, key
        assert pod["securityContext"]["runAsNonRoot"] is True, key
        for container in pod["containers"]:
            if container["image"] == SUITE_IMAGE:
                assert pod["securityContext"]["runAsUser"] == uid, key
            else:
                assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", container["image"]), container["image"]
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], key
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True, key
            assert security["capabilities"]["drop"] == ["ALL"], key
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "PersistentVolumeClaim"):
        for path, docs in kubernetes_documents().items():
            if OBSERVABILITY in path.parents:
                continue
            for doc in (doc for doc in docs if doc["kind"] == kind):
                labels = doc["metadata"]["labels"]
                assert labels["app.kubernetes.io/part-of"] == "tuning-suite" and "app.kubernetes.io/name" in labels
                if kind != "ConfigMap":
                    assert "app.kubernetes.io/component" in labels, f"{kind}/{doc['metadata']['name']}"


def test_secrets_hold_only_placeholders():
    from tuning_common.auth import load_tokens
    from tuning_common.errors import InvalidArgument

    # No Secret written out in a manifest: kustomize generates them.
    assert not kubernetes_objects("Secret")
    found = 0
    for path in K8S.rglob("kustomization.yaml"):
        for generator in yaml.safe_load(path.read_text()).get("secretGenerator", []):
            values = dict(literal.split("=", 1) for literal in generator.get("literals", []))
            for entry in generator.get("files", []):
                values[entry] = (path.parent / entry.split("=")[-1]).read_text()
            for entry in generator.get("envs", []):
                lines = (path.parent / entry).read_text().splitlines()
                values |= dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
            for key, value in values.items():
                found += 1
                where = f"{path.relative_to(ROOT)}: secret {generator['name']}, {key}"
                if key.endswith("database-url"):
                    # A URL may name a host and a user; a password in it is a placeholder.
                    password = sa.make_url(value).password
                    assert password is None or PLACEHOLDER in password, where
                else:
                    assert PLACEHOLDER in value, f"{where}: not a {PLACEHOLDER} placeholder"
    assert found
    for folder in (BASE, OVERLAYS / "postgres"):
        secrets = secret_generators(folder)[SECRETS]
        assert set(secrets) == {"suggestion-database-url", "tracking-database-url", "tokens", "worker-token"}
        # The workers' token is a write token of the services.
        entries = [entry.split() for entry in secrets["tokens"].split(",")]
        assert ["write", secrets["worker-token"]] in [entry[:2] for entry in entries], folder
    # The base's placeholders cannot be used: the services refuse to start until they are replaced...
    with pytest.raises(InvalidArgument):
        load_tokens(None, secret_generators(BASE)[SECRETS]["tokens"])
    # ...the try-out overlay's work as they are.
    assert load_tokens(None, secret_generators(OVERLAYS / "postgres")[SECRETS]["tokens"]) is not None


def test_the_postgres_overlay_runs_the_databases_the_services_use():
    folder = OVERLAYS / "postgres"
    spec = kustomization(folder)
    assert "../../base" in spec["resources"]
    init_sql = (folder / "postgres-init.sql").read_text()
    assert init_sql == (DEPLOY / "postgres-init.sql").read_text(), (
        "deploy/k8s/overlays/postgres/postgres-init.sql must be a copy of deploy/postgres-init.sql")
    statefulset = workloads()["StatefulSet/postgres"]
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # The release Compose runs.
    assert container["image"] == compose()["services"]["postgres"]["image"]
    env = {variable["name"]: variable for variable in container["env"]}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    # Its data on the claim of each pod, below the volume's root.
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert env["PGDATA"]["value"].startswith(mounts[claim["metadata"]["name"]]["mountPath"] + "/")
    # The init script, generated from the copy, where the image runs it on the first start.
    [generator] = spec["configMapGenerator"]
    assert generator["files"] == ["postgres-init.sql"]
    [volume] = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == generator["name"]]
    assert mounts[volume["name"]]["mountPath"] == "/docker-entrypoint-initdb.d"
    databases = {env["POSTGRES_DB"]["value"], *re.findall(r"CREATE DATABASE (\w+)", init_sql)}
    # The services' URLs lead to it, to a database each.
    secrets = secret_generators(folder)
    used = set()
    for component in ("suggestion", "tracking"):
        url = sa.make_url(secrets[SECRETS][f"{component}-database-url"])
        assert url.drivername == "postgresql" and url.username == env["POSTGRES_USER"]["value"]
        target, port = service_target(f"{url.host}:{url.port}")
        assert target == "StatefulSet/postgres" and port == 5432
        used.add(url.database)
    assert used == databases and len(used) == 2
    # One password: the server's, and the services' driver's (PGPASSWORD), from the overlay's secret.
    password = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["key"] in secrets[password["name"]]
    [patch] = [patch for patch in spec["patches"] if "PGPASSWORD" in patch["patch"]]
    [operation] = yaml.safe_load(patch["patch"])
    assert operation["value"] == {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": password}}
    assert selected(label_selector(patch["target"]["labelSelector"])) == {
        SERVICE_DEPLOYMENTS["suggestion"], SERVICE_DEPLOYMENTS["tracking"]}


def kustomize(folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(f"kubectl is not on PATH: `kubectl kustomize {folder.relative_to(ROOT)}` not tried")
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomize_builds_the_suite(name, tmp_path, monkeypatch):
    """Each kustomization builds; in what it builds every ConfigMap, Secret and claim a pod
    names is there (generated names included), every suite container's arguments parse under
    the built environment, and every object is valid."""
    folder = K8S / name
    if kustomization(folder)["kind"] == "Component":
        # A component builds inside an overlay: here, the base's.
        overlay = tmp_path / "overlay"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
            {"resources": [os.path.relpath(BASE, overlay)], "components": [os.path.relpath(folder, overlay)]}))
        folder = overlay
    objects = kustomize(folder)
    built: dict[str, dict[str, dict]] = {}
    for doc in objects:
        built.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    config_maps = built.get("ConfigMap", {})
    secrets = {secret_name: {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
               for secret_name, secret in built.get("Secret", {}).items()}
    parsed, environments = {}, {}
    for kind in WORKLOAD_KINDS:
        for workload_name, workload in built.get(kind, {}).items():
            pod = workload["spec"]["template"]["spec"]
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps, (workload_name, volume)
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in built["PersistentVolumeClaim"]
            for container in pod["containers"]:
                key = f"{kind}/{workload_name}"
                environments[key] = container_environment(container, config_maps, secrets)
                if container["image"] == SUITE_IMAGE:
                    with monkeypatch.context() as patched:
                        parsed[key] = parse_args(container["args"], environments[key], patched)
    for key in (SERVICE_DEPLOYMENTS["suggestion"], SERVICE_DEPLOYMENTS["tracking"]):
        url = sa.make_url(parsed[key].database_url)
        assert url.drivername == "postgresql", key
        if "StatefulSet" in built:
            # The overlay's own PostgreSQL, with the password the server was given.
            assert url.host == "postgres" and url.host in built["Service"], key
            assert environments[key]["PGPASSWORD"] == environments["StatefulSet/postgres"]["POSTGRES_PASSWORD"]
        else:
            assert "PGPASSWORD" not in environments[key]
    if importlib.util.find_spec("kubernetes_validate") is not None:
        import kubernetes_validate

        for doc in objects:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    deployments = built["Deployment"]
    replicas = {deployment: deployments[deployment]["spec"]["replicas"] for deployment in ("suggestion-service",
                                                                                          "tracking-service", "gateway")}
    if name == "overlays/dev":
        assert set(replicas.values()) == {1} and "PodDisruptionBudget" not in built
        assert built["PersistentVolumeClaim"]["tuning-artifacts"]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert {"otel-collector", "jaeger", "tuning-workers"} <= set(deployments) and "postgres" in built["StatefulSet"]
    else:
        assert set(replicas.values()) == {2} and len(built["PodDisruptionBudget"]) == 3
    if name == "overlays/postgres":
        assert set(built["StatefulSet"]) == {"postgres"} and "postgres" in built["NetworkPolicy"]
    if name == "components/workers-job":
        assert "tuning-workers" not in deployments and "Job/tuning-workers" in parsed
    else:
        assert "Deployment/tuning-workers" in parsed and "Job" not in built
    tracking = SERVICE_DEPLOYMENTS["tracking"]
    if name == "components/s3-artifacts":
        # The bucket instead of the volume: no claim, no mount, the URL and the keys in the environment.
        assert parsed[tracking].artifacts.startswith("s3://") and "PersistentVolumeClaim" not in built
        [container] = deployments["tracking-service"]["spec"]["template"]["spec"]["containers"]
        assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(environments[tracking])
    else:
        assert parsed[tracking].artifacts == "/var/lib/tuning/artifacts"
    gateway = SERVICE_DEPLOYMENTS["gateway"]
    if name == "components/oidc":
        # Both services and the gateway check the same issuer's JWTs; the gateway alone has the
        # client, its secret from the Secret, and probes on the login page (which needs no token).
        for key in SERVICE_DEPLOYMENTS.values():
            assert parsed[key].oidc_issuer.startswith("https://") and parsed[key].oidc_audience, key
        assert parsed[gateway].oidc_client_id and environments[gateway]["TUNING_OIDC_CLIENT_SECRET"]
        assert "TUNING_OIDC_CLIENT_SECRET" not in environments[tracking]
        [container] = deployments["gateway"]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == \
            "/ui/login"
    else:
        assert all(parsed[key].oidc_issuer is None for key in SERVICE_DEPLOYMENTS.values())
