"""Reuse by content, end to end through the CLI against `metaprod up`: a production that
repeats another's transformations on inputs of the same content runs no command (its tasks
have no attempt, its outputs say `reused_from`, share the original's stored content and have
their own LFNs), downstream steps included; a root reuses only when it opts in; a changed
command, or one input's changed content, makes the affected tasks run; `reuse: false` opts out."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from tests.integration.system import System
from tests.integration.test_pipeline import write_spec
from tests.integration.test_production_delete import delete_and_wait

Spec = dict[str, Any]
FIELDS = {"datatype": "str", "set": "int", "n": "int"}


def chain(name: str, the_set: int, counter: Path, *, command: str = "cat $METAPROD_INPUTS > out.reco") -> Spec:
    # The counter (outside the work directory) is a second witness; the attempts are the first.
    count = f'echo "$METAPROD_PRODUCTION $METAPROD_TRANSFORMATION" >> {counter} || true; '
    return {
        "production": name,
        "fields": FIELDS,
        "transformations": [
            {
                "name": "gen",
                "tasks": 2,
                "reuse": True,
                "command": count + 'echo "gen $METAPROD_TASK_INDEX" > out.sim',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
            },
            {
                "name": "reco",
                "input_query": {"datatype": "raw", "set": the_set},
                "command": count + command,
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
                "output_query": {"datatype": "reco"},
            },
            {
                "name": "merge",
                "parents": ["reco"],
                "input_query": {"datatype": "reco", "set": the_set},
                "group_size": 3,
                "command": count + "cat $METAPROD_INPUTS > merged.dst",
                "outputs": [{"glob": "*.dst", "metadata": {"datatype": "dst"}}],
            },
        ],
    }


def import_inputs(system: System, tmp_path: Path) -> None:
    """set 1: three files; set 2: copies of the first two (other LFNs) and a changed third."""
    rows = []
    contents = {1: [b"alpha\n", b"beta\n", b"gamma\n"], 2: [b"alpha\n", b"beta\n", b"GAMMA\n"]}
    for the_set, blobs in contents.items():
        for n, blob in enumerate(blobs):
            path = tmp_path / f"raw{the_set}-{n}.dat"
            path.write_bytes(blob)
            rows.append(
                {
                    "lfn": f"/raw/{the_set}/{n}.dat",
                    "pfn": str(path),
                    "size": len(blob),
                    "checksum": f"adler32:{zlib.adler32(blob):08x}",
                    "metadata": {"datatype": "raw", "set": the_set, "n": n},
                }
            )
    lines = tmp_path / "raw.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, kind in FIELDS.items():
        system.cli("catalog", "field", "add", name, kind)
    system.cli("catalog", "import", str(lines))


def run(system: System, tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", spec["production"])
    # reco is fed by the catalog: closed, it ends once its files are processed.
    system.cli("transformation", "close", spec["production"], "reco")
    return system.wait_for(spec["production"], timeout=90)


def attempts(system: System, production: str, transformation: str) -> list[int]:
    tasks = system.json("transformation", "tasks", production, transformation)
    return [t["attempt"] for t in sorted(tasks, key=lambda t: t["index"])]


def outputs(system: System, production: str, transformation: str) -> list[dict[str, Any]]:
    found = system.json("catalog", "find", "{}")
    lfns = sorted(f["lfn"] for f in found if f["lfn"].startswith(f"/{production}/{transformation}/"))
    return [system.json("catalog", "show", lfn) for lfn in lfns]


def test_a_repeated_production_runs_nothing_and_changes_run_again(system: System, tmp_path: Path) -> None:
    counter = tmp_path / "commands.log"
    system.up()
    import_inputs(system, tmp_path)

    run(system, tmp_path, chain("a", 1, counter))
    assert attempts(system, "a", "gen") == [1, 1]
    assert attempts(system, "a", "reco") == [1, 1, 1]
    assert attempts(system, "a", "merge") == [1]
    ran = counter.read_text().splitlines() if counter.exists() else []
    originals = {f["lfn"]: f for t in ("gen", "reco", "merge") for f in outputs(system, "a", t)}
    assert len(originals) == 6 and all(f["provenance"]["reused_from"] is None for f in originals.values())
    assert all(f["checksum"].startswith("adler32:") for f in originals.values())  # the wrapper's, streamed

    # The same work again, in another production: no command runs, every task is Done.
    progress = run(system, tmp_path, chain("b", 1, counter))
    assert attempts(system, "b", "gen") == [0, 0]
    assert attempts(system, "b", "reco") == [0, 0, 0]
    # Its inputs (reused outputs keep their content; a's match its query too) were merged before.
    merged = attempts(system, "b", "merge")
    assert merged and set(merged) == {0}
    assert (counter.read_text().splitlines() if counter.exists() else []) == ran
    assert sum(t["reused"] for t in progress["transformations"]) == 5 + len(merged)
    for t in ("gen", "reco", "merge"):
        for f in outputs(system, "b", t) if t != "merge" else ():
            original = originals[f["lfn"].replace("/b/", "/a/", 1)]
            assert f["provenance"]["reused_from"] == original["provenance"]["task"]
            assert f["provenance"]["task"] != original["provenance"]["task"]
            assert (f["pfn"], f["size"], f["checksum"]) == (original["pfn"], original["size"], original["checksum"])
            assert f["metadata"] == original["metadata"]
    # One stored copy: the reused outputs add nothing to the storage.
    stored = {p for p in (system.data_dir / "storage").rglob("*") if p.is_file()}
    assert len(stored) == 6

    # A changed command: every reco task runs (and so merge, on new content).
    run(system, tmp_path, chain("c", 1, counter, command="cat $METAPROD_INPUTS $METAPROD_INPUTS > out.reco"))
    assert attempts(system, "c", "gen") == [0, 0]
    assert attempts(system, "c", "reco") == [1, 1, 1]
    assert 1 in attempts(system, "c", "merge")  # new content among its inputs

    # Same contents under other LFNs, but one changed: only its task runs (and merge).
    run(system, tmp_path, chain("d", 2, counter))
    assert attempts(system, "d", "reco") == [0, 0, 1]
    assert attempts(system, "d", "merge") == [1]
    reco = outputs(system, "d", "reco")
    assert [f["provenance"]["reused_from"] is not None for f in reco] == [True, True, False]
    assert [f["metadata"]["set"] for f in reco] == [2, 2, 2]  # inherited from its own inputs

    # Purging b's outputs keeps the content a's files (which b's reused) still name.
    delete_and_wait(system, "b", "--purge-outputs")
    assert not outputs(system, "b", "reco")
    assert all(Path(f["pfn"]).is_file() for f in originals.values())

    # Opting out: everything runs.
    spec = chain("e", 1, counter)
    for t in spec["transformations"]:
        t["reuse"] = False
    run(system, tmp_path, spec)
    assert attempts(system, "e", "gen") == [1, 1]
    assert attempts(system, "e", "reco") == [1, 1, 1]


def test_roots_reuse_only_when_they_opt_in_and_inputs_without_checksum_never(system: System, tmp_path: Path) -> None:
    counter = tmp_path / "commands.log"
    system.up()
    for name, kind in FIELDS.items():
        system.cli("catalog", "field", "add", name, kind)
    raw = tmp_path / "raw.dat"
    raw.write_text("x\n")
    line = {"lfn": "/raw/x.dat", "pfn": str(raw), "size": 2, "metadata": {"datatype": "raw", "set": 1, "n": 0}}
    (tmp_path / "raw.jsonl").write_text(json.dumps(line) + "\n")
    system.cli("catalog", "import", str(tmp_path / "raw.jsonl"))
    for name in ("p", "q"):
        spec = chain(name, 1, counter)
        del spec["transformations"][0]["reuse"]  # a root's default: no reuse
        del spec["transformations"][2]
        run(system, tmp_path, spec)
    assert attempts(system, "q", "gen") == [1, 1]
    assert attempts(system, "q", "reco") == [1]  # its input has no checksum
