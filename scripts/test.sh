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
# The MariaDB driver (mysqlclient) is built from C: only installed when the tests use MariaDB
# (or METAPROD_WITH_MYSQL=1), so that SQLite runs need no compiler, headers or pkg-config.
extras=dev
case "${METAPROD_TEST_DB:-sqlite}" in
  mysql*|mariadb*) extras=dev,mysql ;;
esac
[ "${METAPROD_WITH_MYSQL:-0}" = 1 ] && extras=dev,mysql
.venv/bin/python -m pip install -q -e ".[$extras]"
if [ "${METAPROD_SKIP_LINT:-0}" != 1 ]; then
  echo "== generated protobuf code is fresh"
  .venv/bin/python scripts/gen_protos.py --check
  echo "== CLI reference is fresh, docs links resolve"
  .venv/bin/python scripts/gen_cli_docs.py --check
  .venv/bin/python scripts/check_docs_links.py
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
