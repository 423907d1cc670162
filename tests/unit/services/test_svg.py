"""The server-side SVG: layered layout of the transformation graph, nodes, charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from metaprod.services import svg


def node(name: str, status: str = "Active", percent: float = 50.0, failed: float = 10.0) -> svg.Node:
    return svg.Node(name, status, 5, 1, 4, percent, failed, f"/t/{name}")


def test_layers_by_longest_path_and_parents_first() -> None:
    names = ["merge", "gen", "reco", "sim2"]
    edges = [("gen", "reco"), ("reco", "merge"), ("gen", "merge"), ("sim2", "merge")]
    assert svg.layers(names, edges) == [["gen", "sim2"], ["reco"], ["merge"]]


def test_graph_names_every_transformation_and_links_it() -> None:
    nodes = [node("gen", "Completed", 100, 0), node("reco", "Failed", 0, 100), node("merge", "Partial", 60, 40)]
    text = svg.graph(nodes, [("gen", "reco"), ("gen", "merge")])
    root = ET.fromstring(text)
    labels = "".join(root.itertext())
    assert all(n in labels for n in ("gen", "reco", "merge"))
    assert text.count('class="node"') == 3 and 'href="/t/reco"' in text
    assert svg.STATUS_COLOURS["Failed"] in text and svg.STATUS_COLOURS["Partial"] in text
    assert text.count("marker-end") == 2


def test_a_failed_node_never_draws_a_full_done_bar() -> None:
    text = svg.graph([node("reco", "Failed", 0.0, 100.0)], [])
    # The done part is empty and the red part takes the bar: 190 px wide.
    assert f'width="0.0" height="8" fill="{svg.DONE_COLOUR}"' in text
    assert f'width="190.0" height="8" fill="{svg.FAILED_COLOUR}"' in text


def test_charts_parse_and_say_when_there_is_nothing_yet() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(minutes=i) for i in range(5)]
    chart = svg.line_chart("throughput", times, [svg.Series("done/min", [0, 1, 2, 1, 0], "#22c55e")])
    ET.fromstring(chart)
    assert "<polyline" in chart
    assert "not enough samples" in svg.line_chart("backlog", times[:1], [])
