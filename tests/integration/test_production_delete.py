"""`production delete` through the CLI against `metaprod up` with real jobs: execution records,
logs and scratch go, the outputs stay with their full provenance, the name is free again;
`--purge-outputs` also removes the outputs from the catalog and the storage, never the
imported files they were made from."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from metaprod.db import events, productions
from metaprod.db.session import Database

from tests.integration.system import System


def two_steps(name: str, gen: str, reco: str, datatype: str) -> dict[str, Any]:
    return {
        "production": name,
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": gen,
                "tasks": 2,
                "command": 'echo "sim $METAPROD_TASK_INDEX" > out.sim',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": datatype}}],
                "output_query": {"datatype": datatype},
            },
            {
                "name": reco,
                "parents": [gen],
                "input_query": f"datatype={datatype}",
                "command": "cat $METAPROD_INPUTS > out.reco",
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": f"{datatype}-reco"}}],
                "output_query": {"datatype": f"{datatype}-reco"},
            },
        ],
    }


def create_and_run(system: System, tmp_path: Path, spec: dict[str, Any]) -> None:
    path = tmp_path / f"{spec['transformations'][0]['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    system.cli("production", "create", "-f", str(path))
    system.cli("production", "start", spec["production"])
    system.wait_for(spec["production"])


def delete_and_wait(system: System, name: str, *flags: str, timeout: float = 60.0) -> None:
    before = sum(p["status"] == "Cleaned" for p in system.json("production", "list", "--all"))
    system.cli("production", "delete", name, *flags)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(p["status"] == "Cleaned" for p in system.json("production", "list", "--all")) > before:
            return
        time.sleep(0.3)
    raise TimeoutError(f"{name} not Cleaned: {system.json('production', 'list', '--all')}\n{system.logs()}")


def lfns(system: System, query: str) -> list[str]:
    return sorted(f["lfn"] for f in system.json("catalog", "find", query))


def events_of(system: System, name: str) -> list[tuple[str, str]]:
    database = Database(system.db_url)
    try:
        with database.session_scope(readonly=True) as session:
            production = productions.get_production(session=session, name=name)
            return [(e.event, e.actor) for e in events.history(session=session, production=production)]
    finally:
        database.dispose()


def provenance(system: System, lfn: str) -> dict[str, Any]:
    prov: dict[str, Any] = system.json("catalog", "show", lfn)["provenance"]
    return prov


def test_delete_keeps_outputs_with_provenance_then_purge(system: System, tmp_path: Path) -> None:
    system.up()
    data = system.data_dir
    create_and_run(system, tmp_path, two_steps("study", "gen", "reco", "sim"))
    recos = lfns(system, "datatype=sim-reco")
    sims = lfns(system, "datatype=sim")
    assert len(recos) == 2 and len(sims) == 2
    before = {lfn: provenance(system, lfn) for lfn in recos + sims}
    reco_tasks = {t["id"] for t in system.json("transformation", "tasks", "study", "reco")}
    assert {p["task"] for lfn, p in before.items() if lfn in recos} == reco_tasks
    assert all(
        p["production"] == "study" and p["transformation"] == "reco" for lfn, p in before.items() if lfn in recos
    )
    assert sorted(i for lfn in recos for i in before[lfn]["inputs"]) == sims
    assert all(before[lfn]["inputs"] == [] for lfn in sims)
    assert list(data.glob("logs/**/*.log")), "the attempts' logs are on disk"
    stored = {lfn: Path(system.json("catalog", "show", lfn)["pfn"]) for lfn in recos + sims}
    assert all(p.is_file() for p in stored.values())

    delete_and_wait(system, "study")

    # The datasets stay, with the provenance they had; the execution records are gone.
    assert lfns(system, "datatype=sim-reco") == recos
    assert {lfn: provenance(system, lfn) for lfn in recos + sims} == before
    assert all(p.is_file() for p in stored.values())
    assert system.json("transformation", "tasks", "study", "reco") == []
    assert not list(data.glob("logs/**/*.log"))
    assert not list((data / "work").glob("*")), "the attempts' work directories are gone"
    shown = system.json("production", "show", "study")
    assert shown["status"] == "Cleaned"
    assert [p["name"] for p in system.json("production", "list")] == []
    assert [(p["name"], p["status"]) for p in system.json("production", "list", "--all")] == [("study", "Cleaned")]
    assert ("cleaned", "agent:production") in events_of(system, "study")

    # The name is free: a new production of that name runs, here also on an imported file.
    raw = tmp_path / "raw.sim2"
    raw.write_text("imported\n")
    imports = tmp_path / "imports.jsonl"
    row = {"lfn": "/in/raw.sim2", "pfn": str(raw), "size": 9, "metadata": {"datatype": "sim2"}}
    imports.write_text(json.dumps(row) + "\n")
    system.cli("catalog", "import", str(imports))
    create_and_run(system, tmp_path, two_steps("study", "gen2", "reco2", "sim2"))
    new_outputs = lfns(system, "datatype=sim2-reco") + [f for f in lfns(system, "datatype=sim2") if f != "/in/raw.sim2"]
    assert len(new_outputs) == 5  # 3 reco2 outputs (2 from gen2, 1 from the import), 2 gen2 outputs
    reco_of_import = next(
        lfn for lfn in lfns(system, "datatype=sim2-reco") if provenance(system, lfn)["inputs"] == ["/in/raw.sim2"]
    )
    assert provenance(system, reco_of_import)["transformation"] == "reco2"
    new_stored = [Path(system.json("catalog", "show", lfn)["pfn"]) for lfn in new_outputs]
    assert all(p.is_file() for p in new_stored)
    listed = system.json("production", "list", "--all")
    assert [(p["name"], p["status"]) for p in listed] == [("study", "Cleaned"), ("study", "Completed")]

    delete_and_wait(system, "study", "--purge-outputs")

    assert lfns(system, "datatype=sim2-reco") == []
    assert lfns(system, "datatype=sim2") == ["/in/raw.sim2"]
    assert not any(p.exists() for p in new_stored)
    assert raw.read_text() == "imported\n"
    assert system.json("catalog", "show", "/in/raw.sim2")["provenance"] is None
    # The first production's outputs were not its to purge.
    assert lfns(system, "datatype=sim-reco") == recos
    assert all(p.is_file() for p in stored.values())
    assert [p["status"] for p in system.json("production", "list", "--all")] == ["Cleaned", "Cleaned"]


def test_the_same_spec_runs_again_under_a_freed_name(system: System, tmp_path: Path) -> None:
    system.up()
    spec = two_steps("again", "gen", "reco", "sim")
    create_and_run(system, tmp_path, spec)
    first = sorted(lfns(system, "datatype=sim"))
    assert first == ["/again/gen/000000/out.sim", "/again/gen/000001/out.sim"]
    delete_and_wait(system, "again")
    # Its outputs stay in the catalog under /again/...: the new production writes under
    # /again@2/ and cannot collide with them (and, fed by the catalog, takes them as inputs).
    create_and_run(system, tmp_path, spec)
    assert sorted(lfns(system, "datatype=sim")) == [
        *first,
        "/again@2/gen/000000/out.sim",
        "/again@2/gen/000001/out.sim",
    ]
    second = [f for f in lfns(system, "datatype=sim-reco") if f.startswith("/again@2/")]
    assert len(second) == 4  # its two outputs, and the two kept ones of the first production
    assert all(provenance(system, f)["production"] == "again" for f in second)
