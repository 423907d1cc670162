"""The dashboard in a real browser (Debian's chromium driven by Playwright) against `metaprod
up`: from `/`, following links only, a user reaches a failed task's log text; the production
page's SVG names every transformation; the counts on the page equal `production progress
--json`; without a token nothing is shown; /metrics serves every metric the Grafana dashboard
queries; history samples are stored and survive a restart."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from metaprod.db.session import Database
from metaprod.services.auth import Authenticator
from metaprod.services.dashboard import Dashboard, DashboardServer
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.system import System, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SPEC = {
    "production": "dash-study",
    "fields": {"datatype": "str"},
    "transformations": [
        {
            "name": "gen",
            "tasks": 3,
            "max_attempts": 2,
            "command": (
                'if [ "$METAPROD_TASK_INDEX" = 1 ]; then echo "boom: the detector is on fire" >&2; exit 3; fi; '
                "echo event > out-$METAPROD_TASK_INDEX.dat"
            ),
            "outputs": [{"glob": "out-*.dat", "metadata": {"datatype": "sim"}}],
            "output_query": "datatype=sim",
        },
        {
            "name": "reco",
            "parents": ["gen"],
            "input_query": "datatype=sim",
            "group_size": 1,
            "command": "cat $METAPROD_INPUTS > /dev/null; echo reco > reco.dat",
            "outputs": [{"glob": "reco.dat", "metadata": {"datatype": "reco"}}],
            "output_query": "datatype=reco",
        },
    ],
}


def http(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture
def dashboard(system: System, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[System, int]]:
    port = free_port()
    monkeypatch.setenv("METAPROD_HTTP_PORT", str(port))
    system.agent_config = {**system.agent_config, "sample_seconds": 0.5}
    system.up()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    system.cli("production", "create", "-f", str(spec))
    system.cli("production", "start", "dash-study")
    system.wait_for("dash-study", "Partial")
    yield system, port


def browser() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api.sync_playwright()


def test_a_user_follows_links_from_the_start_page_to_a_failed_tasks_log(dashboard: tuple[System, int]) -> None:
    system, port = dashboard
    token = system.env()["METAPROD_TOKEN"]
    progress = system.json("production", "progress", "dash-study")
    with browser() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = chromium.new_page()
            # Without a token: the login form, and no data at all.
            page.goto(f"http://127.0.0.1:{port}/")
            assert "dash-study" not in page.content()
            assert page.locator("input[name=token]").count() == 1
            page.goto(f"http://127.0.0.1:{port}/productions/dash-study")
            assert "dash-study" not in page.locator("main").inner_text()
            # Log in, and land where the user was going.
            page.fill("input[name=token]", token)
            page.click("#login")
            page.wait_for_url(re.compile(r"/productions/dash-study$"))
            page.goto(f"http://127.0.0.1:{port}/")
            # From /, by links only.
            page.click("a[href='/productions/dash-study']")
            page.wait_for_url(re.compile(r"/productions/dash-study$"))
            svg_text = page.locator("#graph svg").text_content() or ""
            for t in SPEC["transformations"]:
                assert t["name"] in svg_text
            assert page.locator("#graph svg a.node").count() == len(SPEC["transformations"])
            # The counts on the page are those of `production progress --json`.
            for t in progress["transformations"]:
                row = page.locator(f"tr[data-transformation='{t['name']}']")
                for kind in ("files", "tasks"):
                    for status, n in t[kind].items():
                        assert row.locator(f"td.{kind} span[data-key='{status}']").inner_text() == f"{status} {n}"
            assert page.locator("#percent").inner_text() == _pct(progress["percent"])
            assert page.locator("#failed-percent").inner_text() == _pct(progress["failed_percent"])
            # Partial is amber, never a full bar over the failures.
            assert "Partial" in page.locator(".cards").first.inner_text()
            page.click("#graph svg a.node[data-status] >> nth=0")
            page.wait_for_url(re.compile(r"/transformations/gen$"))
            failed = page.locator("#failed-tasks a").first
            assert "exited with code 3" in page.locator("#failed-tasks").inner_text()  # the reason is shown
            failed.click()
            page.wait_for_url(re.compile(r"/tasks/\d+$"))
            exit_codes = page.locator("#attempts td.n.err").all_inner_texts()
            assert exit_codes == ["3", "3"]
            logs = page.locator("pre.log").all_inner_texts()
            assert len(logs) == 2 and all("boom: the detector is on fire" in text for text in logs)
            # Live updates: the page polls its JSON API and says so, without a reload.
            page.wait_for_function("document.getElementById('live-state').textContent.includes('live')", timeout=15000)
            # The agents page: every agent beats, with its cycles counted.
            page.click("a[href='/agents']")
            agents = page.locator("#agents").inner_text()
            for name in ("input", "tasks", "submit", "monitor", "finalize", "production", "sampler"):
                assert name in agents
        finally:
            chromium.close()


def _pct(value: float) -> str:
    return f"{value:.0f}%" if value in (0, 100) else f"{value:.1f}%"


def test_without_a_token_nothing_is_served_but_health(dashboard: tuple[System, int]) -> None:
    system, port = dashboard
    for path in (
        "/",
        "/productions/dash-study",
        "/agents",
        "/api/productions",
        "/api/productions/dash-study",
        "/metrics",
    ):
        status, body = http(port, path)
        assert status == 401, path
        assert "dash-study" not in body
    assert http(port, "/healthz") == (200, "ok\n")
    status, body = http(port, "/api/productions", system.env()["METAPROD_TOKEN"])
    assert status == 200 and json.loads(body)["productions"][0]["name"] == "dash-study"


def metric_names(exposition: str) -> set[str]:
    """Every sample name /metrics serves (with the _bucket/_sum/_count/_total series)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            if kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def grafana_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "metaprod-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    found = set()
    for expr in exprs:
        found.update(m for m in re.findall(r"\b(metaprod_[a-z0-9_]+)\b", expr))
    return found


