"""TLS of the clients' channel: the CA to trust (`METAPROD_TLS_CA` or `--tls-ca FILE`) and, for
services that require client certificates, the certificate and key to present
(`METAPROD_TLS_CERT`/`METAPROD_TLS_KEY` or `--tls-cert/--tls-key`). Without a CA the channel is
plaintext (docs/operations.md#tls)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc
from metaprod.core.errors import InvalidArgument

CA_ENV = "METAPROD_TLS_CA"
CERT_ENV = "METAPROD_TLS_CERT"
KEY_ENV = "METAPROD_TLS_KEY"


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise InvalidArgument(f"{what} {path}: not a PEM file")
    return data


def channel_credentials(
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> grpc.ChannelCredentials | None:
    """Credentials trusting the CA file `ca` (default $METAPROD_TLS_CA), presenting `cert` and
    `key` (default $METAPROD_TLS_CERT/$METAPROD_TLS_KEY) when both are given; None without a CA
    (plaintext). A missing or unreadable file is a one-line error."""
    env = os.environ if environ is None else environ
    ca = ca or env.get(CA_ENV, "").strip() or None
    if ca is None:
        return None
    cert = cert or env.get(CERT_ENV, "").strip() or None
    key = key or env.get(KEY_ENV, "").strip() or None
    if (cert is None) != (key is None):
        given, missing = ("--tls-cert", "--tls-key") if cert is not None else ("--tls-key", "--tls-cert")
        raise InvalidArgument(f"{given} needs {missing} too (or {CERT_ENV} and {KEY_ENV})")
    root = _read(ca, "TLS CA")
    chain = _read(cert, "TLS client certificate") if cert else None
    private = _read(key, "TLS client key") if key else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=private, certificate_chain=chain)
