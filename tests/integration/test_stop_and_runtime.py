"""Stop means stop, and max_runtime, end to end through the CLI against `metaprod up` with
real jobs on the local pool: after `stop` no attempt starts (bundle members waiting their
turn go back to Created, uncounted), and a restart runs every task exactly once; an attempt
past max_runtime dies with its whole process tree, detached processes included, and fails
with that reason; `stop --kill` ends detached processes too; no scratch is left behind."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from metaprod.clients import connect

from tests.integration.system import System
from tests.integration.test_pipeline import write_spec
from tests.processes import process_alive


def sleepers(*marks: str) -> list[int]:
    """Pids of the live `sleep MARK` processes (a scan of /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:1] == [b"sleep"] and len(argv) > 1 and argv[1].decode() in marks and process_alive(int(name)):
            found.append(int(name))
    return found


def tasks_of(system: System, production: str, name: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = system.json("transformation", "tasks", production, name)
    return result


def wait_tasks(system: System, production: str, name: str, done: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = tasks_of(system, production, name)
        if done(tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(0.2)


def test_stop_during_a_bundle_heavy_run_starts_nothing_and_a_restart_runs_everything_once(
    system: System, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"  # one file per attempt started: task.attempt.time
    starts.mkdir()
    total, workers = 300, 2
    # The commands' start marks are written outside their sandboxes, in a path shown to them.
    system.agent_config.update(backends={"local": {"max_workers": workers}}, sandbox_writable=[str(starts)])
    spec = {
        "production": "busy",
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "gen",
                "tasks": total,
                "command": f'touch "{starts}/$METAPROD_TASK_ID.$METAPROD_ATTEMPT.$(date +%s.%N)"; sleep 0.03; '
                "echo x > out.sim",
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
            }
        ],
    }
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "busy")
    deadline = time.monotonic() + 60
    while len(os.listdir(starts)) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Through the client in this process: the time the stop returned, not the CLI's exit.
    with connect(system.address, (system.data_dir / "admin.token").read_text().strip()) as client:
        client.productions.stop("busy")
        stopped_at = time.time()
    # Wait for the bundles to drain: every attempt waiting its turn was withdrawn.
    tasks = wait_tasks(system, "busy", "gen", lambda ts: all(t["status"] in ("Created", "Done") for t in ts))
    by_status = Counter(t["status"] for t in tasks)
    started = [float(name.split(".", 2)[2]) for name in os.listdir(starts)]
    after = [s for s in started if s > stopped_at]
    print(f"stop: {len(started)} attempts started, {len(after)} after the stop returned; {dict(by_status)}")
    # None: an attempt starts only under a start lease, and the stop returned once every lease
    # granted before it committed had run out.
    assert not after
    assert by_status["Created"] > 0 and by_status["Created"] + by_status["Done"] == total
    # Given back uncounted: a restart runs them with their whole budget.
    assert all(t["attempt"] == 0 for t in tasks if t["status"] == "Created")
    time.sleep(1.0)  # nothing more starts while stopped
    assert len(os.listdir(starts)) == len(started)

    system.cli("production", "start", "busy")
    wait_tasks(system, "busy", "gen", lambda ts: all(t["status"] == "Done" for t in ts), timeout=120)
    tasks = tasks_of(system, "busy", "gen")
    assert Counter(t["status"] for t in tasks) == {"Done": total}
    assert all(t["attempt"] == 1 for t in tasks)
    ran = Counter(name.split(".", 2)[0] for name in os.listdir(starts))
    assert len(ran) == total and set(ran.values()) == {1}  # every task ran exactly once
    assert len(system.json("catalog", "find", "datatype=sim")) == total
    deadline = time.monotonic() + 10
    while any((system.data_dir / "work").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any((system.data_dir / "work").iterdir())  # no scratch left, withdrawn jobs' too


RUNAWAY = {
    "production": "runaway",
    "transformations": [
        {"name": "sleeper", "tasks": 1, "max_attempts": 1, "max_runtime": 2, "command": "sleep 1001"},
        {
            "name": "detacher",
            "tasks": 1,
            "max_attempts": 1,
            "max_runtime": 2,
            # A child in a session of its own, and a double-forked one (its parent exits).
            "command": "setsid sleep 1002 & (setsid sleep 1003 &); sleep 1004",
        },
    ],
}


def test_max_runtime_kills_the_whole_process_tree_and_fails_the_attempt(system: System, tmp_path: Path) -> None:
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, RUNAWAY))
    system.cli("production", "start", "runaway")
    began = time.monotonic()
    for name in ("sleeper", "detacher"):
        tasks = wait_tasks(system, "runaway", name, lambda ts: ts and ts[0]["status"] == "Failed", timeout=30)
        assert tasks[0]["status"] == "Failed", tasks
        assert "killed after max_runtime 2s" in tasks[0]["last_error"]
    took = time.monotonic() - began
    print(f"max_runtime 2 s: both tasks Failed {took:.1f} s after start")
    assert took < 10
    assert sleepers("1001", "1002", "1003", "1004") == []
    # Their scratch went with them.
    deadline = time.monotonic() + 10
    while any((system.data_dir / "work").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any((system.data_dir / "work").iterdir())


def test_stop_kill_ends_detached_processes_of_running_attempts(system: System, tmp_path: Path) -> None:
    spec = {
        "production": "detached",
        "transformations": [
            {"name": "d", "tasks": 1, "command": "setsid sleep 1005 & (setsid sleep 1006 &); sleep 1007"}
        ],
    }
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "detached")
    deadline = time.monotonic() + 30
    while len(sleepers("1005", "1006", "1007")) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sleepers("1005", "1006", "1007")) == 3
    system.cli("production", "stop", "detached", "--kill")
    deadline = time.monotonic() + 20
    while sleepers("1005", "1006", "1007") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers("1005", "1006", "1007") == []
    tasks = wait_tasks(system, "detached", "d", lambda ts: ts[0]["status"] == "Killed")
    assert tasks[0]["status"] == "Killed"
