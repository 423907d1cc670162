"""A new user's first day through the real CLI against a real gRPC server: re-imports that
skip what is there, imports that say where to resume, errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from metaprod.clients.cli import main
from metaprod.services import catalog as catalog_service

RunningServer = Any  # tests/integration/conftest.py


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
