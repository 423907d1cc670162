"""`catalog lineage` through the real server and the CLI: the pinned JSON shape, the text form,
an unknown LFN as a one-line NOT_FOUND error."""

from __future__ import annotations

import json
import os
import subprocess

from metaprod.clients import Client

from tests.integration.conftest import RunningServer
from tests.integration.system import METAPROD
from tests.unit.db.test_lineage import GRAPH, make_graph


def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METAPROD_ADDRESS": server.address, "METAPROD_TOKEN": server.admin_token}
    return subprocess.run([*METAPROD, "catalog", "lineage", *args], capture_output=True, text=True, env=env, timeout=60)


def test_lineage_through_client_and_cli(server: RunningServer, admin: Client) -> None:
    make_graph(server.database, GRAPH)
    got = admin.catalog.lineage("/m")
    assert got.ancestors == ("/c", "/d", "/a", "/b") and got.descendants == ("/e", "/x")
    out = cli(server, "/x", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "lfn": "/x",
        "ancestors": ["/a", "/m", "/c", "/d", "/b"],
        "descendants": [],
        "truncated": False,
    }
    text = cli(server, "/c").stdout
    assert text.splitlines() == [
        "/c: 1 ancestor(s), 3 descendant(s)",
        "ancestors:",
        "  /a",
        "descendants:",
        "  /m",
        "  /e",
        "  /x",
    ]
    assert json.loads(cli(server, "/e", "--max-depth", "1", "--json").stdout)["ancestors"] == ["/m"]


def test_unknown_lfn_is_one_line_not_found(server: RunningServer) -> None:
    out = cli(server, "/nope")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == "metaprod: error: no file '/nope' in the catalog\n"
