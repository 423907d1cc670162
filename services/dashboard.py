"""The web dashboard, its JSON API and Prometheus /metrics: a Starlette app served by uvicorn
beside the gRPC server (on `--http-port`).

Every route and who may open it is in one table, ROUTES: `open` routes (/healthz, the login
page) answer anyone; `read` routes (every page and the JSON API) need a token that may read
(admin, user, reader) as `Authorization: Bearer ...` or in the session cookie the login page
sets; `metrics` (/metrics) needs one too unless `--metrics-open`. Without one, pages answer
401 with the login form and the API 401, and neither shows any data.

Pages poll their JSON API (`/api/...` of the same path and query) every few seconds and swap
the live parts in place: no reload, and every view (filters, pages of files) is a link.
Summaries of all productions come from a few grouped queries cached for a few seconds, shared
by the pages and /metrics (db.monitoring), never from a scan per request."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, quote, urlencode

import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from metaprod.core.auth import SYSTEM, Principal, Role
from metaprod.core.errors import DomainError, NotFound, Unauthenticated
from metaprod.core.progress import ProductionProgress, TransformationProgress
from metaprod.core.rates import Point, combine, eta_seconds, format_eta, per_minute, rates, window_start, work_units
from metaprod.core.statuses import FileStatus, ProductionStatus, TaskStatus
from metaprod.db import agents_status, monitoring, production_page, productions, transformations
from metaprod.db.models import Production, ProductionEvent, Task, Transformation, utcnow
from metaprod.db.session import Database
from metaprod.services import metrics_text, svg
from metaprod.services.auth import Authenticator
from metaprod.services.metrics import LATENCY_BUCKETS, PROCESS_REGISTRY
from metaprod.services.tls import ServerTls
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "metaprod_session"
COOKIE_SECONDS = 12 * 3600
# How long the all-productions summary (pages and /metrics) and one production's counts are reused.
SUMMARY_TTL = 5.0
PRODUCTION_TTL = 2.0
# Throughput is measured over this window.
RATE_WINDOW = timedelta(minutes=10)
PAGE_SIZE = 100
PRODUCTIONS_PER_PAGE = 200
LOG_SHOWN_BYTES = 64 * 1024
POLL_SECONDS = 3

T = TypeVar("T")


class Access(StrEnum):
    OPEN = "open"  # anyone (health, login)
    READ = "read"  # a token that may read: admin, user, reader
    METRICS = "metrics"  # as READ, unless --metrics-open


class Kind(StrEnum):
    PAGE = "page"  # HTML: without a token, the login form (401)
    API = "api"  # JSON or text: without a token, 401


@dataclass(frozen=True)
class WebRoute:
    path: str
    endpoint: str  # the name of a Dashboard method
    access: Access
    kind: Kind
    methods: tuple[str, ...] = ("GET",)


# Every route of the dashboard and who may open it: the one place authorization is decided.
ROUTES: tuple[WebRoute, ...] = (
    WebRoute("/healthz", "healthz", Access.OPEN, Kind.API),
    WebRoute("/login", "login", Access.OPEN, Kind.PAGE, ("GET", "POST")),
    WebRoute("/logout", "logout", Access.OPEN, Kind.PAGE, ("POST",)),
    WebRoute("/", "productions_page", Access.READ, Kind.PAGE),
    WebRoute("/productions/{name}", "production_page", Access.READ, Kind.PAGE),
    WebRoute("/productions/{name}/transformations/{transformation}", "transformation_page", Access.READ, Kind.PAGE),
    WebRoute("/tasks/{task_id:int}", "task_page", Access.READ, Kind.PAGE),
    WebRoute("/tasks/{task_id:int}/attempts/{attempt:int}/log", "attempt_log", Access.READ, Kind.API),
    WebRoute("/agents", "agents_page", Access.READ, Kind.PAGE),
    WebRoute("/api/productions", "productions_api", Access.READ, Kind.API),
    WebRoute("/api/productions/{name}", "production_api", Access.READ, Kind.API),
    WebRoute("/api/productions/{name}/transformations/{transformation}", "transformation_api", Access.READ, Kind.API),
    WebRoute("/api/tasks/{task_id:int}", "task_api", Access.READ, Kind.API),
    WebRoute("/api/agents", "agents_api", Access.READ, Kind.API),
    WebRoute("/metrics", "metrics", Access.METRICS, Kind.API),
)


def may_open(route: WebRoute, principal: Principal | None, *, metrics_open: bool) -> bool:
    """The authorization rule of ROUTES (tests enumerate routes and roles through it)."""
    if route.access is Access.OPEN or (route.access is Access.METRICS and metrics_open):
        return True
    return principal is not None and principal.role in (Role.ADMIN, Role.USER, Role.READER)


class TTLCache(Generic[T]):
    """Values reused for `ttl` seconds. A stale value is still served while one thread
    recomputes it (pages never wait for a refresh once there is a value)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[Any, tuple[float, T]] = {}
        self._refreshing: set[Any] = set()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
            if hit is not None and key in self._refreshing:
                return hit[1]
            self._refreshing.add(key)
        try:
            if hit is not None:
                threading.Thread(target=self._refresh, args=(key, compute), daemon=True).start()
                return hit[1]
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
                if len(self._values) > 2000:
                    self._values.pop(next(iter(self._values)))
            return value
        finally:
            if hit is None:
                with self._lock:
                    self._refreshing.discard(key)

    def fresh(self, key: Any) -> T | None:
        """The value if it is fresh (never computes, never starts a refresh)."""
        with self._lock:
            hit = self._values.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def _refresh(self, key: Any, compute: Callable[[], T]) -> None:
        try:
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
        except Exception:
            log.exception("dashboard summary refresh failed")
        finally:
            with self._lock:
                self._refreshing.discard(key)


