"""Lineage through the permanent provenance record: transitive both ways, diamonds counted once,
nearest generation first, the depth guard, and an unknown LFN."""

from __future__ import annotations

import pytest
from metaprod.core.errors import InvalidArgument, NotFound
from metaprod.db import counters, lineage
from metaprod.db.models import CatalogFile, ProducedFileInput
from metaprod.db.session import Database
from sqlalchemy import insert


def make_graph(database: Database, edges: dict[str, list[str]]) -> None:
    """Files named by `edges`' keys and values; `edges[f]` are f's inputs, in order."""
    names = sorted({*edges, *(i for inputs in edges.values() for i in inputs)})
    ids = {name: n for n, name in enumerate(names, 1)}
    with database.session_scope() as session:
        session.execute(insert(CatalogFile), [{"id": ids[n], "lfn": f"/{n}"} for n in names])
        counters.record(session, counters.CATALOG, 0, counters.CATALOG_FILES, len(names))  # as registration does
        rows = [
            {"file_id": ids[f], "position": p, "input_file_id": ids[i]}
            for f, inputs in edges.items()
            for p, i in enumerate(inputs)
        ]
        session.execute(insert(ProducedFileInput), rows)


# a, b generated; c = f(a), d = f(b), m = merge(c, d), e = f(m), x = f(a, m) (a diamond through a)
GRAPH = {"c": ["a"], "d": ["b"], "m": ["c", "d"], "e": ["m"], "x": ["a", "m"]}


def test_ancestors_and_descendants_are_transitive_nearest_first(database: Database) -> None:
    make_graph(database, GRAPH)
    with database.session_scope(readonly=True) as session:
        got = lineage.lineage(session=session, lfn="/m")
        assert got.ancestors == ("/c", "/d", "/a", "/b")
        assert got.descendants == ("/e", "/x")
        x = lineage.lineage(session=session, lfn="/x")
        assert x.ancestors == ("/a", "/m", "/c", "/d", "/b")  # a once, at its nearest generation
        assert x.descendants == () and not x.truncated
        a = lineage.lineage(session=session, lfn="/a")
        assert a.ancestors == () and a.descendants == ("/c", "/x", "/m", "/e")


def test_depth_guard_stops_and_says_so(database: Database) -> None:
    make_graph(database, {f"f{n:02d}": [f"f{n - 1:02d}"] for n in range(1, 12)})
    with database.session_scope(readonly=True) as session:
        full = lineage.lineage(session=session, lfn="/f11")
        assert full.ancestors == tuple(f"/f{n:02d}" for n in range(10, -1, -1)) and not full.truncated
        cut = lineage.lineage(session=session, lfn="/f11", max_depth=3)
        assert cut.ancestors == ("/f10", "/f09", "/f08") and cut.truncated
        with pytest.raises(InvalidArgument):
            lineage.lineage(session=session, lfn="/f11", max_depth=0)


def test_unknown_lfn_is_not_found(database: Database) -> None:
    make_graph(database, GRAPH)
    with database.session_scope(readonly=True) as session, pytest.raises(NotFound, match="no file '/m '"):
        lineage.lineage(session=session, lfn="/m ")
