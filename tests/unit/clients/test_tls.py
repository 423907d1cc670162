"""The clients' TLS settings: plaintext without a CA, one-line errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from metaprod.clients.tls import channel_credentials
from metaprod.core.errors import InvalidArgument

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_without_a_ca_the_channel_is_plaintext() -> None:
    assert channel_credentials(environ={}) is None
    # A client certificate alone does not switch TLS on (up/serve read the same variables).
    assert channel_credentials(environ={"METAPROD_TLS_CERT": "c.pem", "METAPROD_TLS_KEY": "k.pem"}) is None


def test_a_ca_from_the_environment_or_the_flag(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    assert isinstance(channel_credentials(environ={"METAPROD_TLS_CA": str(ca)}), grpc.ChannelCredentials)
    assert isinstance(channel_credentials(str(ca), environ={}), grpc.ChannelCredentials)


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(InvalidArgument, match=re.escape(f"TLS CA {ca}: No such file or directory")):
        channel_credentials(str(ca), environ={})
    ca.write_text("not pem\n")
    with pytest.raises(InvalidArgument, match="not a PEM file"):
        channel_credentials(str(ca), environ={})
    ca.write_text(PEM)
    with pytest.raises(InvalidArgument, match="--tls-cert needs --tls-key too"):
        channel_credentials(str(ca), str(ca), environ={})