def _pct(value: float) -> str:
    return f"{value:.0f}" if value in (0, 100) else f"{value:.1f}"


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


class Dashboard:
    def __init__(self, database: Database, authenticator: Authenticator, *, metrics_open: bool = False) -> None:
        self.database = database
        self.authenticator = authenticator
        self.metrics_open = metrics_open
        self.summary: TTLCache[monitoring.Overview] = TTLCache(SUMMARY_TTL)
        self.agent_rows: TTLCache[list[monitoring.AgentRow]] = TTLCache(SUMMARY_TTL)
        self.per_production: TTLCache[Any] = TTLCache(PRODUCTION_TTL)
        # The productions page without the summary: the productions, and each page's rows.
        self.infos: TTLCache[list[production_page.ProductionInfo]] = TTLCache(SUMMARY_TTL)
        self.page_rows: TTLCache[list[monitoring.ProductionRow]] = TTLCache(SUMMARY_TTL)
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.globals.update(colours=svg.STATUS_COLOURS, pct=_pct, quote=quote, poll_seconds=POLL_SECONDS)
        # What /metrics reads from the database: rendered with the summary, and reused as long
        # (tens of thousands of series at 1,000 productions take a while to format).
        self.database_registry = CollectorRegistry(auto_describe=True)
        self.database_registry.register(_DatabaseCollector(self))  # type: ignore[arg-type]
        self.exposition: TTLCache[bytes] = TTLCache(SUMMARY_TTL)
        self.registry = CollectorRegistry(auto_describe=True)
        self.attempts = _AttemptHistograms(database, self.registry)

    # --- plumbing ------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route(r.path, self._guard(r), methods=list(r.methods)) for r in ROUTES])

    def _guard(self, route: WebRoute) -> Callable[[Request], Response]:
        handler: Callable[[Request], Response] = getattr(self, route.endpoint)

        def guarded(request: Request) -> Response:
            principal = self.principal(request)
            if not may_open(route, principal, metrics_open=self.metrics_open):
                return self._refuse(route, request, principal)
            request.state.principal = principal
            try:
                return handler(request)
            except NotFound as exc:
                return self._error(route, request, 404, str(exc))
            except DomainError as exc:
                return self._error(route, request, 400, str(exc))
            except Exception:
                log.exception("dashboard: %s %s failed", request.method, request.url.path)
                return self._error(route, request, 500, "internal error (see the server's log)")

        return guarded

    def principal(self, request: Request) -> Principal | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer" and value.strip()
        secret = value.strip() if bearer else request.cookies.get(COOKIE) or None
        if not secret:
            return None
        try:
            return self.authenticator.resolve(secret)
        except Unauthenticated:
            return None

    def _refuse(self, route: WebRoute, request: Request, principal: Principal | None) -> Response:
        if principal is not None:
            message = f"token {principal.name!r} ({principal.role}) may not read the dashboard"
            return self._error(route, request, 403, message)
        if route.kind is Kind.PAGE:
            return self._login_form(request, status=401)
        return JSONResponse(
            {"error": "unauthenticated: send Authorization: Bearer TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def _error(self, route: WebRoute, request: Request, status: int, message: str) -> Response:
        if route.kind is Kind.PAGE:
            return self._page("error.html", request, status=status, message=message, title=str(status))
        return JSONResponse({"error": message}, status_code=status)

    def _page(self, template: str, request: Request, *, status: int = 200, **context: Any) -> HTMLResponse:
        principal = getattr(request.state, "principal", None)
        html = self.env.get_template(template).render(request=request, principal=principal, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def _fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def _read(self, work: Callable[[Session], T]) -> T:
        with self.database.session_scope(readonly=True) as session:
            return work(session)

    def overview(self) -> monitoring.Overview:
        return self.summary.get("all", lambda: self._read(lambda s: monitoring.overview(session=s)))

    def production_infos(self) -> list[production_page.ProductionInfo]:
        return self.infos.get("infos", lambda: self._read(lambda s: production_page.production_infos(session=s)))

    def dashboard_agents(self) -> list[monitoring.AgentRow]:
        return self.agent_rows.get("agents", lambda: self._read(lambda s: monitoring.agents(session=s)))

    # --- open routes ---------------------------------------------------------------------

    def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._login_form(request, next_path=request.query_params.get("next", "/"))
        form = parse_qs(_body(request))
        secret = (form.get("token") or [""])[0].strip()
        next_path = _safe_next((form.get("next") or ["/"])[0])
        try:
            principal = self.authenticator.resolve(secret)
        except Unauthenticated as exc:
            return self._login_form(request, status=401, next_path=next_path, message=str(exc))
        if principal.role not in (Role.ADMIN, Role.USER, Role.READER):
            return self._login_form(
                request, status=403, next_path=next_path, message=f"a {principal.role} token may not read"
            )
        log.info("dashboard: %s (%s) logged in", principal.owner, principal.role)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE,
            secret,
            max_age=COOKIE_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def _login_form(self, request: Request, *, status: int = 200, next_path: str = "/", message: str = "") -> Response:
        html = self.env.get_template("login.html").render(
            request=request, principal=None, next_path=_safe_next(next_path), message=message, title="log in"
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # --- productions ---------------------------------------------------------------------

    def _productions(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        status, owner, name = q.get("status", ""), q.get("owner", ""), q.get("name", "")
        cleaned = q.get("cleaned", "") in ("1", "on", "true")
        page = max(1, _int(q.get("page"), 1))
        # The summary when at hand (/metrics or another page computed it); otherwise every
        # production's own attributes and the progress of this page's rows only (a fraction of
        # the counters: db.production_page).
        summary = self.summary.fresh("all")
        infos: Sequence[production_page.ProductionInfo | monitoring.ProductionRow]
        if summary is not None:
            infos = summary.productions
            rows = production_page.filter_productions(
                summary.productions, status=status, owner=owner, name=name, include_cleaned=cleaned
            )
            shown = rows[(page - 1) * PRODUCTIONS_PER_PAGE : page * PRODUCTIONS_PER_PAGE]
            total = len(rows)
        else:
            infos = listed = self.production_infos()
            matching = production_page.filter_productions(
                listed, status=status, owner=owner, name=name, include_cleaned=cleaned
            )
            some = matching[(page - 1) * PRODUCTIONS_PER_PAGE : page * PRODUCTIONS_PER_PAGE]
            shown = self.page_rows.get(
                tuple(r.id for r in some),
                lambda: self._read(lambda s: production_page.with_progress(session=s, infos=some)),
            )
            total = len(matching)
        pages = max(1, -(-total // PRODUCTIONS_PER_PAGE))
        counts: dict[str, int] = {}
        for r in infos:
            counts[r.status] = counts.get(r.status, 0) + 1
        filters = {"status": status, "owner": owner, "name": name, "cleaned": "1" if cleaned else ""}
        return {
            "rows": shown,
            "total": total,
            "page": page,
            "pages": pages,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "status_counts": counts,
            "statuses": [s.value for s in ProductionStatus],
            "owners": sorted({r.owner for r in infos}),
        }

    def productions_page(self, request: Request) -> Response:
        data = self._productions(request)
        live = self._fragment("_productions.html", **data)
        return self._page("productions.html", request, live=live, title="productions", **data)

    def productions_api(self, request: Request) -> Response:
        data = self._productions(request)
        return JSONResponse(
            {
                "productions": [_production_json(r.progress, r.owner) for r in data["rows"]],
                "total": data["total"],
                "page": data["page"],
                "pages": data["pages"],
                "fragments": {"live": self._fragment("_productions.html", **data)},
            }
        )

    # --- one production ------------------------------------------------------------------

    def _production(self, name: str, hours: float) -> dict[str, Any]:
        def compute(session: Session) -> dict[str, Any]:
            production = productions.get_production(session=session, name=name)
            progress = productions.production_progress(session=session, name=name, principal=SYSTEM)
            ids = [t.id for t in productions.transformations_of(session=session, production=production)]
            edges = monitoring.links(session=session, production_id=production.id)
            now = utcnow()
            since = now - timedelta(hours=hours)
            series = monitoring.sample_series(
                session=session, transformation_ids=ids, since=min(since, now - RATE_WINDOW)
            )
            events = session.execute(
                select(
                    ProductionEvent.time,
                    ProductionEvent.actor,
                    ProductionEvent.event,
                    ProductionEvent.transformation,
                    ProductionEvent.detail,
                )
                .where(ProductionEvent.production_id == production.id)
                .order_by(ProductionEvent.id.desc())
                .limit(200)
            ).all()
            return {
                "production": {
                    "name": production.name,
                    "owner": production.owner,
                    "description": production.description,
                    "created_at": production.created_at,
                },
                "progress": progress,
                "ids": ids,
                "edges": edges,
                "series": series,
                "events": [tuple(e) for e in events],
                "now": now,
                "since": since,
            }

        raw = self.per_production.get(("production", name, hours), lambda: self._read(compute))
        progress: ProductionProgress = raw["progress"]
        now: datetime = raw["now"]
        rows = []
        nodes = []
        all_points: list[list[Point]] = []
        for tid, t in zip(raw["ids"], progress.transformations, strict=True):
            rate = _rate(t, raw["series"].get(tid, []), now)
            rows.append({"t": t, **rate})
            all_points.append(rate["points"])
            nodes.append(
                svg.Node(
                    t.name,
                    t.status,
                    rate["units"].done,
                    rate["units"].failed,
                    rate["units"].pending,
                    t.percent,
                    t.failed_percent,
                    f"/productions/{quote(progress.name)}/transformations/{quote(t.name)}",
                )
            )
        total = combine(all_points)
        pending = sum(r["units"].pending for r in rows)
        throughput = sum(r["throughput"] for r in rows)
        history = [p for p in total if p.time >= raw["since"]]
        return {
            **raw,
            "rows": rows,
            "graph": svg.graph(nodes, raw["edges"]),
            "throughput": throughput,
            "eta": format_eta(eta_seconds(pending, throughput)),
            "charts": _charts(history),
            "hours": hours,
        }

    def production_page(self, request: Request) -> Response:
        data = self._production(request.path_params["name"], _hours(request))
        live = self._fragment("_production.html", **data)
        return self._page("production.html", request, live=live, title=data["progress"].name, **data)

    def production_api(self, request: Request) -> Response:
        data = self._production(request.path_params["name"], _hours(request))
        body = _production_json(data["progress"], data["production"]["owner"])
        body.update(
            throughput_per_minute=round(data["throughput"], 3),
            eta=data["eta"],
            links=[list(e) for e in data["edges"]],
            events=[
                {"time": t.isoformat(), "actor": a, "event": e, "transformation": tr, "detail": d}
                for t, a, e, tr, d in data["events"]
            ],
            fragments={"live": self._fragment("_production.html", **data)},
        )
        return JSONResponse(body)

    # --- one transformation --------------------------------------------------------------

    def _transformation(self, request: Request) -> dict[str, Any]:
        name, tname = request.path_params["name"], request.path_params["transformation"]
        q = request.query_params
        file_status, task_status = q.get("files", ""), q.get("tasks", "")
        files_after, tasks_after = _int(q.get("files_after"), 0), _int(q.get("tasks_after"), -1)
        hours = _hours(request)
        for value, enum in ((file_status, FileStatus), (task_status, TaskStatus)):
            if value and value not in {s.value for s in enum}:
                raise NotFound(f"unknown status {value!r}")

        def compute(session: Session) -> dict[str, Any]:
            production = productions.get_production(session=session, name=name)
            t = transformations.get_transformation(session=session, production=production.name, name=tname)
            files, tasks = transformations.status_counts(session=session, transformation=t)
            progress = TransformationProgress(
                name=t.name,
                status=t.status,
                files={s.value: files.get(s.value, 0) for s in FileStatus},
                tasks={s.value: tasks.get(s.value, 0) for s in TaskStatus},
                task_count=t.task_count if t.input_query is None else None,
                skipped_files=transformations.skipped_count(session=session, transformation=t),
            )
            now = utcnow()
            since = now - timedelta(hours=hours)
            series = monitoring.sample_series(
                session=session, transformation_ids=[t.id], since=min(since, now - RATE_WINDOW)
            )
            file_page = monitoring.files_page(
                session=session, transformation_id=t.id, status=file_status, after=files_after, limit=PAGE_SIZE
            )
            task_page = monitoring.tasks_page(
                session=session, transformation_id=t.id, status=task_status, after=tasks_after, limit=PAGE_SIZE
            )
            failed = monitoring.failed_tasks(session=session, transformation_id=t.id)
            parents = productions.parent_names(session=session, transformation_ids=[t.id]).get(t.id, [])
            return {
                "production": production.name,
                "transformation": {"name": t.name, "max_attempts": t.max_attempts},
                "parents": parents,
                "progress": progress,
                "points": series.get(t.id, []),
                "files_page": file_page,
                "tasks_page": [_task_json(k) for k in task_page.rows],
                "tasks_next": task_page.next_after,
                "failed": [_task_json(k) for k in failed],
                "now": now,
                "since": since,
                "command": t.command,
                "backend": t.backend,
            }

        key = ("transformation", name, tname, file_status, task_status, files_after, tasks_after, hours)
        raw = self.per_production.get(key, lambda: self._read(compute))
        rate = _rate(raw["progress"], raw["points"], raw["now"])
        base = {"files": file_status, "tasks": task_status, "hours": "" if hours == 24 else str(hours)}
        return {
            **raw,
            **rate,
            "charts": _charts([p for p in rate["points"] if p.time >= raw["since"]]),
            "file_statuses": [s.value for s in FileStatus],
            "task_statuses": [s.value for s in TaskStatus],
            "file_status": file_status,
            "task_status": task_status,
            "link": lambda **changes: "?" + urlencode({k: v for k, v in {**base, **changes}.items() if v != ""}),
        }

    def transformation_page(self, request: Request) -> Response:
        data = self._transformation(request)
        live = self._fragment("_transformation.html", **data)
        return self._page("transformation.html", request, live=live, title=data["transformation"]["name"], **data)

    def transformation_api(self, request: Request) -> Response:
        data = self._transformation(request)
        p: TransformationProgress = data["progress"]
        return JSONResponse(
            {
                "production": data["production"],
                "name": p.name,
                "status": p.status,
                "percent": p.percent,
                "failed_percent": p.failed_percent,
                "files": p.files,
                "tasks": p.tasks,
                "skipped_files": p.skipped_files,
                "throughput_per_minute": round(data["throughput"], 3),
                "eta": data["eta"],
                "failed_tasks": data["failed"],
                "file_page": [
                    {"id": i, "lfn": lfn, "status": st, "errors": n} for i, lfn, st, n in data["files_page"].rows
                ],
                "files_next_after": data["files_page"].next_after,
                "task_page": data["tasks_page"],
                "tasks_next_after": data["tasks_next"],
                "fragments": {"live": self._fragment("_transformation.html", **data)},
            }
        )

    # --- one task ------------------------------------------------------------------------

    def _task(self, task_id: int) -> dict[str, Any]:
        def compute(session: Session) -> dict[str, Any]:
            task = session.get(Task, task_id)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            t = session.get_one(Transformation, task.transformation_id)
            production = session.get_one(Production, t.production_id)
            attempts = []
            for a in monitoring.attempts_of(session=session, task_id=task_id):
                _, text = transformations.task_log(
                    session=session, task_id=task_id, attempt=a.attempt, principal=SYSTEM
                )
                attempts.append(
                    {
                        "attempt": a.attempt,
                        "status": a.status,
                        "backend": a.backend,
                        "backend_job_id": a.backend_job_id,
                        "exit_code": a.exit_code,
                        "error": a.error,
                        "submitted_at": _iso(a.submitted_at),
                        "started_at": _iso(a.started_at),
                        "finished_at": _iso(a.finished_at),
                        "heartbeat_at": _iso(a.heartbeat_at),
                        "wait_seconds": _seconds(a.submitted_at, a.started_at),
                        "run_seconds": _seconds(a.started_at, a.finished_at),
                        "log": text[-LOG_SHOWN_BYTES:],
                        "log_cut": len(text) > LOG_SHOWN_BYTES,
                    }
                )
            return {
                "task": _task_json(task),
                "production": production.name,
                "transformation": t.name,
                "inputs": monitoring.task_inputs(session=session, task_id=task_id),
                "attempts": attempts,
                "max_attempts": t.max_attempts,
            }

        result: dict[str, Any] = self.per_production.get(("task", task_id), lambda: self._read(compute))
        return result

    def task_page(self, request: Request) -> Response:
        data = self._task(request.path_params["task_id"])
        live = self._fragment("_task.html", **data)
        return self._page("task.html", request, live=live, title=f"task {data['task']['id']}", **data)

    def task_api(self, request: Request) -> Response:
        data = self._task(request.path_params["task_id"])
        return JSONResponse({**data, "fragments": {"live": self._fragment("_task.html", **data)}})

    def attempt_log(self, request: Request) -> Response:
        task_id, attempt = request.path_params["task_id"], request.path_params["attempt"]
        _, text = self._read(
            lambda s: transformations.task_log(session=s, task_id=task_id, attempt=attempt, principal=SYSTEM)
        )
        return PlainTextResponse(text)

    # --- agents --------------------------------------------------------------------------

    def _agents(self) -> dict[str, Any]:
        rows = self.dashboard_agents()
        view = self.overview()
        now = utcnow()
        agents = []
        for a in rows:
            alive = not a.stopped and now - a.last_beat < agents_status.ALIVE_WINDOW
            agents.append(
                {
                    "name": a.name,
                    "host": a.host,
                    "pid": a.pid,
                    "started_at": _iso(a.started_at),
                    "last_beat": _iso(a.last_beat),
                    "last_beat_age": _age(a.last_beat, now),
                    "alive": alive,
                    "stopped": a.stopped,
                    "status": a.last_status,
                    "cycles": a.cycles,
                    "mean_cycle_seconds": a.cycle_seconds_total / a.cycles if a.cycles else 0.0,
                    "last_cycle_seconds": a.last_cycle_seconds,
                }
            )
        tasks, files = view.tasks_by_status, view.files_by_status
        backlog = {
            "files waiting for a task (Unused)": files.get(FileStatus.UNUSED, 0),
            "tasks waiting for a job (Created)": tasks.get(TaskStatus.CREATED, 0),
            "tasks with a job (Submitted, Running)": tasks.get(TaskStatus.SUBMITTED, 0)
            + tasks.get(TaskStatus.RUNNING, 0),
            "reports waiting for the finalize agent": view.reported_attempts,
        }
        return {"agents": agents, "backlog": backlog}

    def agents_page(self, request: Request) -> Response:
        data = self._agents()
        live = self._fragment("_agents.html", **data)
        return self._page("agents.html", request, live=live, title="agents", **data)

    def agents_api(self, request: Request) -> Response:
        data = self._agents()
        return JSONResponse({**data, "fragments": {"live": self._fragment("_agents.html", **data)}})

    # --- metrics -------------------------------------------------------------------------

    def metrics(self, request: Request) -> Response:
        self.attempts.update()
        cached = self.exposition.get("metrics", self._database_metrics)
        body = cached + generate_latest(self.registry) + generate_latest(PROCESS_REGISTRY)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    def _database_metrics(self) -> bytes:
        return metrics_text.summary_exposition(self.overview()) + generate_latest(self.database_registry)


def _body(request: Request) -> str:
    # A form post is small; read it synchronously from the threadpool endpoint.
    import anyio.from_thread

    raw: bytes = anyio.from_thread.run(request.body)
    return raw.decode(errors="replace")


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _hours(request: Request) -> float:
    try:
        hours = float(request.query_params.get("hours", "24"))
    except ValueError:
        hours = 24.0
    return min(max(hours, 0.1), 24.0 * 30)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "index": task.task_index,
        "status": task.status,
        "attempt": task.attempt,
        "backend": task.backend,
        "last_error": task.last_error,
        "updated_at": _iso(task.updated_at),
    }


def _production_json(progress: ProductionProgress, owner: str) -> dict[str, Any]:
    """The shape of `production progress --json`, plus the owner."""
    return {
        "name": progress.name,
        "status": progress.status,
        "owner": owner,
        "percent": progress.percent,
        "failed_percent": progress.failed_percent,
        "skipped_files": progress.skipped_files,
        "transformations": [
            {
                "name": t.name,
                "status": t.status,
                "percent": t.percent,
                "failed_percent": t.failed_percent,
                "files": t.files,
                "tasks": t.tasks,
                "skipped_files": t.skipped_files,
            }
            for t in progress.transformations
        ],
    }


def _rate(progress: TransformationProgress, points: list[Point], now: datetime) -> dict[str, Any]:
    """Units, throughput (units done per minute over the last RATE_WINDOW, from the stored
    samples and the current counts) and the points with the current state last."""
    units = work_units(progress)
    t = progress.tasks
    current = Point(
        now,
        units.done,
        units.failed,
        units.pending,
        t.get(TaskStatus.CREATED, 0),
        t.get(TaskStatus.SUBMITTED, 0) + t.get(TaskStatus.RUNNING, 0),
    )
    throughput = per_minute(window_start(points, now, RATE_WINDOW), current)
    return {
        "units": units,
        "throughput": throughput,
        "eta": format_eta(eta_seconds(units.pending, throughput)),
        "points": [*points, current],
    }


def _charts(points: list[Point]) -> list[str]:
    r = rates(points)
    return [
        svg.line_chart(
            "throughput", r.times, [svg.Series("done/min", r.throughput, svg.DONE_COLOUR)], unit="per minute"
        ),
        svg.line_chart(
            "failures", r.times, [svg.Series("failed/min", r.failures, svg.FAILED_COLOUR)], unit="per minute"
        ),
        svg.line_chart("backlog", r.times, [svg.Series("pending", r.backlog, "#38bdf8")]),
    ]


class _DatabaseCollector:
    """The agents' heartbeats on /metrics (the summary's families: services.metrics_text)."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        yield from self._agents()

    def _agents(self) -> Any:
        rows = self.dashboard.dashboard_agents()
        labels = ["agent", "host", "pid"]
        cycles = CounterMetricFamily("metaprod_agent_cycles", "Agent cycles run", labels=labels)
        seconds = CounterMetricFamily("metaprod_agent_cycle_seconds", "Time spent in agent cycles", labels=labels)
        last = GaugeMetricFamily(
            "metaprod_agent_last_cycle_seconds", "Duration of the agent's last cycle", labels=labels
        )
        beat = GaugeMetricFamily(
            "metaprod_agent_last_beat_timestamp_seconds", "Last heartbeat (Unix time)", labels=labels
        )
        up = GaugeMetricFamily("metaprod_agent_up", "1 while the agent beats", labels=labels)
        now = utcnow()
        for a in rows:
            key = [a.name, a.host, str(a.pid)]
            alive = not a.stopped and now - a.last_beat < agents_status.ALIVE_WINDOW
            if a.stopped and now - a.last_beat > timedelta(hours=1):
                continue  # long-stopped processes leave the metrics
            cycles.add_metric(key, a.cycles)
            seconds.add_metric(key, a.cycle_seconds_total)
            last.add_metric(key, a.last_cycle_seconds)
            beat.add_metric(key, a.last_beat.timestamp())
            up.add_metric(key, 1.0 if alive else 0.0)
        yield from (cycles, seconds, last, beat, up)


class _AttemptHistograms:
    """Histograms of task durations and of the wait from a file's registration to the start of
    its first job, fed from the attempts that finished or started since the last look (indexed
    by time, so a scrape reads only what is new). Counted from this process's start."""

    # Rows are read up to this long ago: a transaction that stamped a time may commit later.
    LAG = timedelta(seconds=5)
    EVERY = 5.0

    def __init__(self, database: Database, registry: CollectorRegistry) -> None:
        self.database = database
        self.durations = Histogram(
            "metaprod_task_duration_seconds",
            "How long task attempts ran",
            ["outcome"],
            buckets=(*LATENCY_BUCKETS[4:], 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0),
            registry=registry,
        )
        self.waits = Histogram(
            "metaprod_file_to_job_start_seconds",
            "From a file's registration to the start of the first job that took it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0),
            registry=registry,
        )
        self._mark = utcnow() - self.LAG
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self) -> None:
        with self._lock:
            if time.monotonic() - self._last < self.EVERY:
                return
            self._last = time.monotonic()
            upto = utcnow() - self.LAG
            after = self._mark
            try:
                with self.database.session_scope(readonly=True) as session:
                    durations = monitoring.durations_between(session=session, after=after, upto=upto)
                    waits = monitoring.file_waits_between(session=session, after=after, upto=upto)
            except Exception:
                log.exception("could not read the attempts for the histograms")
                return
            self._mark = upto
            for outcome, seconds in durations:
                self.durations.labels(outcome.lower()).observe(seconds)
            for seconds in waits:
                self.waits.observe(seconds)


class DashboardServer:
    """uvicorn in a thread of its own."""

    def __init__(self, dashboard: Dashboard, *, host: str, port: int, tls: ServerTls | None = None) -> None:
        ssl_options: dict[str, Any] = {}
        if tls is not None:
            ssl_options = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
            if tls.client_ca_file is not None:
                ssl_options.update(ssl_ca_certs=str(tls.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(
            dashboard.app(),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            **ssl_options,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="dashboard", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the dashboard's HTTP server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def start_dashboard(
    database: Database,
    authenticator: Authenticator,
    *,
    host: str,
    port: int,
    metrics_open: bool = False,
    tls: ServerTls | None = None,
) -> DashboardServer:
    server = DashboardServer(
        Dashboard(database, authenticator, metrics_open=metrics_open), host=host, port=port, tls=tls
    )
    server.start()
    log.info("dashboard on %s://%s:%s/", "https" if tls else "http", host, port)
    return server
