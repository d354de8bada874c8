"""Access control over every route of the gateway's MLflow-compatible API and of its dashboard.

The routes come from the gateway's own route table (:func:`gateway.server.build_app`), not
from a list written here, so a route added later is covered without touching this file; each
route's path parameters get plausible values, and the filled path is checked to reach that
very route. (The ``/v1`` routes have the same table-driven test in
``tests/integration/test_gateway.py::test_tokens_guard_every_route``.)

1. **The guard, route by route** (a gateway whose services are unreachable, so that only the
   gateway's own check answers; past it, the services are "unavailable"): for every route and
   method, no token and a wrong token (one character off the write token) are 401 with
   ``www-authenticate: Bearer ...``, a read token on a write is 403, a read token on a read and
   the write token on anything get past the check. MLflow's paths refuse in MLflow's error JSON
   (``{"error_code": "UNAUTHENTICATED", "message": ...}``, which the ``mlflow`` client turns
   into an ``MlflowException`` with that code); the dashboard's in the gateway's own JSON
   (``{"error": {"code": 401, "status": "UNAUTHENTICATED", ...}}``), except that a dashboard
   page asked without any token redirects to the login page, and the login page, logging out
   and the static files need no token. No answer holds a token.
2. **Any method on any path:** a read token cannot write through a method the route does not
   list (the guard decides before routing); paths that no route serves need a token too.
3. **The real ``mlflow`` client** against real services with the same tokens: the write token
   logs a run; the read token finds and reads it but cannot create an experiment or log a
   metric (PERMISSION_DENIED); without a token everything is UNAUTHENTICATED.

What counts as a read (the rule this file checks ``gateway.mlflow.routes.read_only_rule``
against, written out here independently): GET and HEAD read; of MLflow's POSTs, the searches
(:data:`MLFLOW_READ_POSTS`) read; every other POST, PUT, PATCH and DELETE writes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.convertors import IntegerConvertor, PathConvertor
from starlette.routing import BaseRoute, Match, Route, replace_params

from gateway.mlflow.routes import API, ARTIFACTS, is_mlflow_path
from gateway.server import GatewayOptions, RunningGateway, build_app, serve
from tuning_common.auth import READ_ONLY_MESSAGE, UNAUTHENTICATED_MESSAGE, TokenStore

WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
WRONG_TOKEN = "write-token-0123456789abcdeX"  # one character off the write token
TOKENS = f"write {WRITE_TOKEN} ci\nread {READ_TOKEN} viewer\n"
ALL_TOKENS = (WRITE_TOKEN, READ_TOKEN, WRONG_TOKEN)

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ANY_METHOD = ("GET", "HEAD", *WRITE_METHODS)  # for routes that take every method (MLflow's fallbacks)

# The spec: MLflow's POSTs that only read. Every other POST/PUT/PATCH/DELETE writes.
MLFLOW_READ_POSTS = frozenset({f"{API}/runs/search", f"{API}/experiments/search", f"{API}/logged-models/search",
                               f"{API}/registered-models/get-latest-versions"})

RUN_ID = "0123456789abcdef0123456789abcdef"
# Plausible values of path parameters, by name (by route where one name means different things);
# a parameter not named here gets a value by its type.
PARAMETERS = {
    "model_id": f"m-{RUN_ID}0a1b2c3d",
    "tag_key": "team",
    "path": f"1/{RUN_ID}/artifacts/model/MLmodel",
    "rest": "no-such-endpoint",
    "name": "study-1",
    "experiment_id": "1",
    "run_id": RUN_ID,
}
ROUTE_PARAMETERS = {
    "/ui/static/{name}": {"name": "common.js"},
    "/ui/models/{name:path}": {"name": "model-1"},
}

# Paths no route serves: the guard stands before routing, so they need a token as well.
UNROUTED = [("GET", "/no-such-page"), ("POST", "/no-such-page"), ("GET", "/api/2.0/mlflow"),
            ("POST", "/ajax-api/2.0/mlflow/runs/search"), ("GET", "/ui/no-such-page/x/y"),
            ("DELETE", "/api/2.0/mlflow/no/such/thing")]


def _router(app) -> list[BaseRoute]:
    """The route table inside the gateway's middleware (telemetry, then the Guard, then Starlette)."""
    while not hasattr(app, "routes"):
        app = app.app
    return list(app.routes)


