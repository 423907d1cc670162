"""`--runs N` for the benchmarks: every figure of every run is kept and summarised as
min / median / max, so that one lucky or unlucky run is never the number quoted."""

from __future__ import annotations

import statistics
from collections.abc import Callable


class Runs:
    def __init__(self) -> None:
        self.figures: dict[str, list[float]] = {}
        self.formats: dict[str, str] = {}

    def add(self, name: str, value: float, fmt: str = "{:,.0f}") -> None:
        self.figures.setdefault(name, []).append(value)
        self.formats[name] = fmt

    def summary(self) -> str:
        width = max((len(n) for n in self.figures), default=0)
        lines = []
        for name, values in self.figures.items():
            fmt: Callable[[float], str] = self.formats[name].format
            lines.append(
                f"  {name:<{width}}  min {fmt(min(values))}  median {fmt(statistics.median(values))}  "
                f"max {fmt(max(values))}  ({len(values)} run{'s' if len(values) != 1 else ''})"
            )
        return "\n".join(lines)
