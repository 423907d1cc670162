"""Data cycles end to end (real server, agents and jobs): metadata inheritance makes outputs
match the input query of the transformation that made them, or of an ancestor, or of another
production's; every production still ends, and the skipped files are counted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.system import System
from tests.unit.core.test_validation_cycles import DIRAC_TWO_STEP

SIM = {"zenith": 20, "particle": "gamma", "tel_sim_prog": "simtel", "outputType": "Data"}


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{spec['production']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def import_files(system: System, tmp_path: Path, name: str, metadata: list[dict[str, Any]]) -> None:
    lines = []
    for i, md in enumerate(metadata):
        data = tmp_path / f"{name}{i}.dat"
        data.write_text(f"{name} {i}\n")
        lines.append(json.dumps({"lfn": f"/in/{name}{i}.dat", "pfn": str(data), "metadata": md}))
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    system.cli("catalog", "import", str(path))


def transformations(system: System, production: str) -> dict[str, dict[str, Any]]:
    progress = system.json("production", "progress", production)
    return {t["name"]: t for t in progress["transformations"]}


def wait_done(system: System, production: str, done: dict[str, int], timeout: float = 180.0) -> None:
    """Until each named transformation has that many Done tasks (its input still open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_name = transformations(system, production)
        if all(by_name[name]["tasks"]["Done"] >= n for name, n in done.items()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{production}: not {done}: {by_name}\n{system.logs()}")


def test_the_dirac_two_step_analysis_ends(system: System, tmp_path: Path) -> None:
    spec = json.loads(json.dumps(DIRAC_TWO_STEP))
    spec["transformations"][0]["command"] = "cat $METAPROD_INPUTS > out.dl1"
    spec["transformations"][1]["command"] = "cat $METAPROD_INPUTS > out.dl2"
    system.up()
    created = system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    said = created.stdout + created.stderr
    assert "would take its own outputs" in said and "outputType" in said, said
    import_files(system, tmp_path, "sim", [SIM] * 4)
    system.cli("production", "start", "two-step")
    wait_done(system, "two-step", {"step1": 4, "step2": 4})
    system.cli("production", "close", "two-step")
    progress = system.wait_for("two-step", timeout=120)

    by_name = {t["name"]: t for t in progress["transformations"]}
    step1, step2 = by_name["step1"], by_name["step2"]
    # Exactly one task per input of each step: the 4 imported files, then step1's 4 outputs.
    assert step1["tasks"]["Done"] == 4 and sum(step1["tasks"].values()) == 4
    assert step2["tasks"]["Done"] == 4 and sum(step2["tasks"].values()) == 4
    assert step1["files"]["Processed"] == 4 and step2["files"]["Processed"] == 4
    # step1 skipped its own 4 outputs and step2's 4 (which inherit its input keys).
    assert step1["skipped_files"] == 8 and step2["skipped_files"] == 0
    assert progress["skipped_files"] == 8

    listed = system.json("transformation", "files", "two-step", "step1")
    skipped = sorted(f["lfn"] for f in listed if f["status"] == "Skipped")
    assert len(skipped) == 8 and all(lfn.startswith("/two-step/step") for lfn in skipped)
    only = system.json("transformation", "files", "two-step", "step1", "--status", "Skipped")
    assert sorted(f["lfn"] for f in only) == skipped
    text = system.cli("transformation", "files", "two-step", "step1").stdout
    assert "8 matching files skipped" in text
    assert "Skipped" in system.cli("production", "progress", "two-step").stdout

    # The outputs do match step1's input query: only their ancestry kept them out.
    assert len(system.json("catalog", "find", json.dumps(SIM))) == 12


PING = {"kind": "ping"}
PONG = {"kind": "pong"}


def feeder(name: str, takes: dict[str, Any], makes: dict[str, Any]) -> dict[str, Any]:
    return {
        "production": name,
        "fields": {"kind": "str"},
        "transformations": [
            {
                "name": "echo",
                "input_query": takes,
                "command": "cat $METAPROD_INPUTS > out.dat",
                "outputs": [{"glob": "*.dat", "metadata": makes}],
                "output_query": makes,
            }
        ],
    }


def test_two_productions_feeding_each_other_both_end(system: System, tmp_path: Path) -> None:
    system.up()
    system.cli("production", "create", "-f", write_spec(tmp_path, feeder("ping", PING, PONG)))
    system.cli("production", "create", "-f", write_spec(tmp_path, feeder("pong", PONG, PING)))
    system.cli("production", "start", "ping")
    system.cli("production", "start", "pong")
    # ping0, ping1 -> ping -> pong files -> pong -> ping files, which ping skips (its own
    # descendants); pong0 -> pong -> a ping file that ping takes (it never made it) -> a
    # pong file, which pong skips.
    import_files(system, tmp_path, "ping", [PING, PING])
    import_files(system, tmp_path, "pong", [PONG])
    wait_done(system, "ping", {"echo": 3})
    wait_done(system, "pong", {"echo": 3})
    system.cli("production", "close", "ping")
    system.cli("production", "close", "pong")
    ping = system.wait_for("ping", timeout=120)
    pong = system.wait_for("pong", timeout=120)
    (a,) = ping["transformations"]
    (b,) = pong["transformations"]
    assert a["tasks"]["Done"] == 3 and sum(a["tasks"].values()) == 3
    assert b["tasks"]["Done"] == 3 and sum(b["tasks"].values()) == 3
    assert (a["skipped_files"], b["skipped_files"]) == (2, 1)
    assert len(system.json("catalog", "find", "kind=ping")) + len(system.json("catalog", "find", "kind=pong")) == 9
