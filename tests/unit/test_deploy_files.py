"""What deploy/ ships must match the code: the image's sources and entry point, the workers'
Kubernetes manifests and the arguments they pass to `tuning worker`; Docker Compose's commands,
health checks and telemetry; the OpenTelemetry Collector's configuration, Jaeger and their
Kubernetes manifests (validated against Kubernetes' schemas)."""

from __future__ import annotations

import argparse
import importlib.util
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


# --- Docker Compose, the OpenTelemetry Collector, Jaeger and their Kubernetes manifests ---

COMPOSE = DEPLOY / "compose.yaml"
COLLECTOR_CONFIG = DEPLOY / "otel-collector.yaml"
OBSERVABILITY = DEPLOY / "k8s" / "observability"
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
    from tuning_common.cli import build_parser

    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    command = service["command"]
    return build_parser().parse_args(command if isinstance(command, list) else shlex.split(command))


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
    for kustomization in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            generated |= {kustomization.parent / entry.split("=")[-1] for entry in generator.get("files", [])}
    return {path: documents(path) for path in sorted((DEPLOY / "k8s").rglob("*.yaml"))
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
    from suggestion_service.api import convert
    from trial_worker import demo
    from trial_worker.examples import wine
    from trial_worker.tune.space import to_parameters

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
    from tuning_common.local_suite import LocalSuite
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
            result = probe(http_probe.replace("127.0.0.1:8080", gateway))
            assert result.returncode == 0, result.stderr
            # The gateway's probe in a sampled trace of ours is recorded: the gateway does export.
            sampled = uuid.uuid4().hex
            script = http_probe.replace("127.0.0.1:8080", gateway)
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
    deployments = kubernetes_objects("Deployment")
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


def test_the_workers_on_kubernetes_export_to_the_collector_service():
    [config] = documents(DEPLOY / "k8s" / "worker-config.yaml")
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
    assert OBSERVABILITY / "jaeger.yaml" in manifests and DEPLOY / "k8s" / "worker-job.yaml" in manifests
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
