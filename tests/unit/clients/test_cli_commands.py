"""CLI commands against the fake server: the pinned --json shapes and the human output."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from metaprod.clients import cli

if TYPE_CHECKING:
    from .conftest import Fake

Run = Callable[..., tuple[int, str, str]]
FILE_KEYS = {"Unused", "Assigned", "Processed", "Problematic"}
TASK_KEYS = {"Created", "Submitted", "Running", "Done", "Failed"}


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], fake: Fake) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def ok_json(run: Run, *argv: str) -> object:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


# --- catalog -----------------------------------------------------------------------------


def test_catalog_find_json_shape(run: Run, fake: Fake) -> None:
    files = ok_json(run, "catalog", "find", '{"datatype": "raw"}')
    assert isinstance(files, list) and [f["lfn"] for f in files] == ["/raw/1", "/raw/2", "/sim/1"]
    assert files[0]["metadata"] == {"datatype": "raw", "energy": 2.5, "run": 1}
    assert {"lfn", "metadata", "pfn", "size", "checksum", "provenance"} <= set(files[0])
    assert fake.requests("FindFiles")[0].query == '{"datatype": "raw"}'


def test_catalog_find_compact_query_and_limit(run: Run, fake: Fake) -> None:
    code, out, _ = run("catalog", "find", "datatype=raw", "run>=1", "--limit", "2")
    assert code == 0
    assert out.splitlines() == ["/raw/1\tdatatype=raw energy=2.5 run=1", "/raw/2\tdatatype=raw energy=7.5 run=2"]
    request = fake.requests("FindFiles")[0]
    assert (request.query, request.limit) == ("datatype=raw run>=1", 2)
    assert ok_json(run, "catalog", "find", "nothing", "--limit", "0") != []


def test_catalog_find_empty_json_is_a_list(run: Run, fake: Fake) -> None:
    fake.files.clear()
    assert ok_json(run, "catalog", "find", "{}") == []


def test_catalog_show_json_shape(run: Run) -> None:
    imported = ok_json(run, "catalog", "show", "/raw/1")
    assert isinstance(imported, dict)
    assert {k: imported[k] for k in ("lfn", "pfn", "size", "checksum")} == {
        "lfn": "/raw/1",
        "pfn": "file:///data/raw/1",
        "size": 1024,
        "checksum": "ad:0001",
    }
    assert imported["metadata"]["run"] == 1 and imported["provenance"] is None
    produced = ok_json(run, "catalog", "show", "/sim/1")
    assert isinstance(produced, dict)
    prov = produced["provenance"]
    assert {k: prov[k] for k in ("production", "transformation", "task", "inputs")} == {
        "production": "muon",
        "transformation": "gen",
        "task": 7,
        "inputs": ["/raw/1", "/raw/2"],
    }


def test_catalog_show_human(run: Run) -> None:
    code, out, _ = run("catalog", "show", "/sim/1")
    assert code == 0
    assert "/sim/1" in out and "muon/gen task 7 attempt 2" in out and "/raw/2" in out


def test_catalog_fields(run: Run, fake: Fake) -> None:
    assert ok_json(run, "catalog", "field", "add", "seed", "int") == {"name": "seed", "type": "int", "created": True}
    code, out, _ = run("catalog", "field", "add", "run", "int")
    assert code == 0 and "already declared" in out
    fields = ok_json(run, "catalog", "field", "list")
    assert {"name": "energy", "type": "float"} in fields  # type: ignore[operator]


def test_catalog_import_file(run: Run, fake: Fake, tmp_path: Path) -> None:
    lines = [json.dumps({"lfn": f"/imp/{i}", "size": i, "metadata": {"run": i, "energy": 5}}) for i in range(7)]
    path = tmp_path / "files.jsonl"
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    result = ok_json(run, "catalog", "import", str(path), "--batch-size", "3")
    assert result == {"registered": 7, "skipped": 0, "attached": 3, "batches": 3}
    assert fake.batches == [3, 3, 1]
    energy = fake.files["/imp/4"].metadata["energy"]
    assert energy.WhichOneof("kind") == "float_value"  # widened by the schema (energy: float)


def test_catalog_import_stdin(run: Run, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"lfn": "/s/1", "metadata": {"datatype": "raw"}}\n'))
    code, out, _ = run("catalog", "import", "-")
    assert code == 0 and out.startswith("registered 1 file(s)")


def test_catalog_import_bad_line(run: Run, fake: Fake, tmp_path: Path) -> None:
    path = tmp_path / "files.jsonl"
    path.write_text('{"lfn": "/a"}\n{"lfn": "/b", "metdata": {}}\n')
    code, _, err = run("catalog", "import", str(path))
    assert code == 1
    assert err.strip() == (
        f"metaprod: error: {path}:2: unknown file key(s) metdata (expected checksum, lfn, metadata, pfn, size)"
        f"; resume from line 1: catalog import {path} --from-line 1 (or rerun with --skip-existing)"
    )
    path.write_text('{"lfn": "/a"}\nnot json\n')
    code, _, err = run("catalog", "import", str(path))
    assert code == 1 and f"{path}:2: invalid JSON" in err and len(err.strip().splitlines()) == 1


def test_catalog_set_meta(run: Run, fake: Fake) -> None:
    shown = ok_json(run, "catalog", "set-meta", "/raw/1", "run=42", "energy=3", "site=CERN")
    assert isinstance(shown, dict) and shown["metadata"]["run"] == 42
    sent = fake.requests("SetMetadata")[0].metadata
    assert sent["energy"].WhichOneof("kind") == "float_value"
    assert sent["site"].str_value == "CERN"


# --- productions -------------------------------------------------------------------------


def test_progress_json_shape_has_every_status_key(run: Run) -> None:
    doc = ok_json(run, "production", "progress", "muon")
    assert isinstance(doc, dict)
    assert (doc["name"], doc["status"], doc["percent"]) == ("muon", "Active", 40.0)
    for tr in doc["transformations"]:
        assert {"name", "status", "files", "tasks"} <= set(tr)
        assert set(tr["files"]) >= FILE_KEYS and set(tr["tasks"]) >= TASK_KEYS
    gen, reco = doc["transformations"]
    assert gen["files"] == {"Unused": 0, "Assigned": 0, "Processed": 0, "Problematic": 0}
    assert gen["tasks"]["Done"] == 5 and gen["tasks"]["Failed"] == 0
    assert reco["files"]["Unused"] == 2 and reco["tasks"]["Running"] == 1


def test_progress_human_table(run: Run) -> None:
    code, out, _ = run("production", "progress", "muon")
    assert code == 0 and "muon: Active, 40.0% done" in out and "reco" in out


def test_progress_watch_stops_at_completed(run: Run, fake: Fake) -> None:
    code, out, _ = run("production", "progress", "muon", "--watch", "--interval", "0.1", "--json")
    assert code == 0
    snapshots = [json.loads(line) for line in out.splitlines()]
    assert [s["status"] for s in snapshots] == ["Active", "Active", "Completed"]
    assert fake.requests("WatchProgress")[0].interval_seconds == 0.1
    code, out, _ = run("production", "progress", "muon", "--watch")
    assert code == 0 and "Completed 100.0%" in out and "muon: Completed" in out


def test_production_validate(run: Run, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("production: p\ntransformations: []\n")
    result = ok_json(run, "production", "validate", "-f", str(good))
    assert isinstance(result, dict) and result["ok"] is True and result["errors"] == []
    assert result["warnings"][0]["code"] == "uncovered-input"
    bad = tmp_path / "bad.yaml"
    bad.write_text("production: bad\n")
    code, out, _ = run("production", "validate", "-f", str(bad), "--json")
    assert code == 1 and json.loads(out)["errors"][0]["key"] == "energy"
    code, out, _ = run("production", "validate", "-f", str(bad))
    assert code == 1 and "energy clash" in out and "spec is invalid" in out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "production: [unclosed\n", "invalid YAML"),
        ("broken.json", '{"production": ', "invalid JSON"),
        ("list.yaml", "- a\n- b\n", "a spec is a mapping"),
        ("empty.yaml", "", "a spec is a mapping, this file is empty"),
    ],
)
def test_spec_parse_errors_fail_before_calling(
    run: Run, fake: Fake, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    for command in ("create", "validate"):
        code, out, err = run("production", command, "-f", str(path))
        assert code == 1 and out == ""
        line = err.strip()
        assert "\n" not in line and line.startswith(f"metaprod: error: {path}: {message}")
    assert fake.calls == []


def test_production_create_and_changes(run: Run, fake: Fake, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("production: muon-study\ntransformations: []\n")
    created = ok_json(run, "production", "create", "-f", str(spec))
    assert isinstance(created, dict) and created["production"]["name"] == "muon-study"
    assert created["warnings"][0]["transformations"] == ["a", "b"]
    assert fake.requests("CreateProduction")[0].spec == spec.read_text()
    code, out, _ = run("production", "stop", "muon", "--kill")
    assert code == 0 and out.strip() == "production muon is Stopped"
    assert fake.requests("StopProduction")[0].kill
    assert ok_json(run, "production", "delete", "muon")["status"] == "Cleaning"  # type: ignore[index]
    assert ok_json(run, "production", "start", "muon")["status"] == "Active"  # type: ignore[index]


def test_production_show_list_add(run: Run, fake: Fake, tmp_path: Path) -> None:
    shown = ok_json(run, "production", "show", "muon")
    assert isinstance(shown, dict)
    assert [t["name"] for t in shown["transformations"]] == ["gen", "reco"]
    assert shown["transformations"][1]["input_query"] == {"datatype": "sim"}
    code, out, _ = run("production", "show", "muon")
    assert code == 0 and "reco" in out and "a study" in out
    assert [p["name"] for p in ok_json(run, "production", "list")] == ["muon", "other"]  # type: ignore[union-attr]
    entry = tmp_path / "merge.json"
    entry.write_text('{"name": "merge", "parents": ["reco"]}')
    added = ok_json(run, "production", "add-transformation", "muon", "-f", str(entry))
    assert added["transformation"]["name"] == "merge"  # type: ignore[index]
    assert fake.requests("AddTransformation")[0].production == "muon"


# --- transformations, tasks --------------------------------------------------------------


def test_transformation_commands(run: Run, fake: Fake) -> None:
    listed = ok_json(run, "transformation", "list", "--production", "muon")
    assert [t["name"] for t in listed] == ["gen", "reco"]  # type: ignore[union-attr]
    assert fake.requests("ListTransformations")[0].production == "muon"
    shown = ok_json(run, "transformation", "show", "muon", "reco")
    assert isinstance(shown, dict)
    assert shown["files"]["Unused"] == 3 and shown["files"]["Problematic"] == 0
    assert shown["tasks"]["Failed"] == 1 and shown["tasks"]["Running"] == 0
    files = ok_json(run, "transformation", "files", "muon", "reco", "--status", "Problematic")
    assert files == [{"lfn": "/sim/2", "status": "Problematic", "task": 8, "error_count": 3}]
    tasks = ok_json(run, "transformation", "tasks", "muon", "reco")
    assert tasks[0]["id"] == 7 and tasks[0]["attempt"] == 2  # type: ignore[index]
    assert ok_json(run, "transformation", "reset", "muon", "reco") == {"reset": 4}
    assert ok_json(run, "transformation", "reset", "muon", "reco", "/a") == {"reset": 1}
    assert ok_json(run, "transformation", "stop", "muon", "reco", "--kill")["status"] == "Stopped"  # type: ignore[index]
    request = fake.requests("SetTransformationStatus")[0]
    assert (request.status, request.kill) == ("Stopped", True)
    for command in (["show"], ["files"], ["tasks"], ["start"]):
        code, out, _ = run("transformation", *command, "muon", "reco")
        assert code == 0 and out


def test_task_log(run: Run, fake: Fake) -> None:
    code, out, _ = run("task", "log", "7")
    assert code == 0 and out == "line one\n[bold]line two[/bold]\n"  # data, not rich markup
    assert ok_json(run, "task", "log", "7", "--attempt", "1") == {"task": 7, "attempt": 1, "log": out}


# --- admin -------------------------------------------------------------------------------


def test_status(run: Run, fake: Fake) -> None:
    code, out, _ = run("status")
    assert code == 0 and "identity" in out and "TaskAgent" in out
    doc = ok_json(run, "status")
    assert isinstance(doc, dict) and doc["ok"] and doc["whoami"]["role"] == "admin"
    assert doc["agents"][0]["host"] == "node1"


def test_status_answers_even_without_a_valid_token(run: Run, fake: Fake) -> None:
    fake.fail("WhoAmI", grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked token")
    code, out, _ = run("status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["whoami"] is None and "unknown or revoked token" in doc["problems"][0]


def test_agents_status(run: Run) -> None:
    agents = ok_json(run, "agents", "status")
    assert isinstance(agents, list) and agents[0]["alive"] is True and agents[0]["pid"] == 42
    code, out, _ = run("agents", "status")
    assert code == 0 and "TaskAgent" in out


def test_tokens(run: Run, fake: Fake) -> None:
    code, out, err = run("token", "create", "bob", "--role", "user")
    assert code == 0 and out == "s3cr3t-value\n" and "shown only once" in err
    created = ok_json(run, "token", "create", "eve", "--role", "reader", "--owner", "team")
    assert created == {
        "token": {
            "id": 3,
            "name": "eve",
            "role": "reader",
            "owner": "team",
            "created_at": None,
            "revoked": False,
            "expires_at": None,
            "expired": False,
        },
        "secret": "s3cr3t-value",
    }
    # --expires: a span from now or an ISO-8601 datetime (UTC without a zone), sent as a time.
    timed = ok_json(run, "token", "create", "tim", "--role", "reader", "--expires", "2999-01-02T03:04:05")
    assert timed["token"]["expires_at"].startswith("2999-01-02T03:04:05")  # type: ignore[index]
    before = datetime.now(UTC)
    timed = ok_json(run, "token", "create", "tom", "--role", "reader", "--expires", "12h")
    expires = datetime.fromisoformat(timed["token"]["expires_at"])  # type: ignore[index]
    assert timedelta(hours=12) <= expires - before < timedelta(hours=12, minutes=1)
    for bad in ("soon", "0d", "2001-01-01"):
        code, out, err = run("token", "create", "x", "--role", "reader", "--expires", bad)
        assert code != 0 and out == "" and "expiry" in err and len(err.strip().splitlines()) == 1, err
    assert ok_json(run, "token", "list")[0]["name"] == "admin"  # type: ignore[index]
    assert ok_json(run, "token", "revoke", "bob")["revoked"] is True  # type: ignore[index]


def test_find_error_prints_no_partial_json(run: Run, fake: Fake) -> None:
    fake.fail("FindFiles", grpc.StatusCode.INVALID_ARGUMENT, "unknown operator '~' for key 'run'")
    code, out, err = run("catalog", "find", "run~1", "--json")
    assert (code, out) == (1, "")
    assert err.strip() == "metaprod: error: unknown operator '~' for key 'run'"


def test_token_and_address_flags_are_used(run: Run, fake: Fake, server) -> None:
    code, _, _ = run("production", "list", "--token", "from-flag", "--address", server.address)
    assert code == 0 and fake.metadata[-1]["authorization"] == "Bearer from-flag"


@pytest.mark.parametrize(
    "argv",
    [
        ["catalog", "field", "list"],
        ["production", "list"],
        ["transformation", "list"],
        ["token", "list"],
        ["token", "revoke", "bob"],
        ["catalog", "set-meta", "/raw/1", "run=3"],
        ["catalog", "field", "add", "seed", "int"],
        ["production", "start", "muon"],
    ],
)
def test_human_output(run: Run, argv: list[str]) -> None:
    code, out, err = run(*argv)
    assert code == 0 and out.strip() and err == ""
