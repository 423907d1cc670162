"""`FileRouter.route_split`: the matching ids, split by the file's ancestry (data cycles)."""

from __future__ import annotations

from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.router import FileRouter

S = Schema({"datatype": "str", "run": "int"})


def test_route_split_takes_out_the_ancestry() -> None:
    router: FileRouter[int] = FileRouter(
        {1: MetaQuery.parse("datatype=raw", S), 2: MetaQuery.parse("run>=5", S), 3: MetaQuery.parse("datatype=x", S)}
    )
    md = {"datatype": "raw", "run": 7}
    assert router.route_split(md, frozenset()) == ({1, 2}, set())
    assert router.route_split(md, frozenset({3, 4})) == ({1, 2}, set())
    assert router.route_split(md, frozenset({2, 3})) == ({1}, {2})
    assert router.route_split(md, frozenset({1, 2})) == (set(), {1, 2})
