"""TLS on one host: `up` with a certificate, client certificates required, and the dashboard
over HTTPS; its job wrappers report over TLS. Bad TLS settings and a plaintext server on a
non-loopback address are refused with one line before anything is written."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.integration.certs import CertificateAuthority, KeyPair
from tests.integration.system import System, free_port

METAPROD = [sys.executable, "-m", "metaprod.clients.cli"]


@dataclass
class TlsSystem(System):
    """`up` with TLS flags; its CLI calls trust `ca` and present `client`."""

    ca: Path = Path()
    client: KeyPair | None = None
    server_flags: tuple[str, ...] = field(default_factory=tuple)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["METAPROD_TLS_CA"] = str(self.ca)
        if self.client is not None:
            env["METAPROD_TLS_CERT"], env["METAPROD_TLS_KEY"] = str(self.client.cert), str(self.client.key)
        return env

    def _server_args(self) -> tuple[str, ...]:
        return (*super()._server_args(), *self.server_flags)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("METAPROD_")}
    return subprocess.run([*METAPROD, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=base)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "pki")


def https_status(port: int, ca: Path | None, client: KeyPair | None) -> int:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status
    finally:
        connection.close()


def test_up_over_tls_with_client_certificates(tmp_path: Path, database_url: str, ca: CertificateAuthority) -> None:
    server = ca.issue("server", ips=("127.0.0.1",))
    client = ca.issue("client")
    http_port = free_port()
    system = TlsSystem(
        data_dir=tmp_path / "data",
        db_url=database_url,
        ca=ca.cert,
        client=client,
        server_flags=(
            "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert),
            "--http-port", str(http_port),
        ),
    )  # fmt: skip
    try:
        system.up()  # ready: `status` answered over TLS with the client certificate
        spec = {
            "production": "tls",
            "fields": {"datatype": "str"},
            "transformations": [
                {
                    "name": "gen",
                    "tasks": 2,
                    "command": "echo $METAPROD_TASK_INDEX > out.txt",
                    "outputs": [{"glob": "*.txt", "metadata": {"datatype": "txt"}}],
                    "output_query": {"datatype": "txt"},
                }
            ],
        }
        path = tmp_path / "tls.yaml"
        path.write_text(yaml.safe_dump(spec))
        system.cli("production", "create", "-f", str(path))
        system.cli("production", "start", "tls")
        system.wait_for("tls")  # the job wrappers reported over TLS, with a certificate
        assert len(system.json("catalog", "find", "datatype=txt")) == 2

        # Without a client certificate, with another CA, or in plaintext: refused.
        anonymous = subprocess.run(
            [*METAPROD, "status"],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in system.env().items() if k not in ("METAPROD_TLS_CERT", "METAPROD_TLS_KEY")},
        )
        assert anonymous.returncode != 0 and "cannot reach" in anonymous.stderr, anonymous
        plain = {k: v for k, v in system.env().items() if not k.startswith("METAPROD_TLS_")}
        result = subprocess.run([*METAPROD, "status"], capture_output=True, text=True, timeout=60, env=plain)
        assert result.returncode != 0 and "cannot reach" in result.stderr, result

        # The dashboard: HTTPS with the same certificate, client certificates required.
        assert https_status(http_port, ca.cert, client) in (200, 303, 401)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            https_status(http_port, ca.cert, None)
        with pytest.raises(ssl.SSLCertVerificationError):
            https_status(http_port, CertificateAuthority.create(tmp_path / "other").cert, client)
        plain_http = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        with pytest.raises((ConnectionError, http.client.HTTPException)):  # no plaintext answer
            plain_http.request("GET", "/")
            plain_http.getresponse()
        plain_http.close()
    finally:
        system.stop()


def test_bad_tls_settings_and_open_plaintext_are_refused_before_any_write(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    server = ca.issue("server", ips=("127.0.0.1",))
    other = ca.issue("other")
    (tmp_path / "notpem.txt").write_text("hello\n")
    data = tmp_path / "data"
    common = ("--data-dir", str(data), "--port", str(free_port()))
    cases = {
        ("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(server.key)): (
            f"TLS certificate (--tls-cert) {tmp_path / 'missing.pem'}: No such file or directory"
        ),
        ("--tls-cert", str(server.cert), "--tls-key", str(other.key)): "the key does not match the certificate",
        ("--tls-cert", str(server.cert)): "--tls-cert needs --tls-key too",
        ("--tls-cert", str(tmp_path / "notpem.txt"), "--tls-key", str(server.key)): "not a PEM file",
        ("--tls-client-ca", str(ca.cert)): "--tls-client-ca needs --tls-cert and --tls-key",
        ("--host", "0.0.0.0"): "refusing to listen on 0.0.0.0 without TLS",
    }
    for command in ("up", "serve"):
        for flags, message in cases.items():
            result = run(command, *common, *flags, cwd=tmp_path)
            assert result.returncode != 0, (command, flags)
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert not data.exists(), (command, flags)
    # The operator may say otherwise: the listen check passes (and `serve` finds no database).
    result = run("serve", *common, "--host", "0.0.0.0", "--insecure-listen-anywhere", cwd=tmp_path)
    assert result.returncode != 0 and "no database at" in result.stderr, result.stderr
    # A client given an unreadable CA says so in one line.
    result = run("status", "--tls-ca", str(tmp_path / "nope.pem"), cwd=tmp_path)
    assert result.returncode != 0 and f"TLS CA {tmp_path / 'nope.pem'}: No such file or directory" in result.stderr
