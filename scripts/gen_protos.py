"""Regenerate the gRPC/protobuf modules beside the .proto files in protos/metaprod/v1.

Run with `python scripts/gen_protos.py`; `--check` exits non-zero when the committed
generated code is stale (the test suite calls it so).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = PROTO_ROOT / "metaprod" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    include = str(Path(protoc.__file__).parent / "_proto")
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the generated code is stale")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh_dir = Path(tmp) / "metaprod" / "v1"
        fresh = {p.name: p for p in generated_files(fresh_dir)}
        current = {p.name: p for p in generated_files(PACKAGE_DIR)}
        if opts.check:
            stale = sorted(
                name
                for name in set(fresh) | set(current)
                if name not in fresh
                or name not in current
                or not filecmp.cmp(fresh[name], current[name], shallow=False)
            )
            if stale:
                print("stale generated protobuf code: " + ", ".join(stale), file=sys.stderr)
                print("run: python scripts/gen_protos.py", file=sys.stderr)
                return 1
            return 0
        for path in current.values():
            path.unlink()
        for name, path in fresh.items():
            shutil.copyfile(path, PACKAGE_DIR / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