GATEWAY_ROUTES = _router(build_app(GatewayOptions(tokens=TokenStore.parse(TOKENS, "test"))))


def surface(path: str) -> str:
    if is_mlflow_path(path):
        return "mlflow"
    if path in ("/", "/ui") or path.startswith("/ui/"):
        return "dashboard"
    if path.startswith("/v1/"):
        return "v1"
    return "unknown"


def fill(route: Route) -> str:
    """The route's path with a plausible value for each parameter."""
    values = {}
    for name, convertor in route.param_convertors.items():
        default = "1" if isinstance(convertor, IntegerConvertor) else "a/b" if isinstance(convertor, PathConvertor) \
            else "x"
        values[name] = ROUTE_PARAMETERS.get(route.path, {}).get(name, PARAMETERS.get(name, default))
    path, left = replace_params(route.path_format, route.param_convertors, values)
    assert not left, (route.path, left)
    return path


def served_by(method: str, path: str) -> BaseRoute | None:
    """The route the gateway's router would pick for ``method path`` (its first full match)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    return next((r for r in GATEWAY_ROUTES if r.matches(scope)[0] is Match.FULL), None)


def is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or (method == "POST" and path in MLFLOW_READ_POSTS)


# The dashboard's login (docs/GATEWAY.md, "Logging in to the dashboard"): the login page, logging
# out and the static files need no token; a page asked without one redirects to the login page.
def is_open(method: str, path: str) -> bool:
    return (path == "/ui/login" and method in ("GET", "HEAD", "POST")) or (path == "/ui/logout" and method == "POST") \
        or (path.startswith("/ui/static/") and method in ("GET", "HEAD"))


def is_page(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and (path in ("/", "/ui") or path.startswith("/ui/")) \
        and not path.startswith("/ui/api/")


@dataclass(frozen=True)
class Case:
    surface: str
    method: str
    path: str
    route: str  # the route's pattern

    @property
    def read(self) -> bool:
        return is_read(self.method, self.path)

    @property
    def open(self) -> bool:
        return is_open(self.method, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def cases() -> list[Case]:
    out = []
    for route in GATEWAY_ROUTES:
        if not isinstance(route, Route) or surface(route.path) not in ("mlflow", "dashboard"):
            continue
        path = fill(route)
        for method in sorted(route.methods or ANY_METHOD):
            assert served_by(method, path) is route, f"{method} {path} does not reach {route.path}"
            out.append(Case(surface(route.path), method, path, route.path))
    return out


CASES = cases()
PATHS = sorted({(case.surface, case.path) for case in CASES})


def test_the_tables_cover_every_route():
    # Every route of the gateway belongs to a surface that a table-driven test covers.
    surfaces = {route.path: surface(route.path) for route in GATEWAY_ROUTES}
    assert "unknown" not in surfaces.values(), [p for p, s in surfaces.items() if s == "unknown"]
    covered = {case.route for case in CASES}
    assert covered == {p for p, s in surfaces.items() if s != "v1"}
    # An empty or truncated enumeration fails here, not silently.
    mlflow = [case for case in CASES if case.surface == "mlflow"]
    dashboard = [case for case in CASES if case.surface == "dashboard"]
    assert len({case.route for case in mlflow}) > 50 and len(mlflow) > 80
    assert len({case.route for case in dashboard}) >= 14
    assert any(case.path.startswith(ARTIFACTS) and case.method == "PUT" for case in mlflow)
    assert {"/ui/api/studies/{name:path}", "/ui/static/{name}", "/ui/"} <= covered
    # Every read POST of the spec is a route (a renamed search would otherwise be a write unnoticed).
    assert MLFLOW_READ_POSTS <= {case.path for case in mlflow if case.method == "POST"}


# --- 1. the guard, route by route ---------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningGateway]:
    """A gateway with the tokens and no services behind it: only its own check answers."""
    running = serve(GatewayOptions(suggestion_address="127.0.0.1:1", tracking_address="127.0.0.1:1",
                                   tokens=TokenStore.parse(TOKENS, "test")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(guarded: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        yield client


def send(http: httpx.Client, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    if method == "PUT" and path.startswith(ARTIFACTS):
        response = http.request(method, path, content=b"bytes", headers=headers)  # an artifact upload
    elif method in WRITE_METHODS:
        response = http.request(method, path, json={}, headers=headers)
    else:
        response = http.request(method, path, headers=headers)
    for token in ALL_TOKENS:
        assert token not in response.text and token not in str(response.headers), f"{method} {path} echoed a token"
    return response


def assert_refused(response: httpx.Response, status: int, surface: str, method: str, reason: str) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, (where, response.status_code, response.text)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer "), where
    if method == "HEAD":
        return  # no body
    code, message = ("UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE) if status == 401 else \
        ("PERMISSION_DENIED", READ_ONLY_MESSAGE)
    assert response.headers["content-type"] == "application/json", where
    if surface == "mlflow":  # MLflow's own error JSON, which its client turns into an MlflowException
        assert response.json() == {"error_code": code, "message": message}, where
    else:
        assert response.json() == {"error": {"code": status, "status": code, "message": message, "reason": reason}}


def assert_sent_to_login(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 303, (where, response.status_code, response.text)
    assert response.headers["location"].startswith("/ui/login"), where


def assert_past_the_check(response: httpx.Response) -> None:
    """Not refused by the guard, and no crash: services unavailable, a parameter refused before any
    call, ENDPOINT_NOT_FOUND, NOT_IMPLEMENTED, a page or a static file."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code not in (401, 403, 500), (where, response.status_code, response.text)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_guard(http: httpx.Client, case: Case):
    if case.open:
        for token in (None, WRONG_TOKEN, READ_TOKEN, WRITE_TOKEN):
            assert_past_the_check(send(http, case.method, case.path, token))
        return
    if is_page(case.method, case.path):
        assert_sent_to_login(send(http, case.method, case.path, None))
    else:
        assert_refused(send(http, case.method, case.path, None), 401, case.surface, case.method, "TOKEN_MISSING")
    assert_refused(send(http, case.method, case.path, WRONG_TOKEN), 401, case.surface, case.method, "TOKEN_INVALID")
    as_reader = send(http, case.method, case.path, READ_TOKEN)
    if case.read:
        assert_past_the_check(as_reader)
    else:
        assert_refused(as_reader, 403, case.surface, case.method, "READ_ONLY_TOKEN")
    assert_past_the_check(send(http, case.method, case.path, WRITE_TOKEN))


