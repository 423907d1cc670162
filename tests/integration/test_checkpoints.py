"""Checkpoints, end to end through the CLI against `metaprod up`: a command that does step 1,
writes it to METAPROD_CHECKPOINT_DIR and then fails gets it back in its next attempt, so step 1
runs once across its attempts, also when the attempt was killed by `max_runtime`; the saved
checkpoint goes when the task is Done, unless `keep_checkpoints`."""

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


def test_an_attempt_killed_by_max_runtime_keeps_what_it_saved(started: System, tmp_path: Path) -> None:
    hang_first = 'if [ "$METAPROD_ATTEMPT" = 1 ]; then sleep 300; fi\n'
    the_spec = spec("slow", STEP1 + hang_first + FINISH, max_runtime=2, keep_checkpoints=True)
    tasks = run(started, tmp_path, the_spec)
    assert [t["attempt"] for t in tasks] == [2, 2]
    assert outputs(started, "slow") == ["1\n", "1\n"]
    assert all(saved(started, t["id"]) for t in tasks)  # keep_checkpoints
