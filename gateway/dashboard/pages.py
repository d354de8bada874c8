"""The dashboard's routes: HTML pages rendered with Jinja2 (autoescaped), the JSON the pages
poll, the static files (CSS, JS) and plotly.js from the installed ``plotly`` package, so the
dashboard works offline.

Every page gets a Content-Security-Policy that allows scripts only from this origin (no inline
script: the pages' data travels in ``<script type="application/json">`` blocks, encoded so
that ``<``, ``>`` and ``&`` cannot end them), ``X-Content-Type-Options: nosniff`` and
``frame-ancestors 'none'``. The pages only read; the model-version page's registry actions
are calls from its script to the HTTP/JSON API (``/v1/registered-models/...``), the same
routes, checks and audit as any client's.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import math
import mimetypes
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import session
from gateway.dashboard import data
from gateway.dashboard.login import Login
from gateway.dashboard.sso import SingleSignOn
from gateway.errors import error_response, http_status
from gateway.http_api import forwarded
from tuning_common.errors import InvalidArgument, TuningError

# plotly.js styles its charts with inline style attributes and a <style> element it writes, so
# styles may be inline; scripts may not.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
COMMON_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin"}
PAGE_HEADERS = {**COMMON_HEADERS, "content-security-policy": CSP, "x-frame-options": "DENY",
                "cache-control": "no-store"}
JSON_HEADERS = {**COMMON_HEADERS, "cache-control": "no-store"}
IMMUTABLE = "public, max-age=31536000, immutable"
REFRESH_DEFAULT, REFRESH_MIN, REFRESH_MAX = 5, 1, 60
# The stages a version can be moved to, as the HTTP API names them, with their labels.
STAGES = (("STAGE_NONE", "no stage"), ("STAGE_STAGING", "Staging"), ("STAGE_PRODUCTION", "Production"),
          ("STAGE_ARCHIVED", "Archived"))

IMPORTANCE_HELP = (
    "How much of the objective's variation each parameter explains, computed by the suggestion service "
    "(GetParameterImportance): fANOVA on a seeded random forest of the completed trials, as Optuna's default "
    "evaluator. A parameter's importance is the share of the objective's variance its main effect explains, "
    "normalised to sum to 1; a conditional parameter's inactive state counts as a value of its own. It needs a "
    "few completed trials and says nothing about interactions or direction.")


def _plotly_file() -> Path | None:
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "0"


class Asset:
    """One static file, in memory, with a gzip copy made on first demand."""

    def __init__(self, body: bytes, media_type: str):
        self.body = body
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self._gzipped: bytes | None = None
        self._lock = threading.Lock()

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, 6, mtime=0)
            return self._gzipped


class StaticFiles:
    """The package's static/ folder plus plotly.min.js (read lazily: it is 4-5 MB)."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        folder = importlib.resources.files("gateway.dashboard") / "static"
        for item in folder.iterdir():
            if item.is_file():
                media_type = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
                if media_type.startswith("text/") or media_type.endswith("javascript"):
                    media_type += "; charset=utf-8"
                self.assets[item.name] = Asset(item.read_bytes(), media_type)
        self.plotly_path = _plotly_file()
        self.plotly_version = _version("plotly")
        self._plotly: Asset | None = None
        self._lock = threading.Lock()

    def url(self, name: str) -> str:
        if name == "plotly.min.js":
            return f"/ui/static/plotly.min.js?v={self.plotly_version}"
        asset = self.assets[name]
        return f"/ui/static/{name}?v={asset.etag.strip(chr(34))[:12]}"

    def get(self, name: str) -> Asset | None:
        if name == "plotly.min.js":
            with self._lock:
                if self._plotly is None and self.plotly_path is not None:
                    self._plotly = Asset(self.plotly_path.read_bytes(), "text/javascript; charset=utf-8")
            return self._plotly
        return self.assets.get(name)

    async def respond(self, request: Request) -> Response:
        name = request.path_params["name"]
        asset = await asyncio.to_thread(self.get, name)
        if asset is None:
            return Response(f"no static file {name}", status_code=404, media_type="text/plain",
                            headers=COMMON_HEADERS)
        gzipped = "gzip" in request.headers.get("accept-encoding", "") and len(asset.body) > 1024
        # Each encoding is a representation of its own, with an ETag of its own.
        etag = asset.etag[:-1] + '-gz"' if gzipped else asset.etag
        headers = {**COMMON_HEADERS, "etag": etag, "vary": "accept-encoding",
                   "cache-control": IMMUTABLE if request.query_params.get("v") else "no-cache"}
        if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
            return Response(status_code=304, headers=headers)
        body = asset.body
        if gzipped:
            body = await asyncio.to_thread(asset.gzipped)
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)


