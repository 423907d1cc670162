"""Object storage, end to end through the CLI against `metaprod up` with `METAPROD_STORAGE`
(`--storage`) an s3:// URL on a moto S3 server (a subprocess on a free port): inputs catalogued
with s3:// PFNs are fetched into the work directory, outputs and checkpoints go to S3 and
nothing to the data directory's storage; the next step reads its inputs from S3 too; `task show`
lists the checkpoint from S3. The same chain on the Slurm backend (skipped when Slurm is not
running, unless METAPROD_REQUIRE_SLURM=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.system import System, free_port
from tests.integration.test_pipeline import write_spec
from tests.integration.test_pipeline_backends import slurm_ready

s3fs = pytest.importorskip("s3fs")

BUCKET = "metaprod-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A moto S3 server; the AWS_* variables (which `up` and its jobs inherit) point at it."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - owned by the process
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            fs.mkdir(BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.2)
    try:
        yield fs
    finally:
        server.terminate()
        server.wait(timeout=30)


# A command that finds its inputs anywhere but in its work directory's .inputs/ (fetched from
# S3) fails: nothing is read through a shared file system.
FETCHED = 'case "$METAPROD_INPUTS" in /*/.inputs/*) ;; *) exit 9;; esac\n'


def test_a_chain_runs_with_inputs_outputs_and_checkpoints_on_s3(
    system: System, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_chain_on_s3(system, tmp_path, s3, monkeypatch, backend="local", options={})


@pytest.mark.skipif(
    not slurm_ready() and os.environ.get("METAPROD_REQUIRE_SLURM") != "1",
    reason="Slurm is not running (deploy/slurm/setup-single-node.sh starts it)",
)
def test_the_chain_on_s3_runs_on_slurm(
    system: System, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on the Slurm backend: its jobs (sbatch) reach S3 with the environment they
    inherit, store outputs and checkpoints there and fetch their inputs from there."""
    jobs = run_chain_on_s3(system, tmp_path, s3, monkeypatch, backend="slurm", options={"time": "5"})
    assert all(job.isdigit() for job in jobs), jobs  # Slurm job ids, not local pids


def run_chain_on_s3(
    system: System,
    tmp_path: Path,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    backend: str,
    options: dict[str, Any],
) -> list[str]:
    """Runs the chain; returns the backend job ids of its tasks."""
    monkeypatch.setenv("METAPROD_STORAGE", f"s3://{BUCKET}/prod")
    blob = b"raw content\n"
    s3.pipe(f"{BUCKET}/raw/0.dat", blob)
    system.up()
    for name, kind in {"datatype": "str"}.items():
        system.cli("catalog", "field", "add", name, kind)
    line = {
        "lfn": "/raw/0.dat",
        "pfn": f"s3://{BUCKET}/raw/0.dat",
        "size": len(blob),
        "checksum": f"adler32:{zlib.adler32(blob):08x}",
        "metadata": {"datatype": "raw"},
    }
    (tmp_path / "raw.jsonl").write_text(json.dumps(line) + "\n")
    system.cli("catalog", "import", str(tmp_path / "raw.jsonl"))
    spec = {
        "production": "cloud",
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "reco",
                "input_query": {"datatype": "raw"},
                "backend": backend,
                "options": options,
                # Its first attempt checkpoints, then fails; the second finds the checkpoint.
                "command": FETCHED
                + 'if [ "$METAPROD_ATTEMPT" = 1 ]; then echo half > "$METAPROD_CHECKPOINT_DIR/half"; exit 1; fi\n'
                'cat "$METAPROD_CHECKPOINT_DIR/half" $METAPROD_INPUTS > out.reco',
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
                "keep_checkpoints": True,
            },
            {
                "name": "merge",
                "parents": ["reco"],
                "input_query": {"datatype": "reco"},
                "backend": backend,
                "options": options,
                "command": FETCHED + "cat $METAPROD_INPUTS > merged.dst",
                "outputs": [{"glob": "*.dst", "metadata": {"datatype": "dst"}}],
            },
        ],
    }
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "cloud")
    system.cli("transformation", "close", "cloud", "reco")
    progress = system.wait_for("cloud", timeout=240)
    assert all(t["status"] == "Completed" for t in progress["transformations"]), progress
    merged = system.json("catalog", "show", "/cloud/merge/000000/merged.dst")
    assert merged["pfn"].startswith(f"s3://{BUCKET}/prod/cloud/merge/"), merged
    s3.invalidate_cache()
    assert s3.cat(merged["pfn"]) == b"half\n" + blob
    reco_task = system.json("catalog", "show", "/cloud/reco/000000/out.reco")["provenance"]["task"]
    assert s3.exists(f"{BUCKET}/prod/checkpoints/{reco_task}/checkpoint.tar")
    # The services list the checkpoint from S3 (task show), the attempts with it.
    shown = system.json("task", "show", str(reco_task))
    assert [(a["attempt"], a["status"]) for a in shown["attempts"]] == [(1, "Failed"), (2, "Done")]
    checkpoint = shown["checkpoint"]
    assert checkpoint["state"] == "saved", checkpoint
    assert checkpoint["archive"]["path"] == f"s3://{BUCKET}/prod/checkpoints/{reco_task}/checkpoint.tar"
    assert [(f["path"], f["size"]) for f in checkpoint["files"]] == [("half", 5)]
    local = system.data_dir / "storage"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))
    jobs = [
        t["backend_job_id"] for name in ("reco", "merge") for t in system.json("transformation", "tasks", "cloud", name)
    ]
    return jobs
