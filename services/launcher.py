"""Server-side CLI commands plugged into `metaprod` (entry points "metaprod.commands"):
`metaprod serve` (the services alone) and `metaprod db upgrade|current`."""

from __future__ import annotations

import argparse
import fcntl
import gc
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import grpc
from metaprod.core.errors import FailedPrecondition
from metaprod.db import tokens
from metaprod.db.integrity import check_integrity, sqlite_file
from metaprod.db.migrate import current_revision, ensure_at_head, head_revision, upgrade
from metaprod.db.session import Database, sqlite_url
from metaprod.services import config
from metaprod.services.app import build_server
from metaprod.services.datadir import make_files_private, make_private, private_umask
from metaprod.services.server import MetaprodServer
from metaprod.services.tls import ServerTls, check_listen_address, server_tls
from sqlalchemy.engine import make_url

DEFAULT_DATA_DIR = "./metaprod-data"
LOCK_NAME = "up.lock"


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """Options of every server-side command. Their defaults are None: an absent flag leaves the
    setting to the environment, then the configuration file, then the default (services.config)."""
    parser.add_argument("--config", default=None, metavar="FILE", help="TOML settings file (env METAPROD_CONFIG)")
    parser.add_argument(
        "--data-dir", default=None, help="state directory (env METAPROD_DATA_DIR; default ./metaprod-data)"
    )
    parser.add_argument(
        "--db", default=None, help="database URL (env METAPROD_DB; default: SQLite in the data directory)"
    )
    parser.add_argument(
        "--log-level", default=None, type=str.upper, help="DEBUG, INFO, WARNING or ERROR (env METAPROD_LOG_LEVEL)"
    )


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="fsspec URL of the outputs and checkpoints, e.g. s3://bucket/prefix (env METAPROD_STORAGE; "
        "default DIR/storage)",
    )


def storage_of(settings: config.Settings) -> str:
    """Where outputs and checkpoints are stored: --storage, else the agents' storage_url, else DIR/storage."""
    return (
        settings.storage
        or str(settings.agents.get("storage_url") or "")
        or str(settings.data_dir.resolve() / "storage")
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="gRPC port (env METAPROD_PORT; default 50051)")
    parser.add_argument("--host", default=None, help="address to listen on (env METAPROD_HOST; default 127.0.0.1)")
    parser.add_argument(
        "--http-port", type=int, default=None, help="dashboard and metrics port (env METAPROD_HTTP_PORT; 0: none)"
    )
    parser.add_argument(
        "--metrics-open",
        action="store_true",
        default=None,
        help="serve /metrics without a token (env METAPROD_METRICS_OPEN; the dashboard always takes one)",
    )
    parser.add_argument(
        "--tls-cert",
        default=None,
        metavar="FILE",
        help="PEM certificate of the gRPC and HTTP servers (env METAPROD_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key", default=None, metavar="FILE", help="PEM private key of --tls-cert (env METAPROD_TLS_KEY)"
    )
    parser.add_argument(
        "--tls-client-ca",
        default=None,
        metavar="FILE",
        help="require client certificates signed by this CA (env METAPROD_TLS_CLIENT_CA)",
    )
    parser.add_argument(
        "--insecure-listen-anywhere",
        action="store_true",
        default=None,
        help="allow a non-loopback --host without TLS (env METAPROD_INSECURE_LISTEN_ANYWHERE; trusted networks only)",
    )


def add_job_tls_options(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """The TLS of the job wrappers' calls to the services: the CA they trust; for `agents`
    also the client certificate they present (for `up` that is the server's own)."""
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="FILE",
        help="CA the job wrappers trust (env METAPROD_TLS_CA" + ("; default: --tls-cert)" if server else ")"),
    )
    if not server:
        parser.add_argument(
            "--tls-cert",
            default=None,
            metavar="FILE",
            help="client certificate of the job wrappers (env METAPROD_TLS_CERT)",
        )
        parser.add_argument("--tls-key", default=None, metavar="FILE", help="its private key (env METAPROD_TLS_KEY)")


def settings_of(args: argparse.Namespace) -> config.Settings:
    """The command's settings: flags > environment > configuration file > defaults."""
    return config.load(vars(args), getattr(args, "config", None))


def database_url(settings: config.Settings) -> str:
    return settings.db or sqlite_url(settings.data_dir)