# --- formatting for the templates ------------------------------------------------------------------


def fmt_time(text: str | None) -> str:
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return str(value)


def fmt_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def sort_key(value: Any) -> str:
    """A ``data-sort`` attribute: numbers as numbers, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value)) if math.isfinite(value) else ""
    try:
        return repr(float(value)) if math.isfinite(float(value)) else str(value)
    except (TypeError, ValueError):
        return str(value)


def short_value(text: Any) -> str:
    """A param value for a table cell: numbers to 6 significant digits, long text cut."""
    text = str(text)
    try:
        number = float(text)
    except ValueError:
        return text if len(text) <= 80 else text[:79] + "…"
    if not math.isfinite(number) or text.strip().lstrip("-").isdigit():
        return text
    return f"{number:.6g}"


def path_url(text: str, safe: str = "") -> str:
    return urllib.parse.quote(str(text), safe=safe)


def best_value_text(best: Mapping[str, Any] | None) -> str:
    if not best:
        return ""
    if "pareto" in best:
        return f"{best['pareto']} on the Pareto front"
    return fmt_value(best.get("value"))


def _environment(static: StaticFiles) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("gateway.dashboard", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(static=static.url, importance_help=IMPORTANCE_HELP,
                       plotly_available=static.plotly_path is not None, auth_session=session.current.get)
    env.filters.update(stage=data.stage_text, time=fmt_time, duration=fmt_duration, value=fmt_value, bytes=fmt_bytes,
                       sortkey=sort_key,
                       path=path_url, best=best_value_text, short=short_value)
    return env


# --- the routes ------------------------------------------------------------------------------------


class Dashboard:
    def __init__(self, stubs: Mapping[str, Any], options: Any = None):
        self.stubs = stubs
        self.options = options
        self.static = StaticFiles()
        self.env = _environment(self.static)
        self.measurements = data.MeasurementCache()
        tokens = getattr(options, "tokens", None)
        seconds = getattr(options, "session_seconds", session.SESSION_SECONDS)
        sso_settings = getattr(options, "sso", None)
        self.login = Login(self.render, tokens, seconds, None if sso_settings is None else sso_settings.name)
        self.sso = None if sso_settings is None else SingleSignOn(sso_settings, tokens, self.login.page, seconds)
        self.trials = data.TrialCache()

    def services(self, request: Request) -> data.Services:
        return data.Services(self.stubs, forwarded(request))

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def page(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except TuningError as error:
                status = http_status(error)
                return self.render("error.html", status=status, status_code=status, code=error.code,
                                   message=error.message, section="")

        return endpoint

    def api(self, handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                document = await handler(request)
            except TuningError as error:
                response = error_response(error)
                response.headers.update(JSON_HEADERS)
                return response
            return JSONResponse(document, headers=JSON_HEADERS)

        return endpoint

    def routes(self) -> list[BaseRoute]:
        page, api = self.page, self.api
        return [
            Route("/", to_dashboard, methods=["GET"]),
            Route("/ui", to_dashboard, methods=["GET"]),
            Route("/ui/", page(self.studies_page), methods=["GET"], name="dashboard"),
            Route("/ui/studies", page(self.studies_page), methods=["GET"]),
            Route("/ui/studies/{name:path}", page(self.study_page), methods=["GET"]),
            Route("/ui/experiments", page(self.experiments_page), methods=["GET"]),
            Route("/ui/experiments/{experiment_id:int}", page(self.runs_page), methods=["GET"]),
            Route("/ui/runs/{run_id}", page(self.run_page), methods=["GET"]),
            Route("/ui/compare", page(self.compare_page), methods=["GET"]),
            Route("/ui/models", page(self.models_page), methods=["GET"]),
            Route("/ui/models/{name:path}", page(self.model_page), methods=["GET"]),
            # The version before the name: a model name may hold '/', even "x/versions/3".
            Route("/ui/model-versions/{version:int}/{name:path}", page(self.version_page), methods=["GET"]),
            Route("/ui/trials/{trial_id:int}", page(self.trial_page), methods=["GET"]),
            Route("/ui/api/intermediate/{name:path}", api(self.intermediate_json), methods=["GET"]),
            Route("/ui/api/studies/{name:path}", api(self.study_json), methods=["GET"]),
            Route("/ui/api/importance/{name:path}", api(self.importance_json), methods=["GET"]),
            Route("/ui/static/{name}", self.static.respond, methods=["GET"]),
            *self.login.routes(),
            *(self.sso.routes() if self.sso is not None else ()),
        ]

    # --- studies ---

    async def studies_page(self, request: Request) -> Response:
        pager = Pager.of(request, STUDIES_PAGE)
        found = await data.list_studies(self.services(request), pager.size, pager.token)
        return self.render("studies.html", section="studies", studies=found["studies"], problem=pager.problem,
                           pager=pager.links(request, found["next_page_token"], len(found["studies"])))

    async def study_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        detail = await data.study_detail(self.services(request), name, self.measurements, self.trials)
        try:
            refresh = int(request.query_params.get("refresh", REFRESH_DEFAULT))
        except ValueError:
            refresh = REFRESH_DEFAULT
        refresh = min(max(refresh, REFRESH_MIN), REFRESH_MAX)
        return self.render("study.html", section="studies", study=detail["study"], detail=detail, refresh=refresh)

    async def study_json(self, request: Request) -> dict[str, Any]:
        """The study's document; with ``after`` (and ``open``) only what changed since the page
        read it: the trials numbered above ``after`` and those numbered in ``open``."""
        query = request.query_params
        after = _int_param(query, "after", None)
        open_numbers = _int_list(query, "open", MAX_OPEN)
        if open_numbers and after is None:
            raise InvalidArgument("open", "goes with after (the highest trial number the page holds)")
        return await data.study_detail(self.services(request), request.path_params["name"], self.measurements,
                                       self.trials, after, open_numbers)

    async def intermediate_json(self, request: Request) -> dict[str, Any]:
        return await data.intermediate(self.services(request), request.path_params["name"],
                                       request.query_params.get("metric"), self.measurements, self.trials)

    async def importance_json(self, request: Request) -> dict[str, Any]:
        return await data.importance(self.services(request), request.path_params["name"],
                                     request.query_params.get("objective"))

    # --- experiments and runs ---

    async def experiments_page(self, request: Request) -> Response:
        services = self.services(request)
        experiments, studies = await asyncio.gather(data.list_experiments(services), data.study_names(services))
        return self.render("experiments.html", section="experiments", experiments=experiments, studies=studies)

    async def runs_page(self, request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        query = request.query_params
        filter_text, order_text = query.get("filter", ""), query.get("order_by", "")
        pager = Pager.of(request, data.RUNS_PAGE)
        services = self.services(request)
        problems = [pager.problem] if pager.problem else []
        try:
            order_by = split_order(order_text)
            runs = await data.experiment_runs(services, experiment_id, filter_text, order_by, pager.size, pager.token)
        except InvalidArgument as error:
            if not (filter_text or order_text or pager.token):
                raise
            problems.append(f"{error.field}: {error.message}" if error.field else error.message)
            order_by = []
            pager = Pager(pager.size)
            runs = await data.experiment_runs(services, experiment_id, page_size=pager.size)
        study = await data.is_study(services, runs["experiment"]["name"])
        return self.render("runs.html", section="experiments", problem="\n".join(problems), filter=filter_text,
                           order_by=order_text, study=study,
                           sort_links=sort_links(request, runs, order_by, study),
                           pager=pager.links(request, runs["next_page_token"], len(runs["runs"])), **runs)

    async def trial_page(self, request: Request) -> Response:
        detail = await data.trial_detail(self.services(request), request.path_params["trial_id"])
        return self.render("trial.html", section="studies", **detail)

    async def run_page(self, request: Request) -> Response:
        detail = await data.run_detail(self.services(request), request.path_params["run_id"])
        return self.render("run.html", section="experiments", **detail)

    async def compare_page(self, request: Request) -> Response:
        run_ids = list(dict.fromkeys(r for value in request.query_params.getlist("runs")
                                     for r in value.replace(",", " ").split()))
        if not 2 <= len(run_ids) <= data.MAX_COMPARE:
            message = ("pick at least two runs to compare (the checkboxes of an experiment's runs)"
                       if len(run_ids) < 2 else f"at most {data.MAX_COMPARE} runs can be compared at once")
            return self.render("error.html", status=400, status_code=400, code="INVALID_ARGUMENT",
                               section="experiments", message=message)
        comparison = await data.compare_runs(self.services(request), run_ids)
        return self.render("compare.html", section="experiments", **comparison)

    # --- registry ---

    async def models_page(self, request: Request) -> Response:
        models = await data.list_models(self.services(request))
        return self.render("models.html", section="models", models=models)

    async def model_page(self, request: Request) -> Response:
        detail = await data.model_detail(self.services(request), request.path_params["name"])
        return self.render("model.html", section="models", **detail)

    async def version_page(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        detail = await data.version_detail(self.services(request), name, version)
        # With tokens on, the gateway records the token's principal as the actor (gateway.app):
        # the page says who, and offers no name to type.
        principal = getattr(request.state, "principal", None)
        return self.render("version.html", section="models", actor=principal.name if principal else None,
                           stages=STAGES, **detail)


# --- paging and sorting ----------------------------------------------------------------------------

STUDIES_PAGE = 50
MAX_PAGE = 1_000
MAX_OPEN = 1_000
# Page tokens of the pages before this one, in the URL (so that "previous" works on a shared
# link); past this many, the oldest are dropped and "previous" from there leads to the first page.
MAX_BACK = 50
TRIAL_STATE_TAG = "tuning.trial_state"


def _int_param(query: Mapping[str, str], name: str, default: int | None, low: int | None = None,
               high: int | None = None) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(name, f"must be a whole number, got {text!r:.40}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidArgument(name, f"must be between {low} and {high}, got {value}")
    return value


def _int_list(query: Mapping[str, str], name: str, limit: int) -> list[int]:
    items = [item for item in query.get(name, "").split(",") if item.strip()]
    if len(items) > limit:
        raise InvalidArgument(name, f"at most {limit} numbers, got {len(items)}")
    try:
        return [int(item) for item in items]
    except ValueError:
        raise InvalidArgument(name, "must be whole numbers separated by commas") from None


class Pager:
    """Server-side pages through opaque page tokens: ``page_token`` is this page's, ``back``
    the earlier pages' (dot-separated, the first page's empty token left out), ``page_size``
    the rows a page (defaults differ by page; 1-1000)."""

    def __init__(self, size: int, token: str = "", back: list[str] | None = None, problem: str = "",
                 page: int | None = None):
        self.size, self.token, self.back, self.problem, self.page = size, token, back or [], problem, page

    @classmethod
    def of(cls, request: Request, default_size: int) -> Pager:
        query = request.query_params
        try:
            size = _int_param(query, "page_size", default_size, 1, MAX_PAGE)
            page = _int_param(query, "page", None, 1)
        except InvalidArgument as error:
            return cls(default_size, problem=f"{error.field}: {error.message}")
        back = [t for t in query.get("back", "").split(".") if t]
        token = query.get("page_token", "")
        return cls(size or default_size, token, back[-MAX_BACK:], page=page if token else None)

    def number(self) -> int:
        """Said by the URL (the way back may have been cut), else counted from it."""
        return self.page or (len(self.back) + 2 if self.token else 1)

    def links(self, request: Request, next_token: str, shown: int) -> dict[str, Any]:
        keep = {k: v for k, v in request.query_params.items() if k not in ("page_token", "back", "page")}
        number = self.number()

        def url(token: str, back: list[str], page: int = 1) -> str:
            query = {**keep, **({"page_token": token, "page": str(page)} if token else {}),
                     **({"back": ".".join(back)} if back else {})}
            return request.url.path + ("?" + urllib.parse.urlencode(query) if query else "")

        previous = None
        if self.back:
            previous = url(self.back[-1], self.back[:-1], number - 1)
        elif self.token:
            previous = url("", [])
        first_row = (number - 1) * self.size + 1
        return {
            "page": number, "size": self.size, "first_row": first_row, "last_row": first_row + shown - 1,
            "previous": previous, "first": url("", []) if self.token else None,
            # Past MAX_BACK pages the way back is cut: "previous" then means the first page.
            "previous_is_first": bool(self.token) and not self.back and number > 2,
            "next": url(next_token, (self.back + [self.token] if self.token else [])[-MAX_BACK:], number + 1)
            if next_token else None,
        }


def split_order(text: str) -> list[str]:
    """``order_by`` text as SearchRuns keys: commas outside quotes and backticks separate them."""
    keys, current, quote = [], [], ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "`'\"":
            quote = char
        elif char == ",":
            keys.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    keys.append("".join(current).strip())
    return [k for k in keys if k]


def identifier(namespace: str, key: str) -> str | None:
    """A key as the filter language writes it (quoted unless plain); None if it cannot be."""
    if all(c.isalnum() or c in "_-./:" for c in key):
        return f"{namespace}.{key}"
    for mark in ("`", '"'):
        if mark not in key:
            return f"{namespace}.{mark}{key}{mark}"
    return None


def sort_links(request: Request, runs: Mapping[str, Any], order_by: list[str], study: bool) -> dict[str, Any]:
    """For each sortable column (by its name in the template), the URL that sorts by it and
    whether it is the current order: a click sorts ascending, a second click descending.
    In a study's experiment a metric column first orders by the trial's state, so that a pruned
    trial's intermediate value never ranks among results (COMPLETED sorts first)."""
    state_key = identifier("tags", TRIAL_STATE_TAG)
    main = [k for k in order_by if k != state_key]
    current = main[0] if main else ""
    current_key, _, direction = current.rpartition(" ") if current.upper().endswith((" ASC", " DESC")) else (
        current, "", "ASC")
    columns: dict[str, str | None] = {"run": "attributes.run_name", "status": "attributes.status",
                                      "trial": "attributes.trial_number", "started": "attributes.start_time",
                                      "user": "attributes.user"}
    columns.update({f"param:{k}": identifier("params", k) for k in runs["param_keys"]})
    columns.update({f"metric:{k}": identifier("metrics", k) for k in runs["metric_keys"]})
    keep = {k: v for k, v in request.query_params.items() if k not in ("order_by", "page_token", "back")}
    links = {}
    for column, key in columns.items():
        if key is None:
            continue
        active = current_key.strip() == key
        descending = active and direction.upper() != "DESC"
        order = [key + (" DESC" if descending else "")]
        if study and column.startswith("metric:"):
            order.insert(0, state_key)
        url = request.url.path + "?" + urllib.parse.urlencode({**keep, "order_by": ", ".join(order)})
        links[column] = {"url": url, "sort": ("descending" if direction.upper() == "DESC" else "ascending")
                         if active else ""}
    return links


async def to_dashboard(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=302, headers=COMMON_HEADERS)


def routes(stubs: Mapping[str, Any], options: Any = None) -> list[BaseRoute]:
    """The dashboard's routes, on the gateway's grpc.aio ``stubs`` (filled in by its lifespan)."""
    return Dashboard(stubs, options).routes()
