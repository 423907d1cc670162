"""kill -9 at the moments that matter, decided by what the system has done, not by a clock:

- `up` killed (with every process it started: a host crash) while attempts run, twice: the
  attempts are Lost, retried, and every output exists exactly once;
- two `agents` processes on one database, the one running attempts killed with its jobs:
  its attempts are Lost and retried, the other's finish, every output once;
- an agent killed between the claim of an attempt and the recording of its submission (its
  job file is a FIFO: the submitting agent blocks opening it, the claim committed): the
  attempt is Lost ("submission never recorded") and retried;
- everything killed between reports and their finalization (no finalize agent runs until
  the restart): the reports stand, each output is registered once, nothing is retried.

Commands hang on their first attempts (a gate), so nothing can finish before the kill."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from metaprod.db.models import JobAttempt, Task, Transformation
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from sqlalchemy import select

from tests.integration.system import System
from tests.processes import is_descendant, kill9_tree

# Lost after 3 s of silence; an unrecorded submission after 2 s.
CRASH_AGENTS = {
    "heartbeat_interval": 0.3,
    "heartbeat_timeout": 3.0,
    "submit_grace_seconds": 2.0,
    "report_grace_seconds": 3.0,
}


def spec(name: str, tasks: int, gate: str) -> dict[str, Any]:
    """gen (`tasks` roots, each writing its pid to MARKS/pid-INDEX-ATTEMPT, then waiting while
    `gate` is true) -> reco (pairs)."""
    return {
        "production": name,
        "fields": {"datatype": "str", "seed": "int"},
        "transformations": [
            {
                "name": "gen",
                "tasks": tasks,
                "command": 'echo $$ > "MARKS_DIR/pid-$METAPROD_TASK_INDEX-$METAPROD_ATTEMPT"; '
                f"while {gate}; do sleep 0.1; done; "
                'echo "sim $METAPROD_TASK_INDEX" > out.sim; '
                'printf \'{"seed": %d}\' "$METAPROD_TASK_INDEX" > out.sim.meta.json',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
                "output_query": {"datatype": "sim"},
            },
            {
                "name": "reco",
                "parents": ["gen"],
                "input_query": {"datatype": "sim"},
                "group_size": 2,
                "command": "cat $METAPROD_INPUTS > out.reco",
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
                "output_query": {"datatype": "reco"},
            },
        ],
    }


@pytest.fixture(autouse=True)
def no_sandbox(system: System) -> None:
    """The commands write their host pids (`$$`) and look at files of the test: without the
    sandbox, which hides both on purpose (test_hostile_jobs covers it)."""
    system.extra_env["METAPROD_SANDBOX"] = "none"


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture
def db(system: System) -> Iterator[Database]:
    database = Database(system.db_url)
    yield database
    database.dispose()


def create(system: System, tmp_path: Path, marks: Path, name: str, tasks: int, gate: str) -> None:
    text = yaml.safe_dump(spec(name, tasks, gate)).replace("MARKS_DIR", str(marks))
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    system.cli("production", "create", "-f", str(path))
    system.cli("production", "start", name)


def attempts(db: Database, transformation: str = "gen") -> dict[int, list[str]]:
    """task index -> its attempts' statuses, in order."""
    with db.session_scope(readonly=True) as session:
        rows = session.execute(
            select(Task.task_index, JobAttempt.attempt, JobAttempt.status)
            .join(JobAttempt, JobAttempt.task_id == Task.id)
            .join(Transformation, Transformation.id == Task.transformation_id)
            .where(Transformation.name == transformation)
            .order_by(Task.task_index, JobAttempt.attempt)
        ).all()
    result: dict[int, list[str]] = {}
    for index, _, status in rows:
        result.setdefault(index, []).append(status)
    return result


def lost_errors(db: Database) -> list[str]:
    with db.session_scope(readonly=True) as session:
        return [e or "" for e in session.scalars(select(JobAttempt.error).where(JobAttempt.status == "Lost"))]


