"""Object storage, end to end through the CLI against `metaprod up` with `METAPROD_STORAGE`
(`--storage`) an s3:// URL on a moto S3 server (a subprocess on a free port): inputs catalogued
with s3:// PFNs are fetched into the work directory, outputs and checkpoints go to S3 and
nothing to the data directory's storage; the next step reads its inputs from S3 too."""

from __future__ import annotations

import json
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


def test_a_chain_runs_with_inputs_outputs_and_checkpoints_on_s3(
    system: System, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
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
                # Its first attempt checkpoints, then fails; the second finds the checkpoint.
                "command": 'case "$METAPROD_INPUTS" in /*/.inputs/*) ;; *) exit 9;; esac\n'
                'if [ "$METAPROD_ATTEMPT" = 1 ]; then echo half > "$METAPROD_CHECKPOINT_DIR/half"; exit 1; fi\n'
                'cat "$METAPROD_CHECKPOINT_DIR/half" $METAPROD_INPUTS > out.reco',
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
                "keep_checkpoints": True,
            },
            {
                "name": "merge",
                "parents": ["reco"],
                "input_query": {"datatype": "reco"},
                "command": "cat $METAPROD_INPUTS > merged.dst",
                "outputs": [{"glob": "*.dst", "metadata": {"datatype": "dst"}}],
            },
        ],
    }
    system.cli("production", "create", "-f", write_spec(tmp_path, spec))
    system.cli("production", "start", "cloud")
    system.cli("transformation", "close", "cloud", "reco")
    system.wait_for("cloud", timeout=120)
    merged = system.json("catalog", "show", "/cloud/merge/000000/merged.dst")
    assert merged["pfn"].startswith(f"s3://{BUCKET}/prod/cloud/merge/"), merged
    s3.invalidate_cache()
    assert s3.cat(merged["pfn"]) == b"half\n" + blob
    reco_task = system.json("catalog", "show", "/cloud/reco/000000/out.reco")["provenance"]["task"]
    assert s3.exists(f"{BUCKET}/prod/checkpoints/{reco_task}/checkpoint.tar")
    local = system.data_dir / "storage"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))
