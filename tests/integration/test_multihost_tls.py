"""Two hosts over TLS: two Linux network namespaces joined by a veth pair. Host A runs
`metaprod serve` on its veth address with a certificate (and client certificates required),
host B runs `metaprod agents`, whose job wrappers report to A over TLS; both share one
database (SQLite: the same file; MariaDB: its unix socket, as the host's 127.0.0.1 is not
reachable from the namespaces). A gen -> reco chain driven by the CLI from B over TLS ends
Completed with its outputs registered; a plaintext client, a client trusting another CA and a
client without a certificate are refused.

Needs root (`ip netns add`); skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.integration.certs import CertificateAuthority
from tests.integration.system import ENDED, FAST_AGENTS, METAPROD

PORT = 50443


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Hosts:
    """Namespaces A (services, 10.77.N.1) and B (agents, 10.77.N.2) on one veth link."""

    tag: str
    subnet: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def a(self) -> str:
        return f"mpa{self.tag}"

    @property
    def b(self) -> str:
        return f"mpb{self.tag}"

    @property
    def address_a(self) -> str:
        return f"{self.subnet}.1"

    def create(self) -> None:
        _ip("netns", "add", self.a)
        _ip("netns", "add", self.b)
        _ip("link", "add", f"va{self.tag}", "type", "veth", "peer", "name", f"vb{self.tag}")
        for ns, dev, host in ((self.a, f"va{self.tag}", 1), (self.b, f"vb{self.tag}", 2)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{self.subnet}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def remove(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for ns in (self.a, self.b):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def spawn(self, ns: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *METAPROD, *args], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.processes.append(proc)
        return proc

    def run(self, ns: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *METAPROD, *args], capture_output=True, text=True, env=env, timeout=120
        )


def netns_permitted() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    probe = f"mpprobe{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return f"`ip netns add` is not permitted here: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    reason = netns_permitted()
    if reason:
        pytest.skip(reason)
    tag = str(os.getpid() % 100000)
    made = Hosts(tag=tag, subnet=f"10.77.{os.getpid() % 250}")
    try:
        made.create()
        yield made
    finally:
        made.remove()


def shared_url(database_url: str) -> str:
    """The database URL as the namespaces reach it: SQLite as is; MariaDB by its unix socket."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return database_url
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            socket = str(conn.execute(text("SELECT @@socket")).scalar_one())
    finally:
        database.dispose()
    local = url.set(host="localhost", port=None).update_query_dict({"unix_socket": socket})
    return local.render_as_string(hide_password=False).replace("%2F", "/")


def chain(name: str) -> dict[str, Any]:
    return {
        "production": name,
        "fields": {"datatype": "str", "seed": "int"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 3,
                "command": 'echo "sim $METAPROD_TASK_INDEX" > out.sim; '
                'printf \'{"seed": %d}\' "$METAPROD_TASK_INDEX" > out.sim.meta.json',
                "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
                "output_query": {"datatype": "sim"},
            },
            {
                "name": "reco",
                "parents": ["gen"],
                "input_query": {"datatype": "sim"},
                "group_size": 1,
                "command": "cat $METAPROD_INPUTS > out.reco",
                "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
                "output_query": {"datatype": "reco"},
            },
        ],
    }


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAPROD_")}
    env["METAPROD_LOG_LEVEL"] = "WARNING"
    return env


