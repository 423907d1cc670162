"""Scale-out benchmark: several `metaprod agents` processes on one MariaDB against one.

    python bench/bench_scaleout.py [--db mysql://root@127.0.0.1:3306] [--tasks 600] [--sleep 0.05]
                                   [--workers 4] [--processes 1,3] [--runs N]

For each number of agents processes P: a fresh database, one `metaprod serve` and P
`metaprod agents` processes (each with a local backend of `--workers` slots, so P processes
have P times the slots: the workload is not CPU-bound when the tasks sleep), a production whose
root runs `--tasks` tasks of `sleep SLEEP`, timed from `production start` to Completed. Prints
tasks/s for each P and the ratio of the largest P to P=1 (target >= 1.5 for 3 against 1). The raw
baseline of the same run: the same number of `sleep SLEEP` processes spawned with
`subprocess.run`, `workers x P` at a time, and the ratio of metaprod to it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import AGENTS, database_url, free_port, true_rate, wait_status
from metaprod.clients import connect
from metaprod.clients.client import Client
from metaprod.db.migrate import upgrade
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from runs import Runs

CLI = (sys.executable, "-m", "metaprod.clients.cli")


def _admin_token(url: str) -> str:
    db = Database(url)
    try:
        upgrade(db.engine)
        with db.session_scope() as session:
            _, secret = create_token(session=session, name="bench-admin", role="admin")
        return secret
    finally:
        db.dispose()


def _connect(address: str, token: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> Client:
    deadline = time.monotonic() + 60
    while True:
        for proc in procs:
            if proc.poll() is not None:
                tail = "\n".join(p.read_text()[-2000:] for p in logs.glob("*.log"))
                raise RuntimeError(f"a metaprod process exited:\n{tail}")
        client = connect(address, token, timeout=60)
        try:
            client.health()
            return client
        except Exception:
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_case(url: str, workdir: Path, processes: int, args: argparse.Namespace) -> float:
    """tasks/s of one production through `serve` and `processes` agents processes."""
    token = _admin_token(url)
    data_dir = workdir / f"agents-{processes}"
    data_dir.mkdir()
    port = free_port()
    env = dict(os.environ, METAPROD_LOG_LEVEL="WARNING", METAPROD_ADDRESS=f"127.0.0.1:{port}")
    config = dict(AGENTS, backends={"local": {"max_workers": args.workers}})
    commands = [
        [*CLI, "serve", "--data-dir", str(data_dir), "--db", url, "--port", str(port), "--http-port", "0"],
        *(
            [*CLI, "agents", "--data-dir", str(data_dir), "--db", url, "--agent-config", json.dumps(config)]
            for _ in range(processes)
        ),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    for n, command in enumerate(commands):
        with open(data_dir / f"process-{n}.log", "ab") as log:
            procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    client = None
    try:
        client = _connect(f"127.0.0.1:{port}", token, procs, data_dir)
        name = f"scaleout-{processes}"
        command = f"sleep {args.sleep}"
        spec = {"production": name, "transformations": [{"name": "gen", "tasks": args.tasks, "command": command}]}
        client.productions.create(spec)
        start = time.monotonic()
        client.productions.start(name)
        end = wait_status(client, name, "Completed", timeout=max(600.0, args.tasks * args.sleep * 4))
        return args.tasks / (end - start)
    finally:
        if client is not None:
            client.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="mysql://root@127.0.0.1:3306", help="a MariaDB/MySQL server URL")
    ap.add_argument("--tasks", type=int, default=600)
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds each task sleeps")
    ap.add_argument("--workers", type=int, default=4, help="local backend slots of each agents process")
    ap.add_argument("--processes", default="1,3", help="comma-separated numbers of agents processes")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    counts = [int(p) for p in args.processes.split(",")]
    runs = Runs()
    for _ in range(args.runs):
        rates: dict[int, float] = {}
        for processes in counts:
            with tempfile.TemporaryDirectory(prefix="mp-scaleout-") as tmp, database_url(args.db, Path(tmp)) as url:
                rates[processes] = rate = run_case(url, Path(tmp), processes, args)
            floor = true_rate(args.tasks, args.workers * processes, ("sleep", str(args.sleep)))
            print(
                f"{processes} agents process(es) x {args.workers} slots, {args.tasks} tasks of sleep {args.sleep}: "
                f"{rate:7.1f} tasks/s; raw `sleep` x{args.tasks}, {args.workers * processes} at a time: "
                f"{floor:7.1f}/s (ratio {rate / floor:.2f})"
            )
            runs.add(f"{processes} process(es) tasks/s", rate, "{:,.1f}")
        top = max(counts)
        if top != min(counts):
            scale = rates[top] / rates[min(counts)]
            print(f"scale-out: {top} processes give {scale:.2f}x the throughput of {min(counts)} (target >= 1.5)")
            runs.add(f"scale-out {top}/{min(counts)}", scale, "{:.2f}x")
    print(f"summary over {args.runs} run(s):")
    print(runs.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