def open_database(settings: config.Settings, *, create: bool) -> Database:
    """The database of the settings, migrated to head when `create`; otherwise it must exist
    and be at head (looking at a database never creates one). A damaged database is refused
    (metaprod.db.integrity) before anything reads or writes it."""
    url = database_url(settings)
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        ensure_exists(url, settings.data_dir)
    check_integrity(make_url(url))
    database = Database(url)
    try:
        if create:
            upgrade(database)
        else:
            ensure_at_head(database)
    except BaseException:
        database.dispose()
        raise
    return database


def ensure_exists(url: str, data_dir: Path) -> None:
    """A SQLite database that is not there is an error, not an empty database made on the spot."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).is_file():
        raise FailedPrecondition(
            f"no database at {parsed.database}: `metaprod up --data-dir {data_dir}` or "
            f"`metaprod db upgrade --data-dir {data_dir}` creates one; or give --db URL (or METAPROD_DB)"
        )


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Fail before anything is written when a port is taken (port 0: any free one)."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}; "
                f"is another metaprod running? choose another port with --{'http-' if 'HTTP' in what else ''}port"
            ) from None


class DataDirLock:
    """DIR/up.lock held (fcntl.flock) by the one `up` of a data directory, holding its pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FailedPrecondition(
                f"data directory {self.path.parent} is in use by another `metaprod up` (pid {other}); "
                "stop it first, or give another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


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


def private_state(settings: config.Settings, *, create: bool) -> None:
    """This process creates private files (umask 0o077); the data directory (made when
    `create`) and a SQLite database elsewhere lose any group and other permissions."""
    private_umask()
    make_private(settings.data_dir, create=create)
    path = sqlite_file(make_url(database_url(settings)))
    if path is not None:
        make_files_private([path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")])


def tls_of(settings: config.Settings) -> ServerTls | None:
    """The servers' TLS files, checked, and the listen address allowed by them; one-line
    errors before anything is written."""
    tls = server_tls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    check_listen_address(settings.host, tls, insecure_anywhere=settings.insecure_listen_anywhere)
    return tls


def server_credentials(tls: ServerTls | None) -> grpc.ServerCredentials | None:
    if tls is None:
        return None
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.client_ca, require_client_auth=tls.requires_client_certificate
    )


def start_services(
    database: Database, settings: config.Settings, tls: ServerTls | None = None, storage: str | None = None
) -> MetaprodServer:
    """`storage`: where outputs and checkpoints are (default: storage_of(settings))."""
    server = build_server(
        database,
        address=f"{settings.host}:{settings.port}",
        credentials=server_credentials(tls),
        storage=storage or storage_of(settings),
    )
    server.start()
    if settings.http_port:
        from metaprod.services.dashboard import start_dashboard

        dashboard = start_dashboard(
            database,
            server.context.authenticator,
            host=settings.host,
            port=settings.http_port,
            metrics_open=settings.metrics_open,
            tls=tls,
        )
        server.context.on_close.append(dashboard.stop)
    # What start-up built (modules, the schema, protobuf descriptors) lives as long as the
    # process: out of the collector's reach, a full collection no longer walks it (20-40 ms
    # of a cold summary's time under load, measured by bench_summaries).
    gc.collect()
    gc.freeze()
    return server


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the process finishes what it does, then stops."""
    event = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return event


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # "skipped: maximum number of running instances" is the intended coalescing, not news.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    configure_logging(settings.log_level)
    tls = tls_of(settings)
    ensure_port_free(settings.host, settings.port, "gRPC")
    ensure_port_free(settings.host, settings.http_port, "HTTP dashboard")
    private_state(settings, create=False)
    database = open_database(settings, create=False)
    server = start_services(database, settings, tls)
    print(f"metaprod services on {server.address}", flush=True)
    stop = stop_event()
    stop.wait()
    server.stop()
    database.dispose()
    return 0


def _db(args: argparse.Namespace) -> int:
    """`db upgrade` migrates to head (creating a SQLite database); `db current` shows the
    revision; `db check` fails unless at head. Only `upgrade` creates anything; every action
    refuses a damaged database."""
    settings = settings_of(args)
    url = database_url(settings)
    if args.action == "upgrade":
        private_state(settings, create=True)
    else:
        ensure_exists(url, settings.data_dir)
    check_integrity(make_url(url))
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


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the gRPC services against a shared database")
    add_database_options(serve)
    add_server_options(serve)
    add_storage_option(serve)
    serve.set_defaults(handler=_serve)
    db = subparsers.add_parser(
        "db", help="database schema: upgrade to head, show the revision, check (at head, not damaged)"
    )
    db.add_argument("action", choices=["upgrade", "current", "check"])
    add_database_options(db)
    db.set_defaults(handler=_db)
