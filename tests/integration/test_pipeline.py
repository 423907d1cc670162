"""End to end through the CLI against `metaprod up`: a three-step chain with a failure that
succeeds on retry, a partial group flushed after its parent completes, inherited metadata
and provenance; bad jobs; bundles; stop --kill. (kill -9 recovery: test_crash_recovery.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import yaml

from tests.integration.system import System
from tests.processes import parent_of, process_alive

CHAIN = {
    "production": "chain",
    "fields": {"datatype": "str", "energy": "float", "seed": "int", "campaign": "str"},
    "transformations": [
        {
            "name": "gen",
            "tasks": 3,
            # Task 0 fails its first attempt; the retry succeeds.
            "command": 'if [ "$METAPROD_TASK_INDEX" = 0 ] && [ "$METAPROD_ATTEMPT" = 1 ]; then '
            "echo boom >&2; exit 3; fi\n"
            'echo "sim $METAPROD_TASK_INDEX" > out.sim\n'
            'printf \'{"seed": %d}\' "$METAPROD_TASK_INDEX" > out.sim.meta.json',
            "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim", "campaign": "c1", "energy": 7.5}}],
            "output_query": {"datatype": "sim", "energy": {">=": 1, "<=": 10}},
        },
        {
            "name": "reco",
            "parents": ["gen"],
            "input_query": {"datatype": "sim", "energy": {">": 5}},
            "group_size": 2,
            "command": 'cat $METAPROD_INPUTS > out.reco; echo "$METAPROD_INPUT_LFNS" > lfns.txt',
            "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
            "output_query": {"datatype": "reco"},
        },
        {
            "name": "merge",
            "parents": ["reco"],
            "input_query": {"datatype": "reco"},
            "group_size": 5,
            "command": "cat $METAPROD_INPUTS > merged.dst",
            "outputs": [{"glob": "*.dst", "metadata": {"datatype": "dst"}}],
            "output_query": {"datatype": "dst"},
        },
    ],
}


def write_spec(tmp_path: Path, spec: dict[str, object]) -> str:
    path = tmp_path / f"{spec['production']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_three_step_chain(system: System, tmp_path: Path) -> None:
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, CHAIN))
    system.cli("production", "start", "chain")
    progress = system.wait_for("chain")
    by_name = {t["name"]: t for t in progress["transformations"]}
    assert progress["percent"] == 100
    assert by_name["gen"]["tasks"]["Done"] == 3
    assert by_name["reco"]["files"] == {"Unused": 0, "Assigned": 0, "Processed": 3, "Problematic": 0}
    # 3 files in groups of 2: one full task, one partial task flushed once gen completed.
    assert by_name["reco"]["tasks"]["Done"] == 2
    assert by_name["merge"]["tasks"]["Done"] == 1

    gen_tasks = system.json("transformation", "tasks", "chain", "gen")
    first = next(t for t in gen_tasks if t["index"] == 0)
    assert first["attempt"] == 2
    log = system.cli("task", "log", str(first["id"]), "--attempt", "1").stdout
    assert "command exited with code 3" in log and "boom" in log

    merged = system.json("catalog", "find", "datatype=dst")
    assert len(merged) == 1
    shown = system.json("catalog", "show", merged[0]["lfn"])
    # Inherited through reco and merge: campaign and energy are the same on all inputs.
    assert shown["metadata"]["campaign"] == "c1" and shown["metadata"]["energy"] == 7.5
    assert shown["metadata"]["datatype"] == "dst"
    assert "seed" not in shown["metadata"]  # differs between the inputs: not inherited
    prov = shown["provenance"]
    assert prov["production"] == "chain" and prov["transformation"] == "merge"
    assert sorted(prov["inputs"]) == sorted(f["lfn"] for f in system.json("catalog", "find", "datatype=reco"))
    assert Path(shown["pfn"].removeprefix("file://")).read_text().count("sim") == 3
    sims = system.json("catalog", "find", "datatype=sim")
    assert sorted(f["metadata"]["seed"] for f in sims) == [0, 1, 2]


BAD = {
    "production": "bad",
    "fields": {"datatype": "str", "energy": "float"},
    "transformations": [
        {
            "name": "exit",
            "tasks": 1,
            "max_attempts": 2,
            "command": "exit 7",
            "outputs": [{"glob": "*.x", "metadata": {"datatype": "x"}}],
        },
        {
            "name": "missing",
            "tasks": 1,
            "max_attempts": 1,
            "command": "true",
            "outputs": [{"glob": "*.x", "metadata": {"datatype": "x"}}],
        },
        {
            "name": "outside",
            "tasks": 1,
            "max_attempts": 1,
            "command": "echo > a.x; echo '{\"energy\": 99.0}' > a.x.meta.json",
            "outputs": [{"glob": "*.x", "metadata": {"datatype": "x"}}],
            "output_query": {"datatype": "x", "energy": {"<": 10}},
        },
        {
            "name": "hang",
            "tasks": 1,
            "max_attempts": 1,
            # The test freezes its wrapper (the pool worker): no heartbeat, and no answer to a
            # cancel. (The command itself cannot reach the wrapper: it runs in a sandbox.)
            "command": "sleep 60",
            "outputs": [{"glob": "*.x", "metadata": {"datatype": "x"}}],
        },
    ],
}


def freeze_wrapper(system: System, production: str, name: str) -> int:
    """SIGSTOP the wrapper (its pool worker) of the transformation's first task once its
    command runs: the pid stopped, or 0 if it does not run yet."""
    tasks = system.json("transformation", "tasks", production, name)
    if not tasks or tasks[0]["status"] != "Running":
        return 0
    try:
        command = int((system.data_dir / "work" / f"t{tasks[0]['id']}-a1" / "command.pid").read_text())
    except (OSError, ValueError):
        return 0
    wrapper = parent_of(command)
    if wrapper is None:
        return 0
    os.kill(wrapper, signal.SIGSTOP)
    return wrapper


def test_bad_jobs_fail_with_clear_reasons(system: System, tmp_path: Path) -> None:
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, BAD))
    system.cli("production", "start", "bad")
    deadline = time.monotonic() + 120
    reasons: dict[str, str] = {}
    hung = 0
    while time.monotonic() < deadline:
        if not hung:
            hung = freeze_wrapper(system, "bad", "hang")
        reasons = {}
        for name in ("exit", "missing", "outside", "hang"):
            tasks = system.json("transformation", "tasks", "bad", name)
            if tasks and tasks[0]["status"] == "Failed":
                reasons[name] = tasks[0]["last_error"]
        if len(reasons) == 4:
            break
        time.sleep(0.5)
    assert "command exited with code 7" in reasons["exit"] and reasons["exit"].startswith("attempt 2")
    assert "missing output" in reasons["missing"] and "*.x" in reasons["missing"]
    assert "outside the output query" in reasons["outside"]
    assert "no heartbeat" in reasons["hang"]
    # Nothing of it succeeded: the production Failed, and so did every step.
    ended = system.wait_for("bad", "Failed")
    assert {t["name"]: t["status"] for t in ended["transformations"]} == dict.fromkeys(reasons, "Failed")
    assert ended["percent"] == 0.0 and ended["failed_percent"] == 100.0
    # The frozen worker ignored the cancel: the backend killed it after its kill grace.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process_alive(hung):
        time.sleep(0.2)
    assert not process_alive(hung), "the frozen pool worker outlived the cancel"


def test_bundled_attempts_beat_report_and_retry_one_by_one(system: System, tmp_path: Path) -> None:
    """One worker slot and 8 due tasks: the attempts share jobs (bundles of 4). Each keeps its
    own work directory, log, outputs and retry; the attempts waiting their turn are kept alive
    by the bundle's heartbeat past the heartbeat timeout, so none is declared lost."""
    system.agent_config.update(
        backends={"local": {"max_workers": 1}}, heartbeat_interval=0.3, heartbeat_timeout=2.0, max_bundle=4
    )
    spec = {
        "production": "bundled",
        "fields": {"datatype": "str", "seed": "int"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 8,
                "command": 'echo "task $METAPROD_TASK_INDEX holding $(ls -A | grep -vx .checkpoint | wc -l) '
                'in $(pwd)"; '
                "sleep 0.8; "
                'if [ "$METAPROD_TASK_INDEX" = 1 ] && [ "$METAPROD_ATTEMPT" = 1 ]; then exit 5; fi; '
                'echo x > out.sim; printf \'{"seed": %d}\' "$METAPROD_TASK_INDEX" > out.sim.meta.json',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
            }
        ],
    }
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "bundled")
    progress = system.wait_for("bundled", timeout=120)
    assert progress["transformations"][0]["tasks"]["Done"] == 8
    tasks = {t["index"]: t for t in system.json("transformation", "tasks", "bundled", "gen")}
    # Only task 1 needed a second attempt: no attempt waiting in a bundle was lost.
    assert {i: t["attempt"] for i, t in tasks.items()} == {i: 2 if i == 1 else 1 for i in range(8)}
    jobs = Counter(t["backend_job_id"] for i, t in tasks.items() if i != 1)
    assert max(jobs.values()) >= 3  # attempts shared jobs
    for index, task in tasks.items():
        log = system.cli("task", "log", str(task["id"]), "--attempt", "1").stdout
        # Its own output only, from its own work directory, empty when it started but for the
        # (empty) checkpoint directory (the failed
        # attempt left its directory empty: the next attempt's is that one, renamed).
        assert f"task {index} holding 0 in " in log and f"/t{task['id']}-a1\n" in log
        assert all(f"task {other} holding" not in log for other in range(8) if other != index)
    failed = system.cli("task", "log", str(tasks[1]["id"]), "--attempt", "1").stdout
    assert "success=False" in failed
    sims = system.json("catalog", "find", "datatype=sim")
    assert sorted(f["metadata"]["seed"] for f in sims) == list(range(8))
    assert not any((system.data_dir / "work").iterdir())  # every scratch was disposed of


