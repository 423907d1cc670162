"""A hostile `user` against `metaprod up` with its jobs in the sandbox (docs/jobs.md,
Isolation): commands that read the admin token (relative and absolute paths), the database,
another attempt's work directory, the environment of `up` (also through /proc), that write
into the data directory, output a symlink to the token, flood stdout with 200 MB, detach a
`setsid` child or fork 200 sleepers, exceed max_output_bytes; specs whose output globs climb
out or are absolute. Every attempt fails with a clear reason or is contained, nothing outside
it changes (the data directory's sensitive files hashed before and after), nothing of it is
left running, the log is capped and the wrapper's memory bounded. A full storage (ENOSPC)
fails the attempt with its reason and leaves no file in storage."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.system import System
from tests.integration.test_pipeline import write_spec
from tests.integration.test_stop_and_runtime import sleepers, wait_tasks
from tests.processes import descendants

SECRET = f"launcher-secret-{uuid.uuid4().hex}"
VICTIM = f"victim-secret-{uuid.uuid4().hex}"


def sensitive(data_dir: Path) -> dict[str, str]:
    """sha256 of the data directory's top-level files but the logs (tokens, lock, database)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_dir.iterdir()
        if p.is_file() and not p.name.endswith((".log", ".db", ".db-wal", ".db-shm", ".db-journal"))
    }


def user_token(system: System) -> str:
    created = system.json("token", "create", "mallory", "--role", "user")
    return str(created["secret"])


