#!/usr/bin/env bash
# Install metaprod into .venv, start the whole system on the embedded default (SQLite in
# ./metaprod-data), create and start the example production, and say where to watch it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${METAPROD_DATA_DIR:-./metaprod-data}
PORT=${METAPROD_PORT:-50051}
HTTP_PORT=${METAPROD_HTTP_PORT:-8080}

if [ ! -x .venv/bin/metaprod ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
fi
export METAPROD_ADDRESS="127.0.0.1:${PORT}"
mkdir -p "$DATA_DIR"
if ! .venv/bin/metaprod status >/dev/null 2>&1; then
  nohup .venv/bin/metaprod up --data-dir "$DATA_DIR" --port "$PORT" --http-port "$HTTP_PORT" \
    > "$DATA_DIR/up.log" 2>&1 &
  echo $! > "$DATA_DIR/up.pid"
fi
for _ in $(seq 1 100); do
  [ -s "$DATA_DIR/admin.token" ] && METAPROD_TOKEN=$(cat "$DATA_DIR/admin.token") .venv/bin/metaprod status >/dev/null 2>&1 && break
  sleep 0.2
done
export METAPROD_TOKEN=$(cat "$DATA_DIR/admin.token")
if ! .venv/bin/metaprod production show muon-study >/dev/null 2>&1; then
  .venv/bin/metaprod production create -f deploy/examples/muon-study.yaml
  .venv/bin/metaprod production start muon-study
fi
.venv/bin/metaprod production progress muon-study
cat <<TXT

metaprod is running (pid $(cat "$DATA_DIR/up.pid" 2>/dev/null || echo '?'), log $DATA_DIR/up.log).
Watch the example production:
  export METAPROD_ADDRESS=$METAPROD_ADDRESS METAPROD_TOKEN=\$(cat $DATA_DIR/admin.token)
  .venv/bin/metaprod production progress muon-study --watch
Dashboard: http://127.0.0.1:${HTTP_PORT}/   Stop: kill \$(cat $DATA_DIR/up.pid)
TXT