def test_serve_and_agents_on_two_hosts_over_tls(
    hosts: Hosts, tmp_path: Path, database_url: str, database: Database
) -> None:
    pki = tmp_path / "pki"
    ca = CertificateAuthority.create(pki)
    server = ca.issue("server", ips=(hosts.address_a,))
    client = ca.issue("client")
    other = CertificateAuthority.create(pki, "other")
    with database.session_scope() as session:
        _, token = create_token(session=session, name="admin", role="admin")
    url = shared_url(database_url)
    address = f"{hosts.address_a}:{PORT}"

    serve_env = base_env()
    hosts.spawn(
        hosts.a,
        ["serve", "--db", url, "--data-dir", str(tmp_path / "a"), "--host", hosts.address_a, "--port", str(PORT),
         "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert)],
        serve_env,
        tmp_path / "serve.log",
    )  # fmt: skip
    # Host B: every client trusts the CA and presents a certificate it signed.
    env_b = {
        **base_env(),
        "METAPROD_ADDRESS": address,
        "METAPROD_TOKEN": token,
        "METAPROD_TLS_CA": str(ca.cert),
        "METAPROD_TLS_CERT": str(client.cert),
        "METAPROD_TLS_KEY": str(client.key),
    }

    def logs() -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("*.log")))

    deadline = time.monotonic() + 60
    while hosts.run(hosts.b, ["status"], env_b).returncode != 0:
        assert hosts.processes[0].poll() is None, f"serve exited: {logs()}"
        assert time.monotonic() < deadline, f"no TLS services at {address}: {logs()}"
        time.sleep(0.3)

    # Refused: plaintext, another CA, no client certificate (from B, over the veth link).
    plain = {k: v for k, v in env_b.items() if not k.startswith("METAPROD_TLS_")}
    refused = hosts.run(hosts.b, ["status"], plain)
    assert refused.returncode != 0 and "cannot reach" in refused.stderr, refused
    untrusted = hosts.run(hosts.b, ["status"], {**env_b, "METAPROD_TLS_CA": str(other.cert)})
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted
    for result in (refused, untrusted):  # one line, no gRPC log beside it
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    anonymous = {k: v for k, v in env_b.items() if k not in ("METAPROD_TLS_CERT", "METAPROD_TLS_KEY")}
    no_cert = hosts.run(hosts.b, ["status"], anonymous)
    assert no_cert.returncode != 0 and "cannot reach" in no_cert.stderr, no_cert
    # The client-side flags do what the variables do.
    flags = hosts.run(
        hosts.b,
        ["status", "--tls-ca", str(ca.cert), "--tls-cert", str(client.cert), "--tls-key", str(client.key)],
        plain,
    )
    assert flags.returncode == 0, flags

    # Host B runs the agents; their job wrappers report to A over TLS.
    data_b = tmp_path / "b"
    hosts.spawn(
        hosts.b,
        ["agents", "--db", url, "--data-dir", str(data_b), "--agent-config", json.dumps(FAST_AGENTS)],
        {k: v for k, v in env_b.items() if k != "METAPROD_TOKEN"},
        tmp_path / "agents.log",
    )
    spec = tmp_path / "chain.yaml"
    spec.write_text(yaml.safe_dump(chain("tls-chain")))
    for args in (["production", "create", "-f", str(spec)], ["production", "start", "tls-chain"]):
        result = hosts.run(hosts.b, args, env_b)
        assert result.returncode == 0, result

    deadline = time.monotonic() + 180
    progress: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = hosts.run(hosts.a, ["production", "progress", "tls-chain", "--json"], env_b)
        assert result.returncode == 0, result
        progress = json.loads(result.stdout)
        if progress["status"] in ENDED:
            break
        time.sleep(0.5)
    assert progress.get("status") == "Completed", f"{progress}\n{logs()}"

    def find(query: str) -> list[dict[str, Any]]:
        result = hosts.run(hosts.b, ["catalog", "find", query, "--json"], env_b)
        assert result.returncode == 0, result
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found

    sims, recos = find("datatype=sim"), find("datatype=reco")
    assert sorted(f["metadata"]["seed"] for f in sims) == [0, 1, 2]
    assert len(recos) == 3
    for output in [*sims, *recos]:  # stored on host B, private
        stored = Path(output["pfn"])
        assert stored.is_file() and stored.is_relative_to(data_b), output
        assert stored.stat().st_mode & 0o077 == 0, oct(stored.stat().st_mode)
