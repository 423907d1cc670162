"""Where a server may listen without TLS, and the checks of the TLS settings that need no
certificate (the files themselves: tests/integration/test_tls.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from metaprod.core.errors import InvalidArgument
from metaprod.services.tls import check_listen_address, is_loopback, job_tls, server_tls


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "10.77.0.1", "::", "example.org", ""):
        assert not is_loopback(host), host


def test_plaintext_listens_on_loopback_only_unless_told_otherwise() -> None:
    check_listen_address("127.0.0.1", None, insecure_anywhere=False)
    with pytest.raises(InvalidArgument, match=r"refusing to listen on 0\.0\.0\.0 without TLS"):
        check_listen_address("0.0.0.0", None, insecure_anywhere=False)
    check_listen_address("0.0.0.0", None, insecure_anywhere=True)


def test_incomplete_tls_settings_are_refused(tmp_path: Path) -> None:
    assert server_tls(None, None, None) is None
    with pytest.raises(InvalidArgument, match="--tls-key needs --tls-cert too"):
        server_tls(None, tmp_path / "k", None)
    with pytest.raises(InvalidArgument, match="--tls-client-ca needs --tls-cert and --tls-key"):
        server_tls(None, None, tmp_path / "ca")
    assert job_tls(None, None, None) == {}
    with pytest.raises(InvalidArgument, match="needs --tls-ca too"):
        job_tls(None, tmp_path / "c", tmp_path / "k")
    with pytest.raises(InvalidArgument, match=r"TLS CA \(--tls-ca, METAPROD_TLS_CA\) .*: No such file"):
        job_tls(tmp_path / "absent.pem", None, None)
