"""The data directory is private (0700, files without group or other permissions), kept so
across restarts; a SQLite database with overwritten pages is refused before anything serves."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.system import System, free_port

METAPROD = [sys.executable, "-m", "metaprod.clients.cli"]


def open_entries(root: Path) -> list[str]:
    """Everything under `root` (itself included) that group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(root)} {oct(stat.S_IMODE(mode))}")
    return found


def sqlite_files(system: System) -> list[Path]:
    """The SQLite database of a system (here outside its data directory) with its -wal/-shm."""
    if not system.db_url.startswith("sqlite"):
        return []
    database = Path(system.db_url.removeprefix("sqlite:///"))
    return [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]


def sqlite_modes(system: System) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in sqlite_files(system)} or {0o600}


def run_chain(system: System, tmp_path: Path, name: str) -> None:
    spec = {
        "production": name,
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 2,
                # A command that makes its output readable by all: stored private all the same.
                "command": "echo $METAPROD_TASK_INDEX > out.txt; chmod 0644 out.txt",
                "outputs": [{"glob": "*.txt", "metadata": {"datatype": name}}],
                "output_query": {"datatype": name},
            }
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    system.cli("production", "create", "-f", str(path))
    system.cli("production", "start", name)
    system.wait_for(name)


def test_the_data_directory_is_private_and_kept_so_across_restarts(system: System, tmp_path: Path) -> None:
    up = system.up()
    run_chain(system, tmp_path, "first")
    data = system.data_dir
    stored = list((data / "storage").rglob("*.txt"))
    assert len(stored) == 2 and list((data / "logs").rglob("*.log")), sorted(data.rglob("*"))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    # The test harness's own process logs (up.log) are made by the test, not by metaprod.
    assert open_entries(data) == [e for e in open_entries(data) if e.startswith("up.log")]
    assert {"admin.token", "up.lock"} <= {p.name for p in data.iterdir()}
    assert sqlite_modes(system) == {0o600}

    system.stop()
    up.wait(timeout=30)
    for path in [data, *data.rglob("*")]:  # opened up by hand (a restore, a chmod -R)
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    system.processes.clear()
    for path in sqlite_files(system):
        os.chmod(path, 0o666)
    system.up()
    assert [e for e in open_entries(data) if not e.startswith("up.log")] == []
    assert sqlite_modes(system) == {0o600}
    run_chain(system, tmp_path, "second")  # what comes after the restart is private too
    assert [e for e in open_entries(data) if not e.startswith("up.log")] == []


def test_a_database_with_overwritten_pages_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    system = System(data_dir=data, db_url=f"sqlite:///{data / 'metaprod.db'}")
    try:
        system.up()
        run_chain(system, tmp_path, "before")
    finally:
        system.stop()  # a clean shutdown: the WAL is checkpointed into the file
    database = data / "metaprod.db"
    size = database.stat().st_size
    assert size > 16 * 4096
    with database.open("r+b") as fh:  # pages 3 to 12 overwritten with garbage
        fh.seek(2 * 4096)
        fh.write(os.urandom(10 * 4096))

    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("METAPROD_")}
    for args in (
        ("up", "--data-dir", str(data), "--port", str(port)),
        ("serve", "--data-dir", str(data), "--port", str(port)),
        ("agents", "--data-dir", str(data), "--once"),
        ("db", "check", "--data-dir", str(data)),
    ):
        result = subprocess.run([*METAPROD, *args], capture_output=True, text=True, timeout=120, env=base)
        assert result.returncode != 0, (args, result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"database {database} is damaged" in lines[0] and "restore it from a backup" in lines[0], lines
        with socket.socket() as probe:  # nothing was served
            assert probe.connect_ex(("127.0.0.1", port)) != 0
