"""The generated protobuf/gRPC modules match the .proto files (scripts/gen_protos.py --check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_is_fresh() -> None:
    script = ROOT / "scripts" / "gen_protos.py"
    assert script.is_file(), script
    done = subprocess.run(
        [sys.executable, str(script), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"generated protobuf code is stale (run `python scripts/gen_protos.py`):\n{done.stdout}{done.stderr}"
    )
