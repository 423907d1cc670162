"""`catalog watch` end to end against `metaprod up`: files copied into a watched directory are
registered with the pattern's and the sidecar's metadata and processed by a catalog-fed
production within seconds; a file still being written waits until it is complete; a restarted
watcher registers nothing twice; `catalog lineage` of a merged file lists what it came from;
a bad pattern is a one-line error."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.system import METAPROD, System

PATTERN = "raw/{subject}/{run:int}_{site}.dat"
SPEC = {
    "production": "watched",
    "fields": {"subject": "str", "run": "int", "site": "str", "energy": "float", "datatype": "str"},
    "transformations": [
        {
            "name": "calib",
            "input_query": "subject=muon",
            "command": "cat $METAPROD_INPUTS > out.cal",
            "outputs": [{"glob": "*.cal", "metadata": {"datatype": "cal"}}],
            "output_query": {"datatype": "cal"},
        },
        {
            "name": "merge",
            "parents": ["calib"],
            "input_query": "datatype=cal",
            "group_size": 2,
            "command": "cat $METAPROD_INPUTS > merged.root",
            "outputs": [{"glob": "*.root", "metadata": {"datatype": "merged"}}],
            "output_query": {"datatype": "merged"},
        },
    ],
}


class WatchProcess:
    def __init__(self, system: System, root: Path, log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [*METAPROD, "catalog", "watch", str(root), "--pattern", PATTERN, "--lfn-prefix", "/lab",
                 "--settle", "0.3", "--sidecar-wait", "0.5", "--json"],
                stdout=subprocess.PIPE, stderr=err, text=True, env=system.env(),
            )  # fmt: skip

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not logged: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> dict[str, Any]:
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, self.log.read_text()
        return dict(json.loads(out))


def catalogued(system: System) -> dict[str, dict[str, Any]]:
    return {f["lfn"]: f for f in system.json("catalog", "find", "{}") if f["lfn"].startswith("/lab/")}


def wait_until(check: Any, timeout: float = 90.0) -> float:
    """Seconds until check() is true."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise TimeoutError("condition not met")


def files_of(system: System, transformation: str, status: str) -> int:
    progress = system.json("production", "progress", "watched")
    (t,) = [t for t in progress["transformations"] if t["name"] == transformation]
    return int(t["files"][status])


def test_watched_directory_feeds_a_production(system: System, tmp_path: Path) -> None:
    system.up()
    spec = tmp_path / "watched.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    system.cli("production", "create", "-f", str(spec))
    system.cli("production", "start", "watched")
    root, source = tmp_path / "incoming", tmp_path / "source"
    root.mkdir()
    source.mkdir()
    watcher = WatchProcess(system, root, tmp_path / "watch1.log")
    watcher.wait_log("watching")

    # Files copied in (and a sidecar, a file off the pattern, a hidden partial transfer).
    for name in ("1_CERN", "2_IN2P3", "3_RAL"):
        (source / f"{name}.dat").write_text(f"data {name}\n" * 100)
    (root / "raw" / "muon").mkdir(parents=True)
    (root / "raw" / "muon" / "1_CERN.dat.meta.json").write_text('{"energy": 7}')
    for name in ("1_CERN", "2_IN2P3", "3_RAL"):
        shutil.copy(source / f"{name}.dat", root / "raw" / "muon" / f"{name}.dat")
    (root / "notes.txt").write_text("not data\n")
    (root / "raw" / "muon" / ".4_CERN.dat.partial").write_text("rsync at work\n")
    seconds = wait_until(lambda: files_of(system, "calib", "Processed") == 3)
    # Seconds (a file copied while its new directory's watch was being set used to wait for the
    # watcher's periodic rescan, a minute: tests/unit/clients/test_watch.py).
    assert seconds < 20, seconds
    got = catalogued(system)
    assert sorted(got) == ["/lab/raw/muon/1_CERN.dat", "/lab/raw/muon/2_IN2P3.dat", "/lab/raw/muon/3_RAL.dat"]
    first = got["/lab/raw/muon/1_CERN.dat"]
    assert first["metadata"] == {"subject": "muon", "run": 1, "site": "CERN", "energy": 7.0}
    assert got["/lab/raw/muon/2_IN2P3.dat"]["metadata"] == {"subject": "muon", "run": 2, "site": "IN2P3"}
    assert first["pfn"] == str(root / "raw" / "muon" / "1_CERN.dat") and first["size"] == 1200
    assert first["checksum"].startswith("adler32:")
    watcher.wait_log("skipped notes.txt: does not match the pattern")

    # A file still being written is not registered until it is complete (closed and stable).
    growing = root / "raw" / "muon" / "4_CERN.dat"
    with open(growing, "w") as f:
        f.write("first half\n" * 50)
        f.flush()
        time.sleep(2.0)  # several settle periods with the file open and unchanged
        assert "/lab/raw/muon/4_CERN.dat" not in catalogued(system)
        f.write("second half\n" * 50)
    wait_until(lambda: "/lab/raw/muon/4_CERN.dat" in catalogued(system))
    assert catalogued(system)["/lab/raw/muon/4_CERN.dat"]["size"] == growing.stat().st_size == 1150
    wait_until(lambda: files_of(system, "calib", "Processed") == 4)
    stats = watcher.stop()
    assert stats["registered"] == 4 and stats["skipped"] == 0 and stats["unmatched"] == 1, stats

    # A restart registers nothing twice: everything found is already catalogued identically.
    again = WatchProcess(system, root, tmp_path / "watch2.log")
    for name in ("1_CERN", "2_IN2P3", "3_RAL", "4_CERN", "notes.txt"):
        again.wait_log(name)
    stats = again.stop(signal.SIGINT)
    assert (stats["registered"], stats["skipped"], stats["unmatched"], stats["failed"]) == (0, 4, 1, 0), stats
    assert len(catalogued(system)) == 4

    # The merge took the calibrated files two by two; a merged file's lineage names them and
    # the watched files they came from.
    wait_until(lambda: files_of(system, "merge", "Processed") == 4)
    merged = [f["lfn"] for f in system.json("catalog", "find", "datatype=merged")]
    assert len(merged) == 2
    lineage = system.json("catalog", "lineage", merged[0])
    cal, raw = lineage["ancestors"][:2], lineage["ancestors"][2:]
    assert len(cal) == 2 and all(lfn.endswith("/out.cal") for lfn in cal)
    assert len(raw) == 2 and all(lfn.startswith("/lab/raw/muon/") for lfn in raw)
    assert lineage["descendants"] == []
    ancestors = {lfn for m in merged for lfn in system.json("catalog", "lineage", m)["ancestors"]}
    assert {lfn for lfn in ancestors if lfn.startswith("/lab/")} == set(catalogued(system))
    down = system.json("catalog", "lineage", "/lab/raw/muon/1_CERN.dat")["descendants"]
    assert len(down) == 2 and down[0].endswith("/out.cal") and down[1] in merged


def test_bad_pattern_is_one_line_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [*METAPROD, "catalog", "watch", str(tmp_path), "--pattern", "raw/{run:long}.dat"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "METAPROD_ADDRESS": "127.0.0.1:9"},
    )  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (
        "metaprod: error: bad pattern 'raw/{run:long}.dat': '{run:long}' has type 'long', "
        "expected one of str, int, float\n"
    )
