"""Server-side CLI commands plugged into `metaprod` (entry points "metaprod.commands"):
`metaprod serve` (the services alone) and `metaprod db upgrade|current`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from metaprod.db import tokens
from metaprod.db.migrate import current_revision, ensure_at_head, head_revision, upgrade
from metaprod.db.session import Database, sqlite_url
from metaprod.services.app import build_server
from metaprod.services.server import MetaprodServer

DEFAULT_DATA_DIR = "./metaprod-data"


def add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="state directory (default ./metaprod-data)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the data dir)")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=50051, help="gRPC port (default 50051)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=0, help="dashboard and metrics port (0: none)")


def open_database(args: argparse.Namespace, *, create: bool) -> Database:
    data_dir = Path(args.data_dir)
    if create:
        data_dir.mkdir(parents=True, exist_ok=True)
    url = args.db or os.environ.get("METAPROD_DB") or sqlite_url(data_dir)
    database = Database(url)
    if create:
        upgrade(database)
    else:
        ensure_at_head(database)
    return database


def write_admin_token(database: Database, data_dir: Path) -> Path:
    """Make sure DIR/admin.token (mode 0600) holds a valid admin secret."""
    path = data_dir / "admin.token"
    if path.exists():
        with database.session_scope(readonly=True) as session:
            try:
                tokens.authenticate(session=session, secret=path.read_text().strip())
                return path
            except Exception:
                pass  # stale token from another database: make a new one
    with database.session_scope() as session:
        name = "admin"
        existing = {t.name for t in tokens.list_tokens(session=session)}
        n = 1
        while name in existing:
            n += 1
            name = f"admin-{n}"
        _, secret = tokens.create_token(session=session, name=name, role="admin", owner="admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)
    return path


def start_services(database: Database, args: argparse.Namespace) -> MetaprodServer:
    server = build_server(database, address=f"{args.host}:{args.port}")
    server.start()
    if getattr(args, "http_port", 0):
        from metaprod.services.dashboard import start_dashboard

        start_dashboard(database, host=args.host, port=args.http_port)
    return server


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the process finishes what it does, then stops."""
    event = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return event


def configure_logging() -> None:
    level = os.environ.get("METAPROD_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # "skipped: maximum number of running instances" is the intended coalescing, not news.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def _serve(args: argparse.Namespace) -> int:
    configure_logging()
    database = open_database(args, create=False)
    server = start_services(database, args)
    print(f"metaprod services on {server.address}", flush=True)
    stop = stop_event()
    stop.wait()
    server.stop()
    database.dispose()
    return 0


def _db(args: argparse.Namespace) -> int:
    """`db upgrade` migrates to head; `db current` shows the revision; `db check` fails unless at head."""
    url = args.db or os.environ.get("METAPROD_DB") or sqlite_url(_ensure_dir(args.data_dir))
    database = Database(url)
    try:
        if args.action == "upgrade":
            upgrade(database)
        elif args.action == "check":
            ensure_at_head(database)
        print(f"database at revision {current_revision(database)} (head {head_revision(database)})")
    finally:
        database.dispose()
    return 0


def _ensure_dir(path: str) -> Path:
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the gRPC services against a shared database")
    add_database_options(serve)
    add_server_options(serve)
    serve.set_defaults(handler=_serve)
    db = subparsers.add_parser("db", help="database schema: upgrade to head, or show the revision")
    db.add_argument("action", choices=["upgrade", "current", "check"])
    add_database_options(db)
    db.set_defaults(handler=_db)
