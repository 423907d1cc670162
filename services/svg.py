"""Server-side SVG: a production's transformation graph (layered layout, nodes coloured by
status with their counts) and small line charts. No JavaScript library, nothing fetched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

# One colour per status; outcomes apart: Completed green, Partial amber, Failed red.
STATUS_COLOURS = {
    "New": "#94a3b8",
    "Active": "#38bdf8",
    "Stopped": "#c084fc",
    "Completed": "#22c55e",
    "Partial": "#f59e0b",
    "Failed": "#ef4444",
    "Cleaning": "#64748b",
    "Cleaned": "#475569",
}
DONE_COLOUR = "#22c55e"
FAILED_COLOUR = "#ef4444"

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 210, 78, 40, 56, 16


@dataclass(frozen=True)
class Node:
    name: str
    status: str
    done: int
    failed: int
    pending: int
    percent: float
    failed_percent: float
    href: str


def layers(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Layers by longest path from the roots; within a layer, ordered by the mean position of
    the parents (one barycentre pass), ties by declaration order."""
    parents: dict[str, list[str]] = {n: [] for n in names}
    for parent, child in edges:
        if parent in parents and child in parents:
            parents[child].append(parent)
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            ps = [p for p in parents[name] if p not in seen]
            depth[name] = 0 if not ps else 1 + max(depth_of(p, seen | {name}) for p in ps)
        return depth[name]

    for name in names:
        depth_of(name)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in names:
        result[depth[name]].append(name)
    position: dict[str, float] = {}
    for layer in result:
        order = {n: i for i, n in enumerate(layer)}

        def key(n: str, order: Mapping[str, int] = order) -> tuple[float, int]:
            ps = [position[p] for p in parents[n] if p in position]
            return (sum(ps) / len(ps) if ps else float(order[n]), order[n])

        layer.sort(key=key)
        for i, n in enumerate(layer):
            position[n] = float(i)
    return result


def graph(nodes: Sequence[Node], edges: Sequence[tuple[str, str]]) -> str:
    """The transformation graph: one box per transformation (name, status, done/failed/pending,
    a bar of done in green and failed in red), arrows from parents to children."""
    by_name = {n.name: n for n in nodes}
    rows = layers([n.name for n in nodes], edges)
    widest = max((len(r) for r in rows), default=1)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    height = MARGIN * 2 + len(rows) * NODE_H + max(0, len(rows) - 1) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for depth, row in enumerate(rows):
        offset = (width - (len(row) * NODE_W + (len(row) - 1) * GAP_X)) / 2
        for i, name in enumerate(row):
            where[name] = (offset + i * (NODE_W + GAP_X), MARGIN + depth * (NODE_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="transformation graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#94a3b8"/></marker></defs>',
    ]
    for parent, child in edges:
        if parent not in where or child not in where:
            continue
        (px, py), (cx, cy) = where[parent], where[child]
        x1, y1, x2, y2 = px + NODE_W / 2, py + NODE_H, cx + NODE_W / 2, cy
        mid = (y1 + y2) / 2
        parts.append(
            f'<path d="M {x1:.0f} {y1:.0f} C {x1:.0f} {mid:.0f}, {x2:.0f} {mid:.0f}, {x2:.0f} {y2 - 2:.0f}" '
            'fill="none" stroke="#94a3b8" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for name, (x, y) in where.items():
        n = by_name[name]
        colour = STATUS_COLOURS.get(n.status, "#94a3b8")
        bar_w = NODE_W - 20
        done_w = bar_w * min(100.0, max(0.0, n.percent)) / 100
        failed_w = min(bar_w - done_w, bar_w * max(0.0, n.failed_percent) / 100)
        parts.append(
            f'<a href="{escape(n.href)}" class="node" data-status="{escape(n.status)}">'
            f"<title>{escape(n.name)}: {escape(n.status)}, {n.done} done, {n.failed} failed, "
            f"{n.pending} pending</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="#1e293b" '
            f'stroke="{colour}" stroke-width="2.5"/>'
            f'<text x="{x + 10:.0f}" y="{y + 20:.0f}" fill="#e2e8f0" font-size="14" font-weight="600">'
            f"{escape(_clip(n.name, 24))}</text>"
            f'<text x="{x + NODE_W - 10:.0f}" y="{y + 20:.0f}" fill="{colour}" font-size="12" '
            f'text-anchor="end">{escape(n.status)}</text>'
            f'<text x="{x + 10:.0f}" y="{y + 42:.0f}" font-size="12">'
            f'<tspan fill="{DONE_COLOUR}">{n.done} done</tspan>'
            f'<tspan fill="{FAILED_COLOUR}" dx="8">{n.failed} failed</tspan>'
            f'<tspan fill="#cbd5e1" dx="8">{n.pending} pending</tspan></text>'
            f'<rect x="{x + 10:.0f}" y="{y + 56:.0f}" width="{bar_w}" height="8" rx="3" fill="#334155"/>'
            f'<rect x="{x + 10:.0f}" y="{y + 56:.0f}" width="{done_w:.1f}" height="8" fill="{DONE_COLOUR}"/>'
            f'<rect x="{x + 10 + done_w:.1f}" y="{y + 56:.0f}" width="{failed_w:.1f}" height="8" '
            f'fill="{FAILED_COLOUR}"/></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    colour: str


def line_chart(title: str, times: Sequence[datetime], series: Sequence[Series], *, unit: str = "") -> str:
    """A small line chart: time on x, one line per series, the max and the span labelled."""
    w, h, left, bottom, top = 460, 150, 44, 22, 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" fill="#e2e8f0" font-size="12" font-weight="600">{escape(title)}</text>',
    ]
    if len(times) < 2:
        parts.append(
            f'<text x="{left}" y="{h / 2:.0f}" fill="#94a3b8" font-size="12">'
            "not enough samples yet (the sampler agent stores them)</text></svg>"
        )
        return "".join(parts)
    t0, t1 = times[0].timestamp(), times[-1].timestamp()
    span = max(1.0, t1 - t0)
    peak = max((max(s.values, default=0.0) for s in series), default=0.0) or 1.0
    plot_w, plot_h = w - left - 8, h - top - bottom
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - 8}" y2="{top + plot_h}" stroke="#475569"/>'
        f'<text x="{left - 4}" y="{top + 8}" fill="#94a3b8" font-size="10" text-anchor="end">{_num(peak)}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" fill="#94a3b8" font-size="10" text-anchor="end">0</text>'
        f'<text x="{left}" y="{h - 6}" fill="#94a3b8" font-size="10">{times[0]:%m-%d %H:%M}</text>'
        f'<text x="{w - 8}" y="{h - 6}" fill="#94a3b8" font-size="10" text-anchor="end">'
        f"{times[-1]:%m-%d %H:%M} UTC{(' · ' + escape(unit)) if unit else ''}</text>"
    )
    legend_x = left + 12 + len(title) * 8
    for s in series:
        points = " ".join(
            f"{left + plot_w * (t.timestamp() - t0) / span:.1f},{top + plot_h * (1 - v / peak):.1f}"
            for t, v in zip(times, s.values, strict=False)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{legend_x}" y="14" fill="{s.colour}" font-size="11">{escape(s.label)}</text>')
        legend_x += 10 + 7 * len(s.label)
    parts.append("</svg>")
    return "".join(parts)


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 10 else f"{value:.1f}"
