"""The examples of deploy/examples/ run to completion on the real system (the Slurm one is in
test_backend_slurm.py, which skips without a cluster)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.system import System

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_muon_study(system: System) -> None:
    system.up()
    system.cli("production", "create", "-f", str(EXAMPLES / "muon-study.yaml"))
    system.cli("production", "start", "muon-study")
    progress = system.wait_for("muon-study", timeout=240)
    assert all(t["status"] == "Completed" for t in progress["transformations"])
    assert system.json("catalog", "find", "datatype=dst")


def test_catalog_processing_merges_per_run(system: System, tmp_path: Path) -> None:
    system.up()
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = []
    for run in (7, 8, 9):
        for detector in ("ecal", "hcal", "muon"):
            path = raw / f"{run}-{detector}.dat"
            path.write_text(f"run {run} {detector}\n")
            meta = {"datatype": "raw", "run": run, "detector": detector}
            lines.append(json.dumps({"lfn": f"/raw/{path.name}", "pfn": str(path), "metadata": meta}))
    (tmp_path / "raw.jsonl").write_text("\n".join(lines) + "\n")
    system.cli("production", "create", "-f", str(EXAMPLES / "catalog-processing.yaml"))  # declares the fields
    system.cli("production", "start", "detector-calib")
    system.cli("catalog", "import", str(tmp_path / "raw.jsonl"))
    system.cli("production", "close", "detector-calib")  # no more raw files: it may end
    progress = system.wait_for("detector-calib", timeout=240)
    calibrate = next(t for t in progress["transformations"] if t["name"] == "calibrate")
    assert calibrate["tasks"]["Done"] == 6  # ecal and hcal of three runs; muon is not selected
    merge = next(t for t in progress["transformations"] if t["name"] == "merge-run")
    assert merge["tasks"]["Done"] == 3 and merge["files"]["Processed"] == 6  # one task per run
    merged = system.json("catalog", "find", "datatype=merged")
    # Merged per run: no merge mixes runs (`run` is inherited only when all inputs agree).
    assert sorted(f["metadata"].get("run") for f in merged) == [7, 8, 9]
