"""The CLI end to end: `metaprod` processes against a real server and database (the unit
tests of the CLI use a canned server): catalog import (resume hint, --skip-existing),
set-meta, transformation reset, token create / revoke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from metaprod.core.auth import SYSTEM
from metaprod.db import finalize, jobs, productions, reports, routing, tasks
from metaprod.db.models import Transformation
from sqlalchemy import select, update

from tests.integration.conftest import RunningServer

METAPROD = [sys.executable, "-m", "metaprod.clients.cli"]


def cli(
    server: RunningServer, *args: str, token: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, METAPROD_ADDRESS=server.address, METAPROD_TOKEN=token or server.admin_token)
    result = subprocess.run([*METAPROD, *args], capture_output=True, text=True, env=env, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"metaprod {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def js(server: RunningServer, *args: str, token: str | None = None) -> Any:
    return json.loads(cli(server, *args, "--json", token=token).stdout)


def jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_catalog_import_set_meta_and_skip_existing(server: RunningServer, tmp_path: Path) -> None:
    cli(server, "catalog", "field", "add", "run", "int")
    cli(server, "catalog", "field", "add", "datatype", "str")
    rows = [
        {"lfn": f"/raw/{i}.dat", "size": 10 + i, "checksum": f"c{i}", "metadata": {"run": i, "datatype": "raw"}}
        for i in range(4)
    ]
    bad = [*rows[:2], {"lfn": "/raw/bad.dat", "metadata": {"run": "not a number"}}, *rows[2:]]
    failed = cli(server, "catalog", "import", "--batch-size", "2", jsonl(tmp_path / "bad.jsonl", bad), check=False)
    assert failed.returncode != 0 and len(failed.stderr.strip().splitlines()) == 1
    # One server batch holds them all: nothing went in, so the import resumes from line 1.
    assert "resume from line 1:" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    assert js(server, "catalog", "find", "{}") == []
    imported = js(server, "catalog", "import", "--skip-existing", jsonl(tmp_path / "ok.jsonl", rows))
    assert (imported["registered"], imported["skipped"]) == (4, 0)
    assert sorted(f["lfn"] for f in js(server, "catalog", "find", "run>=2")) == ["/raw/2.dat", "/raw/3.dat"]
    # Identical lines are skipped; a differing one is an error, in one line.
    again = js(server, "catalog", "import", "--skip-existing", jsonl(tmp_path / "ok.jsonl", rows))
    assert (again["registered"], again["skipped"]) == (0, 4)
    changed = [{**rows[0], "size": 999}]
    refused = cli(server, "catalog", "import", "--skip-existing", jsonl(tmp_path / "c.jsonl", changed), check=False)
    assert refused.returncode != 0 and "/raw/0.dat" in refused.stderr
    cli(server, "catalog", "set-meta", "/raw/0.dat", "run=42", "datatype=reco")
    shown = js(server, "catalog", "show", "/raw/0.dat")
    assert shown["metadata"] == {"run": 42, "datatype": "reco"} and shown["size"] == 10
    assert [f["lfn"] for f in js(server, "catalog", "find", "run=42")] == ["/raw/0.dat"]
    typo = cli(server, "catalog", "set-meta", "/raw/0.dat", "run=abc", check=False)
    assert typo.returncode != 0 and js(server, "catalog", "show", "/raw/0.dat")["metadata"]["run"] == 42


def problematic(server: RunningServer) -> None:
    """Production p: t takes the /raw files, one per task, one attempt each, all failed."""
    spec = {
        "production": "p",
        "fields": {"datatype": "str", "run": "int"},
        "transformations": [
            {"name": "t", "input_query": {"datatype": "raw"}, "group_size": 1, "max_attempts": 1, "command": "false"}
        ],
    }
    db = server.database
    with db.session_scope() as session:
        productions.create_production(session=session, spec=spec, principal=SYSTEM)
        session.execute(update(Transformation).values(status="Active"))
        routing.backfill_active(session=session)  # what the input agent does
        tid = session.scalar(select(Transformation.id))
    assert tid is not None
    with db.session_scope() as session:
        tasks.create_tasks(session=session, transformation_id=tid)
    with db.session_scope() as session:
        claimed = jobs.claim_tasks(session=session, limit=100, max_queued_per_backend={})
    with db.session_scope() as session:
        reports.report_attempts(
            session=session,
            reports=[reports.AttemptReport(j.task_id, j.attempt, False, "boom", 1) for j in claimed],
            principal=SYSTEM,
        )
    with db.session_scope() as session:
        finalize.finalize_reported(session=session, limit=100, backoff_base=0.0)


def test_transformation_reset(server: RunningServer, tmp_path: Path) -> None:
    cli(server, "catalog", "field", "add", "datatype", "str")
    rows = [{"lfn": f"/raw/{i}.dat", "metadata": {"datatype": "raw"}} for i in range(3)]
    cli(server, "catalog", "import", jsonl(tmp_path / "f.jsonl", rows))
    problematic(server)
    statuses = {f["lfn"]: f["status"] for f in js(server, "transformation", "files", "p", "t")}
    assert statuses == dict.fromkeys(statuses, "Problematic") and len(statuses) == 3
    one = js(server, "transformation", "reset", "p", "t", "/raw/1.dat")
    assert one == {"reset": 1}
    statuses = {f["lfn"]: f["status"] for f in js(server, "transformation", "files", "p", "t")}
    assert statuses == {"/raw/0.dat": "Problematic", "/raw/1.dat": "Unused", "/raw/2.dat": "Problematic"}
    cli(server, "transformation", "reset", "p", "t")
    assert {f["status"] for f in js(server, "transformation", "files", "p", "t")} == {"Unused"}
    missing = cli(server, "transformation", "reset", "p", "nope", check=False)
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_token_create_use_revoke(server: RunningServer) -> None:
    created = js(server, "token", "create", "alice", "--role", "reader")
    secret = created["secret"]
    assert js(server, "production", "list", token=secret) == []
    denied = cli(server, "production", "create", "-f", "/dev/null", token=secret, check=False)
    assert denied.returncode != 0
    cli(server, "token", "revoke", "alice")
    assert {t["name"]: t["revoked"] for t in js(server, "token", "list")} == {"admin": False, "alice": True}
    deadline = time.monotonic() + 2.5  # the server trusts a resolved token for 2 s
    while True:
        refused = cli(server, "production", "list", token=secret, check=False)
        if refused.returncode != 0:
            break
        assert time.monotonic() < deadline, "a revoked token still works"
        time.sleep(0.2)
    assert "revoked" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    unknown = cli(server, "token", "revoke", "nobody", check=False)
    assert unknown.returncode != 0 and "nobody" in unknown.stderr


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAPROD_LOG_LEVEL", "WARNING")
