"""The production lifecycle end to end through the CLI against `metaprod up`: honest outcomes
(Failed, Partial), recovery with `retry`, a catalog-fed root that stays open until closed,
`extend`, the string form of queries in specs, and the history of every change."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.system import System


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{spec['production']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def statuses(progress: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["status"] for t in progress["transformations"]}


def by_name(progress: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in progress["transformations"]}


def watch_exit(system: System, name: str) -> int:
    """`production progress --watch` until the production ends: its exit status."""
    result = subprocess.run(
        [*system_cli(system), "production", "progress", name, "--watch", "--interval", "0.2", "--json"],
        capture_output=True,
        text=True,
        env=system.env(),
        timeout=120,
    )
    return result.returncode


def system_cli(system: System) -> list[str]:
    from tests.integration.system import METAPROD

    return list(METAPROD)


def history(system: System, name: str) -> list[dict[str, Any]]:
    events = system.json("production", "history", name)
    assert [sorted(e) for e in events] == [["actor", "detail", "event", "time", "transformation"]] * len(events)
    return list(events)


def spec_failing_until(flag: Path, *, failing_index: str = "") -> dict[str, Any]:
    """A generator whose tasks (all, or the one of `failing_index`) fail while `flag` does not
    exist, and a merge fed by it; queries in the compact string form."""
    broken = f'[ "$METAPROD_TASK_INDEX" = "{failing_index}" ]' if failing_index else "true"
    return {
        "production": "recover",
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 3,
                "max_attempts": 1,
                "command": f"if {broken} && [ ! -e {flag} ]; then echo 'broken input' >&2; exit 5; fi\n"
                'echo "sim $METAPROD_TASK_INDEX" > out.sim',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
                "output_query": "datatype=sim",
            },
            {
                "name": "merge",
                "parents": ["gen"],
                "input_query": "datatype=sim",
                "group_size": 10,
                "command": "cat $METAPROD_INPUTS > merged.dst",
                "outputs": [{"glob": "*.dst", "metadata": {"datatype": "dst"}}],
                "output_query": "datatype = dst",
            },
        ],
    }


def test_every_task_failed_is_failed_and_retry_recovers(system: System, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    # The commands look for the flag outside their work directory: the sandbox must show it.
    system.agent_config["sandbox_writable"] = [str(tmp_path)]
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec_failing_until(flag)))
    system.cli("production", "start", "recover")
    assert watch_exit(system, "recover") == 3  # Failed
    failed = system.wait_for("recover", "Failed")
    assert statuses(failed) == {"gen": "Failed", "merge": "Completed"}  # merge had nothing to do, and failed nothing
    assert by_name(failed)["gen"]["tasks"]["Failed"] == 3 and failed["percent"] < 100
    events = history(system, "recover")
    failures = [e for e in events if e["event"] == "task_failed"]
    assert len(failures) == 3 and all("exited with code 5" in e["detail"] for e in failures)
    assert all(e["actor"].startswith("agent:") and e["transformation"] == "gen" for e in failures)
    assert [e["event"] for e in events if e["transformation"] == "" and e["event"] != "task_failed"] == [
        "created",
        "started",
        "failed",
    ]
    assert events[0]["actor"] == "admin" and events[0]["time"].endswith("+00:00")

    # Fix the cause, retry: the tasks run again, the merge reopens and takes the new outputs.
    flag.touch()
    retried = system.json("transformation", "retry", "recover", "gen")
    assert retried == {"tasks": 3, "files": 0, "skipped": []}
    done = system.wait_for("recover")
    assert statuses(done) == {"gen": "Completed", "merge": "Completed"}
    assert by_name(done)["gen"]["tasks"]["Done"] == 3 and by_name(done)["merge"]["files"]["Processed"] == 3
    assert done["percent"] == 100.0 and done["failed_percent"] == 0.0
    later = [e["event"] for e in history(system, "recover")[len(events) :]]
    assert later[0] == "retried" and "reopened" in later and later[-1] == "completed"
    assert watch_exit(system, "recover") == 0


def test_mixed_success_is_partial_with_counts(system: System, tmp_path: Path) -> None:
    system.up()
    spec = spec_failing_until(tmp_path / "never", failing_index="1")
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "recover")
    assert watch_exit(system, "recover") == 2  # Partial
    ended = system.wait_for("recover", "Partial")
    gen, merge = by_name(ended)["gen"], by_name(ended)["merge"]
    assert gen["status"] == "Partial" and gen["tasks"]["Done"] == 2 and gen["tasks"]["Failed"] == 1
    assert merge["status"] == "Completed" and merge["files"]["Processed"] == 2
    assert round(gen["percent"]) == 67 and round(gen["failed_percent"]) == 33
    # The one failed task alone runs again (and fails again: the flag never appears).
    task = system.json("transformation", "tasks", "recover", "gen", "--status", "Failed")[0]
    assert system.json("task", "retry", str(task["id"]))["tasks"] == 1
    assert system.wait_for("recover", "Partial")["status"] == "Partial"
    attempts = system.json("transformation", "tasks", "recover", "gen", "--status", "Failed")[0]["attempt"]
    assert attempts == 2  # a fresh budget of one attempt, used


def test_catalog_fed_root_stays_open_until_closed(system: System, tmp_path: Path) -> None:
    spec = {
        "production": "stream",
        "fields": {"datatype": "str", "run": "int"},
        "transformations": [
            {
                "name": "calib",
                "input_query": "datatype=raw",
                "command": "cat $METAPROD_INPUTS > out.cal",
                "outputs": [{"glob": "*.cal", "metadata": {"datatype": "cal"}}],
                "output_query": {"datatype": "cal"},
            },
            {
                "name": "merge",
                "parents": ["calib"],
                "input_query": "datatype=cal",
                "plugin": "by_metadata",
                "group_by": ["run"],  # no group_size: one task per run, once calib has ended
                "command": "cat $METAPROD_INPUTS > merged.root",
                "outputs": [{"glob": "*.root", "metadata": {"datatype": "merged"}}],
                "output_query": {"datatype": "merged"},
            },
        ],
    }
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    shown = system.json("transformation", "show", "stream", "merge")
    assert shown["group_by"] == ["run"] and shown["group_size"] is None
    system.cli("production", "start", "stream")
    waves = [[(1, 0), (1, 1)], [(2, 2), (2, 3)], [(1, 4)]]
    imported = 0
    for n, wave in enumerate(waves):
        lines = []
        for run, i in wave:
            data = tmp_path / f"raw{i}.dat"
            data.write_text(f"raw {i}\n")
            lines.append(
                json.dumps({"lfn": f"/raw/{i}.dat", "pfn": str(data), "metadata": {"datatype": "raw", "run": run}})
            )
        (tmp_path / f"wave{n}.jsonl").write_text("\n".join(lines) + "\n")
        system.cli("catalog", "import", str(tmp_path / f"wave{n}.jsonl"))
        imported += len(wave)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            progress = system.json("production", "progress", "stream")
            if by_name(progress)["calib"]["files"]["Processed"] == imported:
                break
            time.sleep(0.3)
        # Everything arrived so far is processed, and the steps stay open for more.
        assert by_name(progress)["calib"]["files"]["Processed"] == imported
        time.sleep(0.5)  # several production-agent cycles
        progress = system.json("production", "progress", "stream")
        assert progress["status"] == "Active" and statuses(progress) == {"calib": "Active", "merge": "Active"}
        assert sum(by_name(progress)["merge"]["tasks"].values()) == 0  # buckets wait for the end of calib
    system.cli("production", "close", "stream")
    done = system.wait_for("stream")
    merge = by_name(done)["merge"]
    assert merge["tasks"]["Done"] == 2 and merge["files"]["Processed"] == 5  # run 1 (3 files), run 2 (2 files)
    assert "closed" in [e["event"] for e in history(system, "stream")]
    # A file arriving after the end reopens the production: the input was closed, so it is
    # not taken by calib, but a late calibrated file still reaches the merge.
    late = tmp_path / "late.cal"
    late.write_text("late\n")
    line = {"lfn": "/late/1.cal", "pfn": str(late), "metadata": {"datatype": "cal", "run": 3}}
    (tmp_path / "late.jsonl").write_text(json.dumps(line) + "\n")
    system.cli("catalog", "import", str(tmp_path / "late.jsonl"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        merge = by_name(system.json("production", "progress", "stream"))["merge"]
        if merge["tasks"]["Done"] == 3:
            break
        time.sleep(0.3)
    assert merge["tasks"]["Done"] == 3
    assert system.wait_for("stream")["status"] == "Completed"


def test_extend_adds_tasks_whose_outputs_flow_downstream(system: System, tmp_path: Path) -> None:
    spec = spec_failing_until(tmp_path / "unused", failing_index="never")
    spec["transformations"][1]["group_size"] = 1
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "recover")
    system.wait_for("recover")
    extended = system.json("transformation", "extend", "recover", "gen", "2")
    assert extended["tasks"] == 5
    done = system.wait_for("recover")
    assert by_name(done)["gen"]["tasks"]["Done"] == 5 and by_name(done)["merge"]["tasks"]["Done"] == 5
    indexes = sorted(t["index"] for t in system.json("transformation", "tasks", "recover", "gen"))
    assert indexes == [0, 1, 2, 3, 4]
    assert "extended" in [e["event"] for e in history(system, "recover")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("transformation", "extend", "recover", "merge", "2"), "not a root with a task count"),
        (("transformation", "extend", "recover", "gen", "0"), "positive number"),
        (("transformation", "close", "recover", "merge"), "not fed by the catalog"),
        (("production", "close", "recover"), "no catalog-fed root"),
        (("transformation", "retry", "recover", "gen"), "nothing to retry"),
        (("transformation", "retry", "recover", "gen", "--task", "999999"), "has no task 999999"),
        (("task", "retry", "999999"), "task 999999 does not exist"),
        (("transformation", "flush", "recover", "gen"), "no groups to flush"),
        (("transformation", "retry", "nosuch", "gen"), "no transformation"),
        (("production", "history", "nosuch"), "no production"),
    ],
)
def test_lifecycle_verbs_refuse_bad_requests_and_change_nothing(
    system: System, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec_failing_until(tmp_path / "f")))
    before = (system.json("production", "show", "recover"), history(system, "recover"))
    result = system.cli(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (system.json("production", "show", "recover"), history(system, "recover")) == before
