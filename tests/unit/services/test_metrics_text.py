"""The hand-written summary families of /metrics: the same bytes as prometheus_client writes
for the same families (the collector they replace, rebuilt here with its metric families),
and valid for its parser."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from metaprod.core.progress import FILE_KEYS, TASK_KEYS, ProductionProgress, TransformationProgress, complete_counts
from metaprod.db.monitoring import Overview, ProductionRow
from metaprod.services.metrics_text import label, number, summary_exposition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _transformation(name: str, status: str, files: dict[str, int], tasks: dict[str, int]) -> TransformationProgress:
    return TransformationProgress(
        name=name,
        status=status,
        files=complete_counts(files, FILE_KEYS),
        tasks=complete_counts(tasks, TASK_KEYS),
        task_count=None if files else 10,
    )


def _row(pid: int, name: str, status: str, transformations: list[tuple[int, TransformationProgress]]) -> ProductionRow:
    return ProductionRow(
        id=pid,
        name=name,
        status=status,
        owner="alice",
        description="",
        created_at=NOW,
        updated_at=NOW,
        progress=ProductionProgress(name, status, tuple(t for _, t in transformations)),
        transformation_ids=tuple(tid for tid, _ in transformations),
    )


def overview() -> Overview:
    """Names that need escaping, counts past a million (Go's exponent form), a Cleaned
    production (left out) and one without transformations."""
    big = {"Processed": 12_345_678, "Unused": 999_999, "Problematic": 1_000_000, "Assigned": 3}
    return Overview(
        productions=[
            _row(1, "mc-2026", "Active", [(1, _transformation("gen", "Active", {}, {"Done": 7, "Failed": 2}))]),
            _row(
                2,
                'odd "name" \\ with\nnewline é',
                "Partial",
                [
                    (2, _transformation('ré"co\\', "Active", big, {"Done": 5, "Running": 1})),
                    (3, _transformation("merge", "Completed", {"Processed": 1}, {"Done": 1})),
                ],
            ),
            _row(3, "gone", "Cleaned", [(4, _transformation("old", "Cleaned", {"Processed": 4}, {"Done": 4}))]),
            _row(4, "empty", "Failed", []),
        ],
        attempt_outcomes={1: {"Done": 7, "Failed": 3}, 2: {"Done": 5, "Killed": 1}, 4: {"Done": 4}},
        transformation_names={},
        files_registered=2_000_000,
        reported_attempts=2,
        tasks_by_status=complete_counts({"Created": 4, "Submitted": 1, "Running": 2}, TASK_KEYS),
        files_by_status=complete_counts({"Unused": 999_999}, FILE_KEYS),
    )


class _Reference:
    """The families as the former collector built them with prometheus_client."""

    def __init__(self, view: Overview) -> None:
        self.view = view

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        view = self.view
        labels = ["production", "transformation"]
        finished = CounterMetricFamily(
            "metaprod_tasks_finished", "Task attempts ended, by outcome", labels=[*labels, "outcome"]
        )
        files = GaugeMetricFamily("metaprod_files", "Files per transformation and status", labels=[*labels, "status"])
        tasks = GaugeMetricFamily("metaprod_tasks", "Tasks per transformation and status", labels=[*labels, "status"])
        t_percent = GaugeMetricFamily("metaprod_transformation_percent", "Share of its work done", labels=labels)
        t_failed = GaugeMetricFamily(
            "metaprod_transformation_failed_percent", "Share of its work failed", labels=labels
        )
        percent = GaugeMetricFamily(
            "metaprod_production_percent", "Share of the production done", labels=["production"]
        )
        failed = GaugeMetricFamily(
            "metaprod_production_failed_percent", "Share of the production failed", labels=["production"]
        )
        status = GaugeMetricFamily(
            "metaprod_production_status",
            "The production's status (1 on its current one)",
            labels=["production", "status"],
        )
        for row in view.productions:
            if row.status == "Cleaned":
                continue
            p = row.progress
            percent.add_metric([p.name], p.percent)
            failed.add_metric([p.name], p.failed_percent)
            status.add_metric([p.name, p.status], 1)
            for tid, t in zip(row.transformation_ids, p.transformations, strict=True):
                key = [p.name, t.name]
                t_percent.add_metric(key, t.percent)
                t_failed.add_metric(key, t.failed_percent)
                for st, n in t.files.items():
                    files.add_metric([*key, st], n)
                for st, n in t.tasks.items():
                    tasks.add_metric([*key, st], n)
                for outcome, n in view.attempt_outcomes.get(tid, {}).items():
                    finished.add_metric([*key, outcome.lower()], n)
        registered = CounterMetricFamily("metaprod_files_registered", "Files in the catalog")
        registered.add_metric([], view.files_registered)
        backlog = GaugeMetricFamily("metaprod_backlog", "Work waiting, by kind", labels=["kind"])
        backlog.add_metric(["unused_files"], view.files_by_status.get("Unused", 0))
        backlog.add_metric(["created_tasks"], view.tasks_by_status.get("Created", 0))
        backlog.add_metric(
            ["running_tasks"], view.tasks_by_status.get("Submitted", 0) + view.tasks_by_status.get("Running", 0)
        )
        backlog.add_metric(["reported_attempts"], view.reported_attempts)
        yield from (finished, registered, files, tasks, t_percent, t_failed, percent, failed, status, backlog)


def test_same_bytes_as_prometheus_client() -> None:
    view = overview()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Reference(view))  # type: ignore[arg-type]
    assert summary_exposition(view) == generate_latest(registry)


def test_parses_with_the_values_and_labels() -> None:
    text = summary_exposition(overview()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "metaprod_tasks_finished",
        "metaprod_files_registered",
        "metaprod_files",
        "metaprod_tasks",
        "metaprod_transformation_percent",
        "metaprod_transformation_failed_percent",
        "metaprod_production_percent",
        "metaprod_production_failed_percent",
        "metaprod_production_status",
        "metaprod_backlog",
    }
    assert families["metaprod_tasks_finished"].type == "counter"
    odd = 'odd "name" \\ with\nnewline é'
    files = {
        (s.labels["production"], s.labels["transformation"], s.labels["status"]): s.value
        for s in families["metaprod_files"].samples
    }
    assert files[(odd, 'ré"co\\', "Processed")] == 12_345_678
    assert files[(odd, 'ré"co\\', "Problematic")] == 1_000_000
    assert files[(odd, 'ré"co\\', "Unused")] == 999_999
    assert files[("mc-2026", "gen", "Unused")] == 0
    assert not any(p == "gone" for p, _, _ in files)  # Cleaned productions leave the metrics
    assert len(files) == 3 * len(FILE_KEYS)
    finished = {
        (s.labels["production"], s.labels["transformation"], s.labels["outcome"]): s.value
        for s in families["metaprod_tasks_finished"].samples
    }
    assert finished == {
        ("mc-2026", "gen", "done"): 7,
        ("mc-2026", "gen", "failed"): 3,
        (odd, 'ré"co\\', "done"): 5,
        (odd, 'ré"co\\', "killed"): 1,
    }
    status = {(s.labels["production"], s.labels["status"]) for s in families["metaprod_production_status"].samples}
    assert status == {("mc-2026", "Active"), (odd, "Partial"), ("empty", "Failed")}
    assert [s.value for s in families["metaprod_files_registered"].samples] == [2_000_000]
    backlog = {s.labels["kind"]: s.value for s in families["metaprod_backlog"].samples}
    assert backlog == {"unused_files": 999_999, "created_tasks": 4, "running_tasks": 3, "reported_attempts": 2}
    percent = {s.labels["production"]: s.value for s in families["metaprod_production_percent"].samples}
    assert percent["mc-2026"] == pytest.approx(70.0)


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -1,
        999_999,
        1_000_000,
        -1_000_000,
        12_345_678,
        10**20,
        0.0,
        12.5,
        33.33,
        1e-7,
        999_999.5,
        1e6,
        2.5e9,
        -3.25,
        math.inf,
        -math.inf,
        math.nan,
    ],
)
def test_number_as_prometheus_client_writes_it(value: float) -> None:
    assert number(value) == floatToGoString(value)


def test_label_escapes_backslash_newline_quote() -> None:
    assert label('a\\b\n"c"') == 'a\\\\b\\n\\"c\\"'
    assert label("plain") == "plain"