def wait_until(what: str, check: Callable[[], bool], system: System, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what}\n{system.logs()}")


def running(db: Database, marks: Path, tasks: int, attempt: int) -> Callable[[], bool]:
    """Every task's attempt `attempt` is Running and its command started."""

    def check() -> bool:
        if not all(len(a) >= attempt and a[attempt - 1] == "Running" for a in attempts(db).values()):
            return False
        return len(attempts(db)) == tasks and all((marks / f"pid-{i}-{attempt}").exists() for i in range(tasks))

    return check


def serve_apart(system: System, db: Database) -> subprocess.Popen[bytes]:
    """`serve` alone on a database made by `db upgrade`, with an admin token made in it."""
    system.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade = system.cli("db", "upgrade", "--data-dir", str(system.data_dir), "--db", system.db_url, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    refused = system.cli("token", "create", "admin", "--role", "admin", check=False)
    assert refused.returncode != 0  # no services yet: a one-line error, not a traceback
    assert refused.stderr.startswith("metaprod: error:") and "Traceback" not in refused.stderr
    with db.session_scope() as session:
        _, secret = create_token(session=session, name="admin", role="admin")
    (system.data_dir / "admin.token").write_text(secret)
    return system.serve()


def assert_exactly_once(system: System, tasks: int) -> None:
    sims = system.json("catalog", "find", "datatype=sim")
    assert sorted(f["metadata"]["seed"] for f in sims) == list(range(tasks))
    recos = system.json("catalog", "find", "datatype=reco")
    assert len(recos) == (tasks + 1) // 2
    consumed = Counter(lfn for f in recos for lfn in system.json("catalog", "show", f["lfn"])["provenance"]["inputs"])
    assert sorted(consumed) == sorted(f["lfn"] for f in sims) and set(consumed.values()) == {1}


def test_up_killed_twice_while_attempts_run_loses_them_and_retries_exactly_once(
    system: System, tmp_path: Path, marks: Path, db: Database
) -> None:
    system.agent_config.update(CRASH_AGENTS, backends={"local": {"max_workers": 4}})
    proc = system.up()
    create(system, tmp_path, marks, "crash", 4, '[ "$METAPROD_ATTEMPT" -le 2 ]')  # attempts 1 and 2 hang
    for attempt in (1, 2):
        wait_until(f"attempt {attempt} of every task running", running(db, marks, 4, attempt), system)
        killed = kill9_tree(proc.pid)
        proc.wait(timeout=30)
        # The commands died with it (they are in the tree).
        assert all(int((marks / f"pid-{i}-{attempt}").read_text()) in killed for i in range(4))
        proc = system.up()
    progress = system.wait_for("crash", timeout=180)
    assert {t["name"]: t["status"] for t in progress["transformations"]} == {"gen": "Completed", "reco": "Completed"}
    assert attempts(db) == {i: ["Lost", "Lost", "Done"] for i in range(4)}
    assert {e.split(" for ")[0] for e in lost_errors(db)} == {"lost: no heartbeat"}
    assert_exactly_once(system, 4)


def test_the_agents_process_running_attempts_killed_its_attempts_are_retried_exactly_once(
    system: System, tmp_path: Path, marks: Path, db: Database
) -> None:
    """`serve` plus two `agents` processes on one database; the one whose jobs run is killed
    with them and replaced; the other's attempts (if any) finish as they were."""
    system.agent_config.update(CRASH_AGENTS, backends={"local": {"max_workers": 4}})
    serve_apart(system, db)
    agents = {"a": system.agents("a"), "b": system.agents("b")}
    hold = tmp_path / "hold"
    hold.touch()
    create(system, tmp_path, marks, "shared", 4, f'[ -e "{hold}" ]')
    wait_until("attempt 1 of every task running", running(db, marks, 4, 1), system)
    pids = {i: int((marks / f"pid-{i}-1").read_text()) for i in range(4)}
    victim = next(name for name, proc in agents.items() if is_descendant(pids[0], proc.pid))
    theirs = {i for i, pid in pids.items() if is_descendant(pid, agents[victim].pid)}
    kill9_tree(agents[victim].pid)
    agents[victim].wait(timeout=30)
    replacement = system.agents("replacement")
    hold.unlink()  # the survivors' commands go on; the killed ones are gone
    system.wait_for("shared", timeout=180)
    expected = {i: ["Lost", "Done"] if i in theirs else ["Done"] for i in range(4)}
    assert attempts(db) == expected
    assert len(lost_errors(db)) == len(theirs) and all(e.startswith("lost: ") for e in lost_errors(db))
    assert_exactly_once(system, 4)
    # The live agent processes beat in the shared database.
    alive = {a["pid"] for a in system.json("agents", "status") if a["alive"]}
    assert {replacement.pid, *(p.pid for name, p in agents.items() if name != victim)} <= alive


def test_killed_between_a_claim_and_the_record_of_its_submission(
    system: System, tmp_path: Path, marks: Path, db: Database
) -> None:
    system.agent_config.update(CRASH_AGENTS)
    # The first task's first job file is a FIFO: the submit agent, its claim committed,
    # blocks opening it for writing, before it submits and records the job.
    job_dir = system.data_dir / "work" / "t1-a1"
    job_dir.mkdir(parents=True)
    os.mkfifo(job_dir / "job.json")
    proc = system.up()
    create(system, tmp_path, marks, "claimed", 1, "false")

    def claimed_unrecorded() -> bool:
        with db.session_scope(readonly=True) as session:
            rows = session.execute(select(JobAttempt.task_id, JobAttempt.attempt, JobAttempt.backend_job_id)).all()
        return [tuple(r) for r in rows] == [(1, 1, None)]

    wait_until("task 1 attempt 1 claimed, its submission not recorded", claimed_unrecorded, system)
    time.sleep(1.0)  # blocked on the FIFO: it stays so
    assert claimed_unrecorded() and not (marks / "pid-0-1").exists()
    kill9_tree(proc.pid)
    proc.wait(timeout=30)
    system.up()
    system.wait_for("claimed", timeout=120)
    assert attempts(db) == {0: ["Lost", "Done"]}
    assert lost_errors(db) == ["lost: its submission was never recorded (the submitting agent died)"]
    assert not (marks / "pid-0-1").exists()  # attempt 1 never ran
    assert len(system.json("catalog", "find", "datatype=sim")) == 1


def test_killed_between_reports_and_their_finalization(
    system: System, tmp_path: Path, marks: Path, db: Database
) -> None:
    system.agent_config.update(CRASH_AGENTS)
    serve = serve_apart(system, db)
    agents = system.agents("no-finalize", only="input,tasks,submit,monitor,production")
    create(system, tmp_path, marks, "reported", 3, "false")

    def all_reported() -> bool:
        return attempts(db) == {i: ["Reported"] for i in range(3)}

    wait_until("every attempt reported, none finalized", all_reported, system)
    # Past the report grace and the heartbeat timeout: a report waiting for its finalization
    # is never taken for a lost attempt, however long it waits.
    time.sleep(CRASH_AGENTS["heartbeat_timeout"] + 1.5)
    assert all_reported(), attempts(db)
    for p in (agents, serve):
        kill9_tree(p.pid)
        p.wait(timeout=30)
    assert all_reported()  # the outputs are in storage, not yet in the catalog
    system.up()
    system.wait_for("reported", timeout=120)
    assert attempts(db) == {i: ["Done"] for i in range(3)}  # the reports stood: no retry
    sims = system.json("catalog", "find", "datatype=sim")
    assert sorted(f["metadata"]["seed"] for f in sims) == [0, 1, 2]
    assert len(system.json("catalog", "find", "datatype=reco")) == 2
    stored = [p for p in (system.data_dir / "storage").rglob("*.sim")]
    assert len(stored) == 3, stored  # each output stored once
