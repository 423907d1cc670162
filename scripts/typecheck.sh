#!/usr/bin/env bash
# mypy sees the installed layout (metaprod.core, metaprod.db, ...) through a tree of
# symlinks, since the editable install maps the top-level directories by an import hook.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck/metaprod
rm -rf build/typecheck && mkdir -p "$tree"
for pkg in core db services agents clients; do ln -s "../../../$pkg" "$tree/$pkg"; done
ln -s ../../../protos/metaprod/v1 "$tree/v1"
MYPYPATH=build/typecheck exec "${PYTHON:-.venv/bin/python}" -m mypy -p metaprod "$@"