def test_every_metric_of_the_grafana_dashboard_is_served(dashboard: tuple[System, int]) -> None:
    system, port = dashboard
    status, body = http(port, "/metrics", system.env()["METAPROD_TOKEN"])
    assert status == 200
    served = metric_names(body)
    missing = grafana_metrics() - served
    assert not missing, f"the Grafana dashboard queries metrics /metrics does not serve: {sorted(missing)}"
    # The production percent has no status label (a status change must not split its series).
    assert re.search(r'^metaprod_production_percent\{production="dash-study"\} ', body, re.M)
    assert 'metaprod_production_status{production="dash-study",status="Partial"} 1.0' in body
    assert 'metaprod_tasks_finished_total{outcome="failed",production="dash-study",transformation="gen"} 2.0' in body
    # Valid for Prometheus' own parser, with the values of `production progress --json`.
    families = {f.name: f for f in text_string_to_metric_families(body)}
    progress = system.json("production", "progress", "dash-study")
    files = {
        (s.labels["transformation"], s.labels["status"]): s.value
        for s in families["metaprod_files"].samples
        if s.labels["production"] == "dash-study"
    }
    tasks = {
        (s.labels["transformation"], s.labels["status"]): s.value
        for s in families["metaprod_tasks"].samples
        if s.labels["production"] == "dash-study"
    }
    for t in progress["transformations"]:
        assert {st: files[(t["name"], st)] for st in t["files"]} == t["files"]
        assert {st: tasks[(t["name"], st)] for st in t["tasks"]} == t["tasks"]
    assert families["metaprod_tasks_finished"].type == "counter"


def test_the_productions_page_reads_the_same_with_or_without_the_summary(dashboard: tuple[System, int]) -> None:
    """A dashboard without the all-productions summary at hand reads the page's rows alone
    (db.production_page): the same page and JSON as from the summary."""
    system, _ = dashboard
    token = system.env()["METAPROD_TOKEN"]
    database = Database(system.db_url)
    servers = [
        DashboardServer(Dashboard(database, Authenticator(database)), host="127.0.0.1", port=0) for _ in range(2)
    ]
    try:
        for server in servers:
            server.start()
        ports = [server.server.servers[0].sockets[0].getsockname()[1] for server in servers]
        assert http(ports[1], "/metrics", token)[0] == 200  # computes the summary, reused by its pages
        for path in ("/", "/?status=Partial", "/?owner=nobody", "/?name=DASH", "/api/productions"):
            without, summarised = (http(port, path, token) for port in ports)
            assert without[0] == summarised[0] == 200, path
            assert without[1] == summarised[1], path
        payload = json.loads(http(ports[0], "/api/productions", token)[1])
        assert [p["name"] for p in payload["productions"]] == ["dash-study"]
        progress = system.json("production", "progress", "dash-study")
        assert payload["productions"][0]["percent"] == progress["percent"]
        assert [t["files"] for t in payload["productions"][0]["transformations"]] == [
            t["files"] for t in progress["transformations"]
        ]
    finally:
        for server in servers:
            server.stop()
        database.dispose()


def test_history_samples_are_stored_and_survive_a_restart(dashboard: tuple[System, int]) -> None:
    system, port = dashboard
    token = system.env()["METAPROD_TOKEN"]
    deadline = time.monotonic() + 30
    while True:
        status, body = http(port, "/productions/dash-study", token)
        if "not enough samples" not in body or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200 and body.count("<polyline") >= 3
    system.stop()
    system.up()
    status, body = http(port, "/productions/dash-study", token)
    assert status == 200 and body.count("<polyline") >= 3


def test_the_grafana_queries_are_parsed() -> None:
    assert {"metaprod_tasks_finished_total", "metaprod_task_duration_seconds_bucket"} <= grafana_metrics()