# --- 2. any method on any path ------------------------------------------------------------------


@pytest.mark.parametrize("where", PATHS, ids=lambda where: where[1])
def test_a_read_token_cannot_write_with_any_method(http: httpx.Client, where: tuple[str, str]):
    # E.g. PATCH or DELETE on .../logged-models/search (a read for POST) reaches the logged model
    # route `.../logged-models/{model_id}`: the method decides, not the path alone.
    kind, path = where
    for method in WRITE_METHODS:
        if is_read(method, path) or is_open(method, path):
            continue
        assert_refused(send(http, method, path, READ_TOKEN), 403, kind, method, "READ_ONLY_TOKEN")
        as_writer = send(http, method, path, WRITE_TOKEN)
        assert_past_the_check(as_writer)
        if kind == "mlflow":  # a method the route lacks: MLflow's ENDPOINT_NOT_FOUND, not the gateway's 405
            assert as_writer.status_code != 405 and "error_code" in as_writer.json(), (method, path, as_writer.text)


@pytest.mark.parametrize("request_", UNROUTED, ids=lambda r: " ".join(r))
def test_paths_no_route_serves_need_a_token_too(http: httpx.Client, request_: tuple[str, str]):
    method, path = request_
    kind = "mlflow" if is_mlflow_path(path) else "gateway"
    if is_page(method, path):
        assert_sent_to_login(send(http, method, path, None))
    else:
        assert_refused(send(http, method, path, None), 401, kind, method, "TOKEN_MISSING")
    answer = send(http, method, path, WRITE_TOKEN)
    assert answer.status_code in (307, 404, 405), (method, path, answer.text)  # 307: the same path with a "/"
    if kind == "mlflow":
        assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND", (method, path, answer.text)


# --- 3. the real mlflow client against real services --------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """Both services and the gateway, all with the tokens, in this process (port 0)."""
    from suggestion_service.server import serve as serve_suggestion
    from tracking_service.server import serve as serve_tracking
    from tuning_common.grpc_server import ServerOptions

    tmp = tmp_path_factory.mktemp("access")
    tokens = TokenStore.parse(TOKENS, "test")
    options = ServerOptions(port=0, grace_seconds=1, tokens=tokens)
    suggestion = serve_suggestion(f"sqlite:///{tmp / 'suggestion.db'}", options)
    tracking = serve_tracking(f"sqlite:///{tmp / 'tracking.db'}", str(tmp / "artifacts"), options)
    gateway = None
    try:
        gateway = serve(GatewayOptions(suggestion_address=suggestion.address, tracking_address=tracking.address,
                                       tokens=tokens))
        yield gateway
    finally:
        if gateway is not None:
            gateway.stop()
        suggestion.stop()
        tracking.stop()


