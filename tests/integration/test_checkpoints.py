"""Checkpoints, end to end through the CLI against `metaprod up`: a command that does step 1,
writes it to METAPROD_CHECKPOINT_DIR and then fails gets it back in its next attempt, so step 1
runs once across its attempts, also when the attempt was killed by `max_runtime`; the saved
checkpoint goes when the task is Done, unless `keep_checkpoints`; `task show` lists the
attempts and the checkpoint (saved with its files, or removed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.system import System
from tests.integration.test_pipeline import write_spec

# Step 1 leaves a mark naming the attempt that did it; the output is that mark.
STEP1 = (
    'if [ ! -f "$METAPROD_CHECKPOINT_DIR/step1" ]; then '
    'echo "step 1 by attempt $METAPROD_ATTEMPT"; echo "$METAPROD_ATTEMPT" > "$METAPROD_CHECKPOINT_DIR/step1"; fi\n'
)
FINISH = 'cp "$METAPROD_CHECKPOINT_DIR/step1" out.dat\n'


def spec(name: str, command: str, **settings: Any) -> dict[str, Any]:
    return {
        "production": name,
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "work",
                "tasks": 2,
                "max_attempts": 3,
                "command": command,
                "outputs": [{"glob": "*.dat", "metadata": {"datatype": "dat"}}],
                **settings,
            }
        ],
    }


def run(system: System, tmp_path: Path, the_spec: dict[str, Any]) -> list[dict[str, Any]]:
    system.cli("production", "create", "-f", write_spec(tmp_path, the_spec))
    system.cli("production", "start", the_spec["production"])
    system.wait_for(the_spec["production"], timeout=90)
    tasks: list[dict[str, Any]] = system.json("transformation", "tasks", the_spec["production"], "work")
    return tasks


def outputs(system: System, production: str) -> list[str]:
    found = system.json("catalog", "find", "datatype=dat")
    lfns = sorted(f["lfn"] for f in found if f["lfn"].startswith(f"/{production}/"))
    return [Path(system.json("catalog", "show", lfn)["pfn"]).read_text() for lfn in lfns]


def saved(system: System, task_id: int) -> bool:
    return (system.data_dir / "storage" / "checkpoints" / str(task_id) / "checkpoint.tar").is_file()


@pytest.fixture
def started(system: System) -> System:
    system.up()
    return system


def test_a_failed_attempt_hands_its_checkpoint_to_the_next(started: System, tmp_path: Path) -> None:
    fail_twice = 'if [ "$METAPROD_ATTEMPT" -lt 3 ]; then echo "fails" >&2; exit 1; fi\n'
    tasks = run(started, tmp_path, spec("fails", STEP1 + fail_twice + FINISH))
    assert [t["attempt"] for t in tasks] == [3, 3]
    assert outputs(started, "fails") == ["1\n", "1\n"]  # step 1 by attempt 1, never again
    for t in tasks:
        logs = "".join(started.cli("task", "log", str(t["id"]), "--attempt", str(n)).stdout for n in (1, 2, 3))
        assert logs.count("step 1 by attempt") == 1, logs
        assert not saved(started, t["id"])  # Done: its checkpoint went
        shown = started.json("task", "show", str(t["id"]))
        assert (shown["production"], shown["transformation"], shown["status"]) == ("fails", "work", "Done")
        assert [(a["attempt"], a["status"], a["exit_code"]) for a in shown["attempts"]] == [
            (1, "Failed", 1),
            (2, "Failed", 1),
            (3, "Done", 0),
        ]
        assert all(a["submitted_at"] and a["finished_at"] for a in shown["attempts"])
        assert len(shown["outputs"]) == 1 and shown["reused_from"] is None
        assert shown["checkpoint"]["state"] == "removed" and not shown["checkpoint"]["keep"]
        assert shown["checkpoint"]["archive"] is None and shown["checkpoint"]["files"] == []
    missing = started.cli("task", "show", "999999", check=False)
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.strip() == "metaprod: error: task 999999 does not exist", missing.stderr


def test_an_attempt_killed_by_max_runtime_keeps_what_it_saved(started: System, tmp_path: Path) -> None:
    hang_first = 'if [ "$METAPROD_ATTEMPT" = 1 ]; then sleep 300; fi\n'
    the_spec = spec("slow", STEP1 + hang_first + FINISH, max_runtime=2, keep_checkpoints=True)
    tasks = run(started, tmp_path, the_spec)
    assert [t["attempt"] for t in tasks] == [2, 2]
    assert outputs(started, "slow") == ["1\n", "1\n"]
    assert all(saved(started, t["id"]) for t in tasks)  # keep_checkpoints
    for t in tasks:
        shown = started.json("task", "show", str(t["id"]))
        assert [(a["attempt"], a["status"]) for a in shown["attempts"]] == [(1, "Failed"), (2, "Done")]
        assert "max_runtime" in shown["attempts"][0]["error"], shown["attempts"][0]
        checkpoint = shown["checkpoint"]
        assert (checkpoint["state"], checkpoint["keep"]) == ("saved", True), checkpoint
        archive = checkpoint["archive"]
        assert archive["path"].endswith(f"/checkpoints/{t['id']}/checkpoint.tar") and archive["size"] > 0
        assert archive["modified"] is not None
        assert [(f["path"], f["size"]) for f in checkpoint["files"]] == [("step1", 2)]  # "1\n"
        assert checkpoint["files"][0]["modified"] is not None
        text = started.cli("task", "show", str(t["id"])).stdout
        assert "step1" in text and "saved (kept once Done)" in text, text
