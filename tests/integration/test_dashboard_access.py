"""The dashboard's pages, its JSON API and /metrics, by role, against `metaprod serve` with
its HTTP port. The routes are found, not listed here: every GET route of the dashboard's
route table (its placeholders filled with a real production, transformation, task and
attempt) and every same-origin link reachable from `/` with an admin token; a page linked
but missing from the table fails. Each route answers every reading
role with its data; without a valid token (none, unknown, revoked) or with a worker token it
shows no data (401, 403, or the login page); /healthz is open."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from metaprod.db import jobs, tasks, tokens
from metaprod.db.models import Transformation
from metaprod.db.session import Database
from metaprod.services.dashboard import ROUTES, Access, WebRoute
from sqlalchemy import select

from tests.integration.system import System, free_port
from tests.integration.test_crash_recovery import serve_apart

PRODUCTION = "dash-secret-name"  # data only an authenticated reader may see
SPEC = {
    "production": PRODUCTION,
    "transformations": [{"name": "gen", "tasks": 2, "command": "true"}],
}


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def get(port: int, path: str, token: str | None) -> Answer:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Answer(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read().decode(errors="replace"))


def routes(port: int, token: str) -> list[str]:
    """Every same-origin page reachable from / by links."""
    seen: set[str] = set()
    todo = ["/"]
    while todo and len(seen) < 200:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        answer = get(port, path, token)
        for link in re.findall(r'href=["\'](/[^"\'#?]*)', answer.body):
            if link not in seen and not link.startswith("//"):
                todo.append(link)
    return sorted(seen)


@dataclass(frozen=True)
class Dashboard:
    port: int
    secrets: dict[str, str | None]
    task_id: int


def pattern(route: WebRoute) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", route.path) + "$")


def table_paths(d: Dashboard) -> dict[str, WebRoute]:
    """Every GET route of the table with its placeholders filled."""
    values = {"name": PRODUCTION, "transformation": "gen", "task_id": str(d.task_id), "attempt": "1"}
    return {re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], r.path): r for r in ROUTES if "GET" in r.methods}


def all_paths(d: Dashboard) -> dict[str, WebRoute]:
    paths = table_paths(d)
    for path in routes(d.port, str(d.secrets["admin"])):
        matching = [r for r in ROUTES if "GET" in r.methods and pattern(r).match(path)]
        assert matching, f"{path} is linked from the dashboard but not in its route table"
        paths.setdefault(path, matching[0])
    return paths


@pytest.fixture
def dashboard(system: System, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dashboard]:
    port = free_port()
    monkeypatch.setenv("METAPROD_HTTP_PORT", str(port))
    database = Database(system.db_url)
    serve_apart(system, database)  # services alone: no agent claims the tasks made below
    spec = tmp_path / "dash.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    system.cli("production", "create", "-f", str(spec))
    try:
        with database.session_scope() as session:
            secrets: dict[str, str | None] = {
                role: tokens.create_token(session=session, name=role, role=role)[1] for role in ("user", "reader")
            }
            secrets["revoked"] = tokens.create_token(session=session, name="revoked", role="reader")[1]
            tokens.revoke_token(session=session, name="revoked")
        # A worker token: that of an attempt claimed here.
        system.cli("production", "start", PRODUCTION)
        secret, task_id = None, 0
        for _ in range(100):
            with database.session_scope() as session:
                claimed = jobs.claim_tasks(session=session, limit=1, max_queued_per_backend={})
                if not claimed:
                    tid = session.scalar(select(Transformation.id).where(Transformation.name == "gen"))
                    assert tid is not None
                    tasks.create_tasks(session=session, transformation_id=tid)
            if claimed:
                secret, task_id = claimed[0].secret, claimed[0].task_id
                break
        secrets["worker"] = secret
    finally:
        database.dispose()
    secrets.update({"admin": system.env()["METAPROD_TOKEN"], "none": None, "unknown": "not-a-token"})
    yield Dashboard(port, secrets, task_id)


def test_every_route_answers_a_reader_with_its_data(dashboard: Dashboard) -> None:
    paths = all_paths(dashboard)
    assert "/" in paths and len(paths) > len(table_paths(dashboard))  # the crawl found pages
    wrong = []
    for role in ("admin", "user", "reader"):
        for path in paths:
            answer = get(dashboard.port, path, dashboard.secrets[role])
            if answer.status in (401, 403) or answer.status >= 500:
                wrong.append(f"{path} as {role}: {answer.status}")
    assert not wrong, "\n".join(wrong)
    assert PRODUCTION in get(dashboard.port, "/api/productions", dashboard.secrets["reader"]).body
    assert "metaprod_" in get(dashboard.port, "/metrics", dashboard.secrets["reader"]).body


def test_without_a_reading_token_no_route_shows_data(dashboard: Dashboard) -> None:
    wrong = []
    for path, route in all_paths(dashboard).items():
        for role in ("none", "unknown", "revoked", "worker"):
            answer = get(dashboard.port, path, dashboard.secrets[role])
            if route.access is Access.OPEN:
                ok = answer.status == 200 and PRODUCTION not in answer.body
            else:
                login_page = answer.status == 401 and "login" in answer.body.lower()
                ok = PRODUCTION not in answer.body and (answer.status in (401, 403) or login_page)
            if not ok:
                wrong.append(f"{path} as {role}: {answer.status}")
    assert not wrong, "\n".join(wrong)
    assert get(dashboard.port, "/healthz", None).status == 200
