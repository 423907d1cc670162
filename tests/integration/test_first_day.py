"""A new user's first day through the real CLI against a real gRPC server: re-imports that
skip what is there, imports that say where to resume, errors that say what to do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from metaprod.clients.cli import main
from metaprod.clients.cli_admin import shown_agents
from metaprod.clients.types import Agent
from metaprod.services import catalog as catalog_service

from tests.integration.system import System

RunningServer = Any  # tests/integration/conftest.py
EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def cli(server: RunningServer, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--address", server.address, "--token", server.admin_token, *args])
    out, err = capsys.readouterr()
    return code, out, err


def lines_file(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_import_skip_existing_and_differing_files(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(server, capsys, "catalog", "field", "add", "run", "int")[0] == 0
    rows = [{"lfn": f"/d/{i}", "size": 10, "checksum": f"c{i}", "metadata": {"run": i}} for i in range(5)]
    first = lines_file(tmp_path / "a.jsonl", rows[:3])
    assert cli(server, capsys, "catalog", "import", first)[0] == 0

    everything = lines_file(tmp_path / "b.jsonl", rows)
    code, _, err = cli(server, capsys, "catalog", "import", everything)
    assert code != 0 and "already in the catalog" in err

    code, out, err = cli(server, capsys, "catalog", "import", everything, "--skip-existing", "--json")
    assert code == 0, err
    assert json.loads(out) == {"registered": 2, "skipped": 3, "attached": 0, "batches": 1}

    changed = [dict(rows[1], metadata={"run": 99})]
    code, _, err = cli(
        server, capsys, "catalog", "import", lines_file(tmp_path / "c.jsonl", changed), "--skip-existing"
    )
    assert code != 0 and "'/d/1' is already in the catalog with a different metadata" in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = cli(server, capsys, "catalog", "show", "/d/1", "--json")
    assert json.loads(out)["metadata"] == {"run": 1}


def test_failed_import_says_the_line_to_resume_from(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_service, "REGISTER_BATCH", 3)  # the server commits three at a time
    assert cli(server, capsys, "catalog", "field", "add", "run", "int")[0] == 0
    rows: list[Any] = [{"lfn": f"/r/{i}", "metadata": {"run": i}} for i in range(10)]
    rows[7] = {"lfn": "/r/7", "metadata": {"run": "seven"}}  # refused by the server
    path = lines_file(tmp_path / "r.jsonl", rows)
    code, _, err = cli(server, capsys, "catalog", "import", path, "--batch-size", "3")
    assert code != 0
    # Batches of three: lines 1-6 are in, the batch of lines 7-9 was refused as a whole.
    assert "resume from line 7" in err and "--from-line 7" in err, err
    rows[7] = {"lfn": "/r/7", "metadata": {"run": 7}}
    lines_file(tmp_path / "r.jsonl", rows)
    code, out, err = cli(server, capsys, "catalog", "import", path, "--from-line", "7", "--json")
    assert code == 0, err
    assert json.loads(out)["registered"] == 4
    code, out, _ = cli(server, capsys, "catalog", "find", "", "--json")
    assert sorted(f["lfn"] for f in json.loads(out)) == sorted(f"/r/{i}" for i in range(10))


def test_bad_line_says_the_line_to_resume_from(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(server, capsys, "catalog", "field", "add", "run", "int")[0] == 0
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "".join(json.dumps({"lfn": f"/b/{i}", "metadata": {"run": i}}) + "\n" for i in range(4)) + "{oops\n"
    )
    code, _, err = cli(server, capsys, "catalog", "import", str(path), "--batch-size", "2")
    assert code != 0
    assert "bad.jsonl:5" in err and "resume from line 5" in err, err


# --- server-side traps, through real `metaprod` processes ---------------------------------

METAPROD = [sys.executable, "-m", "metaprod.clients.cli"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The caller's METAPROD_* settings (a CI run exports ports) would override what a test sets.
    base = {k: v for k, v in os.environ.items() if not k.startswith("METAPROD_")}
    return subprocess.run(
        [*METAPROD, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**base, **(env or {})}
    )


def test_looking_at_a_database_never_creates_one(tmp_path: Path) -> None:
    for args in (("db", "current"), ("db", "check"), ("agents",), ("agents", "--once"), ("serve", "--port", "0")):
        result = run(*args, cwd=tmp_path)
        assert result.returncode != 0, args
        assert "no database at" in result.stderr and "internal error" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "metaprod-data").exists(), args
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0  # the one command that creates
    assert run("db", "current", cwd=tmp_path).stdout.startswith("database at revision")


def test_settings_are_validated_with_their_source(tmp_path: Path) -> None:
    (tmp_path / "metaprod.toml").write_text('port = "x"\n')
    result = run("up", "--config", "metaprod.toml", cwd=tmp_path)
    assert result.returncode != 0 and "setting 'port' (from configuration metaprod.toml)" in result.stderr
    result = run("up", cwd=tmp_path, env={"METAPROD_HTTP_PORT": "99999"})
    assert "setting 'http_port' (from $METAPROD_HTTP_PORT)" in result.stderr
    result = run("up", "--agent-config", '{"poll_second": 1}', cwd=tmp_path)
    assert "unknown agent setting 'poll_second' (did you mean 'poll_seconds'?)" in result.stderr
    result = run("up", "--agent-config", '{"batch_size": "10"}', cwd=tmp_path)
    assert "agent setting 'batch_size': Input should be a valid integer" in result.stderr
    (tmp_path / "metaprod.toml").write_text("[agents]\npoll_seconds = 1\n")
    result = run("up", "--config", "metaprod.toml", "--port", "70000", cwd=tmp_path)  # flags win over the file
    assert "setting 'port' (from --port)" in result.stderr
    assert not (tmp_path / "metaprod-data").exists()


def test_a_second_up_and_a_taken_port_are_refused_before_any_write(system: System, tmp_path: Path) -> None:
    first = system.up()
    other = tmp_path / "other"
    result = run(
        "up", "--data-dir", str(other), "--port", str(system.port), "--db", f"sqlite:///{other}/x.db", cwd=tmp_path
    )
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{system.port}" in result.stderr, result.stderr
    assert not other.exists()  # nothing created, nothing migrated
    result = run("up", "--data-dir", str(system.data_dir), "--port", "0", cwd=tmp_path)
    assert result.returncode != 0, result.stderr
    assert f"in use by another `metaprod up` (pid {first.pid})" in result.stderr, result.stderr
    # The CLI side: a missing task, a mistyped command, a mistyped production, UTC times.
    token = (system.data_dir / "admin.token").read_text().strip()
    env = {"METAPROD_ADDRESS": system.address, "METAPROD_TOKEN": token}
    result = run("task", "log", "9999", cwd=tmp_path, env=env)
    assert result.returncode != 0 and result.stderr.strip() == "metaprod: error: task 9999 does not exist"
    result = run("prodution", "list", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "(did you mean 'production'?)" in result.stderr
    system.cli("production", "create", "-f", str(EXAMPLES / "muon-study.yaml"))
    result = run("production", "show", "muon-studdy", cwd=tmp_path, env=env)
    assert result.returncode == 1 and "(did you mean 'muon-study'?)" in result.stderr, result.stderr
    table = run("agents", "status", cwd=tmp_path, env={**env, "COLUMNS": "200"}).stdout
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table), table


def test_stopped_agents_drop_out_unless_all() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    live = Agent("input", "h", 1, last_beat=now, alive=True)
    recent = Agent("tasks", "h", 2, last_beat=now - timedelta(minutes=2), alive=False)
    old = Agent("submit", "h", 3, last_beat=now - timedelta(hours=2), alive=False)
    assert shown_agents([live, recent, old], all=False, now=now) == [live, recent]
    assert shown_agents([live, recent, old], all=True, now=now) == [live, recent, old]


def test_completion_script() -> None:
    result = subprocess.run([*METAPROD, "completion", "bash"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "register-python-argcomplete" not in result.stderr
    assert "complete" in result.stdout and "metaprod" in result.stdout