def test_stop_kill_ends_a_running_bundle_and_its_waiting_attempts(system: System, tmp_path: Path) -> None:
    system.agent_config.update(backends={"local": {"max_workers": 1, "kill_grace": 2.0}})
    spec = {
        "production": "killme",
        "transformations": [
            {"name": "slow", "tasks": 4, "command": 'echo "command of $METAPROD_TASK_ID"; sleep 37.25'}
        ],
    }
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "killme")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = system.json("transformation", "tasks", "killme", "slow")
        if any(t["status"] == "Running" for t in tasks):
            break
        time.sleep(0.3)
    assert len({t["backend_job_id"] for t in tasks}) == 1  # one job (a bundle) runs all four
    system.cli("production", "stop", "killme", "--kill")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = system.json("transformation", "tasks", "killme", "slow")
        running = subprocess.run(["pgrep", "-f", "sleep 37.25"], capture_output=True, text=True).stdout.split()
        if all(t["status"] == "Killed" for t in tasks) and not running:
            break
        time.sleep(0.3)
    assert [t["status"] for t in tasks] == ["Killed"] * 4
    assert not running, "the running command outlived the kill"
    logs = {t["id"]: system.cli("task", "log", str(t["id"])).stdout for t in tasks}
    started = [task_id for task_id, log in logs.items() if f"command of {task_id}" in log]
    assert len(started) == 1  # the waiting attempts never started, and say so
    # Told by the services (killed) or by the cancel mark, whichever came first.
    assert all("not started: " in log for task_id, log in logs.items() if task_id not in started)
