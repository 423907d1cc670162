"""An attempt's process tree: detached processes (setsid, double fork) are found through the
subreaper and killed with the rest; processes that are not the attempt's are left alone.
Each case runs in a process of its own, which becomes the subreaper (as the wrapper's does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from metaprod.agents import proctree

from tests.processes import process_alive

SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from metaprod.agents import proctree

    assert proctree.become_subreaper()
    dedicated = sys.argv[1] == "dedicated"
    # Not the attempt's: another session, no attempt environment.
    bystander = subprocess.Popen(["sleep", "1020"], start_new_session=True)
    env = dict(os.environ, METAPROD_TASK_ID="7", METAPROD_ATTEMPT="2")
    marks = (b"METAPROD_TASK_ID=7", b"METAPROD_ATTEMPT=2")
    command = subprocess.Popen(
        ["/bin/sh", "-c", "setsid sleep 1021 & (setsid sleep 1022 &); sleep 1023"], env=env, start_new_session=True
    )
    def attempt():
        live, _ = proctree.attempt_processes(command.pid, marks, dedicated=False)
        return sorted(p.pid for p in live)
    while len(attempt()) < 4:  # the shell and its three sleeps
        time.sleep(0.01)
    found = attempt()
    killed = proctree.end_attempt_processes(command.pid, marks, dedicated=dedicated, reap=False)
    command.wait()
    proctree.end_attempt_processes(command.pid, marks, dedicated=dedicated, reap=True)
    print(json.dumps({"found": found, "killed": killed, "bystander": bystander.pid,
                      "children": proctree.has_children() if dedicated else None}))
    bystander.kill()
    """
)


def run(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_detached_processes_of_the_attempt_are_found_and_killed_and_others_spared() -> None:
    result = run("attempt")
    found = result["found"]
    assert isinstance(found, list) and len(found) == 4
    assert result["killed"] == 4
    assert not any(process_alive(pid) for pid in found)


def test_a_dedicated_process_ends_every_descendant_and_reaps_them() -> None:
    result = run("dedicated")
    assert result["killed"] == 5  # the bystander too: in a dedicated process everything is the job's
    assert result["children"] is False  # all reaped: no zombie left behind
    found = result["found"]
    assert isinstance(found, list) and not any(process_alive(pid) for pid in found)


def test_has_children_sees_a_live_child() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert proctree.has_children()
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while process_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.getpid() not in {p.ppid for p in proctree.descendants(os.getpid()) if p.pid == child.pid}
