"""The web dashboard and Prometheus metrics: one small HTTP server beside the gRPC one.

`/` is a self-refreshing page of every production's progress, `/api/productions` the same
as JSON, `/metrics` Prometheus text (files and tasks by status per transformation)."""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from metaprod.core.auth import SYSTEM
from metaprod.db import productions
from metaprod.db.session import Database
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)


def snapshot(database: Database) -> list[dict[str, Any]]:
    with database.session_scope(readonly=True) as session:
        result = []
        for p in productions.list_productions(session=session):
            progress = productions.production_progress(session=session, name=p.name, principal=SYSTEM)
            result.append(
                {
                    "name": progress.name,
                    "status": progress.status,
                    "percent": progress.percent,
                    "failed_percent": progress.failed_percent,
                    "transformations": [
                        {
                            "name": t.name,
                            "status": t.status,
                            "percent": t.percent,
                            "failed_percent": t.failed_percent,
                            "files": t.files,
                            "tasks": t.tasks,
                        }
                        for t in progress.transformations
                    ],
                }
            )
        return result


class ProgressCollector:
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        files = GaugeMetricFamily(
            "metaprod_files", "Files per transformation and status", labels=["production", "transformation", "status"]
        )
        tasks = GaugeMetricFamily(
            "metaprod_tasks", "Tasks per transformation and status", labels=["production", "transformation", "status"]
        )
        percent = GaugeMetricFamily(
            "metaprod_production_percent", "Production progress", labels=["production", "status"]
        )
        for p in snapshot(self.database):
            percent.add_metric([p["name"], p["status"]], p["percent"])
            for t in p["transformations"]:
                for status, n in t["files"].items():
                    files.add_metric([p["name"], t["name"], status], n)
                for status, n in t["tasks"].items():
                    tasks.add_metric([p["name"], t["name"], status], n)
        yield from (files, tasks, percent)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>metaprod</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;background:#0f172a;color:#e2e8f0}}
h1{{font-weight:600}} .p{{background:#1e293b;border-radius:12px;padding:1rem 1.5rem;margin:1rem 0}}
.bar{{background:#334155;border-radius:6px;height:10px;overflow:hidden}}
.bar{{display:flex}} .fill{{background:#22c55e;height:10px}} .failed{{background:#ef4444;height:10px}}
table{{border-collapse:collapse;width:100%;margin-top:.5rem}} td,th{{padding:.25rem .5rem;text-align:left}}
th{{color:#94a3b8;font-weight:500}} .s{{color:#94a3b8}} .Active{{color:#22d3ee}}
.Completed{{color:#22c55e}} .Partial{{color:#fbbf24}} .Failed{{color:#ef4444}} .Stopped{{color:#c084fc}}
</style></head><body>
<h1>metaprod</h1>{body}</body></html>"""


def render(productions_: list[dict[str, Any]]) -> str:
    parts = []
    for p in productions_:
        rows = "".join(
            f"<tr><td>{html.escape(t['name'])}</td><td class='s {t['status']}'>{t['status']}</td>"
            f"<td>{t['percent']:.0f}%</td><td>{t['failed_percent']:.0f}%</td>"
            f"<td>{' '.join(f'{k} {v}' for k, v in t['files'].items() if v)}</td>"
            f"<td>{' '.join(f'{k} {v}' for k, v in t['tasks'].items() if v)}</td></tr>"
            for t in p["transformations"]
        )
        parts.append(
            f"<div class=p><h2>{html.escape(p['name'])} <span class='s {p['status']}'>{p['status']}</span> "
            f"{p['percent']:.0f}% done, {p['failed_percent']:.0f}% failed</h2>"
            # Done in green, failed in red, pending left empty: failures never fill the bar.
            f"<div class=bar><div class=fill style='width:{p['percent']}%'></div>"
            f"<div class=failed style='width:{p['failed_percent']}%'></div></div>"
            "<table><tr><th>transformation</th><th>status</th><th>done</th><th>failed</th><th>files</th>"
            f"<th>tasks</th></tr>{rows}</table></div>"
        )
    return PAGE.format(body="".join(parts) or "<p>No production yet.</p>")


def start_dashboard(database: Database, *, host: str, port: int) -> ThreadingHTTPServer:
    registry = CollectorRegistry()
    registry.register(ProgressCollector(database))  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                if self.path.startswith("/metrics"):
                    body, ctype = generate_latest(registry), "text/plain; version=0.0.4"
                elif self.path.startswith("/api/productions"):
                    body, ctype = json.dumps(snapshot(database)).encode(), "application/json"
                elif self.path in ("/", "/index.html"):
                    body, ctype = render(snapshot(database)).encode(), "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
            except Exception as exc:
                log.exception("dashboard request failed")
                self.send_error(500, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
