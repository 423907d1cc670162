"""Helpers to run the real system in subprocesses: `metaprod up`, `metaprod agents`, CLI calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprod.clients import Client, connect

METAPROD = [sys.executable, "-m", "metaprod.clients.cli"]
FAST_AGENTS = {
    "poll_seconds": 0.5,
    "retry_backoff_seconds": 0.2,
    "heartbeat_interval": 0.5,
    "heartbeat_timeout": 6.0,
    "report_grace_seconds": 3.0,
    "submit_grace_seconds": 10.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The outcomes of a production: once in one, it stays there until new work appears.
ENDED = frozenset({"Completed", "Partial", "Failed"})


@dataclass
class System:
    data_dir: Path
    db_url: str
    port: int = field(default_factory=free_port)
    agent_config: dict[str, Any] = field(default_factory=lambda: dict(FAST_AGENTS))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Set in the environment of every process and CLI call (e.g. METAPROD_SANDBOX).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["METAPROD_ADDRESS"] = self.address
        token = self.data_dir / "admin.token"
        if token.exists():
            env["METAPROD_TOKEN"] = token.read_text().strip()
        env["METAPROD_LOG_LEVEL"] = "WARNING"
        env.update(self.extra_env)
        return env

    def _spawn(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / log_name, "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen([*METAPROD, *args], stdout=log, stderr=subprocess.STDOUT, env=self.env())
        log.close()
        self.processes.append(proc)
        return proc

    def _server_args(self) -> tuple[str, ...]:
        return ("--data-dir", str(self.data_dir), "--port", str(self.port), "--db", self.db_url)

    def up(self) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            "up", *self._server_args(), "--agent-config", json.dumps(self.agent_config), log_name="up.log"
        )
        self.wait_ready()
        return proc

    def serve(self) -> subprocess.Popen[bytes]:
        proc = self._spawn("serve", *self._server_args(), log_name="serve.log")
        self.wait_ready()
        return proc

    def agents(self, name: str, only: str = "") -> subprocess.Popen[bytes]:
        """An `agents` process; `only`: a comma-separated subset of the agents."""
        return self._spawn(
            "agents",
            "--data-dir",
            str(self.data_dir),
            "--db",
            self.db_url,
            "--agent-config",
            json.dumps(self.agent_config),
            *(("--only", only) if only else ()),
            log_name=f"agents-{name}.log",
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.data_dir / "admin.token").exists() and self.cli("status", check=False).returncode == 0:
                return
            for proc in self.processes:
                if proc.poll() is not None and proc.returncode not in (0, -9):
                    raise RuntimeError(f"process exited with {proc.returncode}: {self.logs()}")
            time.sleep(0.2)
        raise TimeoutError(f"services did not answer on {self.address}: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.data_dir.glob("*.log"))

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*METAPROD, *args], capture_output=True, text=True, env=self.env(), input=input, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"metaprod {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def wait_for(self, production: str, status: str = "Completed", timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        progress: dict[str, Any] = {}
        while time.monotonic() < deadline:
            progress = self.json("production", "progress", production)
            if progress["status"] == status:
                return progress
            if progress["status"] in ENDED and status in ENDED:
                break  # it ended otherwise: no need to wait for the timeout
            time.sleep(0.5)
        raise TimeoutError(f"{production} not {status}: {progress}\n{self.logs()}")

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()


def race(server: Any, calls: int, call: Callable[[Client], object]) -> list[str]:
    """Run `call` from `calls` clients at once against a RunningServer; the outcome of each:
    "ok" or the error's class and first line."""
    barrier = threading.Barrier(calls)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        with connect(server.address, server.admin_token, timeout=30, retries=0) as client:
            barrier.wait()
            try:
                call(client)
                outcome = "ok"
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
