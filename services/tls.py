"""TLS of the servers (gRPC and dashboard) and where they may listen.

`server_tls` reads and checks the certificate files of `--tls-cert/--tls-key/--tls-client-ca`
before anything listens: a missing or unreadable file, or a key that does not belong to the
certificate, is a one-line error. Without TLS the servers listen on loopback only unless
`--insecure-listen-anywhere` is given (`check_listen_address`). docs/operations.md#tls shows a
deployment.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from metaprod.core.errors import InvalidArgument

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class ServerTls:
    """The PEM files of a TLS server (paths for uvicorn, contents for gRPC)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    cert: bytes
    key: bytes
    client_ca: bytes | None

    @property
    def requires_client_certificate(self) -> bool:
        return self.client_ca is not None


def read_pem(path: Path, what: str) -> bytes:
    """The content of a PEM file; a missing, unreadable or non-PEM file is a one-line error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise InvalidArgument(f"{what} {path}: not a PEM file")
    return data


def check_key_pair(cert: Path, key: Path) -> ssl.SSLContext:
    """A context holding the certificate and its key; a key of another certificate is a
    one-line error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = "the key does not match the certificate" if "MISMATCH" in str(exc) else exc.reason or str(exc)
        raise InvalidArgument(f"TLS certificate {cert} and key {key}: {reason}") from None
    return context


def job_tls(ca: Path | None, cert: Path | None, key: Path | None) -> dict[str, str]:
    """What job wrappers need to call the services over TLS ({}: plaintext): the CA they trust
    (its PEM text, so that jobs on hosts without the file can use it) and, for servers that
    require client certificates, the paths of the certificate and key they present (on the
    job's host: a shared file system; the key itself never goes into a job file)."""
    if ca is None:
        if cert is not None or key is not None:
            raise InvalidArgument("a client certificate for the job wrappers (--tls-cert) needs --tls-ca too")
        return {}
    found = {"ca": read_pem(ca, "TLS CA (--tls-ca, METAPROD_TLS_CA)").decode()}
    if cert is None and key is None:
        return found
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if cert is not None else ("--tls-key", "--tls-cert")
        raise InvalidArgument(f"{given} needs {missing} too")
    read_pem(cert, "TLS certificate (--tls-cert)")
    read_pem(key, "TLS key (--tls-key)")
    check_key_pair(cert, key)
    return {**found, "cert": str(cert.resolve()), "key": str(key.resolve())}


def server_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServerTls | None:
    """The server's TLS files, checked (None: no TLS). A certificate needs its key and the
    other way round; a client CA needs a certificate."""
    if cert is None and key is None:
        if client_ca is not None:
            raise InvalidArgument("--tls-client-ca needs --tls-cert and --tls-key (TLS of the server itself)")
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if cert is not None else ("--tls-key", "--tls-cert")
        raise InvalidArgument(f"{given} needs {missing} too")
    cert_pem = read_pem(cert, "TLS certificate (--tls-cert)")
    key_pem = read_pem(key, "TLS key (--tls-key)")
    context = check_key_pair(cert, key)
    ca_pem = None
    if client_ca is not None:
        ca_pem = read_pem(client_ca, "TLS client CA (--tls-client-ca)")
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except ssl.SSLError as exc:
            raise InvalidArgument(f"TLS client CA {client_ca}: {exc.reason or exc}") from None
    return ServerTls(cert, key, client_ca, cert_pem, key_pem, ca_pem)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine's loopback only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen_address(host: str, tls: ServerTls | None, *, insecure_anywhere: bool) -> None:
    """Plaintext servers listen on loopback only, unless the operator says otherwise."""
    if tls is None and not insecure_anywhere and not is_loopback(host):
        raise InvalidArgument(
            f"refusing to listen on {host} without TLS: give --tls-cert FILE --tls-key FILE "
            "(docs/operations.md#tls), or --insecure-listen-anywhere on a trusted network"
        )
