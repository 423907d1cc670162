"""The same data-driven chain on the Slurm and Dask backends, end to end through `metaprod up`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.system import System


def slurm_ready() -> bool:
    if shutil.which("sbatch") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False)
    return "UP" in ping.stdout


def spec(name: str, backend: str, options: dict[str, object]) -> dict[str, object]:
    return {
        "production": name,
        "fields": {"datatype": "str", "n": "int"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 2,
                "backend": backend,
                "options": options,
                "command": 'echo "$METAPROD_TASK_INDEX" > out.dat; '
                'printf \'{"n": %d}\' "$METAPROD_TASK_INDEX" > out.dat.meta.json',
                "outputs": [{"glob": "*.dat", "metadata": {"datatype": "gen"}}],
                "output_query": {"datatype": "gen"},
            },
            {
                "name": "sum",
                "parents": ["gen"],
                "input_query": {"datatype": "gen"},
                "group_size": 2,
                "backend": backend,
                "options": options,
                "command": "cat $METAPROD_INPUTS > total.dat",
                "outputs": [{"glob": "*.dat", "metadata": {"datatype": "sum"}}],
                "output_query": {"datatype": "sum"},
            },
        ],
    }


def run_chain(system: System, tmp_path: Path, production: dict[str, object]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(production))
    system.up()
    system.cli("production", "create", "-f", str(path))
    system.cli("production", "start", str(production["production"]))
    system.wait_for(str(production["production"]), timeout=180)
    (total,) = system.json("catalog", "find", "datatype=sum")
    assert sorted(Path(total["pfn"].removeprefix("file://")).read_text().split()) == ["0", "1"]
    tasks = system.json("transformation", "tasks", str(production["production"]), "gen")
    assert all(t["status"] == "Done" for t in tasks) and len(tasks) == 2


@pytest.mark.skipif(
    not slurm_ready() and os.environ.get("METAPROD_REQUIRE_SLURM") != "1",
    reason="Slurm is not running (deploy/slurm/setup-single-node.sh starts it)",
)
def test_chain_on_slurm(system: System, tmp_path: Path) -> None:
    run_chain(system, tmp_path, spec("on-slurm", "slurm", {"time": "5"}))
    jobs = system.json("transformation", "tasks", "on-slurm", "sum")
    assert jobs[0]["backend_job_id"].isdigit()  # a Slurm job id


def test_chain_on_dask(system: System, tmp_path: Path) -> None:
    system.agent_config["backends"] = {"dask": {"workers": 1}}
    run_chain(system, tmp_path, spec("on-dask", "dask", {}))
