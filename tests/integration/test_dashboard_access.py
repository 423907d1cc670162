"""The dashboard's pages, its JSON API and /metrics, by role, against `metaprod serve` with
its HTTP port. The routes are found, not listed: every same-origin link reachable from `/`
with an admin token, plus the API and metrics endpoints. Each route answers every reading
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
from sqlalchemy import select

from tests.integration.system import System, free_port
from tests.integration.test_crash_recovery import serve_apart

API_ROUTES = ["/api/productions", "/metrics"]
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
    """Every same-origin page reachable from / by links, and the API endpoints."""
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
    return sorted(seen | set(API_ROUTES))


@dataclass(frozen=True)
class Dashboard:
    port: int
    secrets: dict[str, str | None]


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
        secret = None
        for _ in range(100):
            with database.session_scope() as session:
                claimed = jobs.claim_tasks(session=session, limit=1, max_queued_per_backend={})
                if not claimed:
                    tid = session.scalar(select(Transformation.id).where(Transformation.name == "gen"))
                    assert tid is not None
                    tasks.create_tasks(session=session, transformation_id=tid)
            if claimed:
                secret = claimed[0].secret
                break
        secrets["worker"] = secret
    finally:
        database.dispose()
    secrets.update({"admin": system.env()["METAPROD_TOKEN"], "none": None, "unknown": "not-a-token"})
    yield Dashboard(port, secrets)


def test_every_route_answers_a_reader_with_its_data(dashboard: Dashboard) -> None:
    found = routes(dashboard.port, str(dashboard.secrets["admin"]))
    assert "/" in found
    for role in ("admin", "user", "reader"):
        for path in found:
            answer = get(dashboard.port, path, dashboard.secrets[role])
            assert answer.status == 200, (role, path, answer.status)
    assert PRODUCTION in get(dashboard.port, "/api/productions", dashboard.secrets["reader"]).body
    assert "metaprod_" in get(dashboard.port, "/metrics", dashboard.secrets["reader"]).body


def test_without_a_reading_token_no_route_shows_data(dashboard: Dashboard) -> None:
    found = routes(dashboard.port, str(dashboard.secrets["admin"]))
    wrong = []
    for role in ("none", "unknown", "revoked", "worker"):
        for path in found:
            answer = get(dashboard.port, path, dashboard.secrets[role])
            login_page = answer.status == 200 and "login" in answer.body.lower()
            if PRODUCTION in answer.body or not (answer.status in (401, 403) or login_page):
                wrong.append(f"{path} as {role}: {answer.status}")
    assert not wrong, "\n".join(wrong)
    assert get(dashboard.port, "/healthz", None).status == 200