def as_user(system: System, token: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return system.cli(*args, "--token", token, check=check)


def the_task(system: System, production: str, name: str, status: str, timeout: float = 90) -> dict[str, Any]:
    tasks = wait_tasks(system, production, name, lambda ts: bool(ts) and ts[0]["status"] == status, timeout)
    assert tasks and tasks[0]["status"] == status, tasks
    return tasks[0]


def log_of(system: System, task: dict[str, Any]) -> str:
    return system.cli("task", "log", str(task["id"]), "--attempt", "1").stdout


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_hostile_commands_are_contained(system: System, tmp_path: Path) -> None:
    data = system.data_dir
    database_file = system.db_url.removeprefix("sqlite:///") if system.db_url.startswith("sqlite") else ""
    # The environment of `up` holds a secret; none of it may reach a command.
    system.extra_env["METAPROD_TEST_LAUNCHER_SECRET"] = SECRET
    system.extra_env["LAUNCHER_SECRET"] = SECRET
    up = system.up()
    token = user_token(system)
    before = sensitive(data)
    admin_token = (data / "admin.token").read_text().strip()

    # A victim runs (its secret in its work directory) until the test releases it.
    victim = {
        "production": "victim",
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "hold",
                "tasks": 1,
                "max_attempts": 1,
                "max_runtime": 120,
                "command": f"echo {VICTIM} > secret.txt; while [ ! -e release ]; do sleep 0.05; done; "
                "ls -A > listing.txt; cat secret.txt >> listing.txt",
                "outputs": [{"glob": "listing.txt", "metadata": {"datatype": "listing"}}],
            }
        ],
    }
    as_user(system, token, "production", "create", "-f", write_spec(tmp_path, victim))
    as_user(system, token, "production", "start", "victim")
    the_task(system, "victim", "hold", "Running")
    deadline = time.monotonic() + 30
    secrets = list((data / "work").glob("*/*/secret.txt"))
    while not secrets and time.monotonic() < deadline:
        time.sleep(0.05)
        secrets = list((data / "work").glob("*/*/secret.txt"))
    assert secrets, "the victim's command did not start"

    snoop = (
        "cat ../../../admin.token ../../../../admin.token; "
        f"cat {data}/admin.token; cat {data}/*.token; head -c 64 {data}/metaprod.db; "
        + (f"head -c 64 {database_file}; " if database_file else "")
        + f"ls -la {data} {data}/work {data}/storage {data}/logs; "
        f"cat {data}/work/*/*/secret.txt ../*/secret.txt; "
        f"for d in {data}/work/*/* ../*; do echo intruder > $d/intruder.txt; done; "
        f"echo pwned > {data}/pwned; echo pwned >> {data}/admin.token; mkdir {data}/storage/evil; "
        "env; cat /proc/*/environ | tr '\\0' '\\n'; ls /proc; cat /proc/1/cmdline; "
        "echo ok > out.txt"
    )
    hostile = {
        "production": "hostile",
        "fields": {"datatype": "str"},
        "transformations": [
            {"name": "snoop", "tasks": 1, "max_attempts": 1, "command": snoop, "outputs": [{"glob": "out.txt"}]},
            {
                "name": "environment",
                "tasks": 1,
                "max_attempts": 1,
                "env": {"GREETING": "hello sandbox"},
                "command": "env > env.txt",
                "outputs": [{"glob": "env.txt", "metadata": {"datatype": "envdump"}}],
            },
            {
                "name": "symlink",
                "tasks": 1,
                "max_attempts": 1,
                "command": "ln -s ../../../admin.token leak.dat",
                "outputs": [{"glob": "*.dat"}],
            },
            {
                "name": "flood",
                "tasks": 1,
                "max_attempts": 1,
                "command": "echo first-line; yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 200000000; "
                "echo; echo last-line",
            },
            {
                "name": "detach",
                "tasks": 1,
                "max_attempts": 1,
                "command": "setsid sleep 2001 & (setsid sleep 2002 &); echo ok > out.txt",
                "outputs": [{"glob": "out.txt"}],
            },
            {
                "name": "sleepers",
                "tasks": 1,
                "max_attempts": 1,
                "command": "i=0; while [ $i -lt 200 ]; do sleep 2003 & i=$((i + 1)); done; echo ok > out.txt",
                "outputs": [{"glob": "out.txt"}],
            },
            {
                "name": "big",
                "tasks": 1,
                "max_attempts": 1,
                "max_output_bytes": 1000,
                "command": "head -c 5000 /dev/zero > big.bin",
                "outputs": [{"glob": "*.bin"}],
            },
        ],
    }
    as_user(system, token, "production", "create", "-f", write_spec(tmp_path, hostile))
    as_user(system, token, "production", "start", "hostile")

    snooped = the_task(system, "hostile", "snoop", "Done")
    log = log_of(system, snooped)
    for secret in (admin_token, SECRET, VICTIM, "SQLite format 3"):
        assert secret not in log, f"{secret[:20]}... reached the job's log"
    assert "No such file or directory" in log  # the data directory is not there at all
    assert "METAPROD_TOKEN" not in log and "METAPROD_TEST_LAUNCHER_SECRET" not in log

    environment = the_task(system, "hostile", "environment", "Done")
    [env_file] = system.json("catalog", "find", "datatype=envdump")
    seen = dict(
        line.split("=", 1)
        for line in Path(env_file["pfn"].removeprefix("file://")).read_text().splitlines()
        if "=" in line
    )
    assert seen["GREETING"] == "hello sandbox"
    assert {n for n in seen if not n.startswith("METAPROD_")} <= {
        "PATH",
        "HOME",
        "LANG",
        "GREETING",
        "PWD",
        "SHLVL",
        "_",
    }
    assert SECRET not in str(seen) and environment["status"] == "Done"

    linked = the_task(system, "hostile", "symlink", "Failed")
    assert "output leak.dat is a symbolic link" in linked["last_error"]
    assert not list((data / "storage").glob("hostile/symlink/**/*.dat"))

    flood = the_task(system, "hostile", "flood", "Done", timeout=180)
    flood_log = log_of(system, flood)
    assert "first-line" in flood_log and "last-line" in flood_log and "bytes of output cut" in flood_log
    assert len(flood_log) < 3 * 2**20
    logs = list((data / "logs").glob(f"*/t{flood['id']}-a1*.log"))
    assert logs and all(p.stat().st_size < 3 * 2**20 for p in logs)
    workers = [pid for pid in descendants(up.pid) if b"pyworker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers and max(peak_rss_kib(pid) for pid in workers) < 200 * 1024  # 200 MB never held

    the_task(system, "hostile", "detach", "Done")
    the_task(system, "hostile", "sleepers", "Done")
    assert sleepers("2001", "2002", "2003") == []

    big = the_task(system, "hostile", "big", "Failed")
    assert "more than max_output_bytes 1000" in big["last_error"]
    assert not list((data / "storage").glob("hostile/big/**/*.bin"))

    # The victim was neither read nor written: release it, its listing is its own.
    for secret_file in secrets:
        (secret_file.parent / "release").touch()
    the_task(system, "victim", "hold", "Done")
    [listing] = system.json("catalog", "find", "datatype=listing")
    text = Path(listing["pfn"].removeprefix("file://")).read_text().split()
    assert text == [".checkpoint", "listing.txt", "release", "secret.txt", VICTIM], text  # its own checkpoint dir

    # Nothing outside the attempts changed.
    assert sensitive(data) == before
    assert not (data / "pwned").exists() and not (data / "storage" / "evil").exists()
    assert not list(data.glob("**/intruder.txt"))
    failed = {
        e["transformation"]: e["detail"]
        for e in system.json("production", "history", "hostile")
        if e["event"] == "task_failed"
    }
    assert set(failed) == {"symlink", "big"}
    assert "output leak.dat is a symbolic link" in failed["symlink"]


@pytest.mark.parametrize(
    "glob, reason",
    [("../*.out", "climbs out of the work directory"), ("/etc/host*", "is absolute"), ("a/../../b", "climbs out")],
)
def test_output_globs_that_leave_the_work_directory_are_refused(
    system: System, tmp_path: Path, glob: str, reason: str
) -> None:
    system.up()
    token = user_token(system)
    spec = {
        "production": "evil",
        "transformations": [{"name": "dotdot", "tasks": 1, "command": "true", "outputs": [{"glob": glob}]}],
    }
    path = write_spec(tmp_path, spec)
    for verb in ("validate", "create"):
        result = as_user(system, token, "production", verb, "-f", path, check=False)
        assert result.returncode != 0, result.stdout
        assert reason in result.stderr + result.stdout and glob in result.stderr + result.stdout
    assert system.json("production", "list") == []


def test_env_names_are_checked(system: System, tmp_path: Path) -> None:
    system.up()
    for env, reason in (({"METAPROD_TASK_ID": "1"}, "reserved"), ({"1BAD": "x"}, "not a variable name")):
        spec = {"production": "e", "transformations": [{"name": "t", "tasks": 1, "command": "true", "env": env}]}
        result = system.cli("production", "validate", "-f", write_spec(tmp_path, spec), check=False)
        assert result.returncode != 0 and reason in result.stderr + result.stdout


def test_a_full_storage_fails_the_attempt_and_leaves_nothing(system: System, tmp_path: Path) -> None:
    store = tmp_path / "full-storage"
    store.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(store)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        system.agent_config["storage_url"] = str(store)
        system.up()
        spec = {
            "production": "full",
            "transformations": [
                {
                    "name": "w",
                    "tasks": 1,
                    "max_attempts": 1,
                    "command": "echo small > a.out; head -c 300000 /dev/zero > b.out",
                    "outputs": [{"glob": "*.out"}],
                }
            ],
        }
        system.cli("production", "create", "-f", write_spec(tmp_path, spec))
        system.cli("production", "start", "full")
        task = the_task(system, "full", "w", "Failed")
        assert "storing outputs failed: No space left on device" in task["last_error"]
        assert [p for p in store.rglob("*") if p.is_file()] == []
        failed = [e["detail"] for e in system.json("production", "history", "full") if e["event"] == "task_failed"]
        assert failed == [f"task {task['id']}: attempt 1: storing outputs failed: No space left on device"]
        assert system.json("production", "progress", "full")["transformations"][0]["tasks"]["Failed"] == 1
    finally:
        system.stop()
        subprocess.run(["umount", str(store)], check=False)