# Three phases in one interpreter (importing mlflow takes seconds): the client reads
# MLFLOW_TRACKING_TOKEN on every request.
MLFLOW_SCRIPT = """
    import json, os

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def refusal(call):
        try:
            call()
        except MlflowException as error:
            return error.error_code
        return None

    out = {}
    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["WRITE"]
    client = MlflowClient()
    experiment_id = client.create_experiment("access-control")
    run = client.create_run(experiment_id, run_name="by-the-writer")
    client.log_param(run.info.run_id, "lr", "0.1")
    client.log_metric(run.info.run_id, "loss", 0.25, step=1)
    client.set_terminated(run.info.run_id)
    out["experiment_id"], out["run_id"] = experiment_id, run.info.run_id

    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["READ"]
    client = MlflowClient()
    out["reader_experiments"] = [e.name for e in client.search_experiments()]
    found = client.search_runs([experiment_id], filter_string="metrics.loss < 0.5")
    out["reader_runs"] = [r.info.run_id for r in found]
    got = client.get_run(run.info.run_id)
    out["reader_run"] = {"metrics": got.data.metrics, "params": got.data.params, "status": got.info.status}
    out["reader_history"] = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    out["reader_create_experiment"] = refusal(lambda: client.create_experiment("by-the-reader"))
    out["reader_log_metric"] = refusal(lambda: client.log_metric(run.info.run_id, "loss", 9.0))
    out["reader_create_run"] = refusal(lambda: client.create_run(experiment_id))

    del os.environ["MLFLOW_TRACKING_TOKEN"]
    client = MlflowClient()
    out["anonymous_search_experiments"] = refusal(lambda: client.search_experiments())
    out["anonymous_get_run"] = refusal(lambda: client.get_run(run.info.run_id))
    out["anonymous_create_experiment"] = refusal(lambda: client.create_experiment("by-nobody"))

    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["WRONG"]
    out["wrong_token_search_runs"] = refusal(lambda: MlflowClient().search_runs([experiment_id]))
    print(json.dumps(out))
"""


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs mlflow-skinny (the dev extra)")
def test_the_mlflow_client_with_each_token(secured: RunningGateway, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_", "TUNING_TOKEN"))}
    env.update({
        "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": secured.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet", "PYTHONWARNINGS": "ignore",
        "WRITE": WRITE_TOKEN, "READ": READ_TOKEN, "WRONG": WRONG_TOKEN,
    })
    script = tmp_path / "mlflow_access.py"
    script.write_text(textwrap.dedent(MLFLOW_SCRIPT))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert "access-control" in out["reader_experiments"]
    assert out["reader_runs"] == [out["run_id"]]
    assert out["reader_run"] == {"metrics": {"loss": 0.25}, "params": {"lr": "0.1"}, "status": "FINISHED"}
    assert out["reader_history"] == [[1, 0.25]]
    for call in ("reader_create_experiment", "reader_log_metric", "reader_create_run"):
        assert out[call] == "PERMISSION_DENIED", (call, out[call])
    for call in ("anonymous_search_experiments", "anonymous_get_run", "anonymous_create_experiment",
                 "wrong_token_search_runs"):
        assert out[call] == "UNAUTHENTICATED", (call, out[call])
    for token in ALL_TOKENS:
        assert token not in done.stdout and token not in done.stderr

    # The dashboard shows the writer's run to the read token (the gateway forwards it to the services).
    with httpx.Client(base_url=secured.url, timeout=30) as http:
        reader = {"authorization": f"Bearer {READ_TOKEN}"}
        page = http.get(f"/ui/experiments/{out['experiment_id']}", headers=reader)
        assert page.status_code == 200 and "by-the-writer" in page.text, page.text[:500]
        assert http.get(f"/ui/runs/{out['run_id']}", headers=reader).status_code == 200
        assert http.get(f"/ui/experiments/{out['experiment_id']}").status_code == 303  # to the login page
