#!/usr/bin/env bash
# Install metaprod with its development tools into .venv and run every check and test.
# METAPROD_TEST_DB selects the database of the tests: "sqlite" (default) or a server URL
# such as mysql://root@127.0.0.1:3306 (each test creates and drops its own database).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if [ "${METAPROD_SKIP_LINT:-0}" != 1 ]; then
  echo "== generated protobuf code is fresh"
  .venv/bin/python scripts/gen_protos.py --check
  echo "== ruff"
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  echo "== mypy"
  scripts/typecheck.sh
  echo "== import layers"
  PYTHONPATH=build/typecheck .venv/bin/lint-imports  # the symlink tree made by typecheck.sh
fi
echo "== pytest (database: ${METAPROD_TEST_DB:-sqlite})"
exec .venv/bin/python -m pytest "$@"
